"""Map one session's online target polygons onto tracked somata."""

import numpy as np

from analysis import io
from analysis.dims import SESSION
from analysis.register import compute_raw_to_registered_offset
from analysis.runlog import rule_log
from analysis.track import TrackSettings, map_targets

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="map_targets", inputs=sm.input) as log:
    settings = TrackSettings.from_mapping(sm.params.settings)
    record = io.read_json(sm.input.session)
    frames = io.read_tsv(sm.input.bci_frames)
    logged = {f"logged_{c}": frames[c] for c in ("shift_row", "shift_col") if c in frames}
    offset = np.array(
        compute_raw_to_registered_offset(io.read_netcdf(sm.input.registration), **logged)
    )
    log.info(
        "target polygons moved by %s px (raw -> registered coordinates)", offset.round(2).tolist()
    )
    targets = [
        {**t, "polygon": (np.asarray(t["polygon"]) + offset).tolist()}
        for t in io.read_json(sm.input.targets)["targets"]
        if t["plane"] == record["bci_plane"]
    ]
    soma_masks = io.read_netcdf(sm.input.rois)["session_masks"].sel({SESSION: sm.wildcards.session})
    table = map_targets(targets, soma_masks, shape=tuple(record["shape"]), settings=settings)
    io.write_tsv(table, sm.output.targets)
