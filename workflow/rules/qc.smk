# qc: self-contained HTML pages (index + one per subject) drawn from saved results only.

# captions are read from the checkout (source_path's cache path changes every run)
REPORT_DIR = Path(workflow.basedir) / "workflow" / "report"


rule qc_subject:
    input:
        registrations=subject_session_plane_files("register.registration"),
        traces=subject_session_plane_files("extract.traces"),
        events=subject_session_plane_files("extract.events"),
        transforms=subject_plane_files("align_days.transforms"),
        rois=subject_plane_files("track.rois"),
        targets=subject_session_files("ingest.targets"),
        bci_frames=subject_session_files("ingest.bci_frames"),
        target_rois=subject_session_files("track.targets"),
        trials=subject_session_files("bci.trials"),
        aligned_reward=subject_session_files("bci.aligned_reward"),
        aligned_failure=subject_session_files("bci.aligned_failure"),
        replays=subject_session_files("bci.replay"),
        replay_agreement=subject_session_files("bci.replay_agreement"),
        pairs=rules.pair.output.pairs,
        behaviour=rules.stats.output.behaviour,
        pairing_figure=artifact("figures.qc", name="pairing"),
    output:
        page=artifact("qc.page"),
        summary=artifact("qc.summary"),
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
        subjects=expand(artifact("qc.summary"), subject=SUBJECTS),
        pages=expand(artifact("qc.page"), subject=SUBJECTS),
        tables=[rules.stats.output[name] for name in STATS_TABLES],
        summary=rules.stats.output.summary,
        figures=[rules.figures.output[name] for name in PAPER_FIGURES],
    output:
        index=artifact("qc.index"),
    params:
        captions={name: str(REPORT_DIR / f"{name}.rst") for name in [*PAPER_FIGURES, "summary"]},
    log:
        f"{RESULTS}/logs/qc/index.log",
    script:
        "../scripts/qc_index.py"
