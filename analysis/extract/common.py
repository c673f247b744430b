"""Shared checks of traces, and the time coordinate of a trace."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.dims import FRAME, TIME, TRACE_DIMS


def trace_coords(n_time: int, fs_hz: float) -> dict:
    frames = np.arange(n_time, dtype=np.int64)
    return {TIME: (TIME, frames / fs_hz), FRAME: (TIME, frames)}


def check_traces(traces: xr.DataArray, who: str) -> None:
    if not isinstance(traces, xr.DataArray) or set(traces.dims) != set(TRACE_DIMS):
        raise ValueError(f"{who}: expected an xarray.DataArray with dims {TRACE_DIMS}")
    for name in (TIME, FRAME):
        if name not in traces.coords:
            raise ValueError(f"{who}: traces need a '{name}' coordinate on the time dim")
