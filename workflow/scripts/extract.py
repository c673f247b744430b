"""Extract one plane's traces: F, neuropil, dF/F, OASIS deconvolution and events."""

import numpy as np
import xarray as xr

from analysis import extract, io, masks
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="extract", inputs=sm.input) as log:
    settings = extract.ExtractSettings.from_mapping(sm.params.settings)
    movie, header = io.open_movie(sm.input.movie)
    rois = masks.select_session(io.read_netcdf(sm.input.rois), sm.wildcards.session)
    dropped = io.read_tsv(sm.input.frames)["dropped"].to_numpy(bool)
    if len(dropped) != header.n_frames:
        raise ValueError(
            f"{sm.input.frames} lists {len(dropped)} frames but the registered movie "
            f"{sm.input.movie} has {header.n_frames}: one of them is stale; rerun both with "
            "`snakemake --forcerun register`."
        )
    bad = io.read_netcdf(sm.input.registration)["bad_frame"].to_numpy().astype(bool)
    traces = extract.extract_traces(movie, rois, fs_hz=header.fs_hz, settings=settings)
    log.info("%d dropped and %d bad (register) frames", dropped.sum(), bad.sum())
    traces = extract.blank_frames(traces, dropped | bad)
    traces = extract.compute_dff(traces, fs_hz=header.fs_hz, settings=settings)
    traces = xr.merge(
        [traces, extract.deconvolve(traces["dff"], fs_hz=header.fs_hz, settings=settings)]
    )
    events = extract.detect_events(traces["dff"], fs_hz=header.fs_hz, settings=settings)
    log.info("%d ROIs, %d events", traces.sizes["roi"], len(events))
    io.write_netcdf(
        traces.astype(np.float32),
        sm.output.traces,
        stage="extract",
        settings=settings,
        inputs=sm.input,
    )
    io.write_tsv(events, sm.output.events)
