"""Compare pipeline outputs with simulator ground truth (stage ``validate``, synthetic data only).

Contract
--------
Pure ``compare_*`` functions in the style of SpikeInterface's comparison module: each takes
one stage's output and the matching truth (:mod:`analysis.simulate`, files read by
:mod:`analysis.session_format`) and returns plain numbers (a ``dict``) and, where there is
one row per unit, a tidy :class:`pandas.DataFrame`. ROIs are matched to true units with
the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`), never greedily, so
results do not depend on ROI order.

Coordinates
-----------
Truth masks and shifts are in each session's motion-free raw coordinates. The register
stage aligns every frame to its own reference image, which sits at an arbitrary constant
offset ``o = (o_row, o_col)`` from the motion-free frame: estimated shift = true shift +
``o`` (the ``offset_row_px``, ``offset_col_px`` of :func:`compare_shifts`), and a
structure at motion-free position ``p`` appears at ``p - o`` in the registered movie.
:func:`compare_rois` and :func:`compare_transforms` take that offset so that detected
masks and estimated transforms (both in registered coordinates) are compared in the
right frame.

Outputs
-------
- :func:`compare_shifts`: median absolute error of within-session shifts, px.
- :func:`compare_rois`: IoU / centroid-distance matches and precision, recall, F1.
- :func:`compare_transforms`: cross-day mapping error of points, px.
- :func:`compare_traces`: Pearson r of each matched ROI's trace with the true calcium.
- :func:`compare_spikes`: Pearson r of binned deconvolved activity with true spikes.
- :func:`compare_tracking`: fraction of tracked ROIs linked to one true neuron.
- :func:`compare_pairing`: soma-dendrite pairing precision, recall and accuracy.
- :func:`compare_targets`: fraction of online targets mapped to their true neuron.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from analysis.align_days import points_to_session
from analysis.settings import StageSettings, require

log = logging.getLogger(__name__)

TRANSFORM_KEYS = ("shift_row", "shift_col", "rotation_deg")


# --- helpers ---------------------------------------------------------------------------------


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _masks(masks: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary masks (unit, row, col) and their ids (``roi``/first-dim coord or positions)."""
    values = np.asarray(masks.values if isinstance(masks, xr.DataArray) else masks)
    if values.ndim != 3:
        raise ValueError(f"{name} must be 3-D (roi, row, col), got shape {values.shape}")
    if isinstance(masks, xr.DataArray) and masks.dims[0] in masks.coords:
        ids = np.asarray(masks[masks.dims[0]].values)
    else:
        ids = np.arange(values.shape[0])
    return values > 0, ids


def _rows(traces: Any, ids: np.ndarray, name: str) -> np.ndarray:
    """Rows of a (unit, time) array by label (DataArray first-dim coord) or by position."""
    if isinstance(traces, xr.DataArray):
        if traces.ndim != 2:
            raise ValueError(f"{name} must be 2-D (unit, time), got dims {traces.dims}")
        dim = traces.dims[0]
        if dim in traces.coords:
            missing = sorted(set(ids.tolist()) - set(traces[dim].values.tolist()))
            if missing:
                raise ValueError(f"{name} has no {dim} {missing}")
            return np.asarray(traces.sel({dim: ids}).values, dtype=np.float64)
        traces = traces.values
    values = np.asarray(traces, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name} must be 2-D (unit, time), got shape {values.shape}")
    if len(ids) and (ids.min() < 0 or ids.max() >= values.shape[0]):
        raise ValueError(f"{name} has {values.shape[0]} units; ids {ids.tolist()} out of range")
    return values[ids]


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching rows over frames where both are finite (NaN if constant)."""
    out = np.full(a.shape[0], np.nan)
    for k in range(a.shape[0]):
        ok = np.isfinite(a[k]) & np.isfinite(b[k])
        x, y = a[k, ok] - a[k, ok].mean(), b[k, ok] - b[k, ok].mean()
        den = np.sqrt((x @ x) * (y @ y))
        if ok.sum() >= 3 and den > 0:
            out[k] = (x @ y) / den
    return out


def _check_matches(matches: pd.DataFrame) -> None:
    missing = {"detected_roi", "true_roi"} - set(matches.columns)
    if missing:
        raise ValueError(f"matches lacks columns {sorted(missing)} (from compare_rois)")


# --- registration ----------------------------------------------------------------------------


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


# --- ROIs ------------------------------------------------------------------------------------


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
    det, det_ids = _masks(detected, "detected")
    tru, tru_ids = _masks(true, "true")
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
    p_iou, r_iou = _ratio(len(hits_iou), n_det), _ratio(len(hits_iou), n_true)
    p_cen, r_cen = _ratio(len(hits_centroid), n_det), _ratio(len(hits_centroid), n_true)
    metrics = {
        "n_detected": n_det,
        "n_true": n_true,
        "n_hits_iou": int(len(hits_iou)),
        "precision_iou": p_iou,
        "recall_iou": r_iou,
        "f1_iou": _f1(np.nan_to_num(p_iou), np.nan_to_num(r_iou)),
        "median_iou": float(hits_iou.median()) if len(hits_iou) else float("nan"),
        "n_hits_centroid": int(len(hits_centroid)),
        "precision_centroid": p_cen,
        "recall_centroid": r_cen,
        "f1_centroid": _f1(np.nan_to_num(p_cen), np.nan_to_num(r_cen)),
        "median_centroid_distance_px": (
            float(np.median(hits_centroid)) if len(hits_centroid) else float("nan")
        ),
    }
    return matches, metrics


# --- cross-day alignment ---------------------------------------------------------------------


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


# --- traces and spikes -----------------------------------------------------------------------


def compare_traces(estimated: Any, true: Any, *, matches: pd.DataFrame) -> pd.DataFrame:
    """Pearson r between each matched ROI's trace and its true unit's trace.

    Parameters
    ----------
    estimated : xarray.DataArray or array (roi, time)
        E.g. ``dff`` from extract; rows picked by the ``roi`` coordinate, else position.
    true : xarray.DataArray or array (unit, time)
        E.g. ``truth.nc`` ``soma_calcium`` (noise-free dF/F), same frames.
    matches : pandas.DataFrame
        ``detected_roi``, ``true_roi`` (e.g. hits of :func:`compare_rois`).

    Returns
    -------
    pandas.DataFrame
        ``detected_roi, true_roi, r`` (NaN where either trace is constant).
    """
    _check_matches(matches)
    det_ids = matches["detected_roi"].to_numpy()
    tru_ids = matches["true_roi"].to_numpy()
    a = _rows(estimated, det_ids, "estimated")
    b = _rows(true, tru_ids, "true")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"compare_traces: {a.shape[1]} estimated vs {b.shape[1]} true frames")
    return pd.DataFrame({"detected_roi": det_ids, "true_roi": tru_ids, "r": _pearson_rows(a, b)})


def compare_spikes(
    estimated: Any,
    true: Any,
    *,
    matches: pd.DataFrame,
    fs_hz: float,
    bin_s: float = 0.04,
    max_lag_frames: int = 1,
) -> pd.DataFrame:
    """Pearson r between binned deconvolved activity and true spike counts.

    Both are summed in bins of ``max(1, round(bin_s * fs_hz))`` frames. The simulator's
    calcium kernel is a difference of exponentials that is 0 at the spike frame, so the
    calcium (and any deconvolution of it) rises one frame after the true spike; lags of
    the estimate of 0..``max_lag_frames`` frames (estimate later than truth) are tried and
    the best r is reported with its lag.

    Parameters
    ----------
    estimated : xarray.DataArray or array (roi, time)
        Deconvolved activity (``spikes`` from extract).
    true : xarray.DataArray or array (unit, time)
        True spike counts (``truth.nc`` ``spikes``), same frames.
    matches : pandas.DataFrame
        ``detected_roi``, ``true_roi``.
    fs_hz : float
        Frame rate, Hz.
    bin_s : float
        Bin width, s (40 ms; at 15 Hz one frame).
    max_lag_frames : int
        Largest lag tried, frames (>= 0).

    Returns
    -------
    pandas.DataFrame
        ``detected_roi, true_roi, r, lag_frames``.
    """
    _check_matches(matches)
    if fs_hz <= 0 or bin_s <= 0:
        raise ValueError("compare_spikes: fs_hz and bin_s must be > 0")
    if max_lag_frames < 0:
        raise ValueError("compare_spikes: max_lag_frames must be >= 0")
    det_ids = matches["detected_roi"].to_numpy()
    tru_ids = matches["true_roi"].to_numpy()
    a = _rows(estimated, det_ids, "estimated")
    b = _rows(true, tru_ids, "true")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"compare_spikes: {a.shape[1]} estimated vs {b.shape[1]} true frames")
    width = max(1, int(round(bin_s * fs_hz)))
    best_r = np.full(len(det_ids), np.nan)
    best_lag = np.zeros(len(det_ids), dtype=int)
    for lag in range(max_lag_frames + 1):
        x, y = a[:, lag:], b[:, : b.shape[1] - lag]
        n = x.shape[1] // width * width
        if n < 3 * width:
            break
        r = _pearson_rows(
            np.nan_to_num(x[:, :n]).reshape(len(x), -1, width).sum(-1),
            y[:, :n].reshape(len(y), -1, width).sum(-1),
        )
        better = np.isfinite(r) & ~(r <= best_r)
        best_r[better], best_lag[better] = r[better], lag
    return pd.DataFrame(
        {"detected_roi": det_ids, "true_roi": tru_ids, "r": best_r, "lag_frames": best_lag}
    )


# --- tracking, pairing, targets ----------------------------------------------------------------


def compare_tracking(matches: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Are tracked ROIs the same true neuron on every day?

    Parameters
    ----------
    matches : pandas.DataFrame
        ``session, detected_roi, true_roi``: per session, the tracked ROI ids (stable
        across days) matched to true units (e.g. :func:`compare_rois` hits of each
        session's tracked masks, concatenated).

    Returns
    -------
    per_roi : pandas.DataFrame
        ``detected_roi, n_sessions, n_true_units, true_roi`` (the most frequent unit),
        ``correct`` (matched in >= 2 sessions, always to one unit).
    metrics : dict
        ``n_tracked`` (ROIs matched in >= 2 sessions), ``n_correct``, ``fraction_correct``,
        ``n_split_units`` (true units claimed by more than one tracked ROI in a session
        set, i.e. one neuron tracked as several).
    """
    missing = {"session", "detected_roi", "true_roi"} - set(matches.columns)
    if missing:
        raise ValueError(f"compare_tracking: matches lacks columns {sorted(missing)}")
    if matches.duplicated(["session", "detected_roi"]).any():
        raise ValueError("compare_tracking: a detected_roi is matched twice in one session")
    grouped = matches.groupby("detected_roi")["true_roi"]
    per_roi = pd.DataFrame(
        {
            "n_sessions": grouped.size(),
            "n_true_units": grouped.nunique(),
            "true_roi": grouped.agg(lambda s: s.mode().iloc[0]),
        }
    ).reset_index()
    per_roi["correct"] = (per_roi["n_sessions"] >= 2) & (per_roi["n_true_units"] == 1)
    tracked = per_roi[per_roi["n_sessions"] >= 2]
    split = tracked[tracked["n_true_units"] == 1].groupby("true_roi").size()
    metrics = {
        "n_tracked": int(len(tracked)),
        "n_correct": int(tracked["correct"].sum()),
        "fraction_correct": _ratio(tracked["correct"].sum(), len(tracked)),
        "n_split_units": int((split > 1).sum()),
    }
    return per_roi, metrics


def compare_pairing(
    pairs: pd.DataFrame,
    *,
    soma_units: Mapping[int, int],
    dendrite_units: Mapping[int, int],
    tuft_neuron: Mapping[int, int],
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Soma-dendrite pairs (``track.pair_dendrites``) against the true tuft owners.

    A (soma ROI, dendrite ROI) pair is true when the dendrite ROI's true tuft belongs to
    the soma ROI's true neuron. Only ROIs with a true unit (keys of ``soma_units`` /
    ``dendrite_units``) are scored.

    Parameters
    ----------
    pairs : pandas.DataFrame
        ``soma_roi, dendrite_roi, paired`` (bool).
    soma_units : mapping of int to int
        Soma ROI id -> true neuron id.
    dendrite_units : mapping of int to int
        Dendrite ROI id -> true tuft id.
    tuft_neuron : mapping of int to int
        True tuft id -> owning neuron id (-1 for distractor tufts; ``dendrites.tsv``).

    Returns
    -------
    scored : pandas.DataFrame
        The scored rows of ``pairs`` plus ``true_neuron``, ``true_tuft``, ``true_pair``.
    metrics : dict
        ``n_paired``, ``n_true_pairs`` (scorable true pairs), ``precision`` (paired that
        are true), ``recall`` (true pairs that are paired), ``f1``, ``accuracy``
        (fraction of scored rows whose ``paired`` equals ``true_pair``).
    """
    missing = {"soma_roi", "dendrite_roi", "paired"} - set(pairs.columns)
    if missing:
        raise ValueError(f"compare_pairing: pairs lacks columns {sorted(missing)}")
    scored = pairs[
        pairs["soma_roi"].isin(list(soma_units)) & pairs["dendrite_roi"].isin(list(dendrite_units))
    ].copy()
    scored["true_neuron"] = scored["soma_roi"].map(dict(soma_units)).astype(int)
    scored["true_tuft"] = scored["dendrite_roi"].map(dict(dendrite_units)).astype(int)
    owner = scored["true_tuft"].map(dict(tuft_neuron))
    if owner.isna().any():
        unknown = sorted(scored.loc[owner.isna(), "true_tuft"].unique().tolist())
        raise ValueError(f"compare_pairing: tufts {unknown} are missing from tuft_neuron")
    scored["true_pair"] = owner.astype(int).to_numpy() == scored["true_neuron"].to_numpy()
    paired = scored["paired"].astype(bool)
    tp = int((paired & scored["true_pair"]).sum())
    precision = _ratio(tp, paired.sum())
    recall = _ratio(tp, scored["true_pair"].sum())
    metrics = {
        "n_paired": int(paired.sum()),
        "n_true_pairs": int(scored["true_pair"].sum()),
        "precision": precision,
        "recall": recall,
        "f1": _f1(np.nan_to_num(precision), np.nan_to_num(recall)),
        "accuracy": _ratio((paired == scored["true_pair"]).sum(), len(scored)),
    }
    return scored, metrics


def compare_targets(
    mapped: pd.DataFrame, *, roi_units: Mapping[int, int], true_targets: pd.DataFrame
) -> dict[str, float]:
    """Online targets (``track.map_targets``) against the neurons they really are.

    Parameters
    ----------
    mapped : pandas.DataFrame
        ``target_id, group, roi`` (one session's mapping).
    roi_units : mapping of int to int
        Soma ROI id -> true neuron id (ROIs without a true unit are absent).
    true_targets : pandas.DataFrame
        ``target_id, neuron, group`` (``neurons.tsv`` rows with ``target_id >= 0``).

    Returns
    -------
    dict
        ``n_targets`` (true targets), ``n_mapped``, ``n_correct`` (mapped to an ROI
        whose true neuron is the target's neuron), ``recall`` (n_correct / n_targets),
        ``group_agreement`` (fraction of mapped targets whose group matches the truth).
    """
    for name, table, cols in (
        ("mapped", mapped, {"target_id", "group", "roi"}),
        ("true_targets", true_targets, {"target_id", "neuron", "group"}),
    ):
        missing = cols - set(table.columns)
        if missing:
            raise ValueError(f"compare_targets: {name} lacks columns {sorted(missing)}")
    truth = true_targets[true_targets["target_id"] >= 0].set_index("target_id")
    merged = mapped.merge(truth, left_on="target_id", right_index=True, how="inner",
                          suffixes=("", "_true"))  # fmt: skip
    unit = merged["roi"].map(dict(roi_units))
    correct = unit.notna() & (unit == merged["neuron"])
    return {
        "n_targets": int(len(truth)),
        "n_mapped": int(len(merged)),
        "n_correct": int(correct.sum()),
        "recall": _ratio(correct.sum(), len(truth)),
        "group_agreement": _ratio((merged["group"] == merged["group_true"]).sum(), len(merged)),
    }


# --- scoring a whole run ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ValidateSettings(StageSettings):
    """Settings of the ``validate`` target: the simulated cohort it scores the pipeline on.

    The cohort is the simulator's ``validate`` preset (256 x 256 px, two planes, 60
    neurons per subject) with these sizes; the pipeline then runs on it with this
    config's stage settings.

    Attributes
    ----------
    seed : random seed of the cohort.
    n_subjects, n_days : cohort size.
    n_frames : frames per plane per day.
    """

    section = "validate"
    seed: int = 1
    n_subjects: int = 3
    n_days: int = 5
    n_frames: int = 3000

    def __post_init__(self) -> None:
        require(self.n_subjects >= 1, "validate.n_subjects must be >= 1")
        require(self.n_days >= 2, "validate.n_days must be >= 2 (tracking needs two days)")
        require(self.n_frames >= 500, "validate.n_frames must be >= 500")


# Goals of the imaging stages on simulated cohorts (the ``validate`` target's metrics.tsv).
IMAGING_GOALS = {
    "registration_shift_error_px": "<= 0.3",
    "crossday_target_centroid_error_px": "<= 1.0",
    "soma_f1_iou50": ">= 0.90",
    "target_soma_recall": ">= 1.0",
    "dendrite_recall_targets": ">= 0.90",
    "pairing_accuracy_targets": ">= 0.95",
    "tracking_accuracy": ">= 0.95",
    "trace_corr_median": ">= 0.90",
    "spike_corr_median": "> spike_corr_median_suite2p",
    "spike_corr_median_suite2p": "",
}


def _unit_map(hits: pd.DataFrame) -> dict[int, int]:
    return dict(zip(hits["detected_roi"].astype(int), hits["true_roi"].astype(int), strict=True))


def _majority_units(matches: pd.DataFrame) -> dict[int, int]:
    """Tracked ROI id -> the true unit it matches on most days."""
    if matches.empty:
        return {}
    mode = matches.groupby("detected_roi")["true_roi"].agg(lambda s: s.mode().iloc[0])
    return _unit_map(mode.reset_index())


def suite2p_default_spikes(fcorr: np.ndarray, *, fs_hz: float) -> np.ndarray:
    """suite2p 1.1.0's default deconvolution of neuropil-corrected traces (roi, time).

    Its defaults: maximin baseline (60 s window, 10-sample Gaussian, 8th percentile)
    and OASIS with tau 1.0 s, as ``run_s2p`` applies them, on the CPU.
    """
    import torch
    from suite2p import default_settings
    from suite2p.extraction import dcnv

    defaults = default_settings()
    pre = defaults["dcnv_preprocess"]
    fc = np.ascontiguousarray(np.nan_to_num(np.asarray(fcorr, dtype=np.float32)))
    fc = dcnv.preprocess(
        fc,
        pre["baseline"],
        pre["win_baseline"],
        pre["sig_baseline"],
        fs_hz,
        pre["prctile_baseline"],
        device=torch.device("cpu"),
    )
    return dcnv.oasis(fc, defaults["extraction"]["batch_size"], defaults["tau"], fs_hz)


def score_subject(results: Any, truth_root: Any, subject: str) -> dict[str, list]:
    """Score one subject's pipeline outputs against the simulator's truth.

    Parameters
    ----------
    results : path
        The run's results folder (``register``, ``segment``, ``align_days``, ``track``,
        ``extract`` outputs of the workflow).
    truth_root : path
        The simulated cohort's root (``truth/<subject>/...``).
    subject : str

    Returns
    -------
    dict of metric name -> list of per-unit values (shift errors per session and plane,
    per-session F1, per-(target, session) correctness, per-ROI correlations, ...), to be
    pooled over subjects by :func:`score_run`.
    """
    from pathlib import Path

    from analysis import io
    from analysis.session_format import read_truth_session, read_truth_subject

    results, truth_root = Path(results), Path(truth_root)
    subject_truth = read_truth_subject(truth_root, subject)
    neurons, dendrites = subject_truth["neurons"], subject_truth["dendrites"]
    sessions = list(subject_truth["sessions"]["session"])
    record = io.read_json(results / "ingest" / subject / sessions[0] / "session.json")
    roles = {role: int(plane) for plane, role in record["plane_roles"].items()}
    soma_plane, dendrite_plane = roles["soma"], roles["dendrite"]
    targets = neurons[neurons["target_id"] >= 0]
    target_tufts = set(dendrites.loc[dendrites["neuron"].isin(targets["neuron"]), "tuft"])
    out: dict[str, list] = {name: [] for name in IMAGING_GOALS}

    offsets: dict[int, dict[str, tuple[float, float]]] = {soma_plane: {}, dendrite_plane: {}}
    truths = {}
    for session in sessions:
        truth, _ = read_truth_session(truth_root, subject, session)
        truths[session] = truth
        for plane in (soma_plane, dendrite_plane):
            reg = io.read_netcdf(
                results / "register" / subject / session / f"plane{plane}" / "registration.nc"
            )
            m = compare_shifts(
                reg["shift_row"].values,
                reg["shift_col"].values,
                truth["shift_row"].values,
                truth["shift_col"].values,
                exclude=reg["bad_frame"].values,
            )
            out["registration_shift_error_px"].append(m["median_abs_error_px"])
            offsets[plane][session] = (m["offset_row_px"], m["offset_col_px"])
        seg = results / "segment" / subject / session
        somata = io.read_netcdf(seg / f"plane{soma_plane}" / "rois.nc")["masks"]
        cells = somata.isel(roi=somata["is_cell"].values.astype(bool))
        _, m = compare_rois(
            cells,
            truth["soma_mask"],
            iou_threshold=0.5,
            registration_offset_px=offsets[soma_plane][session],
        )
        out["soma_f1_iou50"].append(m["f1_iou"])
        dend = io.read_netcdf(seg / f"plane{dendrite_plane}" / "rois.nc")["masks"]
        tuft_masks = truth["dendrite_mask"].sel(tuft=sorted(target_tufts))
        _, m = compare_rois(
            dend,
            tuft_masks,
            iou_threshold=0.3,
            registration_offset_px=offsets[dendrite_plane][session],
        )
        out["dendrite_recall_targets"].append(m["recall_iou"])

    transforms = io.read_netcdf(
        results / "align_days" / subject / f"plane{soma_plane}" / "transforms.nc"
    )
    shape = tuple(truths[sessions[0]]["soma_mask"].shape[1:])
    moved = compare_transforms(
        transforms,
        subject_truth["transforms"],
        shape=shape,
        points=targets[["centroid_row", "centroid_col"]].to_numpy(float),
        registration_offsets_px=offsets[soma_plane],
    )
    reference = str(transforms.attrs.get("reference_session", sessions[0]))
    out["crossday_target_centroid_error_px"] += list(
        moved.loc[moved["session"] != reference, "mean_error_px"]
    )

    soma_matches, dendrite_matches = [], []
    track = results / "track" / subject
    tracked_somata = io.read_netcdf(track / f"plane{soma_plane}" / "rois.nc")["session_masks"]
    tracked_dendrites = io.read_netcdf(track / f"plane{dendrite_plane}" / "rois.nc")[
        "session_masks"
    ]
    true_targets = targets[["target_id", "neuron", "group"]]
    for session in sessions:
        matches, _ = compare_rois(
            tracked_somata.sel(session=session),
            truths[session]["soma_mask"],
            iou_threshold=0.5,
            registration_offset_px=offsets[soma_plane][session],
        )
        hits = matches[matches["hit"]].assign(session=session)
        soma_matches.append(hits)
        mapped = io.read_tsv(track / session / "targets.tsv")
        # A target is on its neuron when its ROI's optimal (Hungarian) partner is that
        # neuron, whatever the IoU: a weak overlap of the right cell is still the cell.
        units = _unit_map(matches)
        merged = true_targets.merge(mapped[["target_id", "roi"]], on="target_id", how="left")
        out["target_soma_recall"] += list(merged["roi"].map(units) == merged["neuron"])
        matches, _ = compare_rois(
            tracked_dendrites.sel(session=session),
            truths[session]["dendrite_mask"],
            iou_threshold=0.3,
            registration_offset_px=offsets[dendrite_plane][session],
        )
        dendrite_matches.append(matches[matches["hit"]].assign(session=session))

        traces = io.read_netcdf(
            results / "extract" / subject / session / f"plane{soma_plane}" / "traces.nc"
        )
        found = hits[hits["detected_roi"].isin(traces["roi"].values)]
        out["trace_corr_median"] += list(
            compare_traces(traces["dff"], truths[session]["soma_calcium"], matches=found)["r"]
        )
        fs_hz = float(traces.attrs["fs_hz"])
        out["spike_corr_median"] += list(
            compare_spikes(traces["spikes"], truths[session]["spikes"], matches=found, fs_hz=fs_hz)[
                "r"
            ]
        )
        s2p = xr.DataArray(
            suite2p_default_spikes(traces["Fcorr"].values, fs_hz=fs_hz),
            dims=("roi", "time"),
            coords={"roi": traces["roi"].values},
        )
        out["spike_corr_median_suite2p"] += list(
            compare_spikes(s2p, truths[session]["spikes"], matches=found, fs_hz=fs_hz)["r"]
        )

    soma_hits = pd.concat(soma_matches)[["session", "detected_roi", "true_roi"]]
    _, tracking = compare_tracking(soma_hits)
    out["tracking_accuracy"].append((tracking["n_correct"], tracking["n_tracked"]))

    # A target's pairing is right when its tracked soma's paired dendrites are exactly
    # the tracked dendrite ROIs of its own tuft (scored where that tuft was tracked).
    scored, _ = compare_pairing(
        io.read_tsv(track / "pairs.tsv"),
        soma_units=_majority_units(soma_hits),
        dendrite_units=_majority_units(pd.concat(dendrite_matches)),
        tuft_neuron=dict(zip(dendrites["tuft"], dendrites["neuron"], strict=True)),
    )
    scored = scored[scored["true_neuron"].isin(targets["neuron"])]
    for _, rows in scored.groupby("soma_roi"):
        if rows["true_pair"].any():
            out["pairing_accuracy_targets"].append(
                bool((rows["paired"].astype(bool) == rows["true_pair"]).all())
            )
    return out


def score_run(results: Any, truth_root: Any, subjects: list[str]) -> pd.DataFrame:
    """The imaging metrics of a whole simulated cohort: ``metric, value, goal, n``.

    Medians pool sessions (registration: sessions x planes), fractions pool units over
    subjects (targets x sessions for target recall; tracked ROIs for tracking accuracy;
    target neurons with a tracked tuft for pairing). ``spike_corr_median_suite2p`` is
    suite2p's default deconvolution on the same neuropil-corrected traces, the baseline
    ``spike_corr_median`` must beat.
    """
    pooled: dict[str, list] = {name: [] for name in IMAGING_GOALS}
    for subject in subjects:
        for name, values in score_subject(results, truth_root, subject).items():
            pooled[name] += values
    rows = []
    for name, values in pooled.items():
        if name == "tracking_accuracy":
            correct, total = (sum(v) for v in zip(*values, strict=True)) if values else (0, 0)
            value, n = _ratio(correct, total), total
        elif name in ("target_soma_recall", "pairing_accuracy_targets"):
            value, n = _ratio(sum(values), len(values)), len(values)
        else:
            finite = np.asarray(values, dtype=float)
            finite = finite[np.isfinite(finite)]
            value, n = (float(np.median(finite)) if finite.size else np.nan), int(finite.size)
        rows.append({"metric": name, "value": value, "goal": IMAGING_GOALS[name], "n": n})
    return pd.DataFrame(rows)
