"""BCI stage: trials, task error and its epochs, trial-aligned traces, cursor replay.

Contract (docs/contracts.md "bci.py"):

- Input: the per-volume BCI log ``frames`` (the ``bci_frames.tsv`` columns ``frame``
  (0-based volume index), ``trial`` (-1 outside trials), ``new_trial``, ``readout``,
  ``angle_deg`` (NaN when grey or black), ``reward``, ``aversive``; optional ``licks``,
  ``opto``, ``shift_row``, ``shift_col``) and ``meta`` (``threshold``, ``failure_bound``,
  ``target_angle_deg``, ``max_trial_frames``).
- :func:`compute_trials` -> one row per trial: ``trial, start_frame, end_frame, outcome,
  reward_frame, aversive_frame, time_to_outcome_s, active_start_frame, active_end_frame,
  n_active_frames, decision_frame, opto_fraction, light_on``.
- :func:`compute_task_error` -> one row per frame: ``frame, trial, error,
  error_derivative, epoch``.
- :func:`align_trials` -> ``(trial, roi, lag)`` windows of a trace around event frames.
- :func:`replay_cursor` / :func:`compare_readout`: the online readout recomputed from
  offline target traces with :mod:`analysis.cloose`, and its agreement with the log.

Reading a trial from the log (the CLOOSE state machine, see :mod:`analysis.cloose`).
A trial is the contiguous block of frames carrying its index: grey frames, then the
active frames (grating under closed-loop control), then for a hit or a failure the
outcome hold. The outcome is **hit** if a reward frame falls in the trial, **failure**
if an aversive frame does, otherwise **timeout**. The *decision frame* of a hit or
failure is the first frame of the hold, found by walking back from the reward/aversive
TTL over frames showing the same angle (the reward TTL comes on the 3rd hold frame, the
white noise on the 1st). Active frames run from the first frame showing a grating to the
frame before the decision frame (to the last grating frame for a timeout). A last trial
cut short by the end of the recording (no outcome and fewer than ``max_trial_frames``
active frames) has no outcome and is left out (logged).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis.cloose import TaskParams, compute_online_dff, compute_readout
from analysis.dims import FRAME, LAG, ROI, TRACE_DIMS, TRIAL
from analysis.settings import StageSettings, require
from analysis.tables import true_runs
from analysis.vocabulary import BCI_META_REQUIRED, BCI_REQUIRED_COLUMNS, OUTCOMES

log = logging.getLogger(__name__)

FRAME_COLUMNS = BCI_REQUIRED_COLUMNS
META_KEYS = BCI_META_REQUIRED


@dataclasses.dataclass(frozen=True)
class BciSettings(StageSettings):
    """Settings of the bci stage (config section ``bci``).

    Attributes
    ----------
    grating_step_deg : float
        Angle between adjacent grating positions, degrees: one error step.
    error_smoothing_s : float
        Width of the centred moving mean applied to the error before differentiating,
        seconds (odd number of frames; computed within each trial's active frames).
    derivative_tolerance_steps_per_s : float
        ``|d error / dt|`` at or below this is flat (epoch 'none'), steps/s.
    epoch_min_duration_s : float
        Reduction/increase runs shorter than this become 'none', seconds.
    aligned_pre_s : float
        Seconds before each event in trial-aligned arrays.
    aligned_post_s : float
        Seconds after each event in trial-aligned arrays.
    """

    section = "bci"

    grating_step_deg: float = 15.0
    error_smoothing_s: float = 0.5
    derivative_tolerance_steps_per_s: float = 1e-6
    epoch_min_duration_s: float = 0.0
    aligned_pre_s: float = 2.0
    aligned_post_s: float = 4.0

    def __post_init__(self) -> None:
        require(self.grating_step_deg > 0, "bci.grating_step_deg must be > 0 degrees")
        require(self.error_smoothing_s >= 0, "bci.error_smoothing_s must be >= 0 seconds")
        require(
            self.derivative_tolerance_steps_per_s >= 0,
            "bci.derivative_tolerance_steps_per_s must be >= 0",
        )
        require(self.epoch_min_duration_s >= 0, "bci.epoch_min_duration_s must be >= 0 seconds")
        require(self.aligned_pre_s >= 0, "bci.aligned_pre_s must be >= 0 seconds")
        require(self.aligned_post_s > 0, "bci.aligned_post_s must be > 0 seconds")

    @property
    def window_s(self) -> tuple[float, float]:
        """``(start, stop)`` of trial-aligned windows relative to the event, seconds."""
        return (-self.aligned_pre_s, self.aligned_post_s)


# --- trials -----------------------------------------------------------------------------


def compute_trials(frames: pd.DataFrame, *, meta: Mapping[str, Any], fs_hz: float) -> pd.DataFrame:
    """Trials table from the per-volume BCI log.

    Parameters
    ----------
    frames : pandas.DataFrame
        The BCI log, one row per imaging volume (columns in the module docstring).
    meta : mapping
        ``threshold``, ``failure_bound``, ``target_angle_deg``, ``max_trial_frames``.
    fs_hz : float
        Volume rate, Hz.

    Returns
    -------
    pandas.DataFrame
        One row per complete trial: ``trial`` (log index), ``start_frame``, ``end_frame``
        (first/last frame carrying the index, hold included), ``outcome``
        ('hit' | 'failure' | 'timeout'), ``reward_frame`` and ``aversive_frame`` (TTL
        frames; nullable Int64, <NA> when absent), ``time_to_outcome_s`` (active frames /
        ``fs_hz``: grating onset to threshold crossing, failure-bound crossing or
        timeout), ``active_start_frame``, ``active_end_frame`` (inclusive; nullable Int64),
        ``n_active_frames``, ``decision_frame`` (first frame of a hit's or failure's hold,
        the frame the outcome was decided on: the same reference for both outcomes, where
        the reward TTL comes 2 frames later than the white noise; <NA> for timeouts),
        ``opto_fraction`` (share of the active frames with ``opto`` > 0; NaN when the log
        has no ``opto``), ``light_on`` (1 when that share is at least half, else 0).
        Only active frames count, so light the rig gives on reward or in the
        inter-trial interval does not mark a trial.

    Raises
    ------
    ValueError
        Missing columns or meta keys, non-contiguous ``frame`` or trial blocks, or a
        trial that never shows a grating.
    """
    _check_frames(frames)
    _check_meta(meta)
    require(fs_hz > 0, "compute_trials: fs_hz must be > 0")
    trial = frames["trial"].to_numpy(dtype=np.int64)
    angle = frames["angle_deg"].to_numpy(dtype=np.float64)
    reward = frames["reward"].to_numpy(dtype=np.float64) > 0
    aversive = frames["aversive"].to_numpy(dtype=np.float64) > 0
    opto = frames["opto"].to_numpy(dtype=np.float64) > 0 if "opto" in frames else None
    n_frames = trial.size
    max_trial_frames = int(meta["max_trial_frames"])
    ids = np.unique(trial[trial >= 0])
    rows = []
    for k in ids:
        idx = np.flatnonzero(trial == k)
        start, end = int(idx[0]), int(idx[-1])
        if idx.size != end - start + 1:
            raise ValueError(f"compute_trials: trial {k} is not one contiguous block of frames")
        is_last = k == ids[-1]
        rewards = idx[reward[idx]]
        aversives = idx[aversive[idx]]
        if rewards.size and aversives.size:
            log.warning("trial %d has both reward and aversive frames; the earlier wins", k)
        ttl = np.concatenate([rewards[:1], aversives[:1]])
        shown = idx[np.isfinite(angle[idx])]
        if not shown.size:
            if is_last and end == n_frames - 1:
                log.info("trial %d cut by the end of the recording before any grating", k)
                continue
            raise ValueError(f"compute_trials: trial {k} never shows a grating (angle_deg)")
        active_start = int(shown[0])
        if ttl.size:
            first = int(ttl.min())
            outcome = "hit" if rewards.size and first == rewards[0] else "failure"
            active_end = _decision_frame(angle, first, active_start) - 1
        else:
            outcome = "timeout"
            active_end = int(shown[-1])
        n_active = active_end - active_start + 1
        if outcome == "timeout" and n_active < max_trial_frames:
            if is_last and end == n_frames - 1:
                log.info("trial %d cut by the end of the recording; left out", k)
                continue
            log.warning(
                "trial %d: no outcome after %d active frames (< max_trial_frames %d)",
                k,
                n_active,
                max_trial_frames,
            )
        if n_active > max_trial_frames:
            log.warning(
                "trial %d: %d active frames exceed max_trial_frames %d",
                k,
                n_active,
                max_trial_frames,
            )
        rows.append(
            {
                "trial": int(k),
                "start_frame": start,
                "end_frame": end,
                "outcome": outcome,
                "reward_frame": int(rewards[0]) if outcome == "hit" else pd.NA,
                "aversive_frame": int(aversives[0]) if outcome == "failure" else pd.NA,
                "time_to_outcome_s": n_active / fs_hz,
                "active_start_frame": active_start,
                "active_end_frame": active_end,
                "n_active_frames": n_active,
                "decision_frame": active_end + 1 if outcome != "timeout" else pd.NA,
                "opto_fraction": (
                    float(opto[active_start : active_end + 1].mean())
                    if opto is not None and n_active > 0
                    else np.nan
                ),
            }
        )
    columns = [
        "trial",
        "start_frame",
        "end_frame",
        "outcome",
        "reward_frame",
        "aversive_frame",
        "time_to_outcome_s",
        "active_start_frame",
        "active_end_frame",
        "n_active_frames",
        "decision_frame",
        "opto_fraction",
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["light_on"] = (table["opto_fraction"] >= 0.5).astype(np.int64)
    ints = ("trial", "start_frame", "end_frame", "active_start_frame", "active_end_frame")
    table = table.astype(
        {
            **{c: np.int64 for c in (*ints, "n_active_frames")},
            "reward_frame": "Int64",
            "aversive_frame": "Int64",
            "decision_frame": "Int64",
            "time_to_outcome_s": np.float64,
            "opto_fraction": np.float64,
            "outcome": object,
        }
    )
    log.info(
        "%d trials: %s",
        len(table),
        ", ".join(f"{o} {int((table.outcome == o).sum())}" for o in OUTCOMES),
    )
    return table


def _decision_frame(angle: np.ndarray, ttl: int, floor: int) -> int:
    """First frame of the hold containing ``ttl``: walk back over frames of equal angle."""
    held = angle[ttl]
    frame = ttl
    if not np.isfinite(held):
        return frame
    while frame - 1 >= floor and angle[frame - 1] == held:
        frame -= 1
    return frame


# --- task error -------------------------------------------------------------------------


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


# --- trial-aligned traces ---------------------------------------------------------------


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


# --- cursor replay ----------------------------------------------------------------------


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


# --- validation -------------------------------------------------------------------------


def _check_frames(frames: pd.DataFrame) -> None:
    if not isinstance(frames, pd.DataFrame):
        raise ValueError("BCI frames must be a pandas.DataFrame (bci_frames.tsv)")
    missing = [c for c in FRAME_COLUMNS if c not in frames.columns]
    if missing:
        raise ValueError(f"BCI frames table lacks columns {missing}; required: {FRAME_COLUMNS}")
    frame = frames["frame"].to_numpy()
    if not np.array_equal(frame, np.arange(frame.size)):
        raise ValueError("BCI frames: 'frame' must be 0, 1, 2, ... (one row per volume, in order)")
    trial = frames["trial"].to_numpy()
    if not np.all(np.isfinite(trial.astype(np.float64))) or np.any(trial < -1):
        raise ValueError("BCI frames: 'trial' must be integers >= -1 (-1 outside trials)")


def _check_meta(meta: Mapping[str, Any]) -> None:
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"BCI meta lacks keys {missing}; required: {META_KEYS}")
    if not float(meta["threshold"]) > float(meta["failure_bound"]):
        raise ValueError(
            f"BCI meta: threshold ({meta['threshold']}) must exceed failure_bound "
            f"({meta['failure_bound']})"
        )
    require(int(meta["max_trial_frames"]) >= 1, "BCI meta: max_trial_frames must be >= 1")
