"""The online target polygons mapped onto the tracked somata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis import masks
from analysis.dims import ROI
from analysis.track.common import binary_rows, hungarian_matches, iou_matrix
from analysis.track.settings import TargetMatchError, TrackSettings


def shift_targets(targets: Sequence[Mapping[str, Any]], offset_px: Sequence[float]) -> list[dict]:
    """Copies of ``targets.json`` entries with polygons moved by ``offset_px`` (rows, cols)."""
    offset = np.asarray(offset_px, dtype=float)
    return [{**t, "polygon": (np.asarray(t["polygon"], float) + offset).tolist()} for t in targets]


def rasterize_targets(
    targets: Sequence[Mapping[str, Any]], *, shape: tuple[int, int]
) -> np.ndarray:
    """Boolean masks ``(target, row, col)`` of target polygons ``[[row, col], ...]``.

    Raises
    ------
    TargetMatchError
        A polygon has fewer than 3 vertices or lies outside the field of view.
    """
    from skimage.draw import polygon as draw_polygon

    rasters = np.zeros((len(targets), *shape), bool)
    for img, t in zip(rasters, targets, strict=True):
        for key in ("id", "group", "polygon"):
            if key not in t:
                raise ValueError(f"target {t.get('id', t)!r} lacks key '{key}' (targets.json)")
        vertices = np.asarray(t["polygon"], float)
        if vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
            raise TargetMatchError(
                f"target {t['id']!r}: polygon must be >= 3 [row, col] vertices, "
                f"got shape {vertices.shape}"
            )
        rr, cc = draw_polygon(vertices[:, 0], vertices[:, 1], shape=shape)
        img[rr, cc] = True
        if not img.any():
            raise TargetMatchError(
                f"target {t['id']!r}: polygon (rows {vertices[:, 0].min():.0f}.."
                f"{vertices[:, 0].max():.0f}, cols {vertices[:, 1].min():.0f}.."
                f"{vertices[:, 1].max():.0f}) lies outside the {shape[0]}x{shape[1]} field of "
                "view; check that targets.json vertices are [row, col] (not x, y) in this "
                "session's imaging coordinates and belong to this plane"
            )
    return rasters


def map_targets(
    targets: Sequence[Mapping[str, Any]],
    soma_masks: xr.Dataset,
    *,
    shape: tuple[int, int],
    settings: TrackSettings,
) -> pd.DataFrame:
    """Match online target polygons to soma ROIs (optimal, one soma per target).

    Parameters
    ----------
    targets : sequence of dict
        ``targets.json`` entries ``{"id", "group", "polygon": [[row, col], ...]}`` in the
        session's imaging coordinates (other keys, e.g. ``plane``, are ignored).
    soma_masks : xr.Dataset
        Sparse soma masks (:mod:`analysis.masks`) in the same session's coordinates.
    shape : (int, int)
        (row, col) size of the imaging plane; polygons are rasterised at this size.
    settings : TrackSettings
        ``target_metric`` and ``target_min_score``.

    Returns
    -------
    pd.DataFrame
        Columns ``target_id, group, roi, iou, overlap`` (overlap = fraction of target
        pixels inside the soma mask), one row per target.

    Raises
    ------
    TargetMatchError
        A polygon is empty or lies outside the field of view, or a target matches no
        soma with a score >= ``target_min_score``; the message names the target ids.
    """
    if masks.field_shape(soma_masks) != tuple(shape):
        raise ValueError(
            f"soma_masks (row, col) {masks.field_shape(soma_masks)} != shape {tuple(shape)}"
        )
    if not targets:
        return pd.DataFrame(columns=["target_id", "group", "roi", "iou", "overlap"])
    tgt = binary_rows(rasterize_targets(targets, shape=shape))
    soma = masks.mask_matrix(soma_masks, binary=True)
    iou = iou_matrix(tgt, soma)
    inter = (tgt @ soma.T).toarray()
    overlap = inter / tgt.getnnz(axis=1)[:, None]
    score = iou if settings.target_metric == "iou" else overlap
    matched = dict(hungarian_matches(score, settings.target_min_score))
    missing = [i for i in range(len(targets)) if i not in matched]
    if missing:
        owner = {j: i for i, j in matched.items()}
        shared = [
            f"target {targets[i]['id']!r}'s best ROI {int(soma_masks[ROI].values[j])} "
            f"({settings.target_metric} {score[i, j]:.3f}) went to target "
            f"{targets[owner[j]]['id']!r} ({score[owner[j], j]:.3f})"
            for i in missing
            if score.shape[1]
            and (j := int(score[i].argmax())) in owner
            and score[i, j] >= settings.target_min_score
        ]
        best = [round(float(score[i].max(initial=0.0)), 3) for i in missing]
        raise TargetMatchError(
            f"targets {[targets[i]['id'] for i in missing]} match no soma ROI of their own "
            f"with {settings.target_metric} >= {settings.target_min_score} (best scores "
            f"{best})"
            + (
                f"; {'; '.join(shared)}: one ROI covers two targets (somata merged by "
                "segmentation?)"
                if shared
                else ""
            )
            + "; check the target polygons' plane and coordinates, the segment stage's soma "
            "detection on this session, or lower track.target_min_score"
        )
    roi_ids = soma_masks[ROI].values
    return pd.DataFrame(
        {
            "target_id": [t["id"] for t in targets],
            "group": [t["group"] for t in targets],
            "roi": [int(roi_ids[matched[i]]) for i in range(len(targets))],
            "iou": [float(iou[i, matched[i]]) for i in range(len(targets))],
            "overlap": [float(overlap[i, matched[i]]) for i in range(len(targets))],
        }
    )
