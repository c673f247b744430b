"""Map one session's online target polygons onto tracked somata."""

from analysis import io, masks
from analysis.register import compute_raw_to_registered_offset
from analysis.runlog import rule_log
from analysis.track import TrackSettings, map_targets, shift_targets

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="map_targets", inputs=sm.input) as log:
    settings = TrackSettings.from_mapping(sm.params.settings)
    record = io.read_json(sm.input.session)
    offset = compute_raw_to_registered_offset(
        io.read_netcdf(sm.input.registration), bci_frames=io.read_tsv(sm.input.bci_frames)
    )
    log.info("target polygons moved by (%.2f, %.2f) px into registered coordinates", *offset)
    targets = [
        t for t in io.read_json(sm.input.targets)["targets"] if t["plane"] == record["bci_plane"]
    ]
    soma_masks = masks.select_session(io.read_netcdf(sm.input.rois), sm.wildcards.session)
    table = map_targets(
        shift_targets(targets, offset), soma_masks, shape=tuple(record["shape"]), settings=settings
    )
    io.write_tsv(table, sm.output.targets)
