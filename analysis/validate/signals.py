"""dF/F traces and deconvolved spikes compared with truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.validate.common import check_matches, pearson_rows, rows_of


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
    check_matches(matches)
    det_ids = matches["detected_roi"].to_numpy()
    tru_ids = matches["true_roi"].to_numpy()
    a = rows_of(estimated, det_ids, "estimated")
    b = rows_of(true, tru_ids, "true")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"compare_traces: {a.shape[1]} estimated vs {b.shape[1]} true frames")
    return pd.DataFrame({"detected_roi": det_ids, "true_roi": tru_ids, "r": pearson_rows(a, b)})


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
    check_matches(matches)
    if fs_hz <= 0 or bin_s <= 0:
        raise ValueError("compare_spikes: fs_hz and bin_s must be > 0")
    if max_lag_frames < 0:
        raise ValueError("compare_spikes: max_lag_frames must be >= 0")
    det_ids = matches["detected_roi"].to_numpy()
    tru_ids = matches["true_roi"].to_numpy()
    a = rows_of(estimated, det_ids, "estimated")
    b = rows_of(true, tru_ids, "true")
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
        r = pearson_rows(
            np.nan_to_num(x[:, :n]).reshape(len(x), -1, width).sum(-1),
            y[:, :n].reshape(len(y), -1, width).sum(-1),
        )
        better = np.isfinite(r) & ~(r <= best_r)
        best_r[better], best_lag[better] = r[better], lag
    return pd.DataFrame(
        {"detected_roi": det_ids, "true_roi": tru_ids, "r": best_r, "lag_frames": best_lag}
    )
