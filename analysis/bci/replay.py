"""Offline replay of the online cursor from the target traces, compared with the log."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from analysis.cloose import TaskParams, compute_online_dff, compute_readout
from analysis.dims import ROI, TRACE_DIMS


def replay_cursor(
    target_F: xr.DataArray,
    groups: Sequence[str],
    *,
    meta: Mapping[str, Any],
    params: TaskParams,
) -> np.ndarray:
    """Recompute the online BCI readout from offline target fluorescence.

    Uses the rig's own computation (:func:`analysis.cloose.compute_online_dff` with a
    causal running-percentile F0, then :func:`analysis.cloose.compute_readout`). When
    ``params.f0_window_frames`` is unset, the F0 window is 4 x ``meta["max_trial_frames"]``
    as on the rig.

    Parameters
    ----------
    target_F : xarray.DataArray (roi, time)
        Mean raw pixel value of each target polygon per volume (no neuropil subtraction,
        as online), all finite.
    groups : sequence of str
        'P+' or 'P-' for each ``roi``, in order.
    meta : mapping
        The session's BCI meta (``max_trial_frames`` used).
    params : TaskParams
        Rig parameters (F0 window and percentile, readout smoothing).

    Returns
    -------
    numpy.ndarray (time,) float64
        Replayed readout, in the units of the logged ``readout`` column.
    """
    if not isinstance(target_F, xr.DataArray) or set(target_F.dims) != set(TRACE_DIMS):
        raise ValueError(
            f"replay_cursor: target_F must be an xarray.DataArray with dims {TRACE_DIMS}"
        )
    groups = list(groups)
    if len(groups) != target_F.sizes[ROI]:
        raise ValueError(
            f"replay_cursor: {len(groups)} groups for {target_F.sizes[ROI]} target traces"
        )
    unknown = sorted(set(groups) - {"P+", "P-"})
    if unknown:
        raise ValueError(f"replay_cursor: groups must be 'P+' or 'P-', got {unknown}")
    F = target_F.transpose(*TRACE_DIMS).to_numpy().astype(np.float64)
    if not np.all(np.isfinite(F)):
        raise ValueError("replay_cursor: target_F has non-finite values; the rig never does")
    if params.f0_window_frames is None and "max_trial_frames" in meta:
        params = dataclasses.replace(params, max_trial_frames=int(meta["max_trial_frames"]))
    dff = compute_online_dff(F, window_frames=params.f0_window, percentile=params.f0_percentile)
    is_pos = np.array([g == "P+" for g in groups])
    return compute_readout(dff[is_pos], dff[~is_pos], smooth_frames=params.smooth_frames)


def compare_readout(replayed: np.ndarray, logged: np.ndarray) -> dict[str, float]:
    """Agreement between a replayed and the logged readout.

    Parameters
    ----------
    replayed, logged : array (time,)
        Same length; frames where either is NaN are skipped.

    Returns
    -------
    dict
        ``corr`` (Pearson r), ``rmse`` (readout units), ``max_abs_error``,
        ``n_frames`` (frames compared).
    """
    a = np.asarray(replayed, dtype=np.float64).ravel()
    b = np.asarray(logged, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"compare_readout: {a.size} replayed frames vs {b.size} logged frames")
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        raise ValueError("compare_readout: fewer than 2 frames with both readouts finite")
    a, b = a[ok], b[ok]
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return {
        "corr": corr,
        "rmse": float(np.sqrt(np.mean((a - b) ** 2))),
        "max_abs_error": float(np.max(np.abs(a - b))),
        "n_frames": int(ok.sum()),
    }
