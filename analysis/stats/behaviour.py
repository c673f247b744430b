"""Behaviour per session and target activity across days (P+ maintained, P- falling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from analysis.dims import ROI, TIME
from analysis.settings import require
from analysis.stats.common import require_input_columns, require_values, session_day_index
from analysis.vocabulary import GROUPS, OUTCOMES


def compute_behaviour(trials: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Per subject x session behaviour: trial counts, hit rate, rewards per minute.

    Parameters
    ----------
    trials : pandas.DataFrame
        Columns ``subject, session, trial, outcome, reward_frame, time_to_outcome_s``
        (``reward_frame`` NaN/empty when no reward was given).
    sessions : pandas.DataFrame
        Columns ``subject, session, duration_s``; every session with imaging appears here,
        even one without trials.

    Returns
    -------
    pandas.DataFrame
        One row per session in ``sessions``: ``subject, session, day_index, n_trials,
        n_hits, n_failures, n_timeouts, hit_rate`` (hits / trials, NaN without trials),
        ``rewards_per_min`` (reward TTLs per minute of recording),
        ``median_time_to_hit_s`` (NaN without hits).
    """
    require_input_columns(
        trials,
        ["subject", "session", "trial", "outcome", "reward_frame", "time_to_outcome_s"],
        "trials",
    )
    require_input_columns(sessions, ["subject", "session", "duration_s"], "sessions")
    require_values(trials, "outcome", OUTCOMES, "trials")
    if (sessions["duration_s"] <= 0).any():
        raise ValueError("sessions.duration_s must be > 0 seconds for every session")
    rows = []
    for (subject, session), sess in sessions.groupby(["subject", "session"], sort=True):
        tr = trials[(trials["subject"] == subject) & (trials["session"] == session)]
        n = len(tr)
        hits = tr[tr["outcome"] == "hit"]
        n_rewards = int(pd.to_numeric(tr["reward_frame"], errors="coerce").notna().sum())
        rows.append(
            dict(
                subject=subject,
                session=session,
                n_trials=n,
                n_hits=len(hits),
                n_failures=int((tr["outcome"] == "failure").sum()),
                n_timeouts=int((tr["outcome"] == "timeout").sum()),
                hit_rate=len(hits) / n if n else np.nan,
                rewards_per_min=n_rewards / (float(sess["duration_s"].iloc[0]) / 60.0),
                median_time_to_hit_s=float(hits["time_to_outcome_s"].median())
                if len(hits)
                else np.nan,
            )
        )
    out = pd.DataFrame(rows)
    out.insert(2, "day_index", session_day_index(out))
    return out


def compute_activity(
    dff: xr.DataArray, *, trials: pd.DataFrame, events: pd.DataFrame, fs_hz: float
) -> pd.DataFrame:
    """Per-ROI activity of one session: mean dF/F within trials and event rate.

    Parameters
    ----------
    dff : xarray.DataArray
        dF/F, dims ``(roi, time)``; ``time`` carries an integer ``frame`` coordinate
        (frame index into the session; if absent, frames are 0..n-1).
    trials : pandas.DataFrame
        This session's trials: ``start_frame, end_frame`` (inclusive).
    events : pandas.DataFrame
        This session's events of the same plane: ``roi``.
    fs_hz : float
        Volume rate; the recording lasts ``n_frames / fs_hz`` seconds.

    Returns
    -------
    pandas.DataFrame
        One row per roi: ``roi, mean_dff`` (mean over in-trial frames, dF/F),
        ``event_rate_hz`` (events per second of recording). The glue adds ``subject`` and
        ``session`` before concatenating sessions.
    """
    if not isinstance(dff, xr.DataArray) or set(dff.dims) != {ROI, TIME}:
        raise ValueError(f"dff must be an xarray.DataArray with dims ({ROI}, {TIME})")
    require_input_columns(trials, ["start_frame", "end_frame"], "trials")
    require_input_columns(events, ["roi"], "events")
    require(fs_hz > 0, "fs_hz must be > 0")
    dff = dff.transpose(ROI, TIME)
    n_time = dff.sizes[TIME]
    frames = np.asarray(dff["frame"]) if "frame" in dff.coords else np.arange(n_time)
    in_trial = np.zeros(n_time, dtype=bool)
    for start, end in zip(trials["start_frame"], trials["end_frame"], strict=True):
        in_trial |= (frames >= start) & (frames <= end)
    values = np.asarray(dff.values, dtype=float)
    mean_dff = (
        np.nanmean(values[:, in_trial], axis=1) if in_trial.any() else np.full(len(values), np.nan)
    )
    rois = np.asarray(dff[ROI])
    counts = events["roi"].value_counts()
    rate = np.array([counts.get(r, 0) for r in rois], dtype=float) / (n_time / fs_hz)
    return pd.DataFrame({"roi": rois, "mean_dff": mean_dff, "event_rate_hz": rate})


def compute_activity_change(activity: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Per target neuron x session activity and its change from the neuron's first session.

    Parameters
    ----------
    activity : pandas.DataFrame
        ``subject, session, roi, mean_dff, event_rate_hz`` (from :func:`compute_activity`).
    targets : pandas.DataFrame
        ``subject, session, target_id, group, roi``.

    Returns
    -------
    pandas.DataFrame
        ``subject, session, day_index, roi, target_id, group, mean_dff, event_rate_hz,
        change_mean_dff, change_event_rate_hz`` (minus the same neuron's first session
        with data). Only target neurons appear.
    """
    require_input_columns(
        activity, ["subject", "session", "roi", "mean_dff", "event_rate_hz"], "activity"
    )
    require_input_columns(targets, ["subject", "session", "target_id", "group", "roi"], "targets")
    require_values(targets, "group", GROUPS, "targets")
    out = targets[["subject", "session", "target_id", "group", "roi"]].merge(
        activity[["subject", "session", "roi", "mean_dff", "event_rate_hz"]],
        on=["subject", "session", "roi"],
        how="inner",
    )
    if out.empty:
        raise ValueError(
            "no target ROI has activity: check that targets.roi ids match activity.roi"
        )
    out.insert(2, "day_index", session_day_index(out))
    out = out.sort_values(["subject", "roi", "day_index"]).reset_index(drop=True)
    first = out.groupby(["subject", "roi"])[["mean_dff", "event_rate_hz"]].transform("first")
    out["change_mean_dff"] = out["mean_dff"] - first["mean_dff"]
    out["change_event_rate_hz"] = out["event_rate_hz"] - first["event_rate_hz"]
    return out


def compute_group_activity(activity_change: pd.DataFrame) -> pd.DataFrame:
    """Per subject x group x session mean target activity (the P+/P- learning panel).

    Parameters
    ----------
    activity_change : pandas.DataFrame
        Output of :func:`compute_activity_change`.

    Returns
    -------
    pandas.DataFrame
        ``subject, group, session, day_index, n_neurons, mean_dff, change_mean_dff,
        event_rate_hz`` (means over the group's neurons).
    """
    require_input_columns(
        activity_change,
        [
            "subject",
            "group",
            "session",
            "day_index",
            "mean_dff",
            "change_mean_dff",
            "event_rate_hz",
        ],
        "activity_change",
    )
    return (
        activity_change.groupby(["subject", "group", "session", "day_index"], as_index=False)
        .agg(
            n_neurons=("mean_dff", "size"),
            mean_dff=("mean_dff", "mean"),
            change_mean_dff=("change_mean_dff", "mean"),
            event_rate_hz=("event_rate_hz", "mean"),
        )
        .sort_values(["subject", "group", "day_index"])
        .reset_index(drop=True)
    )
