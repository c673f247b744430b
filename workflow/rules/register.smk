# register: suite2p rigid + nonrigid registration per session and plane.


rule register:
    input:
        movie=rules.ingest_plane.output.movie,
        header=rules.ingest_plane.output.header,
    output:
        movie=f"{RESULTS}/register/{{subject}}/{{session}}/plane{{plane}}/movie.bin",
        header=f"{RESULTS}/register/{{subject}}/{{session}}/plane{{plane}}/movie.bin.json",
        registration=f"{RESULTS}/register/{{subject}}/{{session}}/plane{{plane}}/registration.nc",
    params:
        settings=stage_settings("register"),
    # one thread per job: the two planes of a session run side by side on 2 cores
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    log:
        f"{RESULTS}/logs/register/{{subject}}/{{session}}/plane{{plane}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/register/{{subject}}/{{session}}/plane{{plane}}.tsv"
    script:
        "../scripts/register.py"
