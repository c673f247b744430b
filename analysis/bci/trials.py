"""The trials table from the per-volume BCI log: outcome, active frames, decision frame."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.bci.settings import check_frames, check_meta
from analysis.settings import require
from analysis.vocabulary import OUTCOMES

log = logging.getLogger(__name__)


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
    check_frames(frames)
    check_meta(meta)
    require(fs_hz > 0, "compute_trials: fs_hz must be > 0")
    trial = frames["trial"].to_numpy(dtype=np.int64)
    arrays = {
        "angle": frames["angle_deg"].to_numpy(dtype=np.float64),
        "reward": frames["reward"].to_numpy(dtype=np.float64) > 0,
        "aversive": frames["aversive"].to_numpy(dtype=np.float64) > 0,
        "opto": frames["opto"].to_numpy(dtype=np.float64) > 0 if "opto" in frames else None,
    }
    ids = np.unique(trial[trial >= 0])
    rows = []
    for k in ids:
        idx = np.flatnonzero(trial == k)
        start, end = int(idx[0]), int(idx[-1])
        if idx.size != end - start + 1:
            raise ValueError(f"compute_trials: trial {k} is not one contiguous block of frames")
        row = _trial_row(
            k,
            idx,
            arrays,
            cut_at_end=bool(k == ids[-1] and end == trial.size - 1),
            max_trial_frames=int(meta["max_trial_frames"]),
            fs_hz=fs_hz,
        )
        if row is not None:
            rows.append(row)
    table = _trials_table(rows)
    log.info(
        "%d trials: %s",
        len(table),
        ", ".join(f"{o} {int((table.outcome == o).sum())}" for o in OUTCOMES),
    )
    return table


def _trial_row(
    k: np.int64,
    idx: np.ndarray,
    arrays: Mapping[str, np.ndarray | None],
    *,
    cut_at_end: bool,
    max_trial_frames: int,
    fs_hz: float,
) -> dict[str, Any] | None:
    """One trial's row of the trials table (frames ``idx`` of the log), or None for a trial
    the end of the recording cut short."""
    angle, reward, aversive, opto = (arrays[n] for n in ("angle", "reward", "aversive", "opto"))
    start, end = int(idx[0]), int(idx[-1])
    rewards = idx[reward[idx]]
    aversives = idx[aversive[idx]]
    if rewards.size and aversives.size:
        log.warning("trial %d has both reward and aversive frames; the earlier wins", k)
    ttl = np.concatenate([rewards[:1], aversives[:1]])
    shown = idx[np.isfinite(angle[idx])]
    if not shown.size:
        if cut_at_end:
            log.info("trial %d cut by the end of the recording before any grating", k)
            return None
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
        if cut_at_end:
            log.info("trial %d cut by the end of the recording; left out", k)
            return None
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
    return {
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


def _trials_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The trials table from its rows, with ``light_on`` and the column dtypes."""
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
