"""Track stage: ROIs across days, online targets onto somata, somata onto dendrites.

Inputs and outputs (all pure; I/O is in ``analysis.io``):

- :func:`track_rois`: per-session masks ``(roi, row, col)`` in session coordinates plus
  the ``align_days`` transforms -> consensus masks ``(roi, row, col)`` in reference
  coordinates with stable ids 0..N-1, and a table ``session, session_roi, roi, iou,
  detected`` (one row per tracked ROI and session; ``session_roi`` is -1 on days the
  neuron was not detected).
- :func:`masks_to_session`: consensus masks -> one session's coordinates (same ids), so
  silent days are still extracted.
- :func:`map_targets`: online target polygons (``targets.json`` entries, ``[row, col]``
  vertices in that day's imaging coordinates) -> table ``target_id, group, roi, iou,
  overlap``; raises :class:`TargetMatchError` naming the target when none matches.
- :func:`pair_dendrites`: soma and dendrite traces ``(roi, time)`` -> table ``soma_roi,
  dendrite_roi, corr, p_value, paired`` (bAP coupling, circular-shift shuffle test).

Transforms follow ``analysis.align_days``: a session's transform maps REFERENCE
coordinates to SESSION coordinates; ``to_reference`` / ``to_session`` apply it.

Modules: ``settings`` (TrackSettings), ``rois`` (:func:`track_rois`), ``targets``
(:func:`map_targets`), ``pairs`` (:func:`pair_dendrites`), ``common`` (IoU, matching).
"""

from __future__ import annotations

from analysis.track.pairs import pair_dendrites
from analysis.track.rois import masks_to_session, track_rois
from analysis.track.settings import TargetMatchError, TrackSettings
from analysis.track.targets import map_targets, rasterize_targets, shift_targets

__all__ = [
    "TargetMatchError",
    "TrackSettings",
    "map_targets",
    "masks_to_session",
    "pair_dendrites",
    "rasterize_targets",
    "shift_targets",
    "track_rois",
]
