"""Calibration of the condition x (group x epoch) test through the measurement path.

Each cohort is ``n_animals`` control animals and ``n_animals`` animals in the inhibition
condition (whole sessions lit), simulated at trace level with the closed loop and the
calibration's gain drift (:mod:`analysis.calibration_cohorts`), measured as real data are,
fitted by :func:`analysis.stats.residual_events` and tested by
:func:`analysis.conditions.run_condition_interaction_test`, as the stats stage runs them.

Null variants (inhibition has no effect on the residual):

- ``interaction_null_no_signal``: no planted residual in either condition;
- ``interaction_null_same_signal_<s>_sd``: both conditions carry the same planted
  residual of ``interaction_null_size_sd`` residual SDs (the light removes nothing).

The false-positive rate is the share of cohorts where the test is significant in either
direction (the summary reports a difference either way). Power: the control animals carry
a planted residual of each ``interaction_sizes_sd`` and the light abolishes it in the
inhibited animals; "found" is a significant negative difference. One residual SD is the
median residual SD of that cohort's no-signal fits, as in :mod:`analysis.calibrate`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import calibration_cohorts as cohorts
from analysis import conditions, simulate, stats
from analysis.settings import StageSettings

log = logging.getLogger(__name__)

INHIBITED = "ndnf_opto"


def evaluate_interaction(
    tables: dict[str, Any], *, stats_settings: stats.StatsSettings
) -> tuple[dict[str, float], pd.DataFrame]:
    """Residuals and the interaction test of one two-condition cohort.

    Returns ``p_value``, ``statistic`` (mean separation inhibited minus control),
    ``significant`` (p <= alpha) and ``found`` (significant and negative), and the fits.
    """
    fitted, fits, _ = stats.residual_events(**tables, settings=stats_settings)
    labelled = conditions.label_conditions(fitted, tables["sessions"])
    separation = conditions.per_value(labelled, "condition", stats.compute_signed_separation)
    nan = {"p_value": np.nan, "statistic": np.nan, "found": 0.0, "significant": 0.0}
    rows = conditions.run_condition_interaction_test(
        separation,
        reference=simulate.CONTROL_CONDITION,
        n_permutations=stats_settings.n_permutations,
        seed=stats_settings.seed,
    )
    # no row when no inhibited animal had a separation; an untestable row has p NaN
    if not rows or not np.isfinite(rows[0].iloc[0]["p_value"]):
        log.warning("cohort not testable: %s", rows[0].iloc[0].get("note") if rows else "")
        return nan, fits
    r = rows[0].iloc[0]
    p, stat = float(r["p_value"]), float(r["statistic"])
    significant = p <= stats_settings.alpha
    return (
        {
            "p_value": p,
            "statistic": stat,
            "found": float(significant and stat < 0),
            "significant": float(significant),
        },
        fits,
    )


def run_interaction_cohort(task: tuple) -> dict[str, Any]:
    """Simulate one two-condition cohort once; measure and test every variant and size.

    ``task`` = (index, settings (:class:`analysis.calibrate.CalibrateSettings`), base
    simulator settings, stats settings).
    """
    index, settings, sim_base, stats_settings = task
    start = time.perf_counter()
    n = settings.n_animals
    subjects = [f"m{a + 1:02d}" for a in range(2 * n)]
    labels = {"n_subjects": 2 * n, "inhibited_subjects": subjects[n:]}
    sim = cohorts.cohort_settings(settings, sim_base, **labels)
    animals = [
        simulate.simulate_subject(
            sim, subject=subject, rng=np.random.default_rng([settings.seed, index, a, 2])
        )
        for a, subject in enumerate(subjects)
    ]

    def outcome(**planted: Any) -> tuple[dict[str, float], pd.DataFrame]:
        variant = cohorts.cohort_settings(settings, sim_base, **labels, **planted)
        parts = []
        for a, animal in enumerate(animals):
            rng = np.random.default_rng([settings.seed, index, a, 3])
            dendrites = cohorts.animal_dendrites(
                animal, variant, n_frames=settings.n_frames, rng=rng
            )
            parts.append(
                cohorts.measured_tables(
                    animal,
                    dendrites,
                    sim=variant,
                    noise_dff=cohorts.NOISE_LEVELS_DFF["mid"],
                    rng=rng,
                )
            )
        return evaluate_interaction(cohorts.merge_tables(parts), stats_settings=stats_settings)

    result: dict[str, Any] = {"index": index, "null": {}, "power": {}}
    result["null"]["interaction_null_no_signal"], fits = outcome()
    residual_sd = float(np.nanmedian(fits["residual_sd"])) if len(fits) else np.nan
    if np.isfinite(residual_sd):
        unit = residual_sd / cohorts.dendrite_gain(sim, stats_settings)
        size = settings.interaction_null_size_sd
        result["null"][f"interaction_null_same_signal_{size:g}_sd"], _ = outcome(
            null=False, residual_amplitude=size * unit, inhibition_residual_removed=0.0
        )
        if index < settings.n_interaction_power_cohorts:
            for size in settings.interaction_sizes_sd:
                result["power"][size], _ = outcome(
                    null=False, residual_amplitude=size * unit, inhibition_residual_removed=1.0
                )
    log.info("interaction cohort %d done in %.1f s", index, time.perf_counter() - start)
    return result


def summarise_interaction(
    results: Sequence[dict[str, Any]], settings: StageSettings
) -> list[tuple[str, str, float, str]]:
    """Calibration rows (``metric, variant, value, goal``) of the interaction test."""
    alpha, n = settings.alpha, len(results)
    bound = alpha + 2 * np.sqrt(alpha * (1 - alpha) / n)
    design = (
        f"cohorts of {settings.n_animals} + {settings.n_animals} animals x {settings.n_days} days"
    )
    rows = []
    for name in dict.fromkeys(k for r in results for k in r["null"]):
        outcomes = [r["null"][name] for r in results if name in r["null"]]
        significant = np.array([o["significant"] for o in outcomes])
        untestable = np.array([np.isnan(o["p_value"]) for o in outcomes])
        rows += [
            (
                "false_positive_rate",
                name,
                float(significant.mean()),
                f"<= {bound:.4f} (alpha {alpha:g} + 2 binomial SE; significant either sign)",
            ),
            ("n_cohorts", name, float(len(outcomes)), "count"),
            ("n_untestable_cohorts", name, float(untestable.sum()), "count (not found)"),
        ]
    powered = [r for r in results if r["power"]]
    for size in settings.interaction_sizes_sd:
        outcomes = [r["power"][size] for r in powered if size in r["power"]]
        label = f"interaction_abolished_{size:g}_sd"
        found = [o["found"] for o in outcomes]
        realized = [o["statistic"] for o in outcomes]
        rows += [
            (
                "power",
                label,
                float(np.mean(found)) if found else np.nan,
                f"{design}, {len(found)} cohorts; found = significant and negative",
            ),
            (
                "realized_effect_sd",
                label,
                float(np.nanmean(realized)) / 4 if realized else np.nan,
                "mean separation difference / 4; should be near minus the size",
            ),
        ]
    return rows


def interaction_tasks(
    settings: StageSettings,
    simulate_settings: simulate.SimulateSettings,
    stats_settings: stats.StatsSettings,
) -> list[tuple]:
    """One :func:`run_interaction_cohort` task per cohort."""
    stats_settings = dataclasses.replace(stats_settings, alpha=settings.alpha)
    return [
        (k, settings, simulate_settings, stats_settings)
        for k in range(settings.n_interaction_cohorts)
    ]
