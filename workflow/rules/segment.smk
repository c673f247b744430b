# segment: somata on the soma plane (suite2p sparsery), dendrites on the dendrite plane.


rule segment:
    input:
        movie=artifact("register.movie"),
        header=artifact("register.header"),
        registration=artifact("register.registration"),
    output:
        rois=artifact("segment.rois"),
    params:
        settings=stage_settings("segment"),
        role=lambda wc: META[(wc.subject, wc.session)].plane_roles[int(wc.plane)],
    # one thread per job: the two planes of a session run side by side on 2 cores
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    log:
        f"{RESULTS}/logs/segment/{{subject}}/{{session}}/plane{{plane}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/{{subject}}/{{session}}/plane{{plane}}.tsv"
    script:
        "../scripts/segment.py"
