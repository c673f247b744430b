"""One simulated subject over days: the closed loop, learning, and trace-level runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from analysis import cloose
from analysis.simulate import activity
from analysis.simulate.geometry import (
    draw_day_transform,
    polygon_masks,
    session_geometry,
    simulate_geometry,
    target_polygons,
)
from analysis.simulate.settings import PLANTED_EPOCH_COLUMN, SimulateSettings

log = logging.getLogger(__name__)


OnlineF = Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray, np.ndarray]]


def simulate_subject(
    settings: SimulateSettings,
    *,
    subject: str,
    rng: np.random.Generator,
    online_f: OnlineF | None = None,
) -> dict[str, Any]:
    """Simulate one subject's experiment, day by day, at trace level.

    Parameters
    ----------
    settings : SimulateSettings
    subject : str
    rng : numpy.random.Generator
        Seeds one child generator per (day, purpose) so results do not depend on
        whether movies are rendered.
    online_f : callable, optional
        ``online_f(day) -> (F (target, time), shift_row (time,), shift_col (time,))``
        called once per day after somatic activity and motion exist (``day`` is the
        partial day dict, see Returns). Movie mode passes a function that renders the
        soma plane and measures it as the rig does (:func:`online_target_f`); default:
        :func:`activity.analytic_online_f` with zero logged shifts.

    Returns
    -------
    dict
        ``subject``, ``condition``, ``geometry`` (see :func:`simulate_geometry`), ``threshold``,
        ``failure_bound``, ``days``: list of per-day dicts with ``session``,
        ``transform``, ``sgeom`` (:func:`session_geometry`), ``targets`` (polygons),
        ``motion``, ``bursts``, ``spikes``, ``soma_calcium``, ``neuropil_trace`` (with
        puncta also ``puncta_calcium``, punctum x time dF/F),
        ``online_f``, ``online_dff`` (the rig's dF/F of ``online_f``), ``bci`` (cloose
        log + licks, shift_row, shift_col, and opto in a cohort with conditions),
        ``error`` (:func:`activity.task_error`), ``events``, ``dendrite_calcium``, ``rates_hz``,
        ``noise_seed`` (int, for the movie renderer).
    """
    seeds = rng.integers(0, 2**63 - 1, size=3 + 6 * settings.n_days)
    geometry = simulate_geometry(settings, rng=np.random.default_rng(seeds[0]))
    neurons = geometry["neurons"]
    rates = neurons.burst_rate_hz.to_numpy().copy()
    targets = ((neurons.group == "P+") | (neurons.group == "P-")).to_numpy()
    task = _calibrate_task(geometry, rates, settings, seeds=seeds[:3])
    days = []
    for d in range(settings.n_days):
        day, opto = _simulate_day(
            geometry,
            rates,
            task,
            settings,
            day_index=d,
            seeds=seeds,
            subject=subject,
            online_f=online_f,
        )
        days.append(day)
        rates = _learn(rates, day["events"], opto, targets, settings)
    threshold, failure_bound = task
    return {
        "subject": subject,
        "condition": settings.condition_of(subject),
        "geometry": geometry,
        "threshold": threshold,
        "failure_bound": failure_bound,
        "days": days,
    }


def _calibrate_task(
    geometry: dict[str, Any], rates: np.ndarray, settings: SimulateSettings, *, seeds: np.ndarray
) -> tuple[float, float]:
    """Threshold and failure bound from a day-1 baseline (trace level only), kept for all
    days (the rig caps later difficulty at day 1's)."""
    params = settings.task_params
    base_geom = session_geometry(
        geometry, draw_day_transform(settings, day_index=0, rng=None), settings=settings
    )
    base_targets = target_polygons(
        geometry, draw_day_transform(settings, day_index=0, rng=None), settings=settings
    )
    base_soma = activity.simulate_soma(
        geometry,
        rates,
        n_frames=settings.baseline_frames,
        settings=settings,
        rng=np.random.default_rng(seeds[1]),
    )
    shape = (settings.n_rows, settings.n_cols)
    base_f = activity.analytic_online_f(
        base_geom,
        polygon_masks(base_targets, shape),
        base_soma,
        settings=settings,
        rng=np.random.default_rng(seeds[2]),
    )
    base_readout = _readout(_online_dff(base_f, params), base_targets, params)
    threshold, failure_bound = cloose.calibrate_threshold(
        base_readout,
        n_trials=settings.calibration_trials,
        trial_frames=settings.calibration_trial_frames,
        hit_fraction=settings.hit_fraction,
        rng=np.random.default_rng(seeds[2]),
    )

    return threshold, failure_bound


def _simulate_day(
    geometry: dict[str, Any],
    rates: np.ndarray,
    task: tuple[float, float],
    settings: SimulateSettings,
    *,
    day_index: int,
    seeds: np.ndarray,
    subject: str,
    online_f: OnlineF | None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """One simulated day: motion, somata, online F, the closed loop's BCI log, task error
    and the dendritic events; also the day's opto frames (None without inhibition)."""
    d = day_index
    neurons = geometry["neurons"]
    params = settings.task_params
    threshold, failure_bound = task
    s = seeds[3 + 6 * d : 9 + 6 * d]
    transform = draw_day_transform(settings, day_index=d, rng=np.random.default_rng(s[0]))
    brightness = settings.day_brightness[d] if d < len(settings.day_brightness) else 1.0
    sgeom = session_geometry(geometry, transform, settings=settings, brightness=brightness)
    targets = target_polygons(geometry, transform, settings=settings)
    n = settings.n_frames
    day: dict[str, Any] = {
        "session": f"day{d + 1:02d}",
        "transform": transform,
        "sgeom": sgeom,
        "targets": targets,
        "rates_hz": rates.copy(),
        "motion": activity.simulate_motion(n, settings=settings, rng=np.random.default_rng(s[1])),
        "noise_seed": int(s[2]),
    }
    for spike_day, frame, row_px, col_px in settings.motion_spikes:
        if spike_day == d:
            day["motion"]["shift_row"][frame] += row_px
            day["motion"]["shift_col"][frame] += col_px
    soma = activity.simulate_soma(
        geometry, rates, n_frames=n, settings=settings, rng=np.random.default_rng(s[3])
    )
    silent = [t for silent_day, t in settings.silent_targets if silent_day == d]
    day.update(activity.silence_neurons(soma, np.flatnonzero(neurons.target_id.isin(silent))))
    F, shift_row, shift_col = _online_target_f(day, sgeom, targets, settings, s[4], online_f)
    online_dff = _online_dff(F, params)
    readout = _readout(online_dff, targets, params)
    bci_log = cloose.run_task(
        readout, threshold=threshold, failure_bound=failure_bound, params=params
    )
    opto = _complete_bci_log(bci_log, shift_row, shift_col, settings, subject=subject, seed=s[5])
    error = activity.task_error(
        bci_log,
        params=params,
        fs_hz=settings.fs_hz,
        smooth_s=settings.epoch_smooth_s,
        trend_window_s=settings.epoch_window_s,
        trend_gap_s=settings.epoch_gap_s,
    )
    events, dend = activity.simulate_dendrites(
        geometry,
        day["bursts"],
        error[PLANTED_EPOCH_COLUMN[settings.planted_epoch]].to_numpy(),
        n_frames=n,
        settings=settings,
        rng=np.random.default_rng(s[5]),
        opto=opto,
    )
    day.update(
        {
            "online_f": F,
            "online_dff": online_dff,
            "bci": bci_log,
            "error": error,
            "events": events,
            "dendrite_calcium": dend,
        }
    )
    n_hits = int(bci_log.reward.sum())
    n_trials = int(bci_log.new_trial.sum())
    log.info("%s %s: %d trials, %d hits", subject, day["session"], n_trials, n_hits)
    return day, opto


def _online_target_f(
    day: dict[str, Any],
    sgeom: dict[str, Any],
    targets: list[dict[str, Any]],
    settings: SimulateSettings,
    seed: int,
    online_f: OnlineF | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rig's online target F and its online shifts: from rendered frames through
    ``online_f`` (movie mode), else the motion-free image model with shot noise."""
    n = settings.n_frames
    shape = (settings.n_rows, settings.n_cols)
    if online_f is None:
        F = activity.analytic_online_f(
            sgeom,
            polygon_masks(targets, shape),
            day,
            settings=settings,
            rng=np.random.default_rng(seed),
        )
        shift_row = shift_col = np.zeros(n, dtype=np.int64)
    else:
        F, shift_row, shift_col = online_f(day)
    return F, shift_row, shift_col


def _complete_bci_log(
    bci_log: pd.DataFrame,
    shift_row: np.ndarray,
    shift_col: np.ndarray,
    settings: SimulateSettings,
    *,
    subject: str,
    seed: int,
) -> np.ndarray | None:
    """Add licks (one second after each reward), the online shifts and, with inhibited
    subjects, the opto frames to the BCI log; returns the opto frames or None."""
    licks = np.zeros(settings.n_frames, dtype=np.int64)
    for f in np.flatnonzero(bci_log.reward.to_numpy()):
        licks[f : f + int(settings.fs_hz)] = 1
    bci_log["licks"] = licks
    bci_log["shift_row"] = shift_row
    bci_log["shift_col"] = shift_col
    opto = None
    if settings.inhibited_subjects:
        opto = opto_frames(
            bci_log,
            lit=subject in settings.inhibited_subjects,
            trial_fraction=settings.opto_trial_fraction,
            rng=np.random.default_rng([int(seed), 1]),
        )
        bci_log["opto"] = opto
    return opto


def _learn(
    rates: np.ndarray,
    events: pd.DataFrame,
    opto: np.ndarray | None,
    targets: np.ndarray,
    settings: SimulateSettings,
) -> np.ndarray:
    """Next day's burst rates: residuals in reduction epochs push the targets' rates."""
    coinc = events[(events.kind == "coincident") & (events.epoch == "reduction")]
    if settings.residual_amplitude > 0 and len(coinc):
        drive = coinc.planted_residual
        if opto is not None:
            slowed = np.where(coinc.opto > 0, settings.inhibition_learning_factor, 1.0)
            drive = coinc.instructive_residual * slowed
        mean_drive = (
            (drive.groupby(coinc.neuron).mean() / settings.residual_amplitude)
            .reindex(range(rates.size), fill_value=0.0)
            .to_numpy()
        )
        rates = rates * np.exp(settings.learning_rate_per_day * mean_drive * targets)
    return rates


def opto_frames(
    bci_log: pd.DataFrame, *, lit: bool, trial_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Per-frame light (0/1) of a session: none unless ``lit``; every frame when
    ``trial_fraction`` is 1, else the frame blocks of that share of trials (at random)."""
    n = len(bci_log)
    if not lit:
        return np.zeros(n, dtype=np.int64)
    if trial_fraction >= 1:
        return np.ones(n, dtype=np.int64)
    trial = bci_log["trial"].to_numpy()
    ids = np.unique(trial[trial >= 0])
    chosen = ids[rng.random(ids.size) < trial_fraction]
    return np.isin(trial, chosen).astype(np.int64)


def _online_dff(F: np.ndarray, params: cloose.TaskParams) -> np.ndarray:
    return cloose.compute_online_dff(
        F, window_frames=params.f0_window, percentile=params.f0_percentile
    )


def _readout(
    dff: np.ndarray, targets: list[dict[str, Any]], params: cloose.TaskParams
) -> np.ndarray:
    """The rig's readout from the targets' online dF/F (:func:`_online_dff`)."""
    groups = np.array([t["group"] for t in targets])
    return cloose.compute_readout(
        dff[groups == "P+"], dff[groups == "P-"], smooth_frames=params.smooth_frames
    )


def simulate_traces(
    settings: SimulateSettings, *, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Trace-level cohort (no movies): one :func:`simulate_subject` per subject ``m01``..."""
    return [
        simulate_subject(settings, subject=f"m{k + 1:02d}", rng=rng)
        for k in range(settings.n_subjects)
    ]
