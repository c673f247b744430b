# qc: self-contained HTML pages (index + one per subject) drawn from saved results only.


def qc_session_plane_files(stage, name):
    """Input function: ``name`` of every session's soma then dendrite plane of a subject."""
    return lambda wc: [
        f"{RESULTS}/{stage}/{wc.subject}/{session}/plane{plane_of_role(wc.subject, role)}/{name}"
        for session in sessions_of(wc.subject)
        for role in ("soma", "dendrite")
    ]


def qc_session_files(stage, name):
    return lambda wc: [f"{RESULTS}/{stage}/{wc.subject}/{session}/{name}" for session in sessions_of(wc.subject)]


def qc_plane_files(stage, name):
    return lambda wc: [
        f"{RESULTS}/{stage}/{wc.subject}/plane{plane_of_role(wc.subject, role)}/{name}"
        for role in ("soma", "dendrite")
    ]


rule qc_subject:
    input:
        registrations=qc_session_plane_files("register", "registration.nc"),
        traces=qc_session_plane_files("extract", "traces.nc"),
        events=qc_session_plane_files("extract", "events.tsv"),
        transforms=qc_plane_files("align_days", "transforms.nc"),
        rois=qc_plane_files("track", "rois.nc"),
        targets=qc_session_files("ingest", "targets.json"),
        bci_frames=qc_session_files("ingest", "bci_frames.tsv"),
        target_rois=qc_session_files("track", "targets.tsv"),
        trials=qc_session_files("bci", "trials.tsv"),
        aligned_reward=qc_session_files("bci", "aligned_reward.nc"),
        aligned_failure=qc_session_files("bci", "aligned_failure.nc"),
        replays=qc_session_files("bci", "replay.tsv"),
        replay_agreement=qc_session_files("bci", "replay_agreement.tsv"),
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
        pairing_caption=workflow.source_path("../report/qc_pairing.rst"),
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
        captions={name: workflow.source_path(f"../report/{name}.rst") for name in [*PAPER_FIGURES, "summary"]},
    log:
        f"{RESULTS}/logs/qc/index.log",
    script:
        "../scripts/qc_index.py"
