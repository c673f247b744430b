"""The whole stats stage on a cohort: residual events, every table and test."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from analysis import conditions, residuals
from analysis.inference import (
    InsufficientDataError,
    untestable_row,
)
from analysis.stats import behaviour as learning
from analysis.stats import group_epoch, names, outcome, prediction
from analysis.stats.common import require_input_columns, require_values, rows_by_session
from analysis.stats.settings import StatsSettings
from analysis.stats.summary import summarize
from analysis.vocabulary import DEFAULT_CONDITION, EPOCHS, GROUPS

log = logging.getLogger(__name__)


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
    require_input_columns(sessions, ["subject", "session", "fs_hz"], "sessions")
    require_values(events, "plane_role", ("soma", "dendrite"), "events")
    require_values(targets, "group", GROUPS, "targets")
    require_values(epochs, "epoch", EPOCHS, "epochs")
    fs_hz = session_rates(sessions)
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
    rates = session_rates(sessions)
    missing = sorted(set(soma_dff) - set(rates))
    if missing:
        raise ValueError(f"sessions table has no row (fs_hz) for subject/session {missing}")
    activity_table = _activity_table(soma_dff, events, trials, rates)
    activity_change = learning.compute_activity_change(activity_table, targets)
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
    labelled_events = conditions.label_conditions(sd_events, sessions)
    reference_events = sd_events[labelled_events["condition"].to_numpy() == reference]
    in_reference = conditions.label_conditions(activity_table, sessions)["condition"] == reference
    outcome_events = outcome.compute_outcome_residuals(
        reference_events, trials, sessions, settings=settings
    )
    network_table = _network_table(
        reference_events, soma_dff, targets, rates, soma_neuropil, settings=settings, rng=rng
    )
    early_change, tests_table = _per_claim_tests(
        reference_events,
        outcome_events,
        network_table,
        activity_table[in_reference.to_numpy()],
        settings=settings,
        rng=rng,
    )
    behaviour = conditions.label_conditions(learning.compute_behaviour(trials, sessions), sessions)
    group_activity = learning.compute_group_activity(activity_change)
    condition_tables, condition_tests = _condition_statistics(
        labelled_events,
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
        "contrasts": group_epoch.compute_group_epoch_contrasts(reference_events),
        "separation": group_epoch.compute_signed_separation(reference_events),
        "outcome_events": outcome_events,
        "outcome_timecourse": outcome.compute_outcome_timecourse(outcome_events, settings=settings),
        "early_residual_change": early_change,
        "network": network_table,
        **condition_tables,
        "tests": tests_table,
    }
    several = sessions["condition"].nunique() > 1
    summary = summarize(tests_table, settings=settings, reference=reference if several else None)
    return tables, summary


def session_rates(sessions: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(subject, session) -> volume rate (Hz), from the sessions table's ``fs_hz``."""
    return {
        (r.subject, r.session): float(r.fs_hz)
        for r in sessions[["subject", "session", "fs_hz"]].itertuples(index=False)
    }


def _activity_table(
    soma_dff: dict[tuple[str, str], xr.DataArray],
    events: pd.DataFrame,
    trials: pd.DataFrame,
    rates: dict[tuple[str, str], float],
) -> pd.DataFrame:
    """:func:`~analysis.stats.behaviour.compute_activity` of every session's soma plane,
    concatenated."""
    soma_events = events[events["plane_role"] == "soma"]
    session_trials = rows_by_session(trials)
    session_soma_events = rows_by_session(soma_events)
    activity = []
    for key, dff in sorted(soma_dff.items()):
        table = learning.compute_activity(
            dff,
            trials=trials.iloc[session_trials.get(key, [])],
            events=soma_events.iloc[session_soma_events.get(key, [])],
            fs_hz=rates[key],
        )
        activity.append(table.assign(subject=key[0], session=key[1]))
    return pd.concat(activity, ignore_index=True)[
        ["subject", "session", "roi", "mean_dff", "event_rate_hz"]
    ]


def _network_table(
    sd_events: pd.DataFrame,
    soma_dff: dict[tuple[str, str], xr.DataArray],
    targets: pd.DataFrame,
    rates: dict[tuple[str, str], float],
    soma_neuropil: dict[tuple[str, str], xr.DataArray] | None,
    *,
    settings: StatsSettings,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """:func:`~analysis.stats.prediction.compute_network_prediction` of every session with SD
    events, concatenated."""
    network = []
    session_sd_events = rows_by_session(sd_events)
    session_targets = rows_by_session(targets)
    for key, dff in sorted(soma_dff.items()):
        rows = session_sd_events.get(key)
        if rows is None:
            continue
        network.append(
            prediction.compute_network_prediction(
                sd_events.iloc[rows],
                dff,
                fs_hz=rates[key],
                settings=settings,
                rng=rng,
                exclude_rois=targets["roi"].iloc[session_targets.get(key, [])].astype(int),
                neuropil=(soma_neuropil or {}).get(key),
            )
        )
    if not network:
        return pd.DataFrame(columns=prediction.NETWORK_COLUMNS)
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
    early_change = pd.DataFrame(columns=names.EARLY_CHANGE_COLUMNS)

    def early_change_test() -> pd.DataFrame:
        nonlocal early_change
        early_change, test = prediction.run_early_change_test(
            sd_events, activity_table, settings=settings, rng=rng
        )
        return test

    runs = [
        (
            names.GROUP_EPOCH_TEST,
            lambda: group_epoch.run_group_epoch_test(sd_events, settings=settings),
        ),
        (
            names.GROUP_EPOCH_NEURON_TEST,
            lambda: group_epoch.run_group_epoch_neuron_test(sd_events, settings=settings, rng=rng),
        ),
        (
            names.OUTCOME_TEST,
            lambda: outcome.run_outcome_test(outcome_events, settings=settings, rng=rng),
        ),
        (names.EARLY_CHANGE_TEST, early_change_test),
        (
            names.NETWORK_TEST,
            lambda: prediction.run_network_test(network_table, settings=settings, rng=rng),
        ),
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
    by_condition = conditions.per_value(
        sd_events, "condition", group_epoch.compute_signed_separation
    )
    lit_events = (
        conditions.label_light(sd_events, trials) if "light_on" in trials else sd_events.iloc[:0]
    )
    light = conditions.light_table(
        conditions.per_value(lit_events, "light_on", group_epoch.compute_signed_separation)
    )
    slopes = conditions.learning_slopes(behaviour, group_activity)
    tables = {
        "condition_separation": by_condition,
        "condition_contrasts": conditions.per_value(
            sd_events, "condition", group_epoch.compute_group_epoch_contrasts
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
            tests.append(
                conditions.untestable(
                    conditions.LIGHT_TEST, str(err), contrast=conditions.LIGHT_CONTRAST
                )
            )
    return tables, tests
