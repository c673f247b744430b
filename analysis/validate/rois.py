"""Registration shifts, ROI masks and cross-day transforms compared with truth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from analysis.align_days import points_to_session
from analysis.validate.common import as_masks, f1_score, ratio

TRANSFORM_KEYS = ("shift_row", "shift_col", "rotation_deg")


def compare_shifts(
    estimated_row: np.ndarray,
    estimated_col: np.ndarray,
    true_row: np.ndarray,
    true_col: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
) -> dict[str, float]:
    """Within-session motion estimates against the true rigid shifts.

    Both use register.py's sign convention ``raw(r, c) = ref(r - shift_row, c -
    shift_col)``. The register stage's reference image sits at an unknown constant offset
    from the motion-free frame, so the per-session offset (median of estimated minus true)
    is removed before the errors are measured.

    Parameters
    ----------
    estimated_row, estimated_col : array (time,)
        Estimated shifts, px (``registration.nc`` ``shift_row``, ``shift_col``).
    true_row, true_col : array (time,)
        True rigid shifts, px (``truth.nc`` ``shift_row``, ``shift_col``).
    exclude : bool array (time,), optional
        Frames to leave out (e.g. ``bad_frame``).

    Returns
    -------
    dict
        ``median_abs_error_px`` (median Euclidean error after offset removal),
        ``median_abs_error_row_px``, ``median_abs_error_col_px``, ``max_abs_error_px``,
        ``offset_row_px``, ``offset_col_px`` (estimated minus true), ``corr_row``,
        ``corr_col`` (Pearson r), ``n_frames`` (frames compared).

    Examples
    --------
    >>> t = np.linspace(0, 3, 50)
    >>> compare_shifts(t + 2, -t, t, -t - 1)["offset_col_px"]
    1.0
    """
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in (estimated_row, estimated_col)]
    arrays += [np.asarray(a, dtype=np.float64).ravel() for a in (true_row, true_col)]
    sizes = {a.size for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"compare_shifts: all four shift arrays need one length, got {sizes}")
    keep = np.all([np.isfinite(a) for a in arrays], axis=0)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool).ravel()
        if exclude.size != keep.size:
            raise ValueError(f"compare_shifts: exclude has {exclude.size} frames, not {keep.size}")
        keep &= ~exclude
    if keep.sum() < 2:
        raise ValueError("compare_shifts: fewer than 2 frames left to compare")
    er, ec, tr, tc = (a[keep] for a in arrays)
    offset = np.array([np.median(er - tr), np.median(ec - tc)])
    err_r = er - tr - offset[0]
    err_c = ec - tc - offset[1]
    norm = np.hypot(err_r, err_c)
    corr = [np.corrcoef(e, t)[0, 1] if e.std() > 0 and t.std() > 0 else np.nan
            for e, t in ((er, tr), (ec, tc))]  # fmt: skip
    return {
        "median_abs_error_px": float(np.median(norm)),
        "median_abs_error_row_px": float(np.median(np.abs(err_r))),
        "median_abs_error_col_px": float(np.median(np.abs(err_c))),
        "max_abs_error_px": float(norm.max()),
        "offset_row_px": float(offset[0]),
        "offset_col_px": float(offset[1]),
        "corr_row": float(corr[0]),
        "corr_col": float(corr[1]),
        "n_frames": int(keep.sum()),
    }


def _shift_masks(masks: np.ndarray, offset_px: tuple[float, float]) -> np.ndarray:
    """Move binary masks by ``-offset`` (bilinear, kept where >= 0.5)."""
    if offset_px[0] == 0 and offset_px[1] == 0:
        return masks
    moved = [ndimage.shift(m.astype(np.float32), (-offset_px[0], -offset_px[1]), order=1) >= 0.5
             for m in masks]  # fmt: skip
    return np.array(moved, dtype=bool).reshape(masks.shape)


def _centroids(masks: np.ndarray) -> np.ndarray:
    """(unit, 2) centroids (row, col) of binary masks, px; NaN for empty masks."""
    rr, cc = np.indices(masks.shape[1:])
    area = masks.sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(masks * rr).sum(axis=(1, 2)) / area,
                         (masks * cc).sum(axis=(1, 2)) / area], axis=1)  # fmt: skip


def compare_registration(registration: Any, truth: Any) -> dict[str, float]:
    """:func:`compare_shifts` of a ``registration.nc`` (its bad frames left out) against
    a simulated session's truth (``shift_row``, ``shift_col``)."""
    return compare_shifts(
        registration["shift_row"].values,
        registration["shift_col"].values,
        truth["shift_row"].values,
        truth["shift_col"].values,
        exclude=registration["bad_frame"].values,
    )


def compare_rois(
    detected: Any,
    true: Any,
    *,
    iou_threshold: float = 0.5,
    distance_threshold_px: float = 5.0,
    registration_offset_px: tuple[float, float] = (0.0, 0.0),
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Match detected ROI masks to true masks (Hungarian) and score detection.

    Masks are binarised (weight > 0). Two optimal one-to-one assignments are made: one
    maximising total IoU, one minimising total centroid distance. A pair counts as a hit
    when its IoU >= ``iou_threshold`` (first assignment) or its centroid distance <=
    ``distance_threshold_px`` (second). Precision = hits / detected, recall = hits / true.

    Parameters
    ----------
    detected : xarray.DataArray or array (roi, row, col)
        Detected masks (weights); ids from the ``roi`` coordinate, else positions.
    true : xarray.DataArray or array (unit, row, col)
        True masks (``truth.nc`` ``soma_mask`` or ``dendrite_mask``), same (row, col).
    iou_threshold : float
        IoU a matched pair needs to count as a hit, in (0, 1].
    distance_threshold_px : float
        Largest centroid distance of a hit, px.
    registration_offset_px : (float, float)
        Registration offset ``o`` (see module docstring; :func:`compare_shifts`'s
        ``offset_row_px``, ``offset_col_px``): true masks are moved by ``-o`` first.

    Returns
    -------
    matches : pandas.DataFrame
        One row per pair of the IoU assignment with IoU > 0: ``detected_roi, true_roi,
        iou, centroid_distance_px, hit`` (IoU >= ``iou_threshold``).
    metrics : dict
        ``n_detected``, ``n_true``, ``n_hits_iou``, ``precision_iou``, ``recall_iou``,
        ``f1_iou``, ``median_iou`` (of hits), ``n_hits_centroid``,
        ``precision_centroid``, ``recall_centroid``, ``f1_centroid``,
        ``median_centroid_distance_px`` (of centroid hits).

    Examples
    --------
    >>> a = np.zeros((1, 8, 8)); a[0, 2:5, 2:5] = 1
    >>> compare_rois(a, a)[1]["f1_iou"]
    1.0
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"compare_rois: iou_threshold must be in (0, 1], got {iou_threshold}")
    if distance_threshold_px <= 0:
        raise ValueError("compare_rois: distance_threshold_px must be > 0")
    det, det_ids = as_masks(detected, "detected")
    tru, tru_ids = as_masks(true, "true")
    if det.shape[1:] != tru.shape[1:]:
        raise ValueError(
            f"compare_rois: detected (row, col) {det.shape[1:]} != true {tru.shape[1:]}"
        )
    tru = _shift_masks(tru, tuple(float(v) for v in registration_offset_px))
    d = det.reshape(len(det), -1).astype(np.float32)
    t = tru.reshape(len(tru), -1).astype(np.float32)
    inter = d @ t.T
    union = d.sum(1)[:, None] + t.sum(1)[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    dist = np.hypot(*(_centroids(det)[:, None, :] - _centroids(tru)[None, :, :]).transpose(2, 0, 1))
    dist = np.where(np.isfinite(dist), dist, np.inf)

    rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
    pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] > 0]
    matches = pd.DataFrame(
        {
            "detected_roi": [det_ids[r] for r, _ in pairs],
            "true_roi": [tru_ids[c] for _, c in pairs],
            "iou": [float(iou[r, c]) for r, c in pairs],
            "centroid_distance_px": [float(dist[r, c]) for r, c in pairs],
        }
    )
    matches["hit"] = matches["iou"] >= iou_threshold
    hits_iou = matches.loc[matches["hit"], "iou"]

    finite = np.where(np.isfinite(dist), dist, 1e9)
    rows, cols = linear_sum_assignment(finite) if dist.size else ([], [])
    centroid = np.array([dist[r, c] for r, c in zip(rows, cols, strict=True)])
    hits_centroid = centroid[centroid <= distance_threshold_px]

    n_det, n_true = len(det), len(tru)
    p_iou, r_iou = ratio(len(hits_iou), n_det), ratio(len(hits_iou), n_true)
    p_cen, r_cen = ratio(len(hits_centroid), n_det), ratio(len(hits_centroid), n_true)
    metrics = {
        "n_detected": n_det,
        "n_true": n_true,
        "n_hits_iou": int(len(hits_iou)),
        "precision_iou": p_iou,
        "recall_iou": r_iou,
        "f1_iou": f1_score(np.nan_to_num(p_iou), np.nan_to_num(r_iou)),
        "median_iou": float(hits_iou.median()) if len(hits_iou) else float("nan"),
        "n_hits_centroid": int(len(hits_centroid)),
        "precision_centroid": p_cen,
        "recall_centroid": r_cen,
        "f1_centroid": f1_score(np.nan_to_num(p_cen), np.nan_to_num(r_cen)),
        "median_centroid_distance_px": (
            float(np.median(hits_centroid)) if len(hits_centroid) else float("nan")
        ),
    }
    return matches, metrics


def _transform_table(transforms: Any, name: str) -> pd.DataFrame:
    """Session-indexed table of shift_row, shift_col, rotation_deg."""
    if isinstance(transforms, xr.Dataset):
        table = transforms[list(TRANSFORM_KEYS)].to_dataframe()
    else:
        table = pd.DataFrame(transforms)
        if "session" in table.columns:
            table = table.set_index("session")
    missing = set(TRANSFORM_KEYS) - set(table.columns)
    if missing:
        raise ValueError(f"{name} lacks {sorted(missing)} (need {TRANSFORM_KEYS} per session)")
    return table[list(TRANSFORM_KEYS)].astype(np.float64)


def compare_transforms(
    estimated: Any,
    true: Any,
    *,
    shape: tuple[int, int],
    points: np.ndarray | None = None,
    registration_offsets_px: Mapping[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Cross-day transforms: where do reference points land, estimated vs true?

    Both transforms map REFERENCE to SESSION coordinates with the convention of
    :mod:`analysis.align_days` (the simulator's too). With registration offsets ``o_s``
    (module docstring), the true transform between registered images is
    ``p -> R (p + o_ref - c) + c + t - o_s``: its rotation is unchanged and its shift is
    ``t + R o_ref - o_s``; that is what the estimate is compared with.

    Parameters
    ----------
    estimated : xarray.Dataset or DataFrame
        ``shift_row``, ``shift_col`` (px), ``rotation_deg`` per ``session`` (align_days
        output, or a table with a ``session`` column).
    true : xarray.Dataset or DataFrame
        The same for the truth (``transforms.tsv``).
    shape : (int, int)
        (n_rows, n_cols) of the images; fixes the rotation centre.
    points : array (n, 2), optional
        Reference (row, col) points to map, px (e.g. true soma centroids); default a
        5 x 5 grid spanning the central 80% of the field.
    registration_offsets_px : mapping of session to (float, float), optional
        Each session's registration offset; sessions missing count as (0, 0).

    Returns
    -------
    pandas.DataFrame
        One row per session in both: ``session, mean_error_px, max_error_px`` (distance
        between the estimated and true images of ``points``), ``shift_error_row_px``,
        ``shift_error_col_px``, ``rotation_error_deg`` (estimated minus true).
    """
    est = _transform_table(estimated, "estimated")
    tru = _transform_table(true, "true")
    sessions = [s for s in est.index if s in tru.index]
    if not sessions:
        raise ValueError(
            f"compare_transforms: no common sessions (estimated {list(est.index)}, "
            f"true {list(tru.index)})"
        )
    if points is None:
        rr, cc = np.meshgrid(*(np.linspace(0.1 * (n - 1), 0.9 * (n - 1), 5) for n in shape))
        points = np.column_stack([rr.ravel(), cc.ravel()])
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"compare_transforms: points must be (n, 2), got {points.shape}")
    offsets = dict(registration_offsets_px or {})
    reference = next((s for s in tru.index if np.allclose(tru.loc[s].to_numpy(), 0)), None)
    o_ref = np.asarray(offsets.get(reference, (0.0, 0.0)), dtype=np.float64)
    rows = []
    for s in sessions:
        t = tru.loc[s].to_dict()
        a = np.deg2rad(t["rotation_deg"])
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        shift = np.array([t["shift_row"], t["shift_col"]]) + rot @ o_ref
        shift -= np.asarray(offsets.get(s, (0.0, 0.0)), dtype=np.float64)
        t_reg = {"shift_row": shift[0], "shift_col": shift[1], "rotation_deg": t["rotation_deg"]}
        e = est.loc[s].to_dict()
        err = np.hypot(*(points_to_session(points, e, shape=shape)
                         - points_to_session(points, t_reg, shape=shape)).T)  # fmt: skip
        rows.append(
            {
                "session": s,
                "mean_error_px": float(err.mean()),
                "max_error_px": float(err.max()),
                "shift_error_row_px": float(e["shift_row"] - t_reg["shift_row"]),
                "shift_error_col_px": float(e["shift_col"] - t_reg["shift_col"]),
                "rotation_error_deg": float(e["rotation_deg"] - t_reg["rotation_deg"]),
            }
        )
    return pd.DataFrame(rows)
