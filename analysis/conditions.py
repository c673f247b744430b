"""Statistics by experimental condition: the causal experiment (NDNF+ dendritic inhibition).

A session's condition is the sessions table's ``condition`` column (``control`` where it
is empty). Conditions are compared at the animal level, as the headline test is
(:func:`analysis.stats.run_group_epoch_test`): each animal gives one signed separation per
condition and the tests run across animals.

Tests (rows of ``results/stats/tests.tsv``; ``contrast`` names ``<condition> -
<reference>``):

- :data:`CONDITION_SEPARATION_TEST`: the group x epoch pattern within a non-reference
  condition (one-sample t across its animals, as the headline is for the reference).
- :data:`CONDITION_TEST`: condition x (group x epoch), animals nested in condition: Welch's
  t of the separations of animals recorded only in the condition against those recorded
  only in the reference; the exact label-permutation p beside it.
  :data:`CONDITION_PAIRED_TEST` replaces it when fewer than 2 animals per side are single-
  condition and at least 2 were recorded in both (within-animal design).
- :data:`LIGHT_TEST`: light-on against light-off trials within sessions that interleave
  them (``trials.light_on`` from the log's ``opto``): per animal, the separation of events
  in lit trials minus that in dark trials, one-sample t across animals.
- :data:`LEARNING_TESTS`: the per-animal slope over days of hit rate, rewards per minute
  and target activity (P+ minus P- change in mean dF/F), condition against reference
  (Welch across single-condition animals).

The animal is the unit everywhere, so n is the number of animals, never of neurons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis.inference import (
    InsufficientDataError,
    one_sample_across_animals,
    result_row,
    two_sample_across_animals,
    untestable_row,
)

log = logging.getLogger(__name__)

CONDITION_SEPARATION_TEST = "group_x_epoch_signed_separation_in_condition_across_animals_t"
CONDITION_TEST = "condition_x_group_x_epoch_between_animals_welch_t"
CONDITION_PAIRED_TEST = "condition_x_group_x_epoch_within_animals_paired_t"
LIGHT_TEST = "light_on_vs_off_group_x_epoch_within_sessions_across_animals_t"
LIGHT_CONTRAST = "light on - light off"
LEARNING_METRICS = ("hit_rate", "rewards_per_min", "target_activity")
LEARNING_TESTS = {m: f"learning_slope_{m}_condition_vs_reference_welch_t" for m in LEARNING_METRICS}
LEARNING_COLUMNS = ["subject", "condition", "n_sessions", *[f"slope_{m}" for m in LEARNING_METRICS]]
LIGHT_COLUMNS = ["subject", "separation_light_on", "separation_light_off", "difference"]

#: The paper's sign: inhibition should lower the separation; tests stay two-sided.
CLAIMS = {
    CONDITION_SEPARATION_TEST: (
        "Can claim: animals in this condition show (or do not show) the vectorized pattern, "
        "on their own. Cannot claim: that it differs from the reference (the next test)."
    ),
    CONDITION_TEST: (
        "Can claim: the pattern differs between animals in this condition and reference "
        "animals (negative: weaker under the condition, e.g. abolished by dendritic "
        "inhibition). Cannot claim: why (the light, the virus or the cohort; animals are "
        "not randomized by the pipeline), or anything about animals' own change."
    ),
    CONDITION_PAIRED_TEST: (
        "Can claim: within the same animals, the pattern differs between this condition's "
        "sessions and the reference sessions. Cannot claim: that the order of sessions "
        "(learning over days) is not the cause, unless conditions were counterbalanced."
    ),
    LIGHT_TEST: (
        "Can claim: within interleaved sessions, the pattern differs between light-on and "
        "light-off trials (negative: weaker with the light), with learning state matched. "
        "Cannot claim: effects of the light that outlast a trial (they would dilute it)."
    ),
    **{
        test: (
            f"Can claim: animals in this condition changed {metric.replace('_', ' ')} over "
            "days at a different rate than reference animals. Cannot claim: that the "
            "residual's loss caused it."
        )
        for metric, test in LEARNING_TESTS.items()
    },
}


def label_conditions(table: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with ``subject, session``) with each session's ``condition``."""
    conditions = sessions[["subject", "session", "condition"]].drop_duplicates()
    labelled = table.drop(columns="condition", errors="ignore").merge(
        conditions, on=["subject", "session"], how="left"
    )
    missing = labelled["condition"].isna()
    if missing.any():
        first = labelled.loc[missing, ["subject", "session"]].iloc[0].tolist()
        raise ValueError(f"sessions table has no condition for subject/session {first}")
    return labelled


def reference_condition(sessions: pd.DataFrame, preferred: str) -> str:
    """The condition the others are compared with: the only one, or ``preferred``."""
    present = sorted(sessions["condition"].unique())
    if len(present) == 1:
        return present[0]
    if preferred not in present:
        raise ValueError(
            f"stats.reference_condition is '{preferred}' but the sessions table's conditions "
            f"are {present}; set stats.reference_condition to one of them"
        )
    return preferred


def per_value(
    events: pd.DataFrame, column: str, compute: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame:
    """``compute`` (a per-animal table, e.g. the signed separation) within each value of
    ``column``, concatenated with that column after ``subject``."""
    parts = [
        compute(group).assign(**{column: value})
        for value, group in events.groupby(column, sort=True)
    ]
    if not parts:
        return pd.DataFrame(columns=["subject", column, "separation"])
    table = pd.concat(parts, ignore_index=True)
    return table[["subject", column, *[c for c in table.columns if c not in ("subject", column)]]]


def single_condition_animals(table: pd.DataFrame) -> pd.Series:
    """subject -> condition for animals recorded in one condition only."""
    per_subject = table.groupby("subject")["condition"].unique()
    single = per_subject[per_subject.map(len) == 1]
    return single.map(lambda c: c[0])


def run_condition_separation_test(
    separation: pd.DataFrame, *, reference: str, alternative: str, seed: int
) -> list[pd.DataFrame]:
    """The group x epoch pattern within each non-reference condition, across its animals."""
    rows = []
    for condition, group in separation.groupby("condition", sort=True):
        if condition == reference:
            continue
        values = group["separation"].to_numpy(float)
        if values.size < 2:
            rows.append(
                untestable(
                    CONDITION_SEPARATION_TEST,
                    f"{values.size} animal(s) in {condition} with P+ and P- residuals",
                    contrast=condition,
                )
            )
            continue
        result = one_sample_across_animals(values, alternative=alternative, seed=seed)
        rows.append(
            _row(
                CONDITION_SEPARATION_TEST,
                result,
                contrast=condition,
                n_animals=values.size,
                neurons_events=group,
                alternative=alternative,
                extras=("n_positive_animals", "t_statistic", "p_sign_flip", "min_attainable_p"),
            )
        )
    return rows


def run_condition_interaction_test(
    separation: pd.DataFrame, *, reference: str, n_permutations: int, seed: int
) -> list[pd.DataFrame]:
    """Condition x (group x epoch) at the animal level, each condition against ``reference``.

    Parameters
    ----------
    separation : pandas.DataFrame
        Per animal x condition signed separation (:func:`per_value` on ``condition``).

    Returns
    -------
    list of one-row DataFrames: :data:`CONDITION_TEST` (between animals; statistic = mean
    separation in the condition minus in the reference) or, for within-animal designs,
    :data:`CONDITION_PAIRED_TEST` (mean within-animal difference), or an untestable row.
    """
    single = single_condition_animals(separation)
    rows = []
    for condition in sorted(set(separation["condition"]) - {reference}):
        contrast = f"{condition} - {reference}"
        only = separation[separation["subject"].map(single).isin([condition, reference])]
        treated = only[only["condition"] == condition]
        control = only[only["condition"] == reference]
        if len(treated) >= 2 and len(control) >= 2:
            rows.append(
                _two_sample_row(
                    CONDITION_TEST,
                    treated["separation"],
                    control["separation"],
                    contrast=contrast,
                    neurons_events=only,
                    n_permutations=n_permutations,
                    seed=seed,
                )
            )
            continue
        both = separation.pivot_table(index="subject", columns="condition", values="separation")
        both = both.dropna(subset=[c for c in (condition, reference) if c in both])
        if {condition, reference} <= set(both.columns) and len(both) >= 2:
            differences = (both[condition] - both[reference]).to_numpy(float)
            result = one_sample_across_animals(differences, alternative="two-sided", seed=seed)
            rows.append(
                _row(
                    CONDITION_PAIRED_TEST,
                    result,
                    contrast=contrast,
                    n_animals=differences.size,
                    neurons_events=separation[separation["subject"].isin(both.index)],
                    alternative="two-sided",
                    extras=("n_positive_animals", "t_statistic", "p_sign_flip", "min_attainable_p"),
                )
            )
            continue
        rows.append(
            untestable(
                CONDITION_TEST,
                f"{len(treated)} animal(s) only in {condition} and {len(control)} only in "
                f"{reference} with P+ and P- residuals (need 2 and 2), and fewer than 2 "
                "recorded in both",
                contrast=contrast,
            )
        )
    return rows


def label_light(events: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Events (``subject, session, frame``) inside a trial of a session that interleaves
    light-on and light-off trials, with that trial's ``light_on`` (others dropped)."""
    parts = []
    for (subject, session), tr in trials.groupby(["subject", "session"], sort=False):
        if tr["light_on"].nunique() < 2:
            continue
        ev = events[(events["subject"] == subject) & (events["session"] == session)]
        tr = tr.sort_values("start_frame")
        starts, ends = tr["start_frame"].to_numpy(), tr["end_frame"].to_numpy()
        frames = ev["frame"].to_numpy()
        k = np.searchsorted(starts, frames, side="right") - 1
        inside = (k >= 0) & (frames <= ends[np.maximum(k, 0)])
        light = tr["light_on"].to_numpy()[np.maximum(k, 0)]
        parts.append(ev[inside].assign(light_on=light[inside].astype(int)))
    if not parts:
        return events.iloc[:0].assign(light_on=pd.Series(dtype=int))
    return pd.concat(parts, ignore_index=True)


def light_table(light_separation: pd.DataFrame) -> pd.DataFrame:
    """Per animal: separation in light-on and in light-off trials and their difference."""
    wide = light_separation.pivot_table(index="subject", columns="light_on", values="separation")
    if not {0, 1} <= set(wide.columns):
        return pd.DataFrame(columns=LIGHT_COLUMNS)
    wide = wide.dropna(subset=[0, 1])
    return pd.DataFrame(
        {
            "subject": wide.index,
            "separation_light_on": wide[1].to_numpy(),
            "separation_light_off": wide[0].to_numpy(),
            "difference": (wide[1] - wide[0]).to_numpy(),
        }
    )


def run_light_test(table: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Light-on minus light-off separation within interleaved sessions, across animals."""
    values = table["difference"].to_numpy(float)
    if values.size < 2:
        raise InsufficientDataError(
            f"{values.size} animal(s) with sessions that interleave light-on and light-off "
            "trials and P+ and P- residuals in both (need 2)"
        )
    result = one_sample_across_animals(values, alternative="two-sided", seed=seed)
    return _row(
        LIGHT_TEST,
        result,
        contrast=LIGHT_CONTRAST,
        n_animals=values.size,
        neurons_events=None,
        alternative="two-sided",
        extras=("n_positive_animals", "t_statistic", "p_sign_flip", "min_attainable_p"),
    )


def learning_slopes(behaviour: pd.DataFrame, group_activity: pd.DataFrame) -> pd.DataFrame:
    """Per animal: its condition and the least-squares slope per day of each learning metric.

    ``behaviour`` (``subject, session, day_index, condition, hit_rate, rewards_per_min``)
    and ``group_activity`` (``subject, group, session, change_mean_dff``); target activity
    is P+ minus P- change in mean dF/F. Slopes need 2 sessions with a value (else NaN);
    animals recorded in several conditions are left out (their days mix conditions).
    """
    per_day = behaviour[["subject", "session", "day_index", "condition", "hit_rate"]].copy()
    per_day["rewards_per_min"] = behaviour["rewards_per_min"].to_numpy()
    activity = group_activity.pivot_table(
        index=["subject", "session"], columns="group", values="change_mean_dff"
    )
    target = (
        activity["P+"] - activity["P-"]
        if {"P+", "P-"} <= set(activity.columns)
        else pd.Series(np.nan, index=activity.index)
    )
    per_day = per_day.merge(
        target.rename("target_activity").reset_index(), on=["subject", "session"], how="left"
    )
    single = single_condition_animals(per_day)
    rows = []
    for subject, days in per_day.groupby("subject", sort=True):
        if subject not in single.index:
            log.info("subject %s has sessions in several conditions; no learning slope", subject)
            continue
        row = {"subject": subject, "condition": single[subject], "n_sessions": len(days)}
        for metric in LEARNING_METRICS:
            ok = np.isfinite(days[metric].to_numpy(float))
            x, y = days["day_index"].to_numpy(float)[ok], days[metric].to_numpy(float)[ok]
            row[f"slope_{metric}"] = np.polyfit(x, y, 1)[0] if np.unique(x).size >= 2 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=LEARNING_COLUMNS)


def run_learning_test(
    slopes: pd.DataFrame, *, reference: str, n_permutations: int, seed: int
) -> list[pd.DataFrame]:
    """Learning slope of each metric, each condition against ``reference`` (Welch)."""
    rows = []
    for condition in sorted(set(slopes["condition"]) - {reference}):
        contrast = f"{condition} - {reference}"
        for metric, test in LEARNING_TESTS.items():
            column = slopes[np.isfinite(slopes[f"slope_{metric}"].to_numpy(float))]
            treated = column.loc[column["condition"] == condition, f"slope_{metric}"]
            control = column.loc[column["condition"] == reference, f"slope_{metric}"]
            if len(treated) < 2 or len(control) < 2:
                reason = (
                    f"{len(treated)} animal(s) in {condition} and {len(control)} in {reference} "
                    f"with a {metric} slope (need 2 and 2; a slope needs 2 sessions)"
                )
                rows.append(untestable(test, reason, contrast=contrast))
                continue
            rows.append(
                _two_sample_row(
                    test,
                    treated,
                    control,
                    contrast=contrast,
                    neurons_events=None,
                    n_permutations=n_permutations,
                    seed=seed,
                )
            )
    return rows


def _two_sample_row(
    test: str,
    treated: pd.Series,
    control: pd.Series,
    *,
    contrast: str,
    neurons_events: pd.DataFrame | None,
    n_permutations: int,
    seed: int,
) -> pd.DataFrame:
    """A Welch test row of per-animal values, a condition's against the reference's."""
    result = two_sample_across_animals(
        treated.to_numpy(float), control.to_numpy(float), n_random=n_permutations, seed=seed
    )
    return _row(
        test,
        result,
        contrast=contrast,
        n_animals=len(treated) + len(control),
        neurons_events=neurons_events,
        alternative="two-sided",
        extras=("t_statistic", "df", "p_permutation", "min_attainable_p"),
        n_condition_animals=len(treated),
        n_reference_animals=len(control),
    )


def _row(
    test: str,
    result: dict,
    *,
    contrast: str,
    n_animals: int,
    neurons_events: pd.DataFrame | None,
    alternative: str,
    extras: tuple[str, ...],
    **counts: int,
) -> pd.DataFrame:
    """A test row from a :mod:`analysis.inference` result, with its ``contrast``."""
    has_counts = neurons_events is not None and "n_pplus" in neurons_events
    row = result_row(
        test,
        statistic=result["statistic"],
        p_value=result["p_value"],
        alternative=alternative,
        n_animals=n_animals,
        n_neurons=int((neurons_events["n_pplus"] + neurons_events["n_pminus"]).sum())
        if has_counts
        else 0,
        n_events=int(neurons_events["n_events"].sum()) if has_counts else 0,
        n_permutations=result["n_permutations"],
        **{name: result[name] for name in extras},
        **counts,
    )
    return row.assign(contrast=contrast)


def untestable(test: str, reason: str, *, contrast: str) -> pd.DataFrame:
    """An untestable row of a condition test, with its ``contrast``."""
    return untestable_row(test, reason, alternative="two-sided").assign(contrast=contrast)


def condition_lines(tests: pd.DataFrame, *, alpha: float) -> list[str]:
    """The summary's lines for the condition tests: result, reading and claim of each."""
    lines = []
    rows = tests[tests["test"].isin(CLAIMS)]
    for r in rows.itertuples(index=False):
        label = f"{r.test} [{r.contrast}]"
        if pd.isna(r.p_value):
            lines.append(f"{label}: not testable ({getattr(r, 'note', 'too few data')}).")
        else:
            lines.append(
                f"{label}: statistic = {r.statistic:.3f}, p = {r.p_value:.4g} "
                f"({r.alternative}), n = {int(r.n_animals)} animals: {_reading(r, alpha)} at "
                f"alpha = {alpha:g}."
            )
        lines.append(f"  {CLAIMS[r.test]}")
    return lines


def _reading(row, alpha: float) -> str:
    """What a condition test's result says, in words."""
    significant = row.p_value < alpha
    if row.test == CONDITION_SEPARATION_TEST:
        if not significant:
            return "no vectorized signal found in this condition"
        return "vectorized pattern found" if row.statistic > 0 else "reversed pattern found"
    if not significant:
        return "no difference detected"
    condition, _, reference = row.contrast.partition(" - ")
    return f"{condition} {'higher' if row.statistic > 0 else 'lower'} than {reference}"
