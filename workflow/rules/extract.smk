# extract: F, neuropil, dF/F with an explicit baseline, OASIS deconvolution, events.


rule extract:
    input:
        movie=artifact("register.movie"),
        header=artifact("register.header"),
        registration=artifact("register.registration"),
        rois=rules.track.output.rois,
        frames=artifact("register.frames"),
    output:
        traces=artifact("extract.traces"),
        events=artifact("extract.events"),
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
