"""Calibration of the stats stage's animal-level tests through the measurement path.

Contract
--------
Input: the simulator's settings (:class:`analysis.simulate.SimulateSettings`; the CLI and
the ``calibrate`` rule start from the bundled sample's preset) and
:class:`CalibrateSettings`. Each cohort is ``n_animals`` animals x ``n_days`` sessions
simulated at trace level with the closed loop (the target somata drive the cursor, as
on the rig), a null residual and a per-day drift of each neuron's coupling gain; it goes
through the path real data take, not the simulator's truth
(:mod:`analysis.calibration_cohorts`: measured traces, detected events, epochs from the
logged angle), then :func:`analysis.stats.residual_events` and the test, exactly as the
stats stage runs them. ``parts`` picks the tests: 'group_epoch', the headline
(:func:`analysis.stats.run_group_epoch_test`, this module) and 'interaction', condition x
(group x epoch) on cohorts of ``n_animals`` + ``n_animals``
(:mod:`analysis.calibrate_interaction`).

Null variants (:data:`NULL_VARIANTS`): linear coupling; supralinear coupling (exponent
1.15 and 1.3); low and high trace noise. The noise levels bracket real recordings
(:data:`NOISE_LEVELS_DFF`). Power: the same cohorts with a planted residual of
``effect_sizes_sd`` residual SDs (+ for P+ and - for P- when the error fell before the
event, the opposite when it rose), where one residual SD is the median residual SD of
that cohort's null fits, so sizes are in the units of the test's ``residual_z``.

Output (:func:`run_calibration`): a tidy table ``metric, variant, value, goal``: per null
variant the false-positive rate (fraction of cohorts whose test says "found": p <= alpha
and separation > 0, or a significant negative separation; goal alpha + 2 binomial SE);
per size the power and the realized effect (mean separation / 4, in residual SD); the
minimum detectable effect at ``power_goal``; the counts. With ``compare_old_design`` the
design this replaced (epoch at onset, plain least squares) is run on the supralinear 1.15
cohorts as a reference row. :func:`residual_size_table` gives the null residual against
the *true* somatic size (docs/statistics.md figure).

CLI: ``python -m analysis.calibrate --out results/validation/calibration.tsv [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from analysis import calibrate_interaction, residuals, simulate, stats
from analysis.calibration_cohorts import (
    NOISE_LEVELS_DFF,
    animal_dendrites,
    cohort_settings,
    dendrite_gain,
    measured_tables,
    merge_tables,
    photon_scaled,
)
from analysis.settings import StageSettings, require

log = logging.getLogger(__name__)

COLUMNS = ("metric", "variant", "value", "goal")
#: name -> (coupling exponent, noise level, photon scale); the photon scale lowers the
#: rig's own shot noise below the low noise level.
NULL_VARIANTS = {
    "linear": (1.0, "mid", 1.0),
    "supralinear_1.15": (1.15, "mid", 1.0),
    "supralinear_1.3": (1.3, "mid", 1.0),
    "low_noise": (1.0, "low", 4.0),
    "high_noise": (1.0, "high", 1.0),
}
OLD_DESIGN = {"epoch_reference": "at_onset", "sd_fit": "ols", "sd_model": "linear"}
#: Settings of ``--quick``: a smoke test of a few small cohorts (seconds, not a calibration).
QUICK = {
    "n_null_cohorts": 3,
    "n_power_cohorts": 2,
    "n_animals": 3,
    "n_days": 2,
    "n_frames": 1500,
    "baseline_frames": 600,
    "effect_sizes_sd": [0.5],
    "n_interaction_cohorts": 2,
    "n_interaction_power_cohorts": 1,
    "interaction_sizes_sd": [0.5],
}
#: What a calibration run can cover: the headline group x epoch test (this module) and
#: the condition x (group x epoch) test (:mod:`analysis.calibrate_interaction`).
PARTS = ("group_epoch", "interaction")


@dataclasses.dataclass(frozen=True)
class CalibrateSettings(StageSettings):
    """Calibration of the group x epoch and condition tests (config section ``calibrate``).

    Attributes
    ----------
    n_null_cohorts : int
        Null cohorts per null variant (false-positive rate).
    n_power_cohorts : int
        Of those, how many also get each planted size (power); <= n_null_cohorts.
    n_animals : int
        Animals per cohort.
    n_days : int
        Sessions per animal (overrides ``simulate.n_days``).
    n_frames : int
        Imaging volumes per session (overrides ``simulate.n_frames``).
    baseline_frames : int
        Day-1 baseline volumes for the task threshold (overrides ``simulate.baseline_frames``).
    alpha : float
        Significance level (replaces ``stats.alpha``).
    effect_sizes_sd : tuple of float
        Planted residual sizes, in residual SDs, for the power curve.
    power_goal : float
        Power at which the minimum detectable effect is read.
    mde_goal_sd : float
        The minimum detectable effect should be at most this (residual SD).
    gain_drift_sd : float
        Per-day log-normal drift of each neuron's coupling gain.
    null_variants : tuple of str
        Which of :data:`NULL_VARIANTS` to run.
    compare_old_design : bool
        Also run the replaced design (epoch at onset, OLS) on supralinear_1.15 cohorts.
    parts : tuple of str
        Which calibrations to run (:data:`PARTS`).
    n_interaction_cohorts : int
        Two-condition cohorts (``n_animals`` + ``n_animals``) per interaction null variant.
    n_interaction_power_cohorts : int
        Of those, how many also get each abolished size; <= n_interaction_cohorts.
    interaction_null_size_sd : float
        The planted residual both conditions carry in the 'same signal' null (residual SD).
    interaction_sizes_sd : tuple of float
        Control animals' planted residual, abolished by the light, for the power rows.
    seed : int
        Root seed; cohort k's generators come from (seed, k, animal, purpose).
    """

    section: ClassVar[str] = "calibrate"

    n_null_cohorts: int = 200
    n_power_cohorts: int = 100
    n_animals: int = 6
    n_days: int = 5
    n_frames: int = 3000
    baseline_frames: int = 1500
    alpha: float = 0.05
    effect_sizes_sd: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)
    power_goal: float = 0.8
    mde_goal_sd: float = 0.3
    gain_drift_sd: float = 0.1
    null_variants: tuple[str, ...] = tuple(NULL_VARIANTS)
    compare_old_design: bool = True
    parts: tuple[str, ...] = PARTS
    n_interaction_cohorts: int = 200
    n_interaction_power_cohorts: int = 50
    interaction_null_size_sd: float = 0.2
    interaction_sizes_sd: tuple[float, ...] = (0.05, 0.1, 0.2)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_null_cohorts", "n_animals", "n_days", "n_frames", "baseline_frames"):
            require(getattr(self, name) >= 1, f"calibrate.{name} must be >= 1")
        require(
            0 <= self.n_power_cohorts <= self.n_null_cohorts,
            "calibrate.n_power_cohorts must be in 0..n_null_cohorts",
        )
        require(0 < self.alpha < 1, "calibrate.alpha must be in (0, 1)")
        require(0 < self.power_goal < 1, "calibrate.power_goal must be in (0, 1)")
        require(self.mde_goal_sd > 0, "calibrate.mde_goal_sd must be > 0")
        require(
            all(s > 0 for s in self.effect_sizes_sd),
            "calibrate.effect_sizes_sd must be residual SDs > 0",
        )
        require(self.gain_drift_sd >= 0, "calibrate.gain_drift_sd must be >= 0")
        unknown = sorted(set(self.null_variants) - set(NULL_VARIANTS))
        require(
            not unknown and self.null_variants,
            f"calibrate.null_variants: unknown {unknown}; choose from {list(NULL_VARIANTS)}",
        )
        require(self.seed >= 0, "calibrate.seed must be >= 0")
        unknown = sorted(set(self.parts) - set(PARTS))
        require(
            not unknown and self.parts,
            f"calibrate.parts: unknown {unknown}; choose from {list(PARTS)}",
        )
        require(self.n_interaction_cohorts >= 1, "calibrate.n_interaction_cohorts must be >= 1")
        require(
            0 <= self.n_interaction_power_cohorts <= self.n_interaction_cohorts,
            "calibrate.n_interaction_power_cohorts must be in 0..n_interaction_cohorts",
        )
        require(
            self.interaction_null_size_sd > 0 and all(s > 0 for s in self.interaction_sizes_sd),
            "calibrate.interaction_null_size_sd and interaction_sizes_sd must be residual SDs > 0",
        )


def evaluate(
    tables: dict[str, Any], *, stats_settings: stats.StatsSettings
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Residuals and the headline test of one cohort, as the stats stage runs them.

    Returns the test's ``p_value``, ``statistic`` (mean separation), ``found`` (1 when
    the printed verdict would be "found") and ``significant`` (p <= alpha either sign),
    the fitted events and the fits.
    """
    fitted, fits, _ = stats.residual_events(**tables, settings=stats_settings)
    try:
        row = stats.run_group_epoch_test(fitted, settings=stats_settings).iloc[0]
    except stats.InsufficientDataError as err:
        log.warning("cohort not testable: %s", err)
        nan = {"p_value": np.nan, "statistic": np.nan, "found": 0.0, "significant": 0.0}
        return nan, fitted, fits
    p, stat = float(row["p_value"]), float(row["statistic"])
    return (
        {
            "p_value": p,
            "statistic": stat,
            "found": float(p <= stats_settings.alpha and stat > 0),
            "significant": float(p <= stats_settings.alpha),
        },
        fitted,
        fits,
    )


def _run_cohort(task: tuple) -> dict[str, Any]:
    """Simulate one cohort once; measure and test it under every variant and size."""
    index, settings, sim_base, stats_settings, keep_events = task
    start = time.perf_counter()
    result: dict[str, Any] = {"index": index, "null": {}, "power": {}, "sizes": []}
    photon_scales = sorted({NULL_VARIANTS[v][2] for v in settings.null_variants} | {1.0})
    animals = {}
    for scale in photon_scales:
        sim = cohort_settings(settings, sim_base, **photon_scaled(sim_base, scale))
        animals[scale] = [
            simulate.simulate_subject(
                sim,
                subject=f"m{a + 1:02d}",
                rng=np.random.default_rng([settings.seed, index, a, 0]),
            )
            for a in range(settings.n_animals)
        ]

    def cohort_tables(exponent: float, noise: str, scale: float, **planted: Any):
        sim = cohort_settings(
            settings,
            sim_base,
            coupling_exponent=exponent,
            **photon_scaled(sim_base, scale),
            **planted,
        )
        parts = []
        for a, animal in enumerate(animals[scale]):
            rng = np.random.default_rng([settings.seed, index, a, 1])
            dendrites = animal_dendrites(animal, sim, n_frames=settings.n_frames, rng=rng)
            parts.append(
                measured_tables(
                    animal, dendrites, sim=sim, noise_dff=NOISE_LEVELS_DFF[noise], rng=rng
                )
            )
        return merge_tables(parts)

    residual_sd = np.nan
    for name in settings.null_variants:
        exponent, noise, scale = NULL_VARIANTS[name]
        tables = cohort_tables(exponent, noise, scale)
        outcome, fitted, fits = evaluate(tables, stats_settings=stats_settings)
        result["null"][name] = outcome
        if name == "linear":
            residual_sd = float(np.nanmedian(fits["residual_sd"])) if len(fits) else np.nan
        if keep_events and name in ("linear", "supralinear_1.15"):
            result.setdefault("events", {})[name] = _with_true_size(fitted, animals[scale])
        if settings.compare_old_design and name == "supralinear_1.15":
            old = dataclasses.replace(stats_settings, **OLD_DESIGN)
            result["null"]["old_design_supralinear_1.15"], old_fitted, _ = evaluate(
                tables, stats_settings=old
            )
            if keep_events:
                result["events"]["old_design"] = _with_true_size(old_fitted, animals[scale])
    if index < settings.n_power_cohorts and np.isfinite(residual_sd):
        sim = cohort_settings(settings, sim_base)
        unit = residual_sd / dendrite_gain(sim, stats_settings)
        for size in settings.effect_sizes_sd:
            tables = cohort_tables(1.0, "mid", 1.0, null=False, residual_amplitude=size * unit)
            outcome, _, _ = evaluate(tables, stats_settings=stats_settings)
            result["power"][size] = outcome
    log.info("cohort %d done in %.1f s", index, time.perf_counter() - start)
    return result


def _with_true_size(fitted: pd.DataFrame, animals: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``fitted`` with the true somatic magnitude of the burst each event detected
    (nearest burst of that neuron within 3 frames; NaN for false detections)."""
    sizes = np.full(len(fitted), np.nan)
    by_day = {(a["subject"], d["session"]): d["bursts"] for a in animals for d in a["days"]}
    for (subject, session, roi), rows in fitted.groupby(
        ["subject", "session", "soma_roi"]
    ).indices.items():
        bursts = by_day[(subject, session)]
        own = bursts[bursts["neuron"] == roi].sort_values("frame")
        if own.empty:
            continue
        frames = own["frame"].to_numpy()
        onset = fitted["frame"].to_numpy()[rows]
        i = np.clip(np.searchsorted(frames, onset), 1, frames.size) - 1
        j = np.clip(i + 1, 0, frames.size - 1)
        near = np.where(np.abs(frames[j] - onset) < np.abs(frames[i] - onset), j, i)
        close = np.abs(frames[near] - onset) <= 3
        sizes[rows] = np.where(close, own["soma_magnitude"].to_numpy()[near], np.nan)
    return fitted.assign(true_soma_magnitude=sizes)[
        ["residual_z", "true_soma_magnitude", "soma_amplitude"]
    ]


def run_calibration(
    *,
    settings: CalibrateSettings,
    simulate_settings: simulate.SimulateSettings,
    stats_settings: stats.StatsSettings | None = None,
    n_workers: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """False-positive rates, power curve and minimum detectable effect.

    Parameters
    ----------
    settings : CalibrateSettings
    simulate_settings : SimulateSettings
        Base simulator settings (per-animal size, drift, null and coupling are set here).
    stats_settings : StatsSettings, optional
        The stats stage's settings (default: its defaults); ``alpha`` is replaced by the
        calibration's.
    n_workers : int
        Processes running cohorts in parallel; results do not depend on it.

    Returns
    -------
    table : pandas.DataFrame
        :data:`COLUMNS`; see the module docstring.
    residual_size : pandas.DataFrame
        :func:`residual_size_table` of the first cohorts' null residuals.
    """
    require(n_workers >= 1, "run_calibration: n_workers must be >= 1")
    stats_settings = dataclasses.replace(
        stats_settings or stats.StatsSettings(), alpha=settings.alpha
    )
    table = pd.DataFrame(columns=list(COLUMNS))
    residual_size = residual_size_table([])
    if "group_epoch" in settings.parts:
        n_keep = min(10, settings.n_null_cohorts)
        tasks = [
            (k, settings, simulate_settings, stats_settings, k < n_keep)
            for k in range(settings.n_null_cohorts)
        ]
        results = _map(_run_cohort, tasks, n_workers)
        table, residual_size = _summarise(results, settings), residual_size_table(results)
    if "interaction" in settings.parts:
        tasks = calibrate_interaction.interaction_tasks(settings, simulate_settings, stats_settings)
        rows = calibrate_interaction.summarise_interaction(
            _map(calibrate_interaction.run_interaction_cohort, tasks, n_workers), settings
        )
        table = pd.concat([table, pd.DataFrame(rows, columns=list(COLUMNS))], ignore_index=True)
    return table, residual_size


def _map(function, tasks: list[tuple], n_workers: int) -> list[dict[str, Any]]:
    """``function`` over ``tasks``, in ``n_workers`` processes (results in task order)."""
    if n_workers == 1:
        return [function(task) for task in tasks]
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(function, tasks))


def _summarise(results: Sequence[dict[str, Any]], settings: CalibrateSettings) -> pd.DataFrame:
    alpha, n = settings.alpha, len(results)
    bound = alpha + 2 * np.sqrt(alpha * (1 - alpha) / n)
    rows = []
    for name in results[0]["null"]:
        found = np.array([r["null"][name]["found"] for r in results])
        significant = np.array([r["null"][name]["significant"] for r in results])
        untestable = np.array([np.isnan(r["null"][name]["p_value"]) for r in results])
        goal = (
            "reference: the replaced design (epoch at onset, OLS); no goal"
            if name.startswith("old_design")
            else f"<= {bound:.4f} (alpha {alpha:g} + 2 binomial SE)"
        )
        rows += [
            ("false_positive_rate", name, float(found.mean()), goal),
            ("significant_either_sign_rate", name, float(significant.mean()), "reference"),
            ("n_cohorts", name, float(n), "count"),
            ("n_untestable_cohorts", name, float(untestable.sum()), "count (not found)"),
        ]
    powered = [r for r in results if r["power"]]
    sizes = [0.0, *settings.effect_sizes_sd]
    power = []
    for size in sizes:
        if size == 0.0:
            values = [r["null"]["linear"]["found"] for r in powered if "linear" in r["null"]]
            realized = [r["null"]["linear"]["statistic"] for r in powered if "linear" in r["null"]]
        else:
            values = [r["power"][size]["found"] for r in powered]
            realized = [r["power"][size]["statistic"] for r in powered]
        power.append(float(np.mean(values)) if values else np.nan)
        label = f"{size:g}_sd"
        rows.append(
            (
                "power",
                label,
                power[-1],
                f"cohorts of {settings.n_animals} animals x "
                f"{settings.n_days} days, {len(values)} cohorts",
            )
        )
        rows.append(
            (
                "realized_effect_sd",
                label,
                float(np.nanmean(realized)) / 4 if realized else np.nan,
                "mean separation / 4; should be near the size",
            )
        )
    mde = minimum_detectable_effect(np.array(sizes), np.array(power), settings.power_goal)
    rows.append(
        (
            "minimum_detectable_effect_sd",
            f"power {settings.power_goal:g}",
            mde,
            f"<= {settings.mde_goal_sd:g} residual SD",
        )
    )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def minimum_detectable_effect(sizes: np.ndarray, power: np.ndarray, goal: float) -> float:
    """Smallest size where the (interpolated) power curve reaches ``goal``; inf if never.

    >>> minimum_detectable_effect(np.array([0, 0.1, 0.2]), np.array([0.05, 0.5, 0.9]), 0.8)
    0.175
    """
    order = np.argsort(sizes)
    sizes, power = sizes[order], power[order]
    above = np.flatnonzero(power >= goal)
    if not above.size:
        return float("inf")
    k = above[0]
    if k == 0:
        return float(sizes[0])
    s0, s1, p0, p1 = sizes[k - 1], sizes[k], power[k - 1], power[k]
    return float(round(s0 + (goal - p0) / (p1 - p0) * (s1 - s0), 10))


def residual_size_table(results: Sequence[dict[str, Any]], n_bins: int = 8) -> pd.DataFrame:
    """Null residual z against the true somatic magnitude, binned, per variant and fit.

    From the first cohorts' fitted events: 'linear' and 'supralinear_1.15' with the stats
    stage's fit, and 'old_design' (epoch at onset, OLS) on supralinear_1.15.
    """
    parts = []
    names = {name for r in results for name in r.get("events", {})}
    for name in sorted(names):
        events = pd.concat([r["events"][name] for r in results if "events" in r])
        events = events[np.isfinite(events["true_soma_magnitude"])]
        if events.empty:
            continue
        binned = residuals.residual_by_true_size(
            events, events["true_soma_magnitude"].to_numpy(), n_bins=n_bins
        )
        parts.append(binned.assign(variant=name))
    if not parts:
        return pd.DataFrame(columns=["variant", "bin", "true_size", "mean_residual_z"])
    table = pd.concat(parts, ignore_index=True)
    return table[["variant", *[c for c in table.columns if c != "variant"]]]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m analysis.calibrate --out PATH [--quick] [--settings JSON] ...``."""
    from analysis import io

    parser = argparse.ArgumentParser(
        prog="python -m analysis.calibrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="output table (TSV)")
    parser.add_argument(
        "--residual-size-out", type=Path, help="null residual vs true somatic size (TSV)"
    )
    parser.add_argument(
        "--residual-size-figure", type=Path, help="that table drawn (PNG, docs/statistics.md)"
    )
    parser.add_argument("--quick", action="store_true", help="few small cohorts (smoke test)")
    parser.add_argument("--settings", default="{}", help="calibrate config section as JSON")
    parser.add_argument("--stats-settings", default="{}", help="stats config section as JSON")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    mapping = json.loads(args.settings)
    settings = CalibrateSettings.from_mapping({**mapping, **QUICK} if args.quick else mapping)
    start = time.perf_counter()
    table, residual_size = run_calibration(
        settings=settings,
        simulate_settings=simulate.settings_for("sample"),
        stats_settings=stats.StatsSettings.from_mapping(json.loads(args.stats_settings)),
        n_workers=args.workers,
    )
    wall = time.perf_counter() - start
    table = pd.concat(
        [table, pd.DataFrame([("wall_time_s", "all", wall, "seconds")], columns=list(COLUMNS))],
        ignore_index=True,
    )
    log.info("calibration finished in %.1f s:\n%s", wall, table.to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.write_tsv(table, args.out)
    if args.residual_size_out:
        io.write_tsv(residual_size, args.residual_size_out)
    if args.residual_size_figure:
        from analysis import figures

        ax = figures.plot_residual_by_true_size(residual_size)
        ax.set_title("null cohorts: residual vs true somatic size", fontsize="medium")
        with io.atomic_path(args.residual_size_figure) as tmp:
            ax.figure.savefig(tmp, format="png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
