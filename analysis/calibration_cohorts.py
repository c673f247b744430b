"""The measurement path of calibration cohorts: simulated animals measured as real data are.

Used by :mod:`analysis.calibrate` (the headline group x epoch test) and
:mod:`analysis.calibrate_interaction` (the condition x group x epoch test). Each animal is
simulated at trace level with the closed loop; :func:`measured_tables` turns it into the
stats stage's inputs through the path real data take:

1. measured traces: each target soma's dF/F is the rig's own online dF/F of its polygon
   (the very shot noise that moved the cursor) plus independent noise up to the chosen
   level; each tuft's dF/F is its calcium plus noise at that level;
2. :func:`analysis.extract.detect_events` on both planes;
3. epochs from the logged grating angle (:func:`analysis.bci.compute_task_error`);

and :func:`analysis.stats.residual_events` then fits them as the stats stage does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis import bci, extract, simulate, stats
from analysis.dims import FRAME, ROI, TIME
from analysis.settings import StageSettings

#: dF/F noise SD per frame at 15 Hz: CASCADE DS14 (GCaMP6s) recordings, binned to 15 Hz,
#: have noise / single-AP response of 0.125, 0.19, 0.29 and 0.34 at their 25th, 50th, 75th
#: and 90th percentiles; with the simulator's single-spike response (~0.22 dF/F over
#: 0.5 s) 0.03 ~ 25th, 0.055 (the simulated rig's own shot noise) ~ 65th, 0.075 ~ 90th.
NOISE_LEVELS_DFF = {"low": 0.03, "mid": 0.055, "high": 0.075}


def cohort_settings(
    settings: StageSettings, simulate_settings: simulate.SimulateSettings, **overrides: Any
) -> simulate.SimulateSettings:
    """Simulator settings of a calibration animal (validated): the calibration's size
    (``settings``: :class:`analysis.calibrate.CalibrateSettings`), the gain drift, a null
    residual, then ``overrides``."""
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


def photon_scaled(sim: simulate.SimulateSettings, scale: float) -> dict[str, float]:
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
        extra = np.sqrt(np.maximum(noise_dff**2 - noise_sd(online) ** 2, 0.0))
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
    out["sessions"] = pd.DataFrame(
        {"subject": subject, "session": sessions, "fs_hz": fs, "condition": animal["condition"]}
    )
    return out


def noise_sd(traces: np.ndarray) -> np.ndarray:
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


def merge_tables(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A cohort's stats inputs from its animals' :func:`measured_tables`."""
    merged: dict[str, Any] = {"soma_dff": {}, "dendrite_dff": {}}
    for part in parts:
        merged["soma_dff"].update(part["soma_dff"])
        merged["dendrite_dff"].update(part["dendrite_dff"])
    for name in ("events", "pairs", "targets", "epochs", "sessions"):
        merged[name] = pd.concat([p[name] for p in parts], ignore_index=True)
    return merged


def dendrite_gain(sim: simulate.SimulateSettings, stats_settings: stats.StatsSettings) -> float:
    """Dendritic window response per unit dendritic event magnitude (for planting sizes)."""
    kernel = simulate.calcium_kernel(sim.tau_rise_s, sim.tau_dendrite_decay_s, sim.fs_hz)
    n = max(1, int(round(stats_settings.response_window_s * sim.fs_hz)))
    return float(kernel[:n].mean())


def animal_dendrites(
    animal: dict[str, Any],
    sim: simulate.SimulateSettings,
    *,
    n_frames: int,
    rng: np.random.Generator,
) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """Per day, :func:`analysis.simulate.simulate_dendrites` of a simulated animal under
    ``sim`` (its planted residual and inhibition; lit frames from its log's ``opto``)."""
    return [
        simulate.simulate_dendrites(
            animal["geometry"],
            day["bursts"],
            day["error"].trend_epoch.to_numpy(),
            n_frames=n_frames,
            settings=sim,
            rng=rng,
            opto=day["bci"]["opto"].to_numpy() if "opto" in day["bci"] else None,
        )
        for day in animal["days"]
    ]
