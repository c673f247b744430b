"""Small checks and ratios shared by the comparisons."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis.masks import is_sparse, to_dense


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean of precision and recall; 0 when both are 0."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def ratio(num: float, den: float) -> float:
    """``num / den``, NaN when ``den`` is 0."""
    return float(num / den) if den > 0 else float("nan")


def as_masks(masks: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary masks (unit, row, col) and their ids (``roi``/first-dim coord or positions).

    Sparse masks (:mod:`analysis.masks`) are densified: truth fields are small.
    """
    if is_sparse(masks):
        masks = to_dense(masks)
    values = np.asarray(masks.values if isinstance(masks, xr.DataArray) else masks)
    if values.ndim != 3:
        raise ValueError(f"{name} must be 3-D (roi, row, col), got shape {values.shape}")
    if isinstance(masks, xr.DataArray) and masks.dims[0] in masks.coords:
        ids = np.asarray(masks[masks.dims[0]].values)
    else:
        ids = np.arange(values.shape[0])
    return values > 0, ids


def rows_of(traces: Any, ids: np.ndarray, name: str) -> np.ndarray:
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


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching rows over frames where both are finite (NaN if constant)."""
    out = np.full(a.shape[0], np.nan)
    for k in range(a.shape[0]):
        ok = np.isfinite(a[k]) & np.isfinite(b[k])
        x, y = a[k, ok] - a[k, ok].mean(), b[k, ok] - b[k, ok].mean()
        den = np.sqrt((x @ x) * (y @ y))
        if ok.sum() >= 3 and den > 0:
            out[k] = (x @ y) / den
    return out


def check_matches(matches: pd.DataFrame) -> None:
    missing = {"detected_roi", "true_roi"} - set(matches.columns)
    if missing:
        raise ValueError(f"matches lacks columns {sorted(missing)} (from compare_rois)")
