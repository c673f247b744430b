"""Build one subject's QC page from its saved results."""

from pathlib import Path

from analysis import io, qc
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)


def by_session(paths, reader):
    return {s: reader(p) for s, p in zip(sm.params.sessions, paths, strict=True)}


def by_session_plane(paths, reader):
    keys = [(s, p) for s in sm.params.sessions for p in (soma_plane, dendrite_plane)]
    return {key: reader(path) for key, path in zip(keys, paths, strict=True)}


with rule_log(sm.log[0], rule="qc_subject", inputs=sm.input) as log:
    settings = qc.QcSettings.from_mapping(sm.params.settings)
    subject = sm.wildcards.subject
    soma_plane, dendrite_plane = sm.params.soma_plane, sm.params.dendrite_plane
    planes = (soma_plane, dendrite_plane)
    behaviour = io.read_tsv(sm.input.behaviour)
    results = qc.SubjectResults(
        subject=subject,
        sessions=sm.params.sessions,
        soma_plane=soma_plane,
        dendrite_plane=dendrite_plane,
        bci_plane=dict(zip(sm.params.sessions, sm.params.bci_planes, strict=True)),
        registrations=by_session_plane(sm.input.registrations, io.read_netcdf),
        transforms=dict(zip(planes, map(io.read_netcdf, sm.input.transforms), strict=True)),
        rois=dict(zip(planes, map(io.read_netcdf, sm.input.rois), strict=True)),
        traces=by_session_plane(sm.input.traces, io.read_netcdf),
        events=by_session_plane(sm.input.events, io.read_tsv),
        targets=by_session(sm.input.targets, lambda p: io.read_json(p)["targets"]),
        bci_frames=by_session(sm.input.bci_frames, io.read_tsv),
        target_rois=by_session(sm.input.target_rois, io.read_tsv),
        pairs=io.read_tsv(sm.input.pairs),
        trials=by_session(sm.input.trials, io.read_tsv),
        aligned={
            (s, event): io.read_netcdf(p)
            for event, paths in (
                ("reward", sm.input.aligned_reward),
                ("failure", sm.input.aligned_failure),
            )
            for s, p in zip(sm.params.sessions, paths, strict=True)
        },
        replays=by_session(sm.input.replays, io.read_tsv),
        replay_agreement=by_session(sm.input.replay_agreement, io.read_tsv),
        behaviour=behaviour[behaviour["subject"].astype(str) == subject],
    )
    view = qc.compute_subject_view(results, settings=settings)
    caption = qc.render_caption(Path(sm.params.pairing_caption).read_text(), subject=subject)
    figure = qc.Figure("Soma-dendrite pairing", Path(sm.input.pairing_figure).read_bytes(), caption)
    page = qc.render_subject_page(view, figures=[figure])
    io.write_text(page, sm.output.page)
    outlines = qc.count_outlines(view)
    page_bytes = len(page.encode())
    log.info("%s: %d bytes, outlines %s", sm.output.page, page_bytes, outlines)
    io.write_json(
        {
            "subject": subject,
            "page": Path(sm.output.page).name,
            "sessions": len(results.sessions),
            "page_bytes": page_bytes,
            **{f"n_{kind}": n for kind, n in outlines.items()},
        },
        sm.output.summary,
    )
