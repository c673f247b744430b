# bci: trials, task error and epochs, trial-aligned arrays, cursor replay.


rule bci:
    input:
        bci_frames=rules.ingest.output.bci_frames,
        bci_meta=rules.ingest.output.bci_meta,
        session=rules.ingest.output.session,
        targets=rules.map_targets.output.targets,
        traces=lambda wc: f"{RESULTS}/extract/{wc.subject}/{wc.session}/plane{plane_of_role(wc.subject, 'soma')}/traces.nc",
    output:
        trials=f"{RESULTS}/bci/{{subject}}/{{session}}/trials.tsv",
        frames=f"{RESULTS}/bci/{{subject}}/{{session}}/frames.tsv",
        aligned_start=f"{RESULTS}/bci/{{subject}}/{{session}}/aligned_start.nc",
        aligned_reward=f"{RESULTS}/bci/{{subject}}/{{session}}/aligned_reward.nc",
        aligned_failure=f"{RESULTS}/bci/{{subject}}/{{session}}/aligned_failure.nc",
        replay=f"{RESULTS}/bci/{{subject}}/{{session}}/replay.tsv",
        replay_agreement=f"{RESULTS}/bci/{{subject}}/{{session}}/replay_agreement.tsv",
    params:
        settings=stage_settings("bci"),
    log:
        f"{RESULTS}/logs/bci/{{subject}}/{{session}}.log",
    script:
        "../scripts/bci.py"
