"""Write one session plane as a suite2p 1.1.0 plane folder (stat.npy, F.npy, ops.npy, ...)."""

import json
from pathlib import Path

from analysis import export, io
from analysis.masks import select_session, to_dense
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="export_suite2p", inputs=sm.input) as log:
    settings = export.ExportSettings.from_mapping(sm.params.settings)
    record = io.read_json(sm.input.session)
    registration = io.read_netcdf(sm.input.registration)
    movie, header = io.open_movie(sm.input.movie)
    rows, cols = (
        slice(*(int(v) for v in registration.attrs[key]))
        for key in ("valid_row_range", "valid_col_range")
    )
    correlation = export.compute_correlation_image(
        movie,
        rows=rows,
        cols=cols,
        bad_frames=registration["bad_frame"].to_numpy(),
        batch_frames=settings.correlation_batch_frames,
    )
    traces = io.read_netcdf(sm.input.traces)
    extract_settings = json.loads(traces.attrs["settings"])
    folder = Path(sm.output.stat).parent
    contents = export.compute_suite2p_plane(
        to_dense(select_session(io.read_netcdf(sm.input.rois), sm.wildcards.session)),
        traces,
        registration,
        correlation_image=correlation,
        fs_hz=header.fs_hz,
        n_planes=int(record["n_planes"]),
        plane=int(sm.wildcards.plane),
        tau_s=float(extract_settings["tau_decay_s"]),
        neuropil_coefficient=float(extract_settings["neuropil_coefficient"]),
        diameter_px=float(sm.params.diameter_px),
        reg_file=str(Path(sm.input.movie).resolve()),
        save_path=str(folder.resolve()),
        data_path=str(Path(record["session_dir"]).resolve()),
    )
    log.info("%d ROIs, %d frames", len(contents["stat"]), contents["F"].shape[1])
    export.write_suite2p_plane(contents, folder)
