"""The online target ROIs (targets.json) checked against the frame."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from analysis.readers.base import (
    IngestError,
)

log = logging.getLogger(__name__)


# polygons drawn at the edge of the live image overshoot it by a fraction of a pixel
TARGET_EDGE_TOLERANCE_PX = 1.0


def _clip_polygon(polygon: np.ndarray, *, shape: tuple[int, int], where: str) -> np.ndarray:
    """Clip vertices up to TARGET_EDGE_TOLERANCE_PX outside the field (pixel edges at -0.5
    and size - 0.5) into it with a warning; further out is an IngestError."""
    low, high = -0.5, np.asarray(shape, float) - 0.5
    clipped = np.clip(polygon, low, high)
    outside_px = np.abs(polygon - clipped).max()
    if outside_px > TARGET_EDGE_TOLERANCE_PX:
        vertex = polygon[np.abs(polygon - clipped).max(axis=1).argmax()]
        raise IngestError(
            f"{where}: polygon vertex {vertex.tolist()} lies outside the {shape[0]} x "
            f"{shape[1]} field of view by {outside_px:.2f} px (more than "
            f"{TARGET_EDGE_TOLERANCE_PX:g} px); targets must be in that day's raw imaging "
            "coordinates (row, col)."
        )
    if outside_px > 0:
        log.warning(
            "%s: polygon vertices up to %.2f px outside the %d x %d field of view were "
            "clipped to its edge",
            where,
            outside_px,
            *shape,
        )
    return clipped


def check_targets(
    targets: Any, *, shape: tuple[int, int], n_planes: int, path: str | Path
) -> list[dict]:
    """Validate online targets: id, group P+/P-, plane, polygon of (row, col) inside the FOV."""
    if not isinstance(targets, list) or not targets:
        raise IngestError(f"{path}: expected a non-empty JSON list of target objects.")
    seen = set()
    out = []
    for index, target in enumerate(targets):
        where = f"{path}: target {index}"
        if not isinstance(target, dict):
            raise IngestError(f"{where} is not an object.")
        for key in ("id", "group", "plane", "polygon"):
            if key not in target:
                raise IngestError(f"{where} lacks field '{key}'.")
        if target["id"] in seen:
            raise IngestError(f"{where}: duplicate id {target['id']!r}.")
        seen.add(target["id"])
        if target["group"] not in ("P+", "P-"):
            raise IngestError(f"{where}: group must be 'P+' or 'P-', got {target['group']!r}.")
        if not (isinstance(target["plane"], int) and 0 <= target["plane"] < n_planes):
            raise IngestError(f"{where}: plane {target['plane']!r} is not a plane index.")
        polygon = np.asarray(target["polygon"], dtype=float)
        if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
            raise IngestError(f"{where}: polygon must be >= 3 [row, col] vertices.")
        if not np.isfinite(polygon).all():
            raise IngestError(f"{where} (id {target['id']!r}): polygon has a non-finite vertex.")
        polygon = _clip_polygon(polygon, shape=shape, where=f"{where} (id {target['id']!r})")
        out.append({**target, "polygon": polygon.tolist()})
    return out
