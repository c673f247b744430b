"""Outcome information: SD residuals around hits vs failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from analysis.inference import (
    InsufficientDataError,
    permutation_p,
    result_row,
)
from analysis.stats.common import require_input_columns, require_values
from analysis.stats.names import OUTCOME_TEST
from analysis.stats.settings import StatsSettings
from analysis.vocabulary import GROUPS, OUTCOMES


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
    require_input_columns(
        events, ["subject", "session", "soma_roi", "frame", "residual_z"], "events"
    )
    require_input_columns(
        trials, ["subject", "session", "trial", "outcome", "decision_frame"], "trials"
    )
    require_input_columns(sessions, ["subject", "session", "fs_hz"], "sessions")
    require_values(trials, "outcome", OUTCOMES, "trials")
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
    require_input_columns(aligned, ["subject", "outcome", "lag_s", "residual_z"], "aligned")
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
    require_input_columns(
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
