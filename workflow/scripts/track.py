"""Track one plane's ROIs across a subject's sessions; masks on the reference and per day."""

import xarray as xr

from analysis import io
from analysis.dims import SESSION
from analysis.runlog import rule_log
from analysis.track import TrackSettings, masks_to_session, track_rois

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="track", inputs=sm.input) as log:
    settings = TrackSettings.from_mapping(sm.params.settings)
    sessions = list(sm.params.sessions)
    masks_by_session = {
        s: io.read_netcdf(p)["masks"] for s, p in zip(sessions, sm.input.rois, strict=True)
    }
    transforms = io.read_netcdf(sm.input.transforms)
    reference_masks, assignments = track_rois(masks_by_session, transforms, settings=settings)
    log.info("%d tracked ROIs over %d sessions", reference_masks.sizes["roi"], len(sessions))
    session_masks = xr.concat(
        [masks_to_session(reference_masks, transforms.sel({SESSION: s})) for s in sessions],
        dim=xr.DataArray(sessions, dims=SESSION, name=SESSION),
    )
    tracked = xr.Dataset({"reference_masks": reference_masks, "session_masks": session_masks})
    io.write_netcdf(tracked, sm.output.rois, stage="track", settings=settings, inputs=sm.input)
    io.write_tsv(assignments, sm.output.assignments)
