"""Statistical calibration of the group x epoch test on simulated cohorts (synthetic only).

Contract
--------
Input: the simulator's settings (:class:`analysis.simulate.SimulateSettings`; the CLI and
the ``calibrate`` rule start from the bundled sample's preset) and
:class:`CalibrateSettings`. Cohorts of ``n_animals`` subjects are simulated at trace level
(:func:`analysis.simulate.simulate_traces`, no movies), ``n_null_cohorts`` in null mode
(no group-dependent residual planted) and ``n_effect_cohorts`` with the planted
vectorized residual.

For each cohort the coincident-events table of the target neurons is built from the
simulator's truth events (:func:`build_coincident_events`: measured somatic and dendritic
event magnitudes carry the simulator's noise; there is no detection, tracking or pairing
step), then :func:`analysis.stats.fit_sd_residuals` and
:func:`analysis.stats.test_group_epoch` run exactly as in the ``stats`` stage.

Output (:func:`run_calibration`): a tidy table with columns ``metric, value, goal`` and rows
``false_positive_rate_null`` (fraction of null cohorts with p <= alpha; goal: at most alpha
plus two binomial standard errors), ``power_planted`` (fraction of planted cohorts with
p <= alpha), ``fraction_animals_positive_separation`` (planted cohorts' animals whose
signed separation is > 0; goal >= 0.95), and the counts ``n_null_cohorts``,
``n_effect_cohorts``, ``n_untestable_cohorts`` (cohorts where the test could not run;
counted as not significant).

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

from analysis import simulate, stats
from analysis.settings import StageSettings, require

log = logging.getLogger(__name__)

COLUMNS = ("metric", "value", "goal")
#: Settings of ``--quick``: a smoke test of a few small cohorts (seconds, not a calibration).
QUICK = {
    "n_null_cohorts": 4,
    "n_effect_cohorts": 2,
    "n_animals": 3,
    "n_permutations": 99,
    "n_days": 1,
    "n_frames": 1200,
    "baseline_frames": 600,
}


@dataclasses.dataclass(frozen=True)
class CalibrateSettings(StageSettings):
    """Calibration of the group x epoch test on simulated cohorts (config ``calibrate``).

    Attributes
    ----------
    n_null_cohorts : int
        Cohorts simulated without a planted residual (false-positive rate).
    n_effect_cohorts : int
        Cohorts simulated with the planted vectorized residual (power).
    n_animals : int
        Animals (subjects) per cohort.
    n_permutations : int
        Within-animal label permutations per test (replaces ``stats.n_permutations``).
    alpha : float
        Significance level (replaces ``stats.alpha``).
    power_goal : float
        Power the planted cohorts should reach.
    positive_fraction_goal : float
        Fraction of planted animals whose signed separation should be > 0.
    seed : int
        Root seed; cohort k of each arm gets its own generators from (seed, arm, k).
    n_days : int
        Simulated sessions per animal (overrides ``simulate.n_days``).
    n_frames : int
        Imaging volumes per session (overrides ``simulate.n_frames``).
    baseline_frames : int
        Day-1 baseline volumes for the task threshold (overrides
        ``simulate.baseline_frames``; its running-percentile F0 dominates an animal's cost).
    """

    section: ClassVar[str] = "calibrate"

    n_null_cohorts: int = 200
    n_effect_cohorts: int = 100
    n_animals: int = 6
    n_permutations: int = 499
    alpha: float = 0.05
    power_goal: float = 0.95
    positive_fraction_goal: float = 0.95
    seed: int = 0
    n_days: int = 1
    n_frames: int = 3000
    baseline_frames: int = 1500

    def __post_init__(self) -> None:
        for name in ("n_null_cohorts", "n_effect_cohorts", "n_animals", "n_days", "n_frames"):
            require(getattr(self, name) >= 1, f"calibrate.{name} must be >= 1")
        require(self.n_permutations >= 19, "calibrate.n_permutations must be >= 19")
        require(0 < self.alpha < 1, "calibrate.alpha must be in (0, 1)")
        require(0 < self.power_goal <= 1, "calibrate.power_goal must be in (0, 1]")
        require(
            0 < self.positive_fraction_goal <= 1,
            "calibrate.positive_fraction_goal must be in (0, 1]",
        )
        require(self.seed >= 0, "calibrate.seed must be >= 0")
        require(self.baseline_frames >= 1, "calibrate.baseline_frames must be >= 1")


def cohort_settings(
    settings: CalibrateSettings, simulate_settings: simulate.SimulateSettings, *, null: bool
) -> simulate.SimulateSettings:
    """The simulator settings of one calibration cohort (validated).

    ``n_subjects``, ``n_days``, ``n_frames`` and ``baseline_frames`` come from
    ``settings``; ``calibration_trial_frames`` is capped at ``baseline_frames`` so a short
    baseline stays valid; ``null`` selects the arm.
    """
    return simulate.SimulateSettings.from_mapping(
        {
            **simulate_settings.to_dict(),
            "n_subjects": settings.n_animals,
            "n_days": settings.n_days,
            "n_frames": settings.n_frames,
            "baseline_frames": settings.baseline_frames,
            "calibration_trial_frames": min(
                simulate_settings.calibration_trial_frames, settings.baseline_frames
            ),
            "null": null,
        }
    )


def build_coincident_events(cohort: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Coincident-events table of the target neurons from the simulator's truth events.

    Parameters
    ----------
    cohort : sequence of dict
        :func:`analysis.simulate.simulate_subject` results (``subject``, ``days`` with
        ``session`` and ``events``).

    Returns
    -------
    pandas.DataFrame
        One row per coincident soma-dendrite event of a P+ or P- neuron, in the columns
        :func:`analysis.stats.match_coincident_events` gives the stats stage:
        ``subject, session, soma_roi, dendrite_roi`` (the neuron and its tuft),
        ``frame, time_s, soma_amplitude, dendrite_amplitude`` (dF/F, with the simulator's
        noise), ``epoch, group``.
    """
    parts = []
    for result in cohort:
        for day in result["days"]:
            ev = day["events"]
            ev = ev[(ev["kind"] == "coincident") & ev["group"].isin(stats.GROUPS)]
            parts.append(
                pd.DataFrame(
                    {
                        "subject": result["subject"],
                        "session": day["session"],
                        "soma_roi": ev["neuron"].to_numpy(int),
                        "dendrite_roi": ev["tuft"].to_numpy(int),
                        "frame": ev["frame"].to_numpy(int),
                        "time_s": ev["time_s"].to_numpy(float),
                        "soma_amplitude": ev["soma_magnitude"].to_numpy(float),
                        "dendrite_amplitude": ev["dendrite_magnitude"].to_numpy(float),
                        "epoch": ev["epoch"].to_numpy(str),
                        "group": ev["group"].to_numpy(str),
                    }
                )
            )
    if not parts:
        raise ValueError("build_coincident_events: the cohort has no simulated sessions")
    return pd.concat(parts, ignore_index=True)


def evaluate_cohort(
    coincident: pd.DataFrame, *, stats_settings: stats.StatsSettings, rng: np.random.Generator
) -> dict[str, Any]:
    """SD fit and group x epoch test of one cohort, as the stats stage runs them.

    Returns
    -------
    dict
        ``p_value`` (NaN when the test cannot run), ``statistic`` and ``separation``
        (array, per-animal signed separation of residual z).
    """
    sd_events, _ = stats.fit_sd_residuals(coincident, settings=stats_settings)
    separation = stats.compute_signed_separation(sd_events)["separation"].to_numpy(float)
    try:
        row = stats.test_group_epoch(sd_events, settings=stats_settings, rng=rng).iloc[0]
    except stats.InsufficientDataError as err:
        log.warning("cohort not testable: %s", err)
        return {"p_value": np.nan, "statistic": np.nan, "separation": separation}
    return {
        "p_value": float(row["p_value"]),
        "statistic": float(row["statistic"]),
        "separation": separation,
    }


def _run_cohort(task: tuple[int, int, bool, CalibrateSettings, Any, Any]) -> dict[str, Any]:
    """Simulate and test one cohort; seeds depend only on (seed, arm, index)."""
    seed, index, null, settings, simulate_settings, stats_settings = task
    arm = 0 if null else 1
    start = time.perf_counter()
    cohort = simulate.simulate_traces(
        cohort_settings(settings, simulate_settings, null=null),
        rng=np.random.default_rng([seed, arm, index, 0]),
    )
    result = evaluate_cohort(
        build_coincident_events(cohort),
        stats_settings=stats_settings,
        rng=np.random.default_rng([seed, arm, index, 1]),
    )
    log.info(
        "%s cohort %d: p = %.4g, statistic = %.3g (%.1f s)",
        "null" if null else "planted",
        index,
        result["p_value"],
        result["statistic"],
        time.perf_counter() - start,
    )
    return {**result, "null": null}


def run_calibration(
    *,
    settings: CalibrateSettings,
    simulate_settings: simulate.SimulateSettings,
    stats_settings: stats.StatsSettings | None = None,
    n_workers: int = 1,
) -> pd.DataFrame:
    """False-positive rate and power of the group x epoch test on simulated cohorts.

    Parameters
    ----------
    settings : CalibrateSettings
    simulate_settings : SimulateSettings
        Base simulator settings; ``n_subjects``, ``n_days``, ``n_frames``,
        ``baseline_frames`` and ``null`` are set per arm (:func:`cohort_settings`).
    stats_settings : StatsSettings, optional
        The stats stage's settings (default: its defaults); ``n_permutations`` and
        ``alpha`` are replaced by the calibration's.
    n_workers : int
        Processes simulating cohorts in parallel; results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, value, goal``; rows ``false_positive_rate_null``,
        ``power_planted``, ``fraction_animals_positive_separation``, ``n_null_cohorts``,
        ``n_effect_cohorts``, ``n_untestable_cohorts``. Rates are fractions; untestable
        cohorts count as not significant.

    Examples
    --------
    >>> settings = CalibrateSettings(n_null_cohorts=2, n_effect_cohorts=1, n_animals=2,
    ...                              n_days=1, n_frames=1200, baseline_frames=600)
    >>> table = run_calibration(settings=settings,
    ...                         simulate_settings=simulate.settings_for("sample"))
    >>> list(table.columns)
    ['metric', 'value', 'goal']
    """
    require(n_workers >= 1, "run_calibration: n_workers must be >= 1")
    stats_settings = dataclasses.replace(
        stats_settings or stats.StatsSettings(),
        n_permutations=settings.n_permutations,
        alpha=settings.alpha,
    )
    tasks = [
        (settings.seed, k, null, settings, simulate_settings, stats_settings)
        for null, n in ((True, settings.n_null_cohorts), (False, settings.n_effect_cohorts))
        for k in range(n)
    ]
    if n_workers == 1:
        results = [_run_cohort(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(_run_cohort, tasks))
    null_p = np.array([r["p_value"] for r in results if r["null"]])
    planted = [r for r in results if not r["null"]]
    planted_p = np.array([r["p_value"] for r in planted])
    separation = np.concatenate([r["separation"] for r in planted])
    alpha = settings.alpha
    fpr_bound = alpha + 2 * np.sqrt(alpha * (1 - alpha) / settings.n_null_cohorts)
    rows = [
        (
            "false_positive_rate_null",
            float(np.mean(null_p <= alpha)),
            f"<= {fpr_bound:.4f} (alpha {alpha:g} + 2 binomial SE)",
        ),
        ("power_planted", float(np.mean(planted_p <= alpha)), f">= {settings.power_goal:g}"),
        (
            "fraction_animals_positive_separation",
            float(np.mean(separation > 0)) if separation.size else np.nan,
            f">= {settings.positive_fraction_goal:g}",
        ),
        ("n_null_cohorts", float(settings.n_null_cohorts), "count"),
        ("n_effect_cohorts", float(settings.n_effect_cohorts), "count"),
        (
            "n_untestable_cohorts",
            float(np.isnan(null_p).sum() + np.isnan(planted_p).sum()),
            "count (not significant)",
        ),
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m analysis.calibrate --out PATH [--quick] [--settings JSON] ...``."""
    from analysis import io

    parser = argparse.ArgumentParser(
        prog="python -m analysis.calibrate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="output table (TSV)")
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
    table = run_calibration(
        settings=settings,
        simulate_settings=simulate.settings_for("sample"),
        stats_settings=stats.StatsSettings.from_mapping(json.loads(args.stats_settings)),
        n_workers=args.workers,
    )
    log.info("calibration finished in %.1f s:\n%s", time.perf_counter() - start, table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.write_tsv(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
