# qc: self-contained HTML pages (index + one per subject) drawn from saved results only.

# captions are read from the checkout (source_path's cache path changes every run)
REPORT_DIR = Path(workflow.basedir) / "workflow" / "report"


rule qc_subject:
    input:
        registrations=subject_session_plane_files("register", "registration.nc"),
        traces=subject_session_plane_files("extract", "traces.nc"),
        events=subject_session_plane_files("extract", "events.tsv"),
        transforms=subject_plane_files("align_days", "transforms.nc"),
        rois=subject_plane_files("track", "rois.nc"),
        targets=subject_session_files("ingest", "targets.json"),
        bci_frames=subject_session_files("ingest", "bci_frames.tsv"),
        target_rois=subject_session_files("track", "targets.tsv"),
        trials=subject_session_files("bci", "trials.tsv"),
        aligned_reward=subject_session_files("bci", "aligned_reward.nc"),
        aligned_failure=subject_session_files("bci", "aligned_failure.nc"),
        replays=subject_session_files("bci", "replay.tsv"),
        replay_agreement=subject_session_files("bci", "replay_agreement.tsv"),
        pairs=rules.pair.output.pairs,
        behaviour=rules.stats.output.behaviour,
        pairing_figure=f"{RESULTS}/figures/qc/pairing_{{subject}}.png",
    output:
        page=f"{RESULTS}/qc/{{subject}}.html",
        summary=f"{RESULTS}/qc/{{subject}}.json",
    params:
        settings=stage_settings("qc"),
        sessions=lambda wc: sessions_of(wc.subject),
        soma_plane=lambda wc: plane_of_role(wc.subject, "soma"),
        dendrite_plane=lambda wc: plane_of_role(wc.subject, "dendrite"),
        bci_planes=lambda wc: [META[(wc.subject, s)].bci_plane for s in sessions_of(wc.subject)],
        pairing_caption=str(REPORT_DIR / "qc_pairing.rst"),
    log:
        f"{RESULTS}/logs/qc/{{subject}}.log",
    script:
        "../scripts/qc_subject.py"


rule qc:
    input:
        subjects=expand(f"{RESULTS}/qc/{{subject}}.json", subject=SUBJECTS),
        pages=expand(f"{RESULTS}/qc/{{subject}}.html", subject=SUBJECTS),
        tables=[rules.stats.output[name] for name in STATS_TABLES],
        summary=rules.stats.output.summary,
        figures=[rules.figures.output[name] for name in PAPER_FIGURES],
    output:
        index=f"{RESULTS}/qc/index.html",
    params:
        captions={name: str(REPORT_DIR / f"{name}.rst") for name in [*PAPER_FIGURES, "summary"]},
    log:
        f"{RESULTS}/logs/qc/index.log",
    script:
        "../scripts/qc_index.py"
