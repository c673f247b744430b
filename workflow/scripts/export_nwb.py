"""Write one session's results as an NWB file; refuse it unless nwbinspector passes it."""

import numpy as np

from analysis import export, io
from analysis.dims import ROI
from analysis.masks import select_session, to_dense
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="export_nwb", inputs=sm.input) as log:
    settings = export.ExportSettings.from_mapping(sm.params.settings)
    session = sm.wildcards.session
    record = io.read_json(sm.input.session)
    planes = []
    for plane, rois, assignments, traces, events, registration in zip(
        sm.params.planes,
        sm.input.rois,
        sm.input.assignments,
        sm.input.traces,
        sm.input.events,
        sm.input.registrations,
        strict=True,
    ):
        # NWB's image_mask is dense (roi, row, col): built here, for one session only
        masks = to_dense(select_session(io.read_netcdf(rois), session))
        table = io.read_tsv(assignments, dtype={"session": str})
        found = table.loc[(table["session"] == session) & table["detected"], "roi"]
        planes.append(
            export.PlaneResults(
                plane=plane,
                role=record["plane_roles"][str(plane)],
                masks=masks,
                traces=io.read_netcdf(traces),
                events=io.read_tsv(events),
                registration=io.read_netcdf(registration),
                detected=np.isin(masks[ROI].to_numpy(), found.to_numpy()),
            )
        )
    results = export.SessionResults(
        subject=sm.wildcards.subject,
        session=session,
        fs_hz=float(record["fs_hz"]),
        planes=tuple(planes),
        soma_plane=sm.params.soma_plane,
        dendrite_plane=sm.params.dendrite_plane,
        bci_frames=io.read_tsv(sm.input.bci_frames),
        bci_meta=io.read_json(sm.input.bci_meta),
        trials=io.read_tsv(sm.input.trials),
        task_error=io.read_tsv(sm.input.task_error),
        targets=io.read_tsv(sm.input.targets),
        pairs=io.read_tsv(sm.input.pairs),
        raw_sha256=record["sha256"],
    )
    start_time, source = export.compute_session_start_time(
        session, session_meta=io.read_yaml(sm.input.session_yaml), path=sm.input.session_yaml
    )
    log.info("session start time %s: %s", start_time.isoformat(), source)
    subject_yaml = sm.input.subject_yaml[0] if sm.input.subject_yaml else None
    subject_info = export.compute_subject(
        sm.wildcards.subject,
        settings=settings,
        subject_meta=io.read_yaml(subject_yaml) if subject_yaml else None,
        path=subject_yaml,
    )
    nwbfile = export.build_nwb(
        results,
        start_time=start_time,
        start_time_source=source,
        subject_info=subject_info,
        settings=settings,
    )
    export.write_nwb(nwbfile, sm.output.nwb)
    report = export.inspect_nwb(sm.output.nwb)
    io.write_tsv(report, sm.output.inspection)
    log.info("nwbinspector: %s", report["importance"].value_counts().to_dict() or "no findings")
    export.check_inspection(report, path=sm.output.nwb)
