# extract: F, neuropil, dF/F with an explicit baseline, OASIS deconvolution, events.


rule extract:
    input:
        movie=registered("movie.bin"),
        header=registered("movie.bin.json"),
        registration=registered("registration.nc"),
        rois=rules.track.output.rois,
        frames=rules.ingest_plane.output.frames,
    output:
        traces=f"{RESULTS}/extract/{{subject}}/{{session}}/plane{{plane}}/traces.nc",
        events=f"{RESULTS}/extract/{{subject}}/{{session}}/plane{{plane}}/events.tsv",
    params:
        settings=stage_settings("extract"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"{RESULTS}/logs/extract/{{subject}}/{{session}}/plane{{plane}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract/{{subject}}/{{session}}/plane{{plane}}.tsv"
    script:
        "../scripts/extract.py"
