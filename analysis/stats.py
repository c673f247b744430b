"""Stage 8, stats: behaviour, target activity, somato-dendritic residuals and their tests.

Input contract (tidy tables the workflow glue builds from saved results; every function
validates the columns it needs and names the missing ones):

- ``events``: one row per detected event, from ``extract`` (soma and dendrite planes
  concatenated): ``subject, session, plane_role ('soma' | 'dendrite'), roi, frame,
  peak_frame, time_s, amplitude`` (amplitude in dF/F).
- ``pairs``: from ``track.pair_dendrites`` per subject: ``subject, soma_roi,
  dendrite_roi, paired`` (bool). ROI ids are stable across a subject's sessions.
- ``soma_dff``, ``dendrite_dff``: per (subject, session), the planes' dF/F ``(roi, time)``
  from ``extract``, where the soma-locked responses are read (:mod:`analysis.residuals`).
- ``targets``: from ``track.map_targets``: ``subject, session, target_id, group
  ('P+' | 'P-'), roi`` (soma roi id).
- ``epochs``: per frame, from ``bci.compute_task_error``: ``subject, session, frame,
  error, error_derivative, epoch ('reduction' | 'increase' | 'none')``.
- ``trials``: from ``bci.compute_trials``: ``subject, session, trial, start_frame,
  end_frame, outcome ('hit' | 'failure' | 'timeout'), reward_frame, aversive_frame,
  time_to_outcome_s``.
- ``sessions``: ``subject, session, fs_hz, duration_s`` (imaging volume rate, recording
  length).

Output contract (``results/stats/``): behaviour, activity, soma-locked SD events with
causal epochs and residuals, fits, contrasts, signed separation, outcome-aligned residuals,
early residual vs later change, network prediction, and one ``tests`` table whose rows each
name the test, its statistic, p-value and n (animals, neurons, events); ``summary.txt`` is
:func:`summarize` of that table, with what each test can and cannot claim.

Statistics are hierarchical (neurons nested in animals): per-neuron means are averaged
within an animal, and the headline test takes one number per animal (its signed
separation) across animals, so pooled neurons are never treated as independent animals.
Secondary tests permute labels *within* animals. The closed-loop confounds and how each
setting guards against them: docs/statistics.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse

from analysis import conditions, residuals
from analysis.dims import ROI, TIME
from analysis.inference import (
    TEST_COLUMNS,
    InsufficientDataError,
    one_sample_across_animals,
    permutation_p,
    result_row,
    sign_flip_greater,
    untestable_row,
)
from analysis.settings import StageSettings, require
from analysis.tables import require_columns
from analysis.vocabulary import DEFAULT_CONDITION, EPOCHS, GROUPS, OUTCOMES

log = logging.getLogger(__name__)

GROUP_EPOCH_TEST = "group_x_epoch_signed_separation_across_animals_t"
GROUP_EPOCH_NEURON_TEST = "group_x_epoch_signed_separation_neuron_labels_within_animal"
OUTCOME_TEST = "hit_vs_failure_residual_signed_by_group_trial_permutation"
EARLY_CHANGE_TEST = "early_residual_vs_later_activity_change_within_animal_x_group"
EARLY_CHANGE_COLUMNS = ["subject", "soma_roi", "early_residual_z", "n_events", "activity_change"]
NETWORK_TEST = "network_prediction_non_targets_cv_ridge_vs_within_neuron_shuffles"
NETWORK_NEUROPIL_TEST = "network_prediction_control_neuropil_only"


@dataclass(frozen=True)
class StatsSettings(StageSettings):
    """Settings of the ``stats`` stage (config section ``stats``).

    Attributes
    ----------
    coincidence_window_s : float
        A somatic event is 'coupled' (bAP-coupled) when a paired dendrite event's onset
        lies within this many seconds; otherwise 'soma_only'. Both are fitted: the
        dendritic response is read in a soma-locked window either way.
    response_window_s, response_baseline_s : float
        The response of soma and dendrite to a somatic event: mean dF/F over
        ``response_window_s`` from onset minus the mean over ``response_baseline_s``
        before it (linear, so trace noise stays additive and measurable).
    epoch_reference : {'pre_onset', 'at_onset'}
        'pre_onset': an event's epoch is the sign of the task error's slope over
        ``epoch_window_s`` ending ``epoch_gap_s`` before its onset, which the event cannot
        have caused. 'at_onset': the per-frame epoch at onset (a centred window the event
        moves through the closed loop; biased, kept only to show that bias).
    epoch_window_s, epoch_gap_s : float
        The pre-onset window; the gap must cover the indicator's rise and the response
        baseline (``epoch_gap_s >= response_baseline_s``) so no frame's noise enters both
        the epoch and the somatic response.
    own_event_exclusion_s : float
        An event whose soma had another event starting less than this before it gets
        epoch 'none' (that event moved the cursor over the window); also how long before a
        frame the soma must be quiet for the noise estimate.
    sd_fit : {'errors_in_variables', 'ols'}
        'errors_in_variables': adjusted least squares with the soma response's measured
        noise variance (no regression dilution); 'ols': plain least squares (diluted).
    sd_model : {'auto', 'linear', 'quadratic'}
        'auto': linear unless a monotone quadratic lowers the AIC by more than 2.
    min_soma_reliability : float
        Pairs whose somatic responses are mostly noise (true / measured variance below
        this) are not fitted.
    n_permutations : int
        Permutations (or shuffles) per test; p-values are ``(1 + k) / (1 + n)``.
    alpha : float
        Significance level used by :func:`summarize`.
    seed : int
        Seed for the ``np.random.default_rng`` that callers pass as ``rng``.
    min_events_per_neuron : int
        Coincident events a soma-dendrite pair needs for its SD fit.
    alternative : {'two-sided', 'greater'}
        Alternative of the group x epoch test; 'greater' tests the paper's predicted sign
        (P+ amplified over P- during error reduction relative to error increase).
    early_fraction : float
        The first ``max(1, floor(early_fraction * n))`` of a subject's n sessions are
        "early" (a fraction, so 3-day and 14-day experiments both work).
    late_fraction : float
        The last ``max(1, floor(late_fraction * n))`` sessions are "late" (activity
        change = late minus early mean dF/F); they never overlap the early ones.
    outcome_window_s : tuple of float
        Window (start, stop) in seconds around the outcome frame (reward TTL for hits,
        white-noise onset for failures) within which events are outcome-aligned.
    outcome_bin_s : float
        Lag bin width of the outcome-aligned residual time course.
    network_window_s : tuple of float
        Window (start, stop) in seconds relative to the soma event onset over which the
        other neurons' dF/F is averaged as predictors.
    ridge_alpha : float
        L2 penalty of the network ridge regression (on z-scored predictors).
    n_folds : int
        Cross-validation folds of the network prediction.
    n_network_shuffles : int
        Shuffled-residual refits forming the network prediction null.
    min_events_network : int
        Sessions with fewer coincident events are not used for network prediction.
    reference_condition : str
        With several conditions in the sessions table (column ``condition``), the one the
        headline and the other per-claim tests run on and the others are compared with
        (:mod:`analysis.conditions`); with one condition, that one.
    """

    section: ClassVar[str] = "stats"

    coincidence_window_s: float = 0.2
    response_window_s: float = 0.5
    response_baseline_s: float = 0.2
    epoch_reference: Literal["pre_onset", "at_onset"] = "pre_onset"
    epoch_window_s: float = 1.0
    epoch_gap_s: float = 0.3
    own_event_exclusion_s: float = 2.0
    sd_fit: Literal["errors_in_variables", "ols"] = "errors_in_variables"
    sd_model: Literal["auto", "linear", "quadratic"] = "auto"
    min_soma_reliability: float = 0.3
    n_permutations: int = 2000
    alpha: float = 0.05
    seed: int = 0
    min_events_per_neuron: int = 5
    alternative: Literal["two-sided", "greater"] = "two-sided"
    early_fraction: float = 0.34
    late_fraction: float = 0.34
    outcome_window_s: tuple[float, ...] = (-2.0, 3.0)
    outcome_bin_s: float = 0.5
    network_window_s: tuple[float, ...] = (-1.0, 0.0)
    ridge_alpha: float = 10.0
    n_folds: int = 5
    n_network_shuffles: int = 200
    min_events_network: int = 20
    reference_condition: str = DEFAULT_CONDITION

    def __post_init__(self) -> None:
        require(
            0 < self.coincidence_window_s <= 5,
            "stats.coincidence_window_s must be in (0, 5] seconds",
        )
        require(self.response_window_s > 0, "stats.response_window_s must be > 0 seconds")
        require(self.response_baseline_s > 0, "stats.response_baseline_s must be > 0 seconds")
        require(
            self.epoch_reference in residuals.EPOCH_REFERENCES,
            f"stats.epoch_reference must be one of {list(residuals.EPOCH_REFERENCES)}",
        )
        require(self.epoch_window_s > 0, "stats.epoch_window_s must be > 0 seconds")
        require(
            self.epoch_gap_s >= self.response_baseline_s,
            "stats.epoch_gap_s must be >= stats.response_baseline_s: otherwise the same "
            "frames' noise sets both the epoch and the somatic response",
        )
        require(self.own_event_exclusion_s >= 0, "stats.own_event_exclusion_s must be >= 0")
        require(
            self.sd_fit in residuals.SD_FITS,
            f"stats.sd_fit must be one of {list(residuals.SD_FITS)}",
        )
        require(
            self.sd_model in residuals.SD_MODELS,
            f"stats.sd_model must be one of {list(residuals.SD_MODELS)}",
        )
        require(0 <= self.min_soma_reliability < 1, "stats.min_soma_reliability must be in [0, 1)")
        require(self.n_permutations >= 19, "stats.n_permutations must be >= 19")
        require(0 < self.alpha < 1, "stats.alpha must be in (0, 1)")
        require(self.seed >= 0, "stats.seed must be >= 0")
        require(self.min_events_per_neuron >= 4, "stats.min_events_per_neuron must be >= 4")
        require(0 < self.early_fraction < 1, "stats.early_fraction must be in (0, 1)")
        require(0 < self.late_fraction < 1, "stats.late_fraction must be in (0, 1)")
        for name in ("outcome_window_s", "network_window_s"):
            win = getattr(self, name)
            require(
                len(win) == 2 and win[0] < win[1],
                f"stats.{name} must be two numbers [start, stop] with start < stop",
            )
        require(self.outcome_bin_s > 0, "stats.outcome_bin_s must be > 0 seconds")
        require(self.ridge_alpha > 0, "stats.ridge_alpha must be > 0")
        require(self.n_folds >= 2, "stats.n_folds must be >= 2")
        require(self.n_network_shuffles >= 19, "stats.n_network_shuffles must be >= 19")
        require(self.min_events_network >= 10, "stats.min_events_network must be >= 10")


# --- validation helpers ------------------------------------------------------------------


def _require_columns(table: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    require_columns(
        table,
        columns,
        name,
        hint=" See the analysis.stats module docstring for the input contract.",
    )


def _require_values(table: pd.DataFrame, column: str, allowed: Iterable[str], name: str) -> None:
    allowed = tuple(allowed)
    # the distinct values first: a cohort's events table has millions of rows
    bad = sorted({str(v) for v in pd.unique(table[column].dropna())} - set(allowed))
    if bad:
        raise ValueError(f"{name}.{column} has invalid value(s) {bad}; allowed: {list(allowed)}")


def _rows_by_session(table: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Row positions of each (subject, session), in table order (one pass, not a scan per
    session: string comparisons over a cohort's millions of events are slow)."""
    if table.empty:
        return {}
    return {
        key: rows for key, rows in table.groupby(["subject", "session"], sort=False).indices.items()
    }


def _day_index(table: pd.DataFrame) -> pd.Series:
    """0-based order of each row's session within its subject (session names sort by date)."""
    order = {
        (subj, sess): i
        for subj, sessions in table.groupby("subject")["session"]
        for i, sess in enumerate(sorted(sessions.unique()))
    }
    return pd.Series(
        [order[(s, d)] for s, d in zip(table["subject"], table["session"], strict=True)],
        index=table.index,
        dtype=int,
    )


# --- behaviour and activity --------------------------------------------------------------


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
    _require_columns(
        trials,
        ["subject", "session", "trial", "outcome", "reward_frame", "time_to_outcome_s"],
        "trials",
    )
    _require_columns(sessions, ["subject", "session", "duration_s"], "sessions")
    _require_values(trials, "outcome", OUTCOMES, "trials")
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
    out.insert(2, "day_index", _day_index(out))
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
    _require_columns(trials, ["start_frame", "end_frame"], "trials")
    _require_columns(events, ["roi"], "events")
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
    _require_columns(
        activity, ["subject", "session", "roi", "mean_dff", "event_rate_hz"], "activity"
    )
    _require_columns(targets, ["subject", "session", "target_id", "group", "roi"], "targets")
    _require_values(targets, "group", GROUPS, "targets")
    out = targets[["subject", "session", "target_id", "group", "roi"]].merge(
        activity[["subject", "session", "roi", "mean_dff", "event_rate_hz"]],
        on=["subject", "session", "roi"],
        how="inner",
    )
    if out.empty:
        raise ValueError(
            "no target ROI has activity: check that targets.roi ids match activity.roi"
        )
    out.insert(2, "day_index", _day_index(out))
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
    _require_columns(
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


# --- group x epoch contrasts and the main test -------------------------------------------


def compute_group_epoch_contrasts(events: pd.DataFrame) -> pd.DataFrame:
    """Mean residual z per subject x group x epoch (descriptive; all events).

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z`` (from :func:`fit_sd_residuals`).

    Returns
    -------
    pandas.DataFrame
        ``subject, group, epoch, mean_residual_z`` (mean of per-neuron means),
        ``sem_residual_z`` (across neurons), ``n_neurons, n_events``.
    """
    _require_columns(events, ["subject", "soma_roi", "group", "epoch", "residual_z"], "events")
    ev = events[np.isfinite(events["residual_z"])]
    per_neuron = ev.groupby(["subject", "group", "epoch", "soma_roi"], as_index=False).agg(
        residual_z=("residual_z", "mean"), n_events=("residual_z", "size")
    )
    return per_neuron.groupby(["subject", "group", "epoch"], as_index=False).agg(
        mean_residual_z=("residual_z", "mean"),
        sem_residual_z=(
            "residual_z",
            lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan,
        ),
        n_neurons=("soma_roi", "size"),
        n_events=("n_events", "sum"),
    )


def _neuron_epoch_table(events: pd.DataFrame) -> pd.DataFrame:
    """Per target neuron: mean residual z in reduction and increase epochs, and its group.

    Neurons without events in both epochs are dropped so that every neuron contributes
    a within-neuron difference (reduction minus increase).
    """
    _require_columns(events, ["subject", "soma_roi", "group", "epoch", "residual_z"], "events")
    ev = events[
        events["group"].isin(GROUPS)
        & events["epoch"].isin(("reduction", "increase"))
        & np.isfinite(events["residual_z"])
    ]
    labels = ev.groupby(["subject", "soma_roi"])["group"].nunique()
    if (labels > 1).any():
        bad = labels[labels > 1].index.tolist()
        raise ValueError(
            f"neurons {bad} (subject, soma_roi) have both P+ and P- labels across sessions"
        )
    table = ev.pivot_table(
        index=["subject", "soma_roi", "group"],
        columns="epoch",
        values="residual_z",
        aggfunc=["mean", "size"],
    )
    table.columns = [f"{stat}_{epoch}" for stat, epoch in table.columns]
    table = table.reset_index()
    for epoch in ("reduction", "increase"):
        for stat in ("mean", "size"):
            if f"{stat}_{epoch}" not in table:
                table[f"{stat}_{epoch}"] = np.nan
    table = table.dropna(subset=["mean_reduction", "mean_increase"])
    table["difference"] = table["mean_reduction"] - table["mean_increase"]
    table["n_events"] = (table["size_reduction"] + table["size_increase"]).astype(int)
    return table


def compute_signed_separation(events: pd.DataFrame) -> pd.DataFrame:
    """Per-animal signed separation of residuals by group and task epoch.

    ``separation = (P+ - P-) in error reduction - (P+ - P-) in error increase`` where each
    term is a mean over neurons of per-neuron mean residual z; only target neurons with
    events in both epochs are used (so separation = mean_P+(red - inc) - mean_P-(red - inc)).
    Positive = vectorized instructive signal with the paper's sign.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z``.

    Returns
    -------
    pandas.DataFrame
        ``subject, pplus_reduction, pminus_reduction, pplus_increase, pminus_increase,
        separation, n_pplus, n_pminus, n_events``; animals lacking a P+ or P- neuron with
        both epochs are left out.
    """
    table = _neuron_epoch_table(events)
    rows = []
    for subject, grp in table.groupby("subject", sort=True):
        plus, minus = grp[grp["group"] == "P+"], grp[grp["group"] == "P-"]
        if plus.empty or minus.empty:
            log.info("subject %s lacks P+ or P- neurons with both epochs; left out", subject)
            continue
        row = dict(
            subject=subject,
            pplus_reduction=plus["mean_reduction"].mean(),
            pminus_reduction=minus["mean_reduction"].mean(),
            pplus_increase=plus["mean_increase"].mean(),
            pminus_increase=minus["mean_increase"].mean(),
        )
        row["separation"] = plus["difference"].mean() - minus["difference"].mean()
        row.update(n_pplus=len(plus), n_pminus=len(minus), n_events=int(grp["n_events"].sum()))
        rows.append(row)
    columns = [
        "subject",
        "pplus_reduction",
        "pminus_reduction",
        "pplus_increase",
        "pminus_increase",
        "separation",
        "n_pplus",
        "n_pminus",
        "n_events",
    ]
    return pd.DataFrame(rows, columns=columns)


def run_group_epoch_test(events: pd.DataFrame, *, settings: StatsSettings) -> pd.DataFrame:
    """The headline test: is the signed separation positive across animals?

    The animal is the unit (DESIGN.md): each animal contributes one number, its signed
    separation (:func:`compute_signed_separation`), and the test is a one-sample t-test
    of those numbers against 0 (df = animals - 1; 'two-sided' or 'greater'), the
    animal-level form of a mixed model with a random group x epoch effect per animal. It
    claims that animals like these show the pattern; it needs at least 2 animals. The
    exact sign-flip p over all ``2^n`` sign patterns is reported beside it
    (``p_sign_flip``; distribution-free, but its smallest value is ``2 / 2^n``
    two-sided, ``min_attainable_p``: 0.031 with 6 animals, 0.25 with 3).

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z``.
    settings : StatsSettings

    Returns
    -------
    pandas.DataFrame
        One row, :data:`TEST_COLUMNS` plus ``n_positive_animals``, ``t_statistic``,
        ``p_sign_flip`` and ``min_attainable_p``.
    """
    separation = compute_signed_separation(events)
    values = separation["separation"].to_numpy(float)
    if values.size < 2:
        raise InsufficientDataError(
            f"{values.size} animal(s) with P+ and P- neurons that have residuals in both "
            "epochs; the animal-level test needs at least 2 (the neuron-level test below is "
            "secondary)"
        )
    result = one_sample_across_animals(values, alternative=settings.alternative, seed=settings.seed)
    return result_row(
        GROUP_EPOCH_TEST,
        statistic=result["statistic"],
        p_value=result["p_value"],
        alternative=settings.alternative,
        n_animals=values.size,
        n_neurons=int((separation["n_pplus"] + separation["n_pminus"]).sum()),
        n_events=int(separation["n_events"].sum()),
        n_permutations=result["n_permutations"],
        n_positive_animals=result["n_positive_animals"],
        t_statistic=result["t_statistic"],
        p_sign_flip=result["p_sign_flip"],
        min_attainable_p=result["min_attainable_p"],
    )


def run_group_epoch_neuron_test(
    events: pd.DataFrame, *, settings: StatsSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Secondary, neuron-level test of the group x epoch pattern (within animals).

    Statistic: mean over animals of the per-animal signed separation
    (:func:`compute_signed_separation`). Null: P+/P- labels of the target neurons are
    permuted within each animal (group sizes kept), independently per animal,
    ``n_permutations`` times; p = (1 + #|null| >= |obs|) / (1 + n) (two-sided) or with
    null >= obs ('greater'). Neurons are the units: it can say that these animals' P+ and
    P- neurons differ, not that animals in general do (that is :func:`run_group_epoch_test`),
    and it relies on causal epochs and an unbiased fit for the labels to be exchangeable
    under the null.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z``.
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        One row, :data:`TEST_COLUMNS` plus ``n_positive_animals``, ``null_mean`` and
        ``min_attainable_p`` (the smallest p the permutation test can give with these
        neurons: 1 / number of distinct within-animal label arrangements, x2 two-sided).
    """
    table = _neuron_epoch_table(events)
    per_animal = []
    n_events = 0
    for _, grp in table.groupby("subject", sort=True):
        labels = (grp["group"] == "P+").to_numpy()
        if labels.all() or not labels.any():
            continue
        per_animal.append((grp["difference"].to_numpy(float), labels))
        n_events += int(grp["n_events"].sum())
    if not per_animal:
        raise InsufficientDataError(
            "no animal has both P+ and P- neurons with coincident events in both the "
            "reduction and increase epochs; the group x epoch test cannot run"
        )
    n_perm = settings.n_permutations
    observed = np.array([d[lab].mean() - d[~lab].mean() for d, lab in per_animal])
    null = np.zeros(n_perm)
    for diff, labels in per_animal:
        perm = rng.permuted(np.tile(labels, (n_perm, 1)), axis=1)
        n_plus = labels.sum()
        plus_mean = (perm @ diff) / n_plus
        minus_mean = ((~perm) @ diff) / (labels.size - n_plus)
        null += plus_mean - minus_mean
    null /= len(per_animal)
    stat = float(observed.mean())
    n_neurons = sum(lab.size for _, lab in per_animal)
    arrangements = np.prod([float(math.comb(lab.size, int(lab.sum()))) for _, lab in per_animal])
    tails = 2 if settings.alternative == "two-sided" else 1
    return result_row(
        GROUP_EPOCH_NEURON_TEST,
        statistic=stat,
        p_value=permutation_p(null, stat, settings.alternative),
        alternative=settings.alternative,
        n_animals=len(per_animal),
        n_neurons=n_neurons,
        n_events=n_events,
        n_permutations=n_perm,
        n_positive_animals=int(np.sum(observed > 0)),
        null_mean=float(null.mean()),
        min_attainable_p=min(1.0, tails / arrangements),
    )


# --- outcome information -----------------------------------------------------------------


def compute_outcome_residuals(
    events: pd.DataFrame, trials: pd.DataFrame, sessions: pd.DataFrame, *, settings: StatsSettings
) -> pd.DataFrame:
    """Align residual events to trial outcomes at the decision frame.

    Both outcomes are aligned to the same reference, the trial's ``decision_frame`` (the
    first frame of the hit or failure hold): the reward TTL comes 2 frames after it and
    the white noise on it, so aligning each to its own TTL would shift one against the
    other.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, session, soma_roi, frame, residual_z`` (soma onset frame).
    trials : pandas.DataFrame
        ``subject, session, trial, outcome, decision_frame``.
    sessions : pandas.DataFrame
        ``subject, session, fs_hz``.
    settings : StatsSettings
        ``outcome_window_s`` selects events with lag in [start, stop).

    Returns
    -------
    pandas.DataFrame
        One row per (event, hit/failure trial) with the event in the window:
        ``subject, session, soma_roi, trial, outcome, lag_s`` (s, event onset minus the
        decision frame), ``residual_z`` plus ``group, epoch`` when present in ``events``.
    """
    _require_columns(events, ["subject", "session", "soma_roi", "frame", "residual_z"], "events")
    _require_columns(trials, ["subject", "session", "trial", "outcome", "decision_frame"], "trials")
    _require_columns(sessions, ["subject", "session", "fs_hz"], "sessions")
    _require_values(trials, "outcome", OUTCOMES, "trials")
    tr = trials[trials["outcome"].isin(("hit", "failure"))].copy()
    tr["outcome_frame"] = pd.to_numeric(tr["decision_frame"], errors="coerce")
    tr = tr.dropna(subset=["outcome_frame"])
    tr = tr.merge(sessions[["subject", "session", "fs_hz"]], on=["subject", "session"], how="left")
    if tr["fs_hz"].isna().any():
        missing = (
            tr.loc[tr["fs_hz"].isna(), ["subject", "session"]].drop_duplicates().values.tolist()
        )
        raise ValueError(f"sessions table lacks fs_hz for {missing}")
    extra = [c for c in ("group", "epoch") if c in events.columns]
    ev = events[["subject", "session", "soma_roi", "frame", "residual_z", *extra]]
    tr = tr[["subject", "session", "trial", "outcome", "outcome_frame", "fs_hz"]]
    ev_rows, tr_rows = _outcome_candidates(ev, tr, settings.outcome_window_s)
    out = pd.concat(
        [
            ev.iloc[ev_rows].reset_index(drop=True),
            tr.iloc[tr_rows, 2:].reset_index(drop=True),
        ],
        axis=1,
    )
    out["lag_s"] = (out["frame"] - out["outcome_frame"]) / out["fs_hz"]
    start, stop = settings.outcome_window_s
    out = out[(out["lag_s"] >= start) & (out["lag_s"] < stop) & np.isfinite(out["residual_z"])]
    cols = ["subject", "session", "soma_roi", "trial", "outcome", "lag_s", "residual_z", *extra]
    return out[cols].sort_values(["subject", "session", "trial", "lag_s"]).reset_index(drop=True)


def _outcome_candidates(
    events: pd.DataFrame, trials: pd.DataFrame, window_s: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of (event, trial) pairs of one session whose outcome frame lies
    within ``window_s`` of the event (plus a frame of margin; the caller applies the exact
    window), ordered by event then trial row as a merge on session would order them.

    Pairing every event with every trial of its session would make events x trials rows:
    gigabytes for a cohort, where only the trials near each event matter.
    """
    start, stop = window_s
    outcome_frame = trials["outcome_frame"].to_numpy(float)
    fs_hz = trials["fs_hz"].to_numpy(float)
    frame = events["frame"].to_numpy(float)
    by_session = trials.groupby(["subject", "session"], sort=False).indices
    ev_parts, tr_parts = [], []
    for key, ev_rows in events.groupby(["subject", "session"], sort=False).indices.items():
        tr_rows = by_session.get(key)
        if tr_rows is None:
            continue
        rates = fs_hz[tr_rows]
        # event frame minus outcome frame lies in [lo, hi] for every lag in the window
        lo = min(start * rates.min(), start * rates.max()) - 1
        hi = max(stop * rates.min(), stop * rates.max()) + 1
        order = np.argsort(outcome_frame[tr_rows], kind="stable")
        sorted_frames = outcome_frame[tr_rows][order]
        first = np.searchsorted(sorted_frames, frame[ev_rows] - hi, "left")
        last = np.searchsorted(sorted_frames, frame[ev_rows] - lo, "right")
        counts = last - first
        at = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ev_parts.append(np.repeat(ev_rows, counts))
        tr_parts.append(tr_rows[order[np.repeat(first, counts) + at]])
    if not ev_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ev_rows, tr_rows = np.concatenate(ev_parts), np.concatenate(tr_parts)
    order = np.lexsort((tr_rows, ev_rows))
    return ev_rows[order], tr_rows[order]


def compute_outcome_timecourse(aligned: pd.DataFrame, *, settings: StatsSettings) -> pd.DataFrame:
    """Outcome-aligned residual time course: mean over animals of per-animal bin means.

    Parameters
    ----------
    aligned : pandas.DataFrame
        From :func:`compute_outcome_residuals`.
    settings : StatsSettings
        ``outcome_bin_s`` and ``outcome_window_s`` define the lag bins.

    Returns
    -------
    pandas.DataFrame
        ``outcome, lag_s`` (bin centre, s), ``mean_residual_z, sem_residual_z``
        (across animals), ``n_animals, n_events``.
    """
    _require_columns(aligned, ["subject", "outcome", "lag_s", "residual_z"], "aligned")
    start, stop = settings.outcome_window_s
    edges = np.arange(start, stop + 1e-9, settings.outcome_bin_s)
    if edges[-1] < stop:
        edges = np.append(edges, stop)
    centres = (edges[:-1] + edges[1:]) / 2
    a = aligned.assign(bin=np.clip(np.digitize(aligned["lag_s"], edges) - 1, 0, len(centres) - 1))
    animal = a.groupby(["outcome", "bin", "subject"], as_index=False).agg(
        residual_z=("residual_z", "mean"), n=("residual_z", "size")
    )
    out = animal.groupby(["outcome", "bin"], as_index=False).agg(
        mean_residual_z=("residual_z", "mean"),
        sem_residual_z=(
            "residual_z",
            lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan,
        ),
        n_animals=("subject", "size"),
        n_events=("n", "sum"),
    )
    out.insert(1, "lag_s", centres[out["bin"].to_numpy()])
    return out.drop(columns="bin")


def run_outcome_test(
    aligned: pd.DataFrame, *, settings: StatsSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Do residuals after a hit differ from those after a failure, with the group's sign?

    Statistic: mean over animals of the mean over target neurons of ``sign * (mean
    residual z of events after a hit's decision frame minus after a failure's)``, sign +1
    for P+ and -1 for P- (the vectorized prediction: P+ amplified and P- attenuated after
    success), for neurons with events after both (lag >= 0). Non-targets have no
    predicted sign and are left out. Null: the hit/failure labels of trials are permuted
    within each session, so events of one trial move together.

    Parameters
    ----------
    aligned : pandas.DataFrame
        From :func:`compute_outcome_residuals`.
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        One row with :data:`TEST_COLUMNS`.
    """
    _require_columns(
        aligned,
        ["subject", "session", "soma_roi", "trial", "outcome", "lag_s", "residual_z", "group"],
        "aligned",
    )
    post = aligned[(aligned["lag_s"] >= 0) & aligned["group"].isin(GROUPS)].reset_index(drop=True)
    trial_key = post[["subject", "session", "trial", "outcome"]].drop_duplicates(
        ["subject", "session", "trial"]
    )
    trial_key = trial_key.reset_index(drop=True)
    trial_idx = post.merge(
        trial_key.reset_index(), on=["subject", "session", "trial", "outcome"], how="left"
    )["index"].to_numpy()
    neuron_codes, neuron_keys = pd.factorize(
        pd.MultiIndex.from_frame(post[["subject", "soma_roi"]])
    )
    animal_of_neuron = pd.factorize(neuron_keys.get_level_values(0))[0]
    group_of_neuron = post.groupby(neuron_codes)["group"].first().to_numpy()
    neuron_sign = np.where(group_of_neuron == "P+", 1.0, -1.0)[:, None]
    n_neurons, n_animals = (
        len(neuron_keys),
        int(animal_of_neuron.max() + 1) if len(neuron_keys) else 0,
    )
    z = post["residual_z"].to_numpy(float)
    hit = (trial_key["outcome"] == "hit").to_numpy()
    n_trials = len(trial_key)
    # per neuron x trial: summed residual z and event count, so that a relabelling of the
    # trials (a column of 0/1 hit flags) gives every neuron's hit sums by one product
    z_sum = sparse.csr_array((z, (neuron_codes, trial_idx)), shape=(n_neurons, n_trials))
    n_sum = sparse.csr_array(
        (np.ones_like(z), (neuron_codes, trial_idx)), shape=(n_neurons, n_trials)
    )
    z_total, n_total = z_sum.sum(axis=1), n_sum.sum(axis=1)
    in_animal = np.zeros((n_animals, n_neurons))
    in_animal[animal_of_neuron, np.arange(n_neurons)] = 1.0

    def statistic(trial_hit: np.ndarray) -> np.ndarray:
        """The statistic of each column of ``trial_hit`` (trials x relabellings)."""
        hits = trial_hit.astype(float)
        s_h, n_h = z_sum @ hits, n_sum @ hits
        s_f, n_f = z_total[:, None] - s_h, n_total[:, None] - n_h
        ok = (n_h > 0) & (n_f > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.where(ok, neuron_sign * (s_h / n_h - s_f / n_f), 0.0)
            count = in_animal @ ok
            per_animal = np.where(count > 0, (in_animal @ diff) / count, 0.0)
            # NaN where no neuron has events after both outcomes
            return per_animal.sum(axis=0) / (count > 0).sum(axis=0)

    observed = float(statistic(hit[:, None])[0]) if n_neurons else np.nan
    if not np.isfinite(observed):
        raise InsufficientDataError(
            "no target neuron has residual events after both hits and failures"
        )
    session_codes = pd.factorize(pd.MultiIndex.from_frame(trial_key[["subject", "session"]]))[0]
    blocks = [np.flatnonzero(session_codes == s) for s in np.unique(session_codes)]
    null = np.empty(settings.n_permutations)
    batch = 250  # relabellings per product: bounds the (trials x batch) matrix
    for first in range(0, settings.n_permutations, batch):
        labels = np.empty((n_trials, min(batch, settings.n_permutations - first)), bool)
        for k in range(labels.shape[1]):
            perm = hit.copy()
            for idx in blocks:
                perm[idx] = rng.permutation(hit[idx])
            labels[:, k] = perm
        null[first : first + labels.shape[1]] = statistic(labels)
    null = null[np.isfinite(null)]
    return result_row(
        OUTCOME_TEST,
        statistic=observed,
        p_value=permutation_p(null, observed, "two-sided"),
        alternative="two-sided",
        n_animals=n_animals,
        n_neurons=n_neurons,
        n_events=len(post),
        n_permutations=null.size,
    )


# --- early residual vs later activity change ---------------------------------------------


def run_early_change_test(
    events: pd.DataFrame,
    activity: pd.DataFrame,
    *,
    settings: StatsSettings,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Do a neuron's early residuals predict its later change in activity?

    Per neuron: ``early_residual_z`` = mean residual z of its events in error-reduction
    epochs during its subject's early sessions; ``activity_change`` = mean dF/F over the
    late sessions minus over the early ones (``early_fraction``, ``late_fraction``).
    Statistic: Pearson r across neurons after centring both variables within each
    animal x group (P+, P-, non-target), so neither animal offsets nor the groups'
    opposite residual signs and opposite learning (P- activity falls by design) can
    create a correlation. Null: early residuals are permuted among neurons within each
    animal x group; blocks of fewer than 3 neurons are left out.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, session, soma_roi, epoch, residual_z``.
    activity : pandas.DataFrame
        ``subject, session, roi, mean_dff`` (all sessions, from :func:`compute_activity`).
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    neurons : pandas.DataFrame
        ``subject, soma_roi, early_residual_z, n_events, activity_change`` (plus ``group``
        when present in ``events``).
    test : pandas.DataFrame
        One row with :data:`TEST_COLUMNS`.
    """
    _require_columns(events, ["subject", "session", "soma_roi", "epoch", "residual_z"], "events")
    _require_columns(activity, ["subject", "session", "roi", "mean_dff"], "activity")
    act = activity.assign(day_index=_day_index(activity))
    n_days = act.groupby("subject")["day_index"].transform("max") + 1
    n_early = np.maximum(1, np.floor(settings.early_fraction * n_days))
    n_late = np.maximum(1, np.floor(settings.late_fraction * n_days))
    act = act.assign(early=act["day_index"] < n_early)
    early = act[act["early"]]
    late = act[(act["day_index"] >= n_days - n_late) & ~act["early"]]
    change = (
        late.groupby(["subject", "roi"])["mean_dff"].mean()
        - early.groupby(["subject", "roi"])["mean_dff"].mean()
    ).dropna()
    change = change.rename("activity_change").reset_index().rename(columns={"roi": "soma_roi"})
    # Events take the activity table's day order so both share one definition of "early".
    session_day = act[["subject", "session", "early"]].drop_duplicates()
    ev_days = events.merge(session_day, on=["subject", "session"], how="inner")
    sel = ev_days[
        ev_days["early"] & (ev_days["epoch"] == "reduction") & np.isfinite(ev_days["residual_z"])
    ]
    keys = ["subject", "soma_roi", *(["group"] if "group" in sel.columns else [])]
    res = sel.groupby(keys, as_index=False).agg(
        early_residual_z=("residual_z", "mean"), n_events=("residual_z", "size")
    )
    neurons = res.merge(change, on=["subject", "soma_roi"], how="inner")
    block_keys = [k for k in keys if k != "soma_roi"]
    neurons = neurons.groupby(block_keys).filter(lambda g: len(g) >= 3).reset_index(drop=True)
    if len(neurons) < 4:
        raise InsufficientDataError(
            "fewer than 4 neurons (in animal x group blocks of >= 3 neurons) have both "
            "early reduction-epoch residuals and a late-minus-early activity change"
        )
    block = pd.factorize(pd.MultiIndex.from_frame(neurons[block_keys]))[0]
    x = neurons["early_residual_z"].to_numpy(float)
    y = neurons["activity_change"].to_numpy(float)
    x = x - (np.bincount(block, weights=x) / np.bincount(block))[block]
    y = y - (np.bincount(block, weights=y) / np.bincount(block))[block]

    def corr(xv: np.ndarray) -> float:
        denom = np.sqrt((xv @ xv) * (y @ y))
        return float(xv @ y / denom) if denom > 0 else 0.0

    observed = corr(x)
    blocks = [np.flatnonzero(block == b) for b in np.unique(block)]
    null = np.empty(settings.n_permutations)
    for k in range(settings.n_permutations):
        xp = x.copy()
        for idx in blocks:
            xp[idx] = x[rng.permutation(idx)]
        null[k] = corr(xp)
    test = result_row(
        EARLY_CHANGE_TEST,
        statistic=observed,
        p_value=permutation_p(null, observed, "two-sided"),
        alternative="two-sided",
        n_animals=int(neurons["subject"].nunique()),
        n_neurons=len(neurons),
        n_events=int(neurons["n_events"].sum()),
        n_permutations=settings.n_permutations,
    )
    return neurons, test


# --- network prediction of residuals -----------------------------------------------------


def _cv_ridge_r(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float) -> np.ndarray:
    """Correlation of out-of-fold ridge predictions with y, per column of y (event, k).

    Closed form on centred data; every column (e.g. the observed residuals and their
    shuffles) is fitted with the same folds in one solve per fold. 0 where the
    predictions or the column are constant.
    """
    # rows grouped by fold, C order: every fold's rows are one contiguous slice
    order = np.argsort(folds, kind="stable")
    x, y = x[order], np.ascontiguousarray(y)[order]
    bounds = np.searchsorted(folds[order], np.unique(folds)).tolist() + [len(folds)]
    pred = np.empty_like(y)
    ridge = alpha * np.eye(x.shape[1])
    # whole-data sums once; each fold's training sums are these minus its test rows (no
    # copy of the training rows of y, which has a column per shuffle)
    xty, x_sum, y_sum = x.T @ y, x.sum(0), y.sum(0)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        x_test, y_test = x[a:b], y[a:b]
        n_train = len(folds) - (b - a)
        y_train_sum = y_sum - y_test.sum(0)
        xm, ym = (x_sum - x_test.sum(0)) / n_train, y_train_sum / n_train
        xt = np.concatenate([x[:a], x[b:]]) - xm
        # xt.T @ y_train == x_train.T @ y_train - xm y_train_sum (y need not be centred)
        rhs = xty - x_test.T @ y_test - np.outer(xm, y_train_sum)
        coef = np.linalg.solve(xt.T @ xt + ridge, rhs)
        pred[a:b] = (x_test - xm) @ coef + ym
    pc, yc = pred - pred.mean(0), y - y.mean(0)
    # column sums of products without n x k temporaries
    norm = np.sqrt(np.einsum("ij,ij->j", pc, pc) * np.einsum("ij,ij->j", yc, yc))
    r = np.einsum("ij,ij->j", pc, yc) / np.where(norm > 0, norm, 1.0)
    return np.where(norm > 0, np.clip(r, -1.0, 1.0), 0.0)


NETWORK_COLUMNS = [
    "subject",
    "session",
    "test",
    "n_events",
    "n_neurons",
    "n_features",
    "r_cv",
    "null_mean",
    "null_sd",
    "p_value",
    "n_permutations",
    "r_cv_neuropil",
    "null_mean_neuropil",
]


def compute_network_prediction(
    events: pd.DataFrame,
    dff: xr.DataArray,
    *,
    fs_hz: float,
    settings: StatsSettings,
    rng: np.random.Generator,
    exclude_rois: Iterable[int] = (),
    neuropil: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Predict one session's residuals from the other somata's activity (cross-validated).

    Predictors for an event: each soma ROI's mean dF/F over ``network_window_s`` around
    the event's soma onset, z-scored across events; the event's own soma is zeroed so a
    neuron never predicts its own residual, and ``exclude_rois`` (the BCI targets) are not
    predictors at all: they drive the cursor, so their activity carries the task epoch.
    Ridge regression (``ridge_alpha``) with ``n_folds``-fold cross-validation; score =
    correlation of out-of-fold predictions with ``residual_z``. Null: the same procedure
    on residuals shuffled among the events of the same neuron (``n_network_shuffles``
    times), so differences between neurons' mean residuals cannot be "predicted". With
    ``neuropil`` (the same ROIs' neuropil traces), the same score from neuropil alone is
    the control for shared contamination and slow drive.

    Parameters
    ----------
    events : pandas.DataFrame
        One session's residual events: ``subject, session, soma_roi, frame, residual_z``.
    dff : xarray.DataArray
        That session's soma-plane dF/F, dims ``(roi, time)`` with a ``frame`` coordinate.
    fs_hz : float
    settings : StatsSettings
    rng : numpy.random.Generator
    exclude_rois : iterable of int
        ROIs never used as predictors.
    neuropil : xarray.DataArray, optional
        Neuropil traces ``(roi, time)`` on the same frames.

    Returns
    -------
    pandas.DataFrame
        One row of :data:`NETWORK_COLUMNS` (``*_neuropil`` NaN without ``neuropil``);
        empty if the session has fewer than ``min_events_network`` events.
    """
    _require_columns(events, ["subject", "session", "soma_roi", "frame", "residual_z"], "events")
    for name, trace in (("dff", dff), ("neuropil", neuropil)):
        if trace is not None and (
            not isinstance(trace, xr.DataArray) or set(trace.dims) != {ROI, TIME}
        ):
            raise ValueError(f"{name} must be an xarray.DataArray with dims ({ROI}, {TIME})")
    if events[["subject", "session"]].drop_duplicates().shape[0] > 1:
        raise ValueError("compute_network_prediction takes the events of one session")
    require(fs_hz > 0, "fs_hz must be > 0")
    ev = events[np.isfinite(events["residual_z"])].reset_index(drop=True)
    if len(ev) < settings.min_events_network:
        log.info("network prediction skipped: %d events < %d", len(ev), settings.min_events_network)
        return pd.DataFrame(columns=NETWORK_COLUMNS)
    dff = dff.transpose(ROI, TIME)
    keep = ~np.isin(np.asarray(dff[ROI]), np.asarray(list(exclude_rois), dtype=np.int64))
    y = ev["residual_z"].to_numpy(float)
    folds = rng.permutation(np.arange(len(y)) % settings.n_folds)
    # column 0 the observed residuals, then shuffles within each neuron, all fitted in one
    # pass; column-major: each shuffle is written, and each fold's rows read, as one column
    ys = np.empty((len(y), 1 + settings.n_network_shuffles), order="F")
    ys[:, 0] = y
    neuron_rows = list(ev.groupby("soma_roi").indices.values())
    for k in range(settings.n_network_shuffles):
        shuffled = y.copy()
        for rows in neuron_rows:
            shuffled[rows] = y[rng.permutation(rows)]
        ys[:, 1 + k] = shuffled
    window = tuple(int(round(w * fs_hz)) for w in settings.network_window_s)
    x = _window_predictors(dff[keep], ev, window)
    r = _cv_ridge_r(x, ys, folds, settings.ridge_alpha)
    observed, null = float(r[0]), r[1:]
    row = dict(
        subject=ev["subject"].iloc[0],
        session=ev["session"].iloc[0],
        test=NETWORK_TEST,
        n_events=len(y),
        n_neurons=int(ev["soma_roi"].nunique()),
        n_features=x.shape[1],
        r_cv=observed,
        null_mean=float(null.mean()),
        null_sd=float(null.std(ddof=1)),
        p_value=permutation_p(null, observed, "greater"),
        n_permutations=null.size,
        r_cv_neuropil=np.nan,
        null_mean_neuropil=np.nan,
    )
    if neuropil is not None:
        neuropil = neuropil.transpose(ROI, TIME).sel({ROI: dff[ROI].values[keep]})
        r_np = _cv_ridge_r(
            _window_predictors(neuropil, ev, window), ys, folds, settings.ridge_alpha
        )
        row.update(r_cv_neuropil=float(r_np[0]), null_mean_neuropil=float(r_np[1:].mean()))
    return pd.DataFrame([row], columns=NETWORK_COLUMNS)


def _window_predictors(
    traces: xr.DataArray, events: pd.DataFrame, window: tuple[int, int]
) -> np.ndarray:
    """(event, roi) mean of each trace over ``window`` frames around each event's onset,
    z-scored across events; the event's own ROI (when among the traces) set to 0."""
    values = np.asarray(traces.values, dtype=float)
    n_time = values.shape[1]
    frames = np.asarray(traces["frame"]) if "frame" in traces.coords else np.arange(n_time)
    lo, hi = window
    pos = np.searchsorted(frames, events["frame"].to_numpy())
    cums = np.concatenate(
        [np.zeros((values.shape[0], 1)), np.cumsum(np.nan_to_num(values), axis=1)], axis=1
    )
    start = np.clip(pos + lo, 0, n_time - 1)
    stop = np.clip(pos + max(hi, lo + 1), start + 1, n_time)
    cums = np.ascontiguousarray(cums.T)  # (time, roi): each event gathers whole rows
    x = (cums[stop] - cums[start]) / (stop - start)[:, None]
    sd = x.std(0)
    x = np.where(sd > 0, (x - x.mean(0)) / np.where(sd > 0, sd, 1), 0.0)
    column_of_roi = {int(r): k for k, r in enumerate(np.asarray(traces[ROI]))}
    own = np.array([column_of_roi.get(int(r), -1) for r in events["soma_roi"]])
    x[np.flatnonzero(own >= 0), own[own >= 0]] = 0.0
    return x


def run_network_test(
    network: pd.DataFrame, *, settings: StatsSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Cohort test of network prediction: is cross-validated r above its shuffle null?

    Per animal, the mean over sessions of ``r_cv - null_mean``; statistic = mean over
    animals; null by random sign flips of the animal values (exact when there are few
    animals: all 2^n flips are enumerated for n <= 12). Where the sessions have the
    neuropil control (``r_cv_neuropil``), a second row, :data:`NETWORK_NEUROPIL_TEST`, is
    the same test on it: if neuropil alone predicts as well, the network's prediction may
    be shared contamination or slow drive rather than the network.

    Parameters
    ----------
    network : pandas.DataFrame
        Concatenated outputs of :func:`compute_network_prediction`.
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        One or two rows with :data:`TEST_COLUMNS`.
    """
    _require_columns(
        network, ["subject", "session", "n_events", "n_neurons", "r_cv", "null_mean"], "network"
    )
    if network.empty:
        raise InsufficientDataError("no session had enough events for network prediction")
    rows = [(NETWORK_TEST, network["r_cv"] - network["null_mean"])]
    if "r_cv_neuropil" in network and network["r_cv_neuropil"].notna().all():
        rows.append(
            (NETWORK_NEUROPIL_TEST, network["r_cv_neuropil"] - network["null_mean_neuropil"])
        )
    tests = []
    for name, session_gain in rows:
        gain = session_gain.groupby(network["subject"]).mean().to_numpy(float)
        stat, p, n_perm = sign_flip_greater(gain, n_random=settings.n_permutations, rng=rng)
        tests.append(
            result_row(
                name,
                statistic=stat,
                p_value=p,
                alternative="greater",
                n_animals=gain.size,
                # neurons predicted: the largest per-session count of each animal, summed
                n_neurons=int(network.groupby("subject")["n_neurons"].max().sum()),
                n_events=int(network["n_events"].sum()),
                n_permutations=n_perm,
                n_sessions=len(network),
            )
        )
    return pd.concat(tests, ignore_index=True)


# --- conclusion --------------------------------------------------------------------------


CLAIMS = {
    GROUP_EPOCH_TEST: (
        "Headline. Can claim: animals like these show the vectorized pattern (P+ residuals "
        "amplified over P- when the task error was falling before the event, relative to "
        "rising). Cannot claim: which neurons or sessions carry it, or that it is causal for "
        "learning. Guards: epochs from the error trend before each event, every somatic "
        "event's soma-locked dendritic response, an errors-in-variables fit, the animal as "
        "the unit (calibrated in results/validation/calibration.tsv)."
    ),
    GROUP_EPOCH_NEURON_TEST: (
        "Secondary. Can claim: in these animals, P+ and P- neurons differ in the pattern. "
        "Cannot claim: anything about other animals (neurons are the units)."
    ),
    OUTCOME_TEST: (
        "Can claim: in these sessions, residuals after hits differ from those after failures "
        "with the group's sign (P+ up, P- down; both aligned to the decision frame; trial "
        "labels permuted within session). Cannot claim: that the difference is instructive "
        "rather than a response to the outcome cue, or anything beyond these animals."
    ),
    EARLY_CHANGE_TEST: (
        "Can claim: within animals, neurons with larger early reduction-epoch residuals "
        "changed their activity more later. Cannot claim: that the residual caused the change."
    ),
    NETWORK_TEST: (
        "Can claim: non-target somata's activity around an event predicts its residual better "
        "than residuals shuffled within each neuron (targets, which drive the cursor, are not "
        "predictors). Cannot claim: which neurons carry the prediction, or more than the "
        "neuropil control below rules out."
    ),
    NETWORK_NEUROPIL_TEST: (
        "Control. If neuropil alone predicts residuals, the network prediction may be shared "
        "contamination or slow drive; a network effect is credible only well above this one."
    ),
}


def summarize(tests: pd.DataFrame, *, settings: StatsSettings, reference: str | None = None) -> str:
    """The printed conclusion of the analysis.

    Parameters
    ----------
    tests : pandas.DataFrame
        Concatenated test rows (:data:`TEST_COLUMNS`); must contain the
        :data:`GROUP_EPOCH_TEST` row.
    settings : StatsSettings
        ``alpha``.
    reference : str, optional
        The reference condition, when the sessions have several: the per-claim tests ran
        on its sessions, and the condition tests' lines follow (:mod:`analysis.conditions`).

    Returns
    -------
    str
        Multi-line text: the headline (animal-level) test with its statistic, n and p,
        then "vectorized instructive signal found" (p < alpha and separation > 0) or
        "no vectorized signal found", then one line per secondary test; each test is
        followed by what it can and cannot claim (:data:`CLAIMS`).
    """
    _require_columns(tests, TEST_COLUMNS, "tests")
    main = tests[tests["test"] == GROUP_EPOCH_TEST]
    if len(main) != 1:
        raise ValueError(
            f"tests must contain exactly one '{GROUP_EPOCH_TEST}' row, found {len(main)}"
        )
    m = main.iloc[0]
    if pd.isna(m["p_value"]):
        lines = [
            f"Test: {m['test']} could not run: {m.get('note', 'too few data')}.",
            f"Conclusion at alpha = {settings.alpha:g}: no vectorized signal found "
            "(not testable on these data).",
        ]
    else:
        found = m["p_value"] < settings.alpha and m["statistic"] > 0
        verdict = "vectorized instructive signal found" if found else "no vectorized signal found"
        lines = [
            f"Test: {m['test']} ({m['alternative']}; one-sample t across animals, "
            f"df = {int(m['n_animals']) - 1}).",
            "Signed separation (P+ - P-, error falling - rising before the event, residual z)"
            f" = {m['statistic']:.3f} (mean over animals); n = {int(m['n_animals'])} animals, "
            f"{int(m['n_neurons'])} neurons, {int(m['n_events'])} events; p = "
            f"{m['p_value']:.4g}.",
            f"Separation positive in {int(m['n_positive_animals'])} of {int(m['n_animals'])} "
            f"animals; exact sign-flip p = {m['p_sign_flip']:.4g} (smallest possible with "
            f"{int(m['n_animals'])} animals: {m['min_attainable_p']:.3g}).",
            f"Conclusion at alpha = {settings.alpha:g}: {verdict}.",
        ]
    if reference is not None:
        lines.append(
            f"Condition: this test and those below up to 'Conditions compared' ran on the "
            f"'{reference}' sessions only (stats.reference_condition)."
        )
    lines.append(f"  {CLAIMS[GROUP_EPOCH_TEST]}")
    per_claim = ~tests["test"].isin([GROUP_EPOCH_TEST, *conditions.CLAIMS])
    for r in tests[per_claim].itertuples(index=False):
        if pd.isna(r.p_value):
            lines.append(f"{r.test}: not testable ({getattr(r, 'note', 'too few data')}).")
        else:
            lines.append(
                f"{r.test}: statistic = {r.statistic:.3f}, p = {r.p_value:.4g} "
                f"({r.alternative}), n = {int(r.n_animals)} animals, {int(r.n_neurons)} "
                f"neurons, {int(r.n_events)} events."
            )
        if r.test in CLAIMS:
            lines.append(f"  {CLAIMS[r.test]}")
    if tests["test"].isin(list(conditions.CLAIMS)).any():
        compared = f"reference '{reference}'; " if reference is not None else ""
        lines.append(f"Conditions compared ({compared}animals are the units):")
        lines += conditions.condition_lines(tests, alpha=settings.alpha)
    return "\n".join(lines)


# --- the whole stage ---------------------------------------------------------------------


def residual_events(
    *,
    events: pd.DataFrame,
    pairs: pd.DataFrame,
    targets: pd.DataFrame,
    epochs: pd.DataFrame,
    sessions: pd.DataFrame,
    soma_dff: dict[tuple[str, str], xr.DataArray],
    dendrite_dff: dict[tuple[str, str], xr.DataArray],
    settings: StatsSettings,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Soma-locked SD events, their causal epochs and residuals (:mod:`analysis.residuals`).

    The one path from detected events to residuals, shared by the stats stage and the
    calibration (:mod:`analysis.calibrate`), so the calibration measures what users run.

    Returns
    -------
    fitted : pandas.DataFrame
        Somatic events of fitted pairs with ``epoch``, ``error_trend``, ``preceded``,
        ``fitted``, ``residual``, ``residual_z`` (input of every residual test).
    fits : pandas.DataFrame
        One row per fitted pair (:data:`analysis.residuals.FIT_COLUMNS`).
    all_events : pandas.DataFrame
        Every row of :func:`analysis.residuals.measure_sd_events` with its epoch, and the
        residual columns where fitted (NaN otherwise): ``results/stats/sd_events.tsv``.
    """
    _require_columns(sessions, ["subject", "session", "fs_hz"], "sessions")
    _require_values(events, "plane_role", ("soma", "dendrite"), "events")
    _require_values(targets, "group", GROUPS, "targets")
    _require_values(epochs, "epoch", EPOCHS, "epochs")
    fs_hz = {
        (r.subject, r.session): float(r.fs_hz)
        for r in sessions[["subject", "session", "fs_hz"]].itertuples(index=False)
    }
    measured = residuals.measure_sd_events(
        events,
        pairs,
        targets,
        soma_dff,
        dendrite_dff,
        fs_hz,
        coincidence_window_s=settings.coincidence_window_s,
        response_window_s=settings.response_window_s,
        response_baseline_s=settings.response_baseline_s,
        quiet_s=settings.own_event_exclusion_s,
    )
    labelled = residuals.assign_epochs(
        measured,
        epochs,
        fs_hz,
        reference=settings.epoch_reference,
        window_s=settings.epoch_window_s,
        gap_s=settings.epoch_gap_s,
        own_event_exclusion_s=settings.own_event_exclusion_s,
    )
    fitted, fits = residuals.fit_sd_residuals(
        labelled,
        method=settings.sd_fit,
        model=settings.sd_model,
        min_events=settings.min_events_per_neuron,
        min_reliability=settings.min_soma_reliability,
    )
    keys = ["subject", "session", "soma_roi", "dendrite_roi", "kind", "frame"]
    all_events = labelled.merge(
        fitted[[*keys, "fitted", "residual", "residual_z"]], on=keys, how="left"
    )
    return fitted, fits, all_events


def compute_cohort_statistics(
    *,
    events: pd.DataFrame,
    pairs: pd.DataFrame,
    targets: pd.DataFrame,
    epochs: pd.DataFrame,
    trials: pd.DataFrame,
    sessions: pd.DataFrame,
    soma_dff: dict[tuple[str, str], xr.DataArray],
    dendrite_dff: dict[tuple[str, str], xr.DataArray],
    settings: StatsSettings,
    soma_neuropil: dict[tuple[str, str], xr.DataArray] | None = None,
) -> tuple[dict[str, pd.DataFrame], str]:
    """Run every statistic of the stage on a cohort's tables.

    Parameters
    ----------
    events, pairs, targets, epochs, trials, sessions : pandas.DataFrame
        As in the module docstring (``sessions`` also needs ``fs_hz``, and may have
        ``condition``: default ``control``; ``trials`` may have ``light_on``).
    soma_dff, dendrite_dff : dict
        ``(subject, session) -> dF/F (roi, time)`` of the soma and dendrite planes: the
        soma-locked responses (:mod:`analysis.residuals`), activity and network prediction.
    settings : StatsSettings
    soma_neuropil : dict, optional
        ``(subject, session) -> neuropil (roi, time)`` of the soma plane: the network
        prediction's neuropil-only control.

    Returns
    -------
    tables : dict of name -> DataFrame
        behaviour, activity, activity_change, group_activity, sd_events (every somatic
        event of a paired soma with its residual, and the dendrite-only events), sd_fits,
        contrasts, separation, outcome_events, outcome_timecourse, early_residual_change,
        network, condition_separation, condition_contrasts, light_separation,
        learning_slopes, tests (one row per test: name, statistic, p, n). With several
        conditions the per-claim tables and tests cover the reference condition's
        sessions (``settings.reference_condition``); the condition tables compare them.
    summary : str
        :func:`summarize` of ``tests``: the printed conclusion.
    """
    rng = np.random.default_rng(settings.seed)
    if "condition" not in sessions:
        sessions = sessions.assign(condition=DEFAULT_CONDITION)
    reference = conditions.reference_condition(sessions, settings.reference_condition)
    activity_table = _activity_table(soma_dff, events, trials, sessions)
    activity_change = compute_activity_change(activity_table, targets)
    sd_events, sd_fits, all_sd_events = residual_events(
        events=events,
        pairs=pairs,
        targets=targets,
        epochs=epochs,
        sessions=sessions,
        soma_dff=soma_dff,
        dendrite_dff=dendrite_dff,
        settings=settings,
    )
    in_reference = _in_sessions(sessions[sessions["condition"] == reference])
    reference_events = sd_events[in_reference(sd_events)]
    outcome_events = compute_outcome_residuals(
        reference_events, trials, sessions, settings=settings
    )
    network_table = _network_table(
        reference_events, soma_dff, targets, sessions, soma_neuropil, settings=settings, rng=rng
    )
    early_change, tests_table = _per_claim_tests(
        reference_events,
        outcome_events,
        network_table,
        activity_table[in_reference(activity_table)],
        settings=settings,
        rng=rng,
    )
    behaviour = conditions.label_conditions(compute_behaviour(trials, sessions), sessions)
    group_activity = compute_group_activity(activity_change)
    condition_tables, condition_tests = _condition_statistics(
        conditions.label_conditions(sd_events, sessions),
        trials,
        behaviour,
        group_activity,
        reference=reference,
        settings=settings,
    )
    tests_table = pd.concat([tests_table, *condition_tests], ignore_index=True)
    tables = {
        "behaviour": behaviour,
        "activity": activity_table,
        "activity_change": activity_change,
        "group_activity": group_activity,
        "sd_events": all_sd_events,
        "sd_fits": sd_fits,
        "contrasts": compute_group_epoch_contrasts(reference_events),
        "separation": compute_signed_separation(reference_events),
        "outcome_events": outcome_events,
        "outcome_timecourse": compute_outcome_timecourse(outcome_events, settings=settings),
        "early_residual_change": early_change,
        "network": network_table,
        **condition_tables,
        "tests": tests_table,
    }
    several = sessions["condition"].nunique() > 1
    summary = summarize(tests_table, settings=settings, reference=reference if several else None)
    return tables, summary


def _in_sessions(sessions: pd.DataFrame):
    """A mask function: which rows of a table (``subject, session``) are in ``sessions``."""
    keys = set(zip(sessions["subject"], sessions["session"], strict=True))

    def mask(table: pd.DataFrame) -> np.ndarray:
        rows = zip(table["subject"], table["session"], strict=True)
        return np.fromiter((key in keys for key in rows), dtype=bool, count=len(table))

    return mask


def _session_fs_hz(sessions: pd.DataFrame, key: tuple[str, str]) -> float:
    rows = sessions[(sessions["subject"] == key[0]) & (sessions["session"] == key[1])]
    if rows.empty:
        raise ValueError(f"sessions table has no row (fs_hz) for subject/session {key}")
    return float(rows["fs_hz"].iloc[0])


def _activity_table(
    soma_dff: dict[tuple[str, str], xr.DataArray],
    events: pd.DataFrame,
    trials: pd.DataFrame,
    sessions: pd.DataFrame,
) -> pd.DataFrame:
    """:func:`compute_activity` of every session's soma plane, concatenated."""
    soma_events = events[events["plane_role"] == "soma"]
    session_trials = _rows_by_session(trials)
    session_soma_events = _rows_by_session(soma_events)
    activity = []
    for key, dff in sorted(soma_dff.items()):
        table = compute_activity(
            dff,
            trials=trials.iloc[session_trials.get(key, [])],
            events=soma_events.iloc[session_soma_events.get(key, [])],
            fs_hz=_session_fs_hz(sessions, key),
        )
        activity.append(table.assign(subject=key[0], session=key[1]))
    return pd.concat(activity, ignore_index=True)[
        ["subject", "session", "roi", "mean_dff", "event_rate_hz"]
    ]


def _network_table(
    sd_events: pd.DataFrame,
    soma_dff: dict[tuple[str, str], xr.DataArray],
    targets: pd.DataFrame,
    sessions: pd.DataFrame,
    soma_neuropil: dict[tuple[str, str], xr.DataArray] | None,
    *,
    settings: StatsSettings,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """:func:`compute_network_prediction` of every session with SD events, concatenated."""
    network = []
    session_sd_events = _rows_by_session(sd_events)
    session_targets = _rows_by_session(targets)
    for key, dff in sorted(soma_dff.items()):
        rows = session_sd_events.get(key)
        if rows is None:
            continue
        network.append(
            compute_network_prediction(
                sd_events.iloc[rows],
                dff,
                fs_hz=_session_fs_hz(sessions, key),
                settings=settings,
                rng=rng,
                exclude_rois=targets["roi"].iloc[session_targets.get(key, [])].astype(int),
                neuropil=(soma_neuropil or {}).get(key),
            )
        )
    if not network:
        return pd.DataFrame(columns=NETWORK_COLUMNS)
    return pd.concat(network, ignore_index=True)


def _per_claim_tests(
    sd_events: pd.DataFrame,
    outcome_events: pd.DataFrame,
    network_table: pd.DataFrame,
    activity_table: pd.DataFrame,
    *,
    settings: StatsSettings,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The headline and the secondary tests, in a fixed order (they share ``rng``); a test
    the data cannot support gets an untestable row. Returns the early-change table (with
    its header even when untestable, so the file reads back) and the tests table."""
    early_change = pd.DataFrame(columns=EARLY_CHANGE_COLUMNS)

    def early_change_test() -> pd.DataFrame:
        nonlocal early_change
        early_change, test = run_early_change_test(
            sd_events, activity_table, settings=settings, rng=rng
        )
        return test

    runs = [
        (GROUP_EPOCH_TEST, lambda: run_group_epoch_test(sd_events, settings=settings)),
        (
            GROUP_EPOCH_NEURON_TEST,
            lambda: run_group_epoch_neuron_test(sd_events, settings=settings, rng=rng),
        ),
        (OUTCOME_TEST, lambda: run_outcome_test(outcome_events, settings=settings, rng=rng)),
        (EARLY_CHANGE_TEST, early_change_test),
        (NETWORK_TEST, lambda: run_network_test(network_table, settings=settings, rng=rng)),
    ]
    tests = []
    for name, run in runs:
        try:
            tests.append(run())
        except InsufficientDataError as err:
            log.warning("%s not testable: %s", name, err)
            tests.append(untestable_row(name, str(err), alternative=settings.alternative))
    return early_change, pd.concat(tests, ignore_index=True)


def _condition_statistics(
    sd_events: pd.DataFrame,
    trials: pd.DataFrame,
    behaviour: pd.DataFrame,
    group_activity: pd.DataFrame,
    *,
    reference: str,
    settings: StatsSettings,
) -> tuple[dict[str, pd.DataFrame], list[pd.DataFrame]]:
    """Tables and tests of :mod:`analysis.conditions` (events and behaviour labelled with
    their session's condition). Condition tests need several conditions; the light test
    needs a session that interleaves light-on and light-off trials."""
    by_condition = conditions.per_value(sd_events, "condition", compute_signed_separation)
    lit_events = (
        conditions.label_light(sd_events, trials) if "light_on" in trials else sd_events.iloc[:0]
    )
    light = conditions.light_table(
        conditions.per_value(lit_events, "light_on", compute_signed_separation)
    )
    slopes = conditions.learning_slopes(behaviour, group_activity)
    tables = {
        "condition_separation": by_condition,
        "condition_contrasts": conditions.per_value(
            sd_events, "condition", compute_group_epoch_contrasts
        ),
        "light_separation": light,
        "learning_slopes": slopes,
    }
    tests = []
    if behaviour["condition"].nunique() > 1:
        seeds = dict(seed=settings.seed)
        tests += conditions.run_condition_separation_test(
            by_condition, reference=reference, alternative=settings.alternative, **seeds
        )
        tests += conditions.run_condition_interaction_test(
            by_condition, reference=reference, n_permutations=settings.n_permutations, **seeds
        )
        tests += conditions.run_learning_test(
            slopes, reference=reference, n_permutations=settings.n_permutations, **seeds
        )
    if len(lit_events):
        try:
            tests.append(conditions.run_light_test(light, seed=settings.seed))
        except InsufficientDataError as err:
            tests.append(conditions.untestable(conditions.LIGHT_TEST, str(err)))
    return tables, tests
