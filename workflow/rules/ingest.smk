# ingest: check each raw session (imaging, BCI log, targets) and split planes to binary.


rule ingest:
    input:
        raw_session_files,
    output:
        session=f"{RESULTS}/ingest/{{subject}}/{{session}}/session.json",
        bci_frames=f"{RESULTS}/ingest/{{subject}}/{{session}}/bci_frames.tsv",
        bci_meta=f"{RESULTS}/ingest/{{subject}}/{{session}}/bci_meta.json",
        targets=f"{RESULTS}/ingest/{{subject}}/{{session}}/targets.json",
    params:
        session_dir=session_dir,
        overrides=lambda wc: session_overrides(
            SESSIONS[(SESSIONS["subject"] == wc.subject) & (SESSIONS["session"] == wc.session)].iloc[0]
        ),
        settings=stage_settings("ingest"),
    log:
        f"{RESULTS}/logs/ingest/{{subject}}/{{session}}.log",
    script:
        "../scripts/ingest.py"


rule ingest_plane:
    input:
        session=rules.ingest.output.session,
    output:
        movie=temp(f"{RESULTS}/ingest/{{subject}}/{{session}}/plane{{plane}}/movie.bin"),
        header=temp(f"{RESULTS}/ingest/{{subject}}/{{session}}/plane{{plane}}/movie.bin.json"),
        frames=f"{RESULTS}/ingest/{{subject}}/{{session}}/plane{{plane}}/frames.tsv",
    params:
        settings=stage_settings("ingest"),
    log:
        f"{RESULTS}/logs/ingest_plane/{{subject}}/{{session}}/plane{{plane}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_plane/{{subject}}/{{session}}/plane{{plane}}.tsv"
    script:
        "../scripts/ingest_plane.py"
