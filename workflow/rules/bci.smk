# bci: trials, task error and epochs, trial-aligned arrays, cursor replay.


rule bci:
    input:
        bci_frames=rules.ingest.output.bci_frames,
        bci_meta=rules.ingest.output.bci_meta,
        session=rules.ingest.output.session,
        targets=rules.map_targets.output.targets,
        traces=lambda wc: artifact(
            "extract.traces", subject=wc.subject, session=wc.session, plane=plane_of_role(wc.subject, "soma")
        ),
    output:
        trials=artifact("bci.trials"),
        frames=artifact("bci.frames"),
        aligned_start=artifact("bci.aligned_start"),
        aligned_reward=artifact("bci.aligned_reward"),
        aligned_failure=artifact("bci.aligned_failure"),
        replay=artifact("bci.replay"),
        replay_agreement=artifact("bci.replay_agreement"),
    params:
        settings=stage_settings("bci"),
    log:
        f"{RESULTS}/logs/bci/{{subject}}/{{session}}.log",
    script:
        "../scripts/bci.py"
