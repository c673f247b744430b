"""Trial-aligned traces around trial events."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from analysis.dims import FRAME, LAG, ROI, TRACE_DIMS, TRIAL
from analysis.settings import require


def align_trials(
    traces: xr.DataArray,
    event_frames: Sequence[int] | np.ndarray,
    *,
    fs_hz: float,
    window_s: tuple[float, float],
    trial_ids: Sequence[int] | np.ndarray | None = None,
) -> xr.DataArray:
    """Cut ``(trial, roi, lag)`` windows of traces around event frames.

    Parameters
    ----------
    traces : xarray.DataArray (roi, time)
        With an integer ``frame`` coordinate on ``time`` (contiguous, step 1).
    event_frames : array-like of int (trial,)
        Frame (volume index, same numbering as ``frame``) of each event, e.g. trial
        ``start_frame`` or ``reward_frame`` of hits.
    fs_hz : float
        Frame rate, Hz.
    window_s : (float, float)
        Window start and stop relative to the event, seconds (start < stop); lags are
        the whole frames in ``[start, stop]``.
    trial_ids : array-like of int, optional
        ``trial`` coordinate values (default 0..n-1).

    Returns
    -------
    xarray.DataArray (trial, roi, lag) float32
        ``lag`` in seconds (coordinate ``lag_frame`` in frames), coordinate
        ``event_frame(trial)``; NaN where the window leaves the recording.
    """
    if not isinstance(traces, xr.DataArray) or set(traces.dims) != set(TRACE_DIMS):
        raise ValueError(f"align_trials: traces must be an xarray.DataArray with dims {TRACE_DIMS}")
    if FRAME not in traces.coords:
        raise ValueError("align_trials: traces need a 'frame' coordinate on the time dim")
    require(fs_hz > 0, "align_trials: fs_hz must be > 0")
    start_s, stop_s = window_s
    require(start_s < stop_s, f"align_trials: window_s start must be < stop, got {window_s}")
    frame_coord = np.asarray(traces[FRAME].values, dtype=np.int64)
    if frame_coord.size and np.any(np.diff(frame_coord) != 1):
        raise ValueError("align_trials: the 'frame' coordinate must be contiguous (step 1)")
    events = np.asarray(event_frames, dtype=np.float64).ravel()
    if not np.all(np.isfinite(events)) or np.any(events != np.round(events)):
        raise ValueError(
            "align_trials: event_frames must be finite whole frame numbers "
            "(drop trials without the event, e.g. reward_frame of non-hit trials)"
        )
    if trial_ids is None:
        trial_ids = np.arange(events.size)
    trial_ids = np.asarray(trial_ids)
    if trial_ids.size != events.size:
        raise ValueError(f"align_trials: {trial_ids.size} trial_ids for {events.size} event_frames")
    lags = np.arange(int(np.ceil(start_s * fs_hz - 1e-9)), int(np.floor(stop_s * fs_hz + 1e-9)) + 1)
    data = traces.transpose(*TRACE_DIMS).to_numpy().astype(np.float32)
    offset = int(frame_coord[0]) if frame_coord.size else 0
    index = events.astype(np.int64)[:, None] - offset + lags[None, :]  # (trial, lag)
    inside = (index >= 0) & (index < data.shape[1])
    cut = data[:, np.clip(index, 0, max(data.shape[1] - 1, 0))]  # (roi, trial, lag)
    cut = np.where(inside[None], cut, np.nan).transpose(1, 0, 2)
    return xr.DataArray(
        cut.astype(np.float32),
        dims=(TRIAL, ROI, LAG),
        coords={
            TRIAL: trial_ids,
            ROI: traces[ROI].values,
            LAG: lags / fs_hz,
            "lag_frame": (LAG, lags),
            "event_frame": (TRIAL, events.astype(np.int64)),
        },
        name=traces.name,
    )
