"""Shared checks of masks and traces, and the time coordinate of a trace."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.dims import FRAME, MASK_DIMS, ROI, TIME, TRACE_DIMS


def trace_coords(n_time: int, fs_hz: float) -> dict:
    frames = np.arange(n_time, dtype=np.int64)
    return {TIME: (TIME, frames / fs_hz), FRAME: (TIME, frames)}


def check_masks(masks: xr.DataArray, *, allow_empty: bool = False) -> None:
    if not isinstance(masks, xr.DataArray) or set(masks.dims) != set(MASK_DIMS):
        raise ValueError(f"masks must be an xarray.DataArray with dims {MASK_DIMS}")
    values = masks.to_numpy()
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("masks must hold finite, non-negative weights")
    empty = masks[ROI].values[~(values.reshape(values.shape[0], -1) > 0).any(axis=1)]
    if empty.size and not allow_empty:
        raise ValueError(f"masks: ROIs {empty.tolist()} have no pixel with weight > 0")


def check_traces(traces: xr.DataArray, who: str) -> None:
    if not isinstance(traces, xr.DataArray) or set(traces.dims) != set(TRACE_DIMS):
        raise ValueError(f"{who}: expected an xarray.DataArray with dims {TRACE_DIMS}")
    for name in (TIME, FRAME):
        if name not in traces.coords:
            raise ValueError(f"{who}: traces need a '{name}' coordinate on the time dim")
