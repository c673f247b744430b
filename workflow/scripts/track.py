"""Track one plane's ROIs across a subject's sessions; masks on the reference and per day."""

from scipy import sparse

from analysis import io, masks
from analysis.align_days import to_reference
from analysis.dims import SESSION
from analysis.register import compute_raw_to_registered_offset
from analysis.runlog import rule_log
from analysis.track import (
    TrackSettings,
    masks_to_session,
    rasterize_targets,
    shift_targets,
    track_rois,
)

sm = snakemake  # noqa: F821 (injected by Snakemake)


def target_masks_in_reference(session, targets_path, frames_path, registration_path, shape):
    """This session's target polygons as binary (target, pixel) rows in reference coordinates."""
    offset = compute_raw_to_registered_offset(
        io.read_netcdf(registration_path), bci_frames=io.read_tsv(frames_path)
    )
    plane = int(sm.wildcards.plane)
    targets = [t for t in io.read_json(targets_path)["targets"] if t["plane"] == plane]
    polygons = masks.from_dense(rasterize_targets(shift_targets(targets, offset), shape=shape))
    moved = to_reference(polygons, transforms.sel({SESSION: session}))
    return masks.mask_matrix(masks.at_least(moved, 0.5), binary=True)


with rule_log(sm.log[0], rule="track", inputs=sm.input) as log:
    settings = TrackSettings.from_mapping(sm.params.settings)
    sessions = list(sm.params.sessions)
    masks_by_session = {s: io.read_netcdf(p) for s, p in zip(sessions, sm.input.rois, strict=True)}
    transforms = io.read_netcdf(sm.input.transforms)
    shape = masks.field_shape(next(iter(masks_by_session.values())))
    protect = [
        target_masks_in_reference(s, *paths, shape)
        for s, *paths in zip(
            sessions, sm.input.targets, sm.input.bci_frames, sm.input.registrations, strict=False
        )
    ]
    reference_masks, assignments = track_rois(
        masks_by_session,
        transforms,
        settings=settings,
        protect=sparse.vstack(protect) if protect else None,
    )
    log.info("%d tracked ROIs over %d sessions", reference_masks.sizes["roi"], len(sessions))
    tracked = masks.stack_sessions(
        reference_masks,
        {s: masks_to_session(reference_masks, transforms.sel({SESSION: s})) for s in sessions},
    )
    io.write_netcdf(tracked, sm.output.rois, stage="track", settings=settings, inputs=sm.input)
    io.write_tsv(assignments, sm.output.assignments)
