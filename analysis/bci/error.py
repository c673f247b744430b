"""Task error (grating steps from the target), its derivative and the error epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.bci.settings import BciSettings
from analysis.bci.trials import compute_trials
from analysis.settings import require
from analysis.tables import true_runs


def compute_task_error(
    frames: pd.DataFrame, *, meta: Mapping[str, Any], fs_hz: float, settings: BciSettings
) -> pd.DataFrame:
    """Per-frame task error, its smoothed derivative and the error epoch.

    Parameters
    ----------
    frames : pandas.DataFrame
        The BCI log (see module docstring).
    meta : mapping
        With ``target_angle_deg`` (and the other :data:`META_KEYS`).
    fs_hz : float
        Volume rate, Hz.
    settings : BciSettings

    Returns
    -------
    pandas.DataFrame
        One row per log frame: ``frame``, ``trial`` (-1 outside active frames),
        ``error`` = ``(target_angle_deg - angle_deg) / grating_step_deg`` in grating
        steps (0 at the target, NaN outside the active frames of complete trials),
        ``error_derivative`` (steps/s: gradient of the error after a centred moving mean
        of ``error_smoothing_s``, both within the trial's active frames; NaN outside),
        ``epoch``: 'reduction' (derivative < -tolerance), 'increase' (> tolerance) or
        'none' (flat, or outside active frames); runs shorter than
        ``epoch_min_duration_s`` become 'none'.
    """
    trials = compute_trials(frames, meta=meta, fs_hz=fs_hz)
    angle = frames["angle_deg"].to_numpy(dtype=np.float64)
    n_frames = angle.size
    error = np.full(n_frames, np.nan)
    derivative = np.full(n_frames, np.nan)
    trial_of = np.full(n_frames, -1, dtype=np.int64)
    half = int(round(settings.error_smoothing_s * fs_hz / 2))
    target = float(meta["target_angle_deg"])
    for row in trials.itertuples(index=False):
        window = slice(row.active_start_frame, row.active_end_frame + 1)
        steps = (target - angle[window]) / settings.grating_step_deg
        if not np.all(np.isfinite(steps)):
            raise ValueError(
                f"compute_task_error: trial {row.trial} has active frames without angle"
            )
        smooth = _centred_mean(steps, half)
        error[window] = steps
        trial_of[window] = row.trial
        derivative[window] = np.gradient(smooth) * fs_hz if steps.size > 1 else 0.0
    tol = settings.derivative_tolerance_steps_per_s
    epoch = np.full(n_frames, "none", dtype=object)
    with np.errstate(invalid="ignore"):
        epoch[derivative < -tol] = "reduction"
        epoch[derivative > tol] = "increase"
    min_frames = int(round(settings.epoch_min_duration_s * fs_hz))
    for name in ("reduction", "increase"):
        for start, stop in true_runs(epoch == name):
            if stop - start < min_frames:
                epoch[start:stop] = "none"
    return pd.DataFrame(
        {
            "frame": frames["frame"].to_numpy(dtype=np.int64),
            "trial": trial_of,
            "error": error,
            "error_derivative": derivative,
            "epoch": epoch,
        }
    )


def causal_error_trend(
    error: np.ndarray, *, fs_hz: float, window_s: float, gap_s: float
) -> np.ndarray:
    """Per frame f, the error trend that ended ``gap_s`` before f: what f cannot have caused.

    The least-squares slope (grating steps/s) of ``error`` over the ``window_s`` of frames
    ending at ``f - round(gap_s * fs_hz)``. NaN where that window is not wholly inside one
    run of finite error (one trial's active frames) or starts before the recording. An
    event with onset f reads its epoch here: in a closed loop the event moves the cursor
    from its first spike on, so a window around f would let the event label itself.

    Parameters
    ----------
    error : array (frame,)
        Task error, NaN outside active frames (:func:`compute_task_error`).
    fs_hz : float
        Volume rate, Hz.
    window_s, gap_s : float
        Window length (at least 2 frames) and its gap before the frame, seconds.

    Returns
    -------
    numpy.ndarray (frame,) float64
    """
    require(fs_hz > 0, "causal_error_trend: fs_hz must be > 0")
    require(gap_s >= 0, "causal_error_trend: gap_s must be >= 0")
    n_win = max(2, int(round(window_s * fs_hz)))
    gap = int(round(gap_s * fs_hz))
    error = np.asarray(error, dtype=np.float64)
    finite = np.isfinite(error)
    y = np.where(finite, error, 0.0)
    j = np.arange(y.size, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(y)])
    cjsum = np.concatenate([[0.0], np.cumsum(j * y)])
    cfinite = np.concatenate([[0], np.cumsum(finite)])
    trend = np.full(y.size, np.nan)
    last = np.arange(y.size) - gap  # last frame of each frame's window
    first = last - n_win + 1
    ok = first >= 0
    f, a, b = np.flatnonzero(ok), first[ok], last[ok] + 1
    whole = cfinite[b] - cfinite[a] == n_win
    f, a, b = f[whole], a[whole], b[whole]
    # slope of y on k = 0..n-1 over the window: sum((k - kbar) y) / sum((k - kbar)^2)
    sum_y = csum[b] - csum[a]
    sum_ky = cjsum[b] - cjsum[a] - a * sum_y
    k_bar = (n_win - 1) / 2
    ss_k = n_win * (n_win**2 - 1) / 12
    trend[f] = (sum_ky - k_bar * sum_y) / ss_k * fs_hz
    return trend


def trend_epochs(trend: np.ndarray) -> np.ndarray:
    """'reduction' where the error fell, 'increase' where it rose, else 'none' (flat, NaN).

    The error moves in whole grating steps, so a flat window has a slope of exactly 0 up
    to rounding; the tolerance only absorbs that rounding.
    """
    epoch = np.full(np.shape(trend), "none", dtype=object)
    with np.errstate(invalid="ignore"):
        epoch[trend < -1e-9] = "reduction"
        epoch[trend > 1e-9] = "increase"
    return epoch


def _centred_mean(x: np.ndarray, half: int) -> np.ndarray:
    """Mean over ``[i - half, i + half]`` clipped to the array (exact for integer steps)."""
    csum = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(x.size)
    lo = np.maximum(i - half, 0)
    hi = np.minimum(i + half + 1, x.size)
    return (csum[hi] - csum[lo]) / (hi - lo)
