"""The rig's closed loop (CLOOSE, github.com/harnett/CLOOSE), shared by simulator and replay.

Contract (DESIGN.md section 2, docs/contracts.md "cloose.py"):

- Online F is the mean of the raw pixels in each target polygon after online rigid
  motion correction (no neuropil subtraction). F0 is a causal running percentile
  (default 10th) over the last ``f0_window_frames`` volumes (4 x max trial length);
  dF/F = (F - F0) / F0.
- ``x(n) = mean dF/F(P+) - mean dF/F(P-)``; the readout is its causal mean over frames
  ``n - smooth_frames + 1 .. n``. CLOOSE displays ``z(n) = readout(n) - range`` where
  ``range`` is the failure bound; here the readout is logged *unshifted* and both the
  threshold and the failure bound are in the same units, so ``z = readout - failure_bound``.
- Threshold calibration from a baseline recording: ``n_trials`` random windows of
  ``trial_frames``; the failure bound is the baseline readout minimum; the threshold is
  the lowest value at which at most ``hit_fraction`` of the windows would hit.
- Grating: 7 positions in ``step_deg`` steps ending at the target angle; position index
  ``np.digitize(readout, linspace(failure_bound, threshold, 6))`` (0 = below the failure
  bound = 0 deg, 6 = at/above threshold = target).
- Trial state machine of :func:`run_task`, one row per imaging volume:

  ========  =================================================================
  grey      ``grey_frames`` frames, trial index set, ``new_trial`` = 1 on the
            first, angle NaN, readout not evaluated
  active    up to ``max_trial_frames`` frames, angle from the readout.
            Hit (checked first): readout >= threshold on frame t -> frames
            t .. t+hold_frames-1 hold the target angle (frame t is hold frame 1),
            reward on hold frame ``reward_hold_frame`` (t + 2 by default).
            Failure: readout < failure_bound on frame t -> frames t .. t+59 at
            0 deg, aversive (white noise) on frame t.
  ITI       after hit/failure ``iti_frames`` grey frames; after a timeout
            ``timeout_iti_frames`` black frames; ``trial`` = -1, angle NaN.
  ========  =================================================================

  The recording ends wherever it ends (a trial may be cut short).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging

import numpy as np
import pandas as pd

from analysis.settings import require

log = logging.getLogger(__name__)

LOG_COLUMNS = ("frame", "trial", "new_trial", "readout", "angle_deg", "reward", "aversive")


@dataclasses.dataclass(frozen=True)
class TaskParams:
    """CLOOSE task parameters (frames are imaging volumes).

    Attributes
    ----------
    target_angle_deg : float
        Grating angle at the target (hit) position, degrees.
    n_positions : int
        Number of grating positions (7 on the rig).
    step_deg : float
        Angle step between positions, degrees.
    grey_frames : int
        Grey frames opening every trial.
    max_trial_frames : int
        Active frames before a timeout (870 one plane, 435 with two planes).
    hold_frames : int
        Frames the outcome grating is held after a hit or failure.
    reward_hold_frame : int
        1-based hold frame carrying the reward TTL.
    iti_frames : int
        Grey inter-trial frames after a hit or failure.
    timeout_iti_frames : int
        Black inter-trial frames after a timeout.
    f0_window_frames : int | None
        Running-percentile F0 window; None means 4 x ``max_trial_frames``.
    f0_percentile : float
        Percentile of the running F0, 0-100.
    smooth_frames : int
        Readout smoothing: causal mean over this many frames.
    """

    target_angle_deg: float = 90.0
    n_positions: int = 7
    step_deg: float = 15.0
    grey_frames: int = 15
    max_trial_frames: int = 435
    hold_frames: int = 60
    reward_hold_frame: int = 3
    iti_frames: int = 15
    timeout_iti_frames: int = 90
    f0_window_frames: int | None = None
    f0_percentile: float = 10.0
    smooth_frames: int = 3

    def __post_init__(self) -> None:
        require(self.n_positions >= 2, "TaskParams.n_positions must be >= 2")
        require(self.step_deg > 0, "TaskParams.step_deg must be > 0")
        for name in ("grey_frames", "iti_frames", "timeout_iti_frames"):
            require(getattr(self, name) >= 0, f"TaskParams.{name} must be >= 0")
        require(self.max_trial_frames >= 1, "TaskParams.max_trial_frames must be >= 1")
        require(self.hold_frames >= 1, "TaskParams.hold_frames must be >= 1")
        require(
            1 <= self.reward_hold_frame <= self.hold_frames,
            "TaskParams.reward_hold_frame must be in 1..hold_frames",
        )
        require(
            self.f0_window_frames is None or self.f0_window_frames >= 1,
            "TaskParams.f0_window_frames must be None or >= 1",
        )
        require(0 <= self.f0_percentile <= 100, "TaskParams.f0_percentile must be in 0..100")
        require(self.smooth_frames >= 1, "TaskParams.smooth_frames must be >= 1")

    @property
    def f0_window(self) -> int:
        """Effective F0 window in frames (4 x max_trial_frames unless set)."""
        return self.f0_window_frames or 4 * self.max_trial_frames

    @property
    def angles_deg(self) -> np.ndarray:
        """Grating angle of each position, position 0 (furthest) .. target, degrees."""
        k = np.arange(self.n_positions)
        return self.target_angle_deg - self.step_deg * (self.n_positions - 1 - k)


def compute_online_dff(
    F: np.ndarray, *, window_frames: int, percentile: float = 10.0, chunk_frames: int = 512
) -> np.ndarray:
    """Online dF/F with a causal running-percentile baseline, as on the rig.

    Parameters
    ----------
    F : array (target, time)
        Online fluorescence (mean raw pixel value in each target polygon), a.u.
    window_frames : int
        F0 at frame n is the ``percentile`` of ``F[:, n-window_frames+1 : n+1]``
        (fewer frames at the start of the recording).
    percentile : float
        0-100.
    chunk_frames : int
        Frames evaluated per vectorised block (memory ~ target x chunk x window).

    Returns
    -------
    array (target, time) float64
        ``(F - F0) / F0``.
    """
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError(f"compute_online_dff: F must be (target, time), got shape {F.shape}")
    require(window_frames >= 1, "compute_online_dff: window_frames must be >= 1")
    require(0 <= percentile <= 100, "compute_online_dff: percentile must be in 0..100")
    n_roi, n_time = F.shape
    f0 = np.empty_like(F)
    n_head = min(window_frames - 1, n_time)  # frames whose window is still filling up
    # The filling-up frames use the (shorter) history available: each ROI's history is
    # kept sorted by insertion, and read as np.percentile's default (linear) method does.
    for r in range(n_roi):
        history: list[float] = []
        for n in range(n_head):
            bisect.insort(history, F[r, n])
            f0[r, n] = _linear_percentile(history, percentile)
    if n_time > n_head:
        windows = np.lib.stride_tricks.sliding_window_view(F, window_frames, axis=1)
        for start in range(n_head, n_time, chunk_frames):
            stop = min(start + chunk_frames, n_time)
            block = windows[:, start - n_head : stop - n_head]
            f0[:, start:stop] = np.percentile(block, percentile, axis=-1)
    if np.any(f0 <= 0):
        raise ValueError(
            "compute_online_dff: running F0 <= 0; online F must be positive raw intensities"
        )
    return (F - f0) / f0


def _linear_percentile(ordered: list[float], percentile: float) -> float:
    """``np.percentile(ordered, percentile)`` of a sorted list, with numpy's own lerp."""
    pos = percentile / 100 * (len(ordered) - 1)
    lo = int(pos)
    a, b = ordered[lo], ordered[min(lo + 1, len(ordered) - 1)]
    t = pos - lo
    # numpy's lerp: from the upper point for t >= 0.5 (keeps the result monotone)
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def compute_readout(
    dff_pos: np.ndarray, dff_neg: np.ndarray, *, smooth_frames: int = 3
) -> np.ndarray:
    """BCI readout: causal smoothed ``mean dF/F(P+) - mean dF/F(P-)``.

    Parameters
    ----------
    dff_pos, dff_neg : array (target, time)
        Online dF/F of the P+ and P- targets (each group needs >= 1 target).
    smooth_frames : int
        Readout at n is the mean of x over frames ``max(0, n-smooth_frames+1) .. n``.

    Returns
    -------
    array (time,) float64
    """
    dff_pos = np.atleast_2d(np.asarray(dff_pos, dtype=np.float64))
    dff_neg = np.atleast_2d(np.asarray(dff_neg, dtype=np.float64))
    if dff_pos.shape[0] == 0 or dff_neg.shape[0] == 0:
        raise ValueError("compute_readout: need at least one P+ and one P- target")
    if dff_pos.shape[1] != dff_neg.shape[1]:
        raise ValueError(
            f"compute_readout: P+ has {dff_pos.shape[1]} frames but P- has {dff_neg.shape[1]}"
        )
    require(smooth_frames >= 1, "compute_readout: smooth_frames must be >= 1")
    x = dff_pos.mean(axis=0) - dff_neg.mean(axis=0)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    n = np.arange(x.size)
    lo = np.maximum(0, n - smooth_frames + 1)
    return (csum[n + 1] - csum[lo]) / (n + 1 - lo)


def calibrate_threshold(
    baseline_readout: np.ndarray,
    *,
    n_trials: int = 200,
    trial_frames: int = 750,
    hit_fraction: float = 0.5,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Threshold and failure bound from a baseline recording, as CLOOSE calibrates.

    Parameters
    ----------
    baseline_readout : array (time,)
        Readout (see :func:`compute_readout`) over the baseline recording.
    n_trials : int
        Random simulated trials (windows with uniformly drawn starts).
    trial_frames : int
        Frames per simulated trial; must not exceed the baseline length.
    hit_fraction : float
        At most this fraction of simulated trials may hit (0 < f < 1).
    rng : numpy.random.Generator

    Returns
    -------
    threshold : float
        Lowest value at which at most ``hit_fraction`` of the windows reach it
        (just above the ``floor(hit_fraction * n_trials) + 1``-th largest window maximum).
    failure_bound : float
        Minimum of the baseline readout (CLOOSE's ``range``).
    """
    readout = np.asarray(baseline_readout, dtype=np.float64)
    if readout.ndim != 1 or not np.all(np.isfinite(readout)):
        raise ValueError("calibrate_threshold: baseline_readout must be a finite 1-D array")
    require(n_trials >= 1, "calibrate_threshold: n_trials must be >= 1")
    require(0 < hit_fraction < 1, "calibrate_threshold: hit_fraction must be in (0, 1)")
    if not 1 <= trial_frames <= readout.size:
        raise ValueError(
            f"calibrate_threshold: trial_frames ({trial_frames}) must be in "
            f"1..len(baseline_readout) ({readout.size})"
        )
    starts = rng.integers(0, readout.size - trial_frames + 1, size=n_trials)
    windows = np.lib.stride_tricks.sliding_window_view(readout, trial_frames)
    maxima = np.sort(windows[starts].max(axis=1))[::-1]
    n_allowed = int(np.floor(hit_fraction * n_trials))
    threshold = float(np.nextafter(maxima[n_allowed], np.inf))
    failure_bound = float(readout.min())
    log.info(
        "calibrated threshold %.4g, failure bound %.4g (%d windows)",
        threshold,
        failure_bound,
        n_trials,
    )
    return threshold, failure_bound


def grating_position(
    readout: np.ndarray | float, *, threshold: float, failure_bound: float, params: TaskParams
) -> np.ndarray:
    """Grating position index 0 .. n_positions-1 (last = target) for a readout.

    Bins are ``linspace(failure_bound, threshold, n_positions - 1)`` plus one below.
    """
    if not threshold > failure_bound:
        raise ValueError(
            f"threshold ({threshold}) must be greater than failure_bound ({failure_bound})"
        )
    edges = np.linspace(failure_bound, threshold, params.n_positions - 1)
    return np.digitize(np.asarray(readout, dtype=np.float64), edges)


def angle_for_readout(
    readout: np.ndarray | float, *, threshold: float, failure_bound: float, params: TaskParams
) -> np.ndarray:
    """Grating angle (degrees) shown for a readout (array or scalar, same shape)."""
    pos = grating_position(readout, threshold=threshold, failure_bound=failure_bound, params=params)
    return params.angles_deg[pos]


def run_task(
    readout: np.ndarray, *, threshold: float, failure_bound: float, params: TaskParams
) -> pd.DataFrame:
    """Run the CLOOSE trial state machine on a per-volume readout.

    Parameters
    ----------
    readout : array (time,)
        Online readout per imaging volume.
    threshold, failure_bound : float
        From :func:`calibrate_threshold` (same units as ``readout``).
    params : TaskParams

    Returns
    -------
    pandas.DataFrame
        One row per frame, columns ``frame`` (0-based), ``trial`` (0-based, -1 in the
        ITI), ``new_trial`` (1 on a trial's first grey frame), ``readout``,
        ``angle_deg`` (NaN when grey or black), ``reward`` (0/1), ``aversive`` (0/1).
    """
    readout = np.asarray(readout, dtype=np.float64)
    if readout.ndim != 1:
        raise ValueError(f"run_task: readout must be 1-D, got shape {readout.shape}")
    if not threshold > failure_bound:
        raise ValueError(
            f"run_task: threshold ({threshold}) must be greater than failure_bound "
            f"({failure_bound})"
        )
    n = readout.size
    trial = np.full(n, -1, dtype=np.int64)
    new_trial = np.zeros(n, dtype=np.int64)
    angle = np.full(n, np.nan)
    reward = np.zeros(n, dtype=np.int64)
    aversive = np.zeros(n, dtype=np.int64)
    live = angle_for_readout(
        readout, threshold=threshold, failure_bound=failure_bound, params=params
    )

    t = 0
    k = 0
    while t < n:
        new_trial[t] = 1
        trial[t : t + params.grey_frames] = k
        t += params.grey_frames
        outcome = "timeout"
        active_end = min(t + params.max_trial_frames, n)
        while t < active_end:
            trial[t] = k
            if readout[t] >= threshold:
                outcome = "hit"
                break
            if readout[t] < failure_bound:
                outcome = "failure"
                break
            angle[t] = live[t]
            t += 1
        if outcome == "timeout":
            t = active_end + params.timeout_iti_frames
        else:
            hold = slice(t, min(t + params.hold_frames, n))
            trial[hold] = k
            if outcome == "hit":
                angle[hold] = params.target_angle_deg
                if t + params.reward_hold_frame - 1 < n:
                    reward[t + params.reward_hold_frame - 1] = 1
            else:
                angle[hold] = params.angles_deg[0]
                aversive[t] = 1
            t += params.hold_frames + params.iti_frames
        k += 1
    return pd.DataFrame(
        {
            "frame": np.arange(n, dtype=np.int64),
            "trial": trial,
            "new_trial": new_trial,
            "readout": readout,
            "angle_deg": angle,
            "reward": reward,
            "aversive": aversive,
        }
    )
