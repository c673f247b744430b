"""Calibration of the headline group x epoch test through the measurement path (synthetic).

Contract
--------
Input: the simulator's settings (:class:`analysis.simulate.SimulateSettings`; the CLI and
the ``calibrate`` rule start from the bundled sample's preset) and
:class:`CalibrateSettings`. Each cohort is ``n_animals`` animals x ``n_days`` sessions
simulated at trace level with the closed loop (the target somata drive the cursor, as
on the rig), a null residual and a per-day drift of each neuron's coupling gain.

Every cohort goes through the path real data take, not the simulator's truth:

1. measured traces: each target soma's dF/F is the rig's own online dF/F of its polygon
   (the very shot noise that moved the cursor) plus independent noise up to the
   variant's noise level; each tuft's dF/F is its calcium plus noise at that level;
2. :func:`analysis.extract.detect_events` on both planes;
3. epochs from the logged grating angle (:func:`analysis.bci.compute_task_error`);
4. :func:`analysis.stats.residual_events` (soma-locked responses, causal epochs,
   errors-in-variables fit) and :func:`analysis.stats.test_group_epoch` (animal level),
   exactly as the stats stage runs them.

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
import xarray as xr

from analysis import bci, extract, residuals, simulate, stats
from analysis.dims import FRAME, ROI, TIME
from analysis.settings import StageSettings, require

log = logging.getLogger(__name__)

COLUMNS = ("metric", "variant", "value", "goal")
#: dF/F noise SD per frame at 15 Hz: CASCADE DS14 (GCaMP6s) recordings, binned to 15 Hz,
#: have noise / single-AP response of 0.125, 0.19, 0.29 and 0.34 at their 25th, 50th, 75th
#: and 90th percentiles; with the simulator's single-spike response (~0.22 dF/F over
#: 0.5 s) 0.03 ~ 25th, 0.055 (the simulated rig's own shot noise) ~ 65th, 0.075 ~ 90th.
NOISE_LEVELS_DFF = {"low": 0.03, "mid": 0.055, "high": 0.075}
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
}


@dataclasses.dataclass(frozen=True)
class CalibrateSettings(StageSettings):
    """Calibration of the group x epoch test (config section ``calibrate``).

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


def cohort_settings(
    settings: CalibrateSettings, simulate_settings: simulate.SimulateSettings, **overrides: Any
) -> simulate.SimulateSettings:
    """Simulator settings of a calibration animal (validated): the calibration's size,
    the gain drift, a null residual, then ``overrides``."""
    base = simulate_settings.to_dict()
    return simulate.SimulateSettings.from_mapping(
        {
            **base,
            "n_subjects": 1,
            "n_days": settings.n_days,
            "n_frames": settings.n_frames,
            "baseline_frames": settings.baseline_frames,
            "calibration_trial_frames": min(
                simulate_settings.calibration_trial_frames, settings.baseline_frames
            ),
            "coupling_gain_drift_sd": settings.gain_drift_sd,
            "null": True,
            **overrides,
        }
    )


def _photon_scaled(sim: simulate.SimulateSettings, scale: float) -> dict[str, float]:
    names = ("photons_soma", "photons_dendrite", "photons_background", "photons_neuropil")
    return {n: getattr(sim, n) * scale for n in names}


def measured_tables(
    animal: dict[str, Any],
    dendrites: Sequence[tuple[pd.DataFrame, np.ndarray]],
    *,
    sim: simulate.SimulateSettings,
    noise_dff: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One animal's stats-stage inputs, measured from its simulated traces.

    Parameters
    ----------
    animal : dict
        :func:`analysis.simulate.simulate_subject` output.
    dendrites : sequence of (events, dendrite_calcium)
        Per day, :func:`analysis.simulate.simulate_dendrites` output for this variant.
    sim : SimulateSettings
    noise_dff : float
        Total noise SD per frame of the measured dF/F (soma: the rig's own online noise
        plus independent noise up to this; tuft: calcium plus this).
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``events, pairs, targets, epochs, sessions`` tables and ``soma_dff``,
        ``dendrite_dff`` dicts, as :func:`analysis.stats.residual_events` takes them.
    """
    subject, fs = animal["subject"], sim.fs_hz
    targets = animal["days"][0]["targets"]
    neurons = np.array([t["neuron"] for t in targets])
    tuft_of = animal["geometry"]["dendrites"].set_index("neuron")["tuft"]
    tufts = tuft_of.loc[neurons].to_numpy()
    params = sim.task_params
    meta = {
        "threshold": animal["threshold"],
        "failure_bound": animal["failure_bound"],
        "target_angle_deg": params.target_angle_deg,
        "max_trial_frames": params.max_trial_frames,
    }
    extract_settings, bci_settings = extract.ExtractSettings(), bci.BciSettings()
    out: dict[str, Any] = {"soma_dff": {}, "dendrite_dff": {}}
    events, epochs = [], []
    for day, (_, dend_calcium) in zip(animal["days"], dendrites, strict=True):
        session = day["session"]
        online = day["online_dff"]
        extra = np.sqrt(np.maximum(noise_dff**2 - _noise_sd(online) ** 2, 0.0))
        soma = online + rng.normal(size=online.shape) * extra[:, None]
        dend = dend_calcium[tufts] + rng.normal(0, noise_dff, size=(tufts.size, online.shape[1]))
        for role, rois, values in (("soma", neurons, soma), ("dendrite", tufts, dend)):
            trace = _trace(values, rois, fs)
            out[f"{role}_dff"][(subject, session)] = trace
            found = extract.detect_events(trace, fs_hz=fs, settings=extract_settings)
            events.append(found.assign(subject=subject, session=session, plane_role=role))
        ep = bci.compute_task_error(day["bci"], meta=meta, fs_hz=fs, settings=bci_settings)
        epochs.append(ep.assign(subject=subject, session=session))
    sessions = [d["session"] for d in animal["days"]]
    out["events"] = pd.concat(events, ignore_index=True)
    out["epochs"] = pd.concat(epochs, ignore_index=True)
    out["pairs"] = pd.DataFrame(
        {"subject": subject, "soma_roi": neurons, "dendrite_roi": tufts, "paired": True}
    )
    out["targets"] = pd.DataFrame(
        [
            {
                "subject": subject,
                "session": s,
                "target_id": t["id"],
                "group": t["group"],
                "roi": t["neuron"],
            }
            for s in sessions
            for t in targets
        ]
    )
    out["sessions"] = pd.DataFrame({"subject": subject, "session": sessions, "fs_hz": fs})
    return out


def _noise_sd(traces: np.ndarray) -> np.ndarray:
    """Robust per-row noise SD (MAD of first differences / sqrt 2)."""
    d = np.diff(traces, axis=1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    return 1.4826 * mad / np.sqrt(2)


def _trace(values: np.ndarray, rois: np.ndarray, fs: float) -> xr.DataArray:
    frame = np.arange(values.shape[1])
    return xr.DataArray(
        values.astype(np.float32),
        dims=(ROI, TIME),
        coords={ROI: rois, TIME: frame / fs, FRAME: (TIME, frame)},
        name="dff",
    )


def _merge(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A cohort's stats inputs from its animals' :func:`measured_tables`."""
    merged: dict[str, Any] = {"soma_dff": {}, "dendrite_dff": {}}
    for part in parts:
        merged["soma_dff"].update(part["soma_dff"])
        merged["dendrite_dff"].update(part["dendrite_dff"])
    for name in ("events", "pairs", "targets", "epochs", "sessions"):
        merged[name] = pd.concat([p[name] for p in parts], ignore_index=True)
    return merged


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
        row = stats.test_group_epoch(fitted, settings=stats_settings).iloc[0]
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


def _dendrite_gain(sim: simulate.SimulateSettings, stats_settings: stats.StatsSettings) -> float:
    """Dendritic window response per unit dendritic event magnitude (for planting sizes)."""
    kernel = simulate.calcium_kernel(sim.tau_rise_s, sim.tau_dendrite_decay_s, sim.fs_hz)
    n = max(1, int(round(stats_settings.response_window_s * sim.fs_hz)))
    return float(kernel[:n].mean())


def _run_cohort(task: tuple) -> dict[str, Any]:
    """Simulate one cohort once; measure and test it under every variant and size."""
    index, settings, sim_base, stats_settings, keep_events = task
    start = time.perf_counter()
    result: dict[str, Any] = {"index": index, "null": {}, "power": {}, "sizes": []}
    photon_scales = sorted({NULL_VARIANTS[v][2] for v in settings.null_variants} | {1.0})
    animals = {}
    for scale in photon_scales:
        sim = cohort_settings(settings, sim_base, **_photon_scaled(sim_base, scale))
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
            **_photon_scaled(sim_base, scale),
            **planted,
        )
        parts = []
        for a, animal in enumerate(animals[scale]):
            rng = np.random.default_rng([settings.seed, index, a, 1])
            dendrites = [
                simulate.simulate_dendrites(
                    animal["geometry"],
                    day["bursts"],
                    day["error"].trend_epoch.to_numpy(),
                    n_frames=settings.n_frames,
                    settings=sim,
                    rng=rng,
                )
                for day in animal["days"]
            ]
            parts.append(
                measured_tables(
                    animal, dendrites, sim=sim, noise_dff=NOISE_LEVELS_DFF[noise], rng=rng
                )
            )
        return _merge(parts)

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
        unit = residual_sd / _dendrite_gain(sim, stats_settings)
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
    n_keep = min(10, settings.n_null_cohorts)
    tasks = [
        (k, settings, simulate_settings, stats_settings, k < n_keep)
        for k in range(settings.n_null_cohorts)
    ]
    if n_workers == 1:
        results = [_run_cohort(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(_run_cohort, tasks))
    return _summarise(results, settings), residual_size_table(results)


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
