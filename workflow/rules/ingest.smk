# ingest: check each raw session (imaging, BCI log, targets); register reads the planes.


rule ingest:
    input:
        raw_session_files,
    output:
        session=artifact("ingest.session"),
        bci_frames=artifact("ingest.bci_frames"),
        bci_meta=artifact("ingest.bci_meta"),
        targets=artifact("ingest.targets"),
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

