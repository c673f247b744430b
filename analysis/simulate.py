"""Experiment simulator with ground truth (DESIGN.md section 5).

Simulates BCI experiments, not just movies: per subject ``n_days`` daily sessions
(``day01``, ``day02``, ...), a soma plane (plane 0) and an apical-tuft dendrite plane
(plane 1) imaged as interleaved volumes at ``fs_hz``; P+/P- target neurons and
non-targets; the CLOOSE closed loop (:mod:`analysis.cloose`); bAP-coupled dendritic
events whose somato-dendritic (SD) residual carries the planted instructive signal; and
learning across days driven by those residuals.

Order of one simulated day
--------------------------
1. Somatic bursts (rates from the learning state) -> spikes and noise-free calcium (dF/F).
2. Online target F (the soma plane's polygon means): either from the rendered raw frames
   after online rigid correction (movie mode, ``online_f`` callback) or from the same
   linear image model without motion and with Gaussian shot noise (trace mode).
3. Readout (:func:`cloose.compute_online_dff`, :func:`cloose.compute_readout`); the
   threshold and failure bound come from a day-1 baseline (``baseline_frames``, trace
   level only) via :func:`cloose.calibrate_threshold` and are kept on later days (the
   rig caps later difficulty at day 1's); :func:`cloose.run_task` gives the BCI log.
4. Task error = grating steps from the target on active frames; its smoothed derivative
   gives error-reduction (< 0) and error-increase (> 0) epochs per frame. The epoch that
   carries the planted signal is the *trend before* each burst: the slope of the error
   over ``epoch_window_s`` ending ``epoch_gap_s`` before the burst
   (:func:`analysis.bci.causal_error_trend`), which the burst itself cannot have moved.
5. Every somatic burst drives a coincident dendritic event of magnitude
   ``intercept + gain_day * s_ref * (soma_magnitude / s_ref) ** coupling_exponent +
   planted + noise`` (``s_ref = spike_dff * mean_burst_spikes``; exponent 1 is linear,
   > 1 supralinear; ``gain_day`` is the neuron's gain times a per-day factor
   ``exp(N(0, coupling_gain_drift_sd))``); ``planted`` is ``+residual_amplitude`` for P+
   and ``-residual_amplitude`` for P- when the error fell before the burst,
   ``increase_residual_factor`` times that when it rose, 0 otherwise and for non-targets
   (and for everyone in null mode). Dendrite-only events are added.
6. Learning: each target's burst rate is multiplied by
   ``exp(learning_rate_per_day * mean planted residual in reduction epochs /
   residual_amplitude)`` for the next day.

Conventions
-----------
- Within-session motion: raw(r, c) = motion-free(r - dr, c - dc) with
  ``dr = shift_row(t) + amp_row(t) * sin(2 pi c / wavelength_px + phase_row)`` and
  ``dc = shift_col(t) + amp_col(t) * sin(2 pi r / wavelength_px + phase_col)``; identical
  for both planes of a volume (register.py's sign convention).
- Cross-day transform of a session maps REFERENCE (day01) coordinates to SESSION
  coordinates: ``p_s = R(rotation_deg) @ (p_ref - center) + center + (shift_row,
  shift_col)`` with ``p = (row, col)``, ``center = ((n_rows - 1) / 2, (n_cols - 1) / 2)``
  and ``R(a) = [[cos a, -sin a], [sin a, cos a]]``. day01 is the identity.
- Truth masks are in each session's motion-free raw coordinates.

Outputs (:func:`simulate_subject`) are plain dicts of numpy arrays and DataFrames; the
file layout is written by :mod:`analysis.session_format` (see there).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis import bci, cloose
from analysis.settings import StageSettings, require
from analysis.vocabulary import DEFAULT_CONDITION, NO_EPOCH, SIMULATED_NON_TARGET

log = logging.getLogger(__name__)

GROUPS = ("P+", "P-", SIMULATED_NON_TARGET)
EPOCH_CODES = {NO_EPOCH: 0, "reduction": 1, "increase": -1}
#: ``planted_epoch`` -> the ``task_error`` column that carries the planted residual:
#: 'trend_before' (default) the error trend before each burst, which the burst cannot have
#: moved; 'centred' the per-frame epoch of a centred window (the definition before the
#: closed-loop confounds were handled; the imaging integration tests pin it so they keep
#: the realizations their thresholds were measured on).
PLANTED_EPOCH_COLUMN = {"trend_before": "trend_epoch", "centred": "epoch"}
CONTROL_CONDITION = DEFAULT_CONDITION
INHIBITION_SETTINGS = (
    "inhibited_subjects",
    "inhibition_condition",
    "inhibition_residual_removed",
    "inhibition_learning_factor",
    "opto_trial_fraction",
)


@dataclasses.dataclass(frozen=True)
class SimulateSettings(StageSettings):
    """Simulator settings (config section ``simulate``); realistic defaults, see PRESETS.

    Intensities are expected photons per pixel per volume; dF/F units are fractions.

    Edge cases (all off by default): ``motion_spikes`` entries ``(day index, frame,
    row px, col px)`` add a rigid shift to one frame of one day (a sudden movement);
    ``day_brightness[d]`` scales every photon rate of day index ``d`` (laser power,
    window clarity; days beyond the tuple keep 1); ``silent_targets`` entries ``(day
    index, target id)`` remove that target's somatic bursts on that day, and with them
    its coupled dendritic events.

    Dendritic inhibition (the NDNF+ experiment; off while ``inhibited_subjects`` is empty):
    subjects named in ``inhibited_subjects`` are in condition ``inhibition_condition``
    (the others in ``control``) and get the light (``opto`` = 1 in their BCI log) on every
    frame, or, with ``opto_trial_fraction`` < 1, on the whole frame block of that share of
    trials, drawn at random (interleaved light-on and light-off trials). Bursts on lit
    frames lose ``inhibition_residual_removed`` of their planted residual (1: abolished)
    and drive learning ``inhibition_learning_factor`` times as much (the planted residual
    before removal sets the drive, so the two effects are set apart).
    """

    section: ClassVar[str] = "simulate"

    n_subjects: int = 1
    n_days: int = 3
    n_rows: int = 256
    n_cols: int = 256
    n_frames: int = 3000
    fs_hz: float = 15.0
    n_neurons: int = 60
    n_pos_targets: int = 5
    n_neg_targets: int = 4
    n_distractor_dendrites: int = 15
    soma_radius_px: float = 4.0
    tuft_offset_px: float = 9.0
    segment_length_px: tuple[float, float] = (10.0, 22.0)
    max_motion_px: float = 6.0
    max_nonrigid_px: float = 1.5
    nonrigid_wavelength_px: float = 160.0
    max_day_shift_px: float = 15.0
    max_day_rotation_deg: float = 2.0
    neuropil_coefficient: float = 0.7
    photons_soma: float = 8.0
    photons_dendrite: float = 8.0
    photons_background: float = 1.0
    photons_neuropil: float = 2.0
    neuropil_fluctuation: float = 0.3
    neuropil_timescale_s: float = 5.0
    raw_offset: int = 0
    tau_rise_s: float = 0.07
    tau_decay_s: float = 0.7
    tau_dendrite_decay_s: float = 0.4
    burst_rate_hz: float = 0.25
    mean_burst_spikes: float = 2.5
    spike_dff: float = 0.3
    coupling_gain: float = 0.8
    coupling_gain_sd: float = 0.15
    coupling_intercept: float = 0.05
    coupling_exponent: float = 1.0
    coupling_gain_drift_sd: float = 0.0
    residual_amplitude: float = 0.35
    residual_noise_sd: float = 0.08
    increase_residual_factor: float = -1.0
    dendrite_only_rate_hz: float = 0.04
    learning_rate_per_day: float = 0.35
    null: bool = False
    baseline_frames: int = 15000
    calibration_trials: int = 200
    calibration_trial_frames: int = 435
    hit_fraction: float = 0.5
    max_trial_frames: int = 435
    epoch_smooth_s: float = 0.5
    epoch_window_s: float = 1.0
    epoch_gap_s: float = 0.3
    planted_epoch: Literal["trend_before", "centred"] = "trend_before"
    chunk_frames: int = 200
    motion_spikes: tuple[tuple[int, int, float, float], ...] = ()
    day_brightness: tuple[float, ...] = ()
    silent_targets: tuple[tuple[int, int], ...] = ()
    inhibited_subjects: tuple[str, ...] = ()
    inhibition_condition: str = "ndnf_opto"
    inhibition_residual_removed: float = 1.0
    inhibition_learning_factor: float = 0.25
    opto_trial_fraction: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_subjects", "n_days", "n_frames", "n_neurons", "chunk_frames"):
            require(getattr(self, name) >= 1, f"simulate.{name} must be >= 1")
        require(self.n_pos_targets >= 1, "simulate.n_pos_targets must be >= 1")
        require(self.n_neg_targets >= 1, "simulate.n_neg_targets must be >= 1")
        require(
            self.n_pos_targets + self.n_neg_targets <= self.n_neurons,
            "simulate.n_pos_targets + n_neg_targets must be <= n_neurons",
        )
        require(self.n_distractor_dendrites >= 0, "simulate.n_distractor_dendrites must be >= 0")
        require(self.fs_hz > 0, "simulate.fs_hz must be > 0")
        require(self.soma_radius_px >= 2, "simulate.soma_radius_px must be >= 2")
        require(
            0 <= self.max_nonrigid_px < self.max_motion_px,
            "simulate.max_nonrigid_px must be in [0, max_motion_px)",
        )
        require(self.max_day_shift_px >= 0, "simulate.max_day_shift_px must be >= 0")
        require(
            0 <= self.max_day_rotation_deg <= 10,
            "simulate.max_day_rotation_deg must be in 0..10",
        )
        require(
            0 <= self.neuropil_coefficient <= 1, "simulate.neuropil_coefficient must be in 0..1"
        )
        for name in ("photons_soma", "photons_dendrite", "photons_background", "tau_rise_s"):
            require(getattr(self, name) > 0, f"simulate.{name} must be > 0")
        require(self.tau_decay_s > self.tau_rise_s, "simulate.tau_decay_s must exceed tau_rise_s")
        require(
            self.tau_dendrite_decay_s > self.tau_rise_s,
            "simulate.tau_dendrite_decay_s must exceed tau_rise_s",
        )
        require(self.mean_burst_spikes >= 1, "simulate.mean_burst_spikes must be >= 1")
        require(self.residual_amplitude >= 0, "simulate.residual_amplitude must be >= 0")
        require(0.5 <= self.coupling_exponent <= 2, "simulate.coupling_exponent must be in 0.5..2")
        require(self.coupling_gain_drift_sd >= 0, "simulate.coupling_gain_drift_sd must be >= 0")
        require(self.epoch_window_s > 0, "simulate.epoch_window_s must be > 0 seconds")
        require(self.epoch_gap_s >= 0, "simulate.epoch_gap_s must be >= 0 seconds")
        require(
            self.planted_epoch in ("trend_before", "centred"),
            "simulate.planted_epoch must be 'trend_before' or 'centred'",
        )
        require(
            -1 <= self.increase_residual_factor <= 1,
            "simulate.increase_residual_factor must be in -1..1",
        )
        require(0 < self.hit_fraction < 1, "simulate.hit_fraction must be in (0, 1)")
        require(
            1 <= self.calibration_trial_frames <= self.baseline_frames,
            "simulate.calibration_trial_frames must be in 1..baseline_frames",
        )
        for day, frame, _, _ in self.motion_spikes:
            require(
                0 <= day < self.n_days and 0 <= frame < self.n_frames,
                f"simulate.motion_spikes: (day {day}, frame {frame}) must index a simulated "
                f"day (0..{self.n_days - 1}) and frame (0..{self.n_frames - 1})",
            )
        require(
            len(self.day_brightness) <= self.n_days and all(b > 0 for b in self.day_brightness),
            "simulate.day_brightness must hold at most n_days factors, each > 0",
        )
        n_targets = self.n_pos_targets + self.n_neg_targets
        for day, target in self.silent_targets:
            require(
                0 <= day < self.n_days and 0 <= target < n_targets,
                f"simulate.silent_targets: (day {day}, target {target}) must index a simulated "
                f"day (0..{self.n_days - 1}) and target id (0..{n_targets - 1})",
            )
        subjects = {f"m{k + 1:02d}" for k in range(self.n_subjects)}
        require(
            set(self.inhibited_subjects) <= subjects,
            f"simulate.inhibited_subjects {sorted(set(self.inhibited_subjects) - subjects)} are "
            f"not simulated subjects (m01..m{self.n_subjects:02d})",
        )
        require(
            self.inhibition_condition != CONTROL_CONDITION
            and bool(re.fullmatch(r"[A-Za-z0-9_.-]+", self.inhibition_condition)),
            "simulate.inhibition_condition must be a name of letters, digits, '_', '-', '.' "
            f"other than '{CONTROL_CONDITION}'",
        )
        for name in ("inhibition_residual_removed", "inhibition_learning_factor"):
            require(0 <= getattr(self, name) <= 1, f"simulate.{name} must be in 0..1")
        require(0 < self.opto_trial_fraction <= 1, "simulate.opto_trial_fraction must be in (0, 1]")
        lo, hi = self.segment_length_px
        require(0 < lo <= hi, "simulate.segment_length_px must be (min, max) with 0 < min <= max")
        require(
            min(self.n_rows, self.n_cols) - 2 * self.margin_px >= 4 * self.soma_radius_px,
            f"simulate: field of view {self.n_rows}x{self.n_cols} px is too small for the "
            f"border margin of {self.margin_px:.1f} px (max_day_shift_px + rotation + "
            "max_motion_px + soma radius); enlarge n_rows/n_cols or reduce the shifts",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view without the edge-case options left at their defaults.

        Truth files record these settings: leaving unset options out keeps files
        simulated before the options existed identical when regenerated.
        """
        out = super().to_dict()
        for name in ("motion_spikes", "day_brightness", "silent_targets"):
            if not out[name]:
                del out[name]
        if not out["inhibited_subjects"]:
            for name in INHIBITION_SETTINGS:
                del out[name]
        return out

    def condition_of(self, subject: str) -> str:
        """The experimental condition a simulated subject is in."""
        if subject in self.inhibited_subjects:
            return self.inhibition_condition
        return CONTROL_CONDITION

    @property
    def margin_px(self) -> float:
        """Border kept free of somata so every ROI stays in view on every day."""
        half = max(self.n_rows, self.n_cols) / 2
        rotation = half * np.sqrt(2) * np.deg2rad(self.max_day_rotation_deg)
        return self.max_day_shift_px + rotation + self.max_motion_px + self.soma_radius_px + 2

    @property
    def task_params(self) -> cloose.TaskParams:
        """The CLOOSE task parameters used on every simulated day."""
        return cloose.TaskParams(max_trial_frames=self.max_trial_frames)


PRESETS: dict[str, dict[str, Any]] = {
    # data_sample/: small enough to ship (<= 40 MB), long enough for trials and events
    "sample": {
        "n_rows": 104,
        "n_cols": 104,
        "n_frames": 950,
        "n_neurons": 40,
        "n_distractor_dendrites": 8,
        "soma_radius_px": 3.5,
        "max_motion_px": 4.0,
        "max_day_shift_px": 6.0,
        "nonrigid_wavelength_px": 84.0,
        "max_trial_frames": 120,
        "calibration_trial_frames": 120,
        "burst_rate_hz": 0.35,
    },
    # the validation cohort (issue: imaging stages to ground-truth quality)
    "validate": {"n_subjects": 3, "n_days": 5},
}


# --- geometry -----------------------------------------------------------------------------


def _place_somata(settings: SimulateSettings, rng: np.random.Generator) -> np.ndarray:
    """Soma centres (neuron, 2) in reference coords, >= 2 radii apart, inside the margin.

    A random subset of the cells of a grid over the usable field, each jittered within
    its cell: dense fields always succeed (random sequential placement jams above ~55%
    packing and then fails for some seeds).
    """
    m = settings.margin_px
    min_dist = 2.0 * settings.soma_radius_px
    extent = np.array([settings.n_rows - 1 - 2 * m, settings.n_cols - 1 - 2 * m])
    n_grid = np.ceil(np.sqrt(settings.n_neurons * extent / extent[::-1])).astype(int)
    spacing = extent / n_grid
    if spacing.min() < min_dist:
        raise ValueError(
            f"simulate: {settings.n_neurons} somata {min_dist:.1f} px apart do not fit in a "
            f"{settings.n_rows}x{settings.n_cols} field with margin {m:.1f} px; reduce "
            "n_neurons or soma_radius_px, or enlarge the field"
        )
    cells = rng.choice(n_grid.prod(), size=settings.n_neurons, replace=False)
    index = np.stack(np.unravel_index(cells, tuple(n_grid)), axis=1)
    jitter = rng.uniform(-0.5, 0.5, size=(settings.n_neurons, 2)) * (spacing - min_dist)
    return m + (index + 0.5) * spacing + jitter


def _soma_footprint(
    centre: np.ndarray, shape: tuple[int, int], radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Soft elliptical soma (row, col) with a dimmer nucleus, peak 1."""
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    a, b = radius * rng.uniform(0.85, 1.15, size=2)
    theta = rng.uniform(0, np.pi)
    dr, dc = rr - centre[0], cc - centre[1]
    u = (dr * np.cos(theta) + dc * np.sin(theta)) / a
    v = (-dr * np.sin(theta) + dc * np.cos(theta)) / b
    d = np.sqrt(u**2 + v**2)
    body = 1.0 / (1.0 + np.exp((d - 1.0) * 8.0))
    nucleus = 0.4 * np.exp(-(d**2) / 0.18)
    fp = np.clip(body - nucleus, 0, None)
    fp[fp < 0.02] = 0
    return fp / fp.max()


def _tuft_footprint(
    start: np.ndarray,
    n_segments: int,
    shape: tuple[int, int],
    settings: SimulateSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Thin (2-3 px) branching segments grown as smooth random walks from ``start``, peak 1."""
    m = settings.margin_px - settings.soma_radius_px
    points: list[np.ndarray] = []
    for k in range(n_segments):
        p = start.copy() if k == 0 else points[rng.integers(len(points))].copy()
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(*settings.segment_length_px)
        for _ in range(int(length / 0.5)):
            heading += rng.normal(0, 0.08)
            p = p + 0.5 * np.array([np.sin(heading), np.cos(heading)])
            p = np.clip(p, [m, m], [shape[0] - 1 - m, shape[1] - 1 - m])
            points.append(p)
    img = np.zeros(shape)
    idx = np.round(np.array(points)).astype(int)
    np.add.at(img, (idx[:, 0], idx[:, 1]), 1.0)
    img = ndimage.gaussian_filter(img, 0.7)
    fp = np.clip(img / (0.5 * img.max()), 0, 1)
    fp[fp < 0.1] = 0
    return fp


def _smooth_texture(
    shape: tuple[int, int], sigma_px: float, rng: np.random.Generator
) -> np.ndarray:
    """Positive smooth random texture with mean 1."""
    tex = ndimage.gaussian_filter(rng.normal(size=shape), sigma_px)
    tex = (tex - tex.mean()) / (tex.std() + 1e-12)
    return np.clip(1 + 0.35 * tex, 0.2, None)


def simulate_geometry(settings: SimulateSettings, *, rng: np.random.Generator) -> dict[str, Any]:
    """Reference-day (day01) geometry of one subject.

    Returns
    -------
    dict
        ``neurons`` (DataFrame: neuron, group, target_id, centroid_row, centroid_col,
        tuft, coupling_gain, coupling_intercept, burst_rate_hz), ``dendrites``
        (DataFrame: tuft, neuron (-1 = distractor of a non-imaged neuron), n_segments,
        centroid_row, centroid_col, offset_px), ``soma_fp`` (neuron, row, col) and
        ``tuft_fp`` (tuft, row, col) footprints peak 1, ``background`` (plane, row, col)
        and ``neuropil`` (plane, row, col) spatial images (photons at rest).
    """
    shape = (settings.n_rows, settings.n_cols)
    n = settings.n_neurons
    centres = _place_somata(settings, rng)
    groups = np.array([SIMULATED_NON_TARGET] * n, dtype=object)
    target_idx = rng.choice(n, settings.n_pos_targets + settings.n_neg_targets, replace=False)
    groups[target_idx[: settings.n_pos_targets]] = "P+"
    groups[target_idx[settings.n_pos_targets :]] = "P-"
    target_id = np.full(n, -1)
    target_id[np.sort(target_idx)] = np.arange(target_idx.size)
    soma_fp = np.stack([_soma_footprint(c, shape, settings.soma_radius_px, rng) for c in centres])

    n_tufts = n + settings.n_distractor_dendrites
    m = settings.margin_px
    tuft_fp = []
    rows = []
    for k in range(n_tufts):
        if k < n:
            angle = rng.uniform(0, 2 * np.pi)
            offset = settings.tuft_offset_px * rng.uniform(0.8, 1.5)
            start = centres[k] + offset * np.array([np.sin(angle), np.cos(angle)])
            start = np.clip(start, m, np.array(shape) - 1 - m)
        else:
            start = rng.uniform([m, m], [shape[0] - 1 - m, shape[1] - 1 - m])
        n_seg = int(rng.integers(1, 4))
        fp = _tuft_footprint(start, n_seg, shape, settings, rng)
        tuft_fp.append(fp)
        com = ndimage.center_of_mass(fp)
        rows.append(
            {
                "tuft": k,
                "neuron": k if k < n else -1,
                "n_segments": n_seg,
                "centroid_row": com[0],
                "centroid_col": com[1],
                "offset_px": float(np.hypot(*(np.array(com) - centres[k]))) if k < n else np.nan,
            }
        )
    neurons = pd.DataFrame(
        {
            "neuron": np.arange(n),
            "group": groups.astype(str),
            "target_id": target_id,
            "centroid_row": centres[:, 0],
            "centroid_col": centres[:, 1],
            "tuft": np.arange(n),
            "coupling_gain": np.clip(
                rng.normal(settings.coupling_gain, settings.coupling_gain_sd, n), 0.2, None
            ),
            "coupling_intercept": settings.coupling_intercept * rng.uniform(0.5, 1.5, n),
            "burst_rate_hz": settings.burst_rate_hz * rng.lognormal(0, 0.3, n),
        }
    )
    cells = np.stack([soma_fp.max(axis=0), np.max(tuft_fp, axis=0)]) > 0
    background = np.stack([_smooth_texture(shape, 6, rng) for _ in range(2)])
    background *= settings.photons_background
    # Somata and dendrites displace neuropil, so an ROI sees ~coefficient x the surround.
    neuropil = np.stack([_smooth_texture(shape, 12, rng) for _ in range(2)])
    neuropil *= settings.photons_neuropil * np.where(cells, settings.neuropil_coefficient, 1.0)
    return {
        "neurons": neurons,
        "dendrites": pd.DataFrame(rows),
        "soma_fp": soma_fp.astype(np.float32),
        "tuft_fp": np.array(tuft_fp, dtype=np.float32),
        "background": background.astype(np.float32),
        "neuropil": neuropil.astype(np.float32),
    }


def draw_day_transform(
    settings: SimulateSettings, *, day_index: int, rng: np.random.Generator
) -> dict[str, float]:
    """Cross-day transform (reference -> session coords); identity for day01."""
    if day_index == 0:
        return {"shift_row": 0.0, "shift_col": 0.0, "rotation_deg": 0.0}
    shift = rng.uniform(-1, 1, size=2) * settings.max_day_shift_px
    return {
        "shift_row": float(shift[0]),
        "shift_col": float(shift[1]),
        "rotation_deg": float(rng.uniform(-1, 1) * settings.max_day_rotation_deg),
    }


def to_session_coords(images: np.ndarray, transform: dict[str, float]) -> np.ndarray:
    """Resample reference-coordinate images (..., row, col) into session coordinates.

    Bilinear (order 1); the inverse map ``p_ref = R(-a) (p_s - center - shift) + center``
    is evaluated for every session pixel (see the module's convention).
    """
    a = np.deg2rad(transform["rotation_deg"])
    rot_inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    shape = images.shape[-2:]
    centre = (np.array(shape) - 1) / 2
    shift = np.array([transform["shift_row"], transform["shift_col"]])
    offset = centre - rot_inv @ (centre + shift)
    flat = images.reshape(-1, *shape)
    out = np.stack(
        [
            ndimage.affine_transform(im, rot_inv, offset=offset, order=1, mode="constant")
            for im in flat
        ]
    )
    return out.reshape(images.shape).astype(images.dtype)


def target_polygons(
    geometry: dict[str, Any], transform: dict[str, float], *, settings: SimulateSettings
) -> list[dict[str, Any]]:
    """Online target polygons (16-gons around each target soma) in session raw coords."""
    neurons = geometry["neurons"]
    targets = neurons[neurons.group != SIMULATED_NON_TARGET].sort_values("target_id")
    a = np.deg2rad(transform["rotation_deg"])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = (np.array([settings.n_rows, settings.n_cols]) - 1) / 2
    shift = np.array([transform["shift_row"], transform["shift_col"]])
    phi = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    radius = settings.soma_radius_px + 0.5
    out = []
    for row in targets.itertuples():
        c = rot @ (np.array([row.centroid_row, row.centroid_col]) - centre) + centre + shift
        poly = c + radius * np.stack([np.sin(phi), np.cos(phi)], axis=1)
        out.append(
            {
                "id": int(row.target_id),
                "group": row.group,
                "plane": 0,
                "neuron": int(row.neuron),
                "polygon": np.round(poly, 2).tolist(),
            }
        )
    return out


def polygon_masks(polygons: Sequence[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Boolean masks (target, row, col) of polygons given as [[row, col], ...]."""
    from skimage.draw import polygon as draw_polygon

    masks = np.zeros((len(polygons), *shape), dtype=bool)
    for k, target in enumerate(polygons):
        poly = np.asarray(target["polygon"], dtype=float)
        rr, cc = draw_polygon(poly[:, 0], poly[:, 1], shape=shape)
        masks[k, rr, cc] = True
    return masks


# --- activity -----------------------------------------------------------------------------


def calcium_kernel(tau_rise_s: float, tau_decay_s: float, fs_hz: float) -> np.ndarray:
    """Unit-peak double-exponential transient sampled at ``fs_hz`` (6 decay constants)."""
    t = np.arange(int(np.ceil(6 * tau_decay_s * fs_hz)) + 1) / fs_hz
    k = np.exp(-t / tau_decay_s) - np.exp(-t / tau_rise_s)
    return k / k.max()


def _convolve(events: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Causal convolution of (unit, time) event magnitudes with a kernel."""
    from scipy.signal import fftconvolve

    if events.shape[0] == 0:
        return events.astype(np.float32)
    out = fftconvolve(events, kernel[None, :], axes=1)[:, : events.shape[1]]
    return np.clip(out, 0, None).astype(np.float32)


def _bursts(
    rates_hz: np.ndarray, n_frames: int, settings: SimulateSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Somatic bursts: neuron, frame, n_spikes, soma_magnitude (dF/F)."""
    p = np.clip(rates_hz / settings.fs_hz, 0, 1)
    hit = rng.random((rates_hz.size, n_frames)) < p[:, None]
    neuron, frame = np.nonzero(hit)
    n_spikes = 1 + rng.poisson(settings.mean_burst_spikes - 1, size=neuron.size)
    magnitude = settings.spike_dff * n_spikes * rng.uniform(0.8, 1.2, size=neuron.size)
    return pd.DataFrame(
        {"neuron": neuron, "frame": frame, "n_spikes": n_spikes, "soma_magnitude": magnitude}
    )


def _slow_noise(n_frames: int, timescale_frames: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-SD slow fluctuation (Gaussian-filtered white noise)."""
    x = ndimage.gaussian_filter1d(rng.normal(size=n_frames + 200), timescale_frames)[100:-100]
    return (x - x.mean()) / (x.std() + 1e-12)


def simulate_soma(
    geometry: dict[str, Any],
    rates_hz: np.ndarray,
    *,
    n_frames: int,
    settings: SimulateSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Somatic bursts, spikes and calcium dF/F (neuron, time), neuropil (plane, time)."""
    n = rates_hz.size
    bursts = _bursts(rates_hz, n_frames, settings, rng)
    spikes = np.zeros((n, n_frames), dtype=np.int16)
    events = np.zeros((n, n_frames))
    np.add.at(spikes, (bursts.neuron, bursts.frame), bursts.n_spikes.astype(np.int16))
    np.add.at(events, (bursts.neuron, bursts.frame), bursts.soma_magnitude)
    calcium = _convolve(
        events, calcium_kernel(settings.tau_rise_s, settings.tau_decay_s, settings.fs_hz)
    )
    timescale = settings.neuropil_timescale_s * settings.fs_hz
    neuropil = settings.neuropil_fluctuation * np.stack(
        [_slow_noise(n_frames, timescale, rng) for _ in range(2)]
    )
    return {
        "bursts": bursts,
        "spikes": spikes,
        "soma_calcium": calcium,
        "neuropil_trace": neuropil.astype(np.float32),
    }


def _silence(soma: dict[str, Any], neurons: np.ndarray) -> dict[str, Any]:
    """``simulate_soma`` output without any burst of ``neurons`` (indices); others untouched.

    A neuron's calcium comes only from its own bursts, so zeroing its rows is exact.
    """
    if not len(neurons):
        return soma
    spikes, calcium = soma["spikes"].copy(), soma["soma_calcium"].copy()
    spikes[neurons] = 0
    calcium[neurons] = 0
    bursts = soma["bursts"]
    bursts = bursts[~bursts.neuron.isin(neurons)].reset_index(drop=True)
    return {**soma, "bursts": bursts, "spikes": spikes, "soma_calcium": calcium}


def _plane_components(
    session_geometry: dict[str, Any], plane: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static image, footprints (unit, row, col) x brightness, and neuropil image."""
    return (
        session_geometry["static"][plane],
        session_geometry["bright_fp"][plane],
        session_geometry["neuropil"][plane],
    )


def session_geometry(
    geometry: dict[str, Any],
    transform: dict[str, float],
    *,
    settings: SimulateSettings,
    brightness: float = 1.0,
) -> dict[str, Any]:
    """Geometry of one session in its raw coordinates (footprints, static images, masks).

    ``brightness`` scales every photon rate (not the masks): a dimmer or brighter day.
    """
    soma_fp = to_session_coords(geometry["soma_fp"], transform)
    tuft_fp = to_session_coords(geometry["tuft_fp"], transform)
    background = brightness * to_session_coords(geometry["background"], transform)
    neuropil = brightness * to_session_coords(geometry["neuropil"], transform)
    bright = [
        brightness * settings.photons_soma * soma_fp,
        brightness * settings.photons_dendrite * tuft_fp,
    ]
    static = background + neuropil + np.stack([b.sum(axis=0) for b in bright])
    return {
        "soma_mask": np.where(soma_fp > 0.2, soma_fp, 0).astype(np.float32),
        "dendrite_mask": np.where(tuft_fp > 0.3, tuft_fp, 0).astype(np.float32),
        "static": static.astype(np.float32),
        "bright_fp": [b.astype(np.float32) for b in bright],
        "neuropil": neuropil.astype(np.float32),
    }


def analytic_online_f(
    sgeom: dict[str, Any],
    masks: np.ndarray,
    soma: dict[str, Any],
    *,
    raw_offset: float = 0.0,
    rng: np.random.Generator,
) -> np.ndarray:
    """Online polygon means (target, time) of the motion-free image model + shot noise."""
    static, fp, npil = _plane_components(sgeom, 0)
    m = masks.reshape(masks.shape[0], -1).astype(np.float64)
    npx = m.sum(axis=1, keepdims=True)
    w_cell = m @ fp.reshape(fp.shape[0], -1).T / npx
    mean = (
        (m @ static.ravel() / npx[:, 0])[:, None]
        + raw_offset
        + w_cell @ soma["soma_calcium"]
        + (m @ npil.ravel() / npx[:, 0])[:, None] * soma["neuropil_trace"][0][None, :]
    )
    return mean + rng.normal(size=mean.shape) * np.sqrt(np.clip(mean, 0, None) / npx)


def online_target_f(
    frames: np.ndarray,
    *,
    target_masks: np.ndarray,
    reference: np.ndarray,
    max_shift_px: float = 8.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rig's online step for a chunk: integer rigid correction then polygon means.

    Parameters
    ----------
    frames : array (time, row, col)
        Raw soma-plane frames.
    target_masks : bool array (target, row, col)
    reference : array (row, col)
        Online reference image.
    max_shift_px : float
        Largest shift searched (px).

    Returns
    -------
    F : array (target, time)
    shift_row, shift_col : int arrays (time,)
        Estimated displacement of frame content relative to the reference (px).
    """
    x = frames.astype(np.float64)
    x -= x.mean(axis=(1, 2), keepdims=True)
    ref = np.fft.fft2(reference - reference.mean())
    cross = np.fft.fft2(x) * np.conj(ref)[None]
    # Plain (unwhitened) cross-correlation: robust at a few photons per pixel.
    corr = np.fft.ifft2(cross).real
    n_r, n_c = reference.shape
    lag_r = np.fft.fftfreq(n_r, 1 / n_r)
    lag_c = np.fft.fftfreq(n_c, 1 / n_c)
    outside = (np.abs(lag_r)[:, None] > max_shift_px) | (np.abs(lag_c)[None, :] > max_shift_px)
    corr[:, outside] = -np.inf
    peak = corr.reshape(corr.shape[0], -1).argmax(axis=1)
    ir, ic = np.unravel_index(peak, (n_r, n_c))
    sr, sc = lag_r[ir].astype(np.int64), lag_c[ic].astype(np.int64)
    m = target_masks.reshape(target_masks.shape[0], -1).astype(np.float64)
    npx = m.sum(axis=1, keepdims=True)
    F = np.empty((m.shape[0], frames.shape[0]))
    for t in range(frames.shape[0]):
        corrected = np.roll(frames[t], (-sr[t], -sc[t]), axis=(0, 1)).astype(np.float64)
        F[:, t] = (m @ corrected.ravel()) / npx[:, 0]
    return F, sr.astype(np.int64), sc.astype(np.int64)


def simulate_motion(
    n_frames: int, *, settings: SimulateSettings, rng: np.random.Generator
) -> dict[str, Any]:
    """Rigid drift + slow wander + jitter, and smooth nonrigid warp amplitudes (px)."""
    t = np.linspace(0, 1, n_frames)
    rigid_max = settings.max_motion_px - settings.max_nonrigid_px
    rigid = []
    for _ in range(2):
        drift = rng.uniform(-0.4, 0.4) * t
        wander = 0.3 * _slow_noise(n_frames, 3 * settings.fs_hz, rng)
        jitter = 0.15 * rng.normal(size=n_frames)
        x = drift + 0.25 * wander + jitter
        x = x / max(np.abs(x).max(), 1e-9) * rng.uniform(0.6, 1.0)
        rigid.append(x * rigid_max)
    amp = [
        settings.max_nonrigid_px * np.tanh(_slow_noise(n_frames, 5 * settings.fs_hz, rng))
        for _ in range(2)
    ]
    return {
        "shift_row": rigid[0].astype(np.float32),
        "shift_col": rigid[1].astype(np.float32),
        "nonrigid_amp_row": amp[0].astype(np.float32),
        "nonrigid_amp_col": amp[1].astype(np.float32),
        "nonrigid_phase_row": float(rng.uniform(0, 2 * np.pi)),
        "nonrigid_phase_col": float(rng.uniform(0, 2 * np.pi)),
        "nonrigid_wavelength_px": settings.nonrigid_wavelength_px,
    }


def displacement_field(motion: dict[str, Any], frame: int, shape: tuple[int, int]) -> np.ndarray:
    """Total displacement (2, row, col) of frame content at raw pixels, px (rigid + warp)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    k = 2 * np.pi / motion["nonrigid_wavelength_px"]
    dr = motion["shift_row"][frame] + motion["nonrigid_amp_row"][frame] * np.sin(
        k * cc + motion["nonrigid_phase_row"]
    )
    dc = motion["shift_col"][frame] + motion["nonrigid_amp_col"][frame] * np.sin(
        k * rr + motion["nonrigid_phase_col"]
    )
    return np.stack([dr, dc])


def task_error(
    frames: pd.DataFrame,
    *,
    params: cloose.TaskParams,
    fs_hz: float,
    smooth_s: float,
    trend_window_s: float,
    trend_gap_s: float,
) -> pd.DataFrame:
    """Task error (grating steps from target, active frames), derivative and epochs.

    Active frames are trial frames whose angle follows the readout (not grey, not the
    outcome hold). The derivative is the centred difference of the error smoothed with
    a ``smooth_s`` box, computed within each run of active frames (``epoch``). The
    ``trend_epoch`` of frame f is the sign of the error's slope over ``trend_window_s``
    ending ``trend_gap_s`` before f (:func:`analysis.bci.causal_error_trend`).
    """
    angle = frames["angle_deg"].to_numpy(dtype=float)
    hold = np.zeros(angle.size, dtype=bool)
    for col, n in (("reward", params.reward_hold_frame - 1), ("aversive", 0)):
        for f in np.flatnonzero(frames[col].to_numpy() == 1):
            hold[max(0, f - n) : f - n + params.hold_frames] = True
    hit_start = np.flatnonzero(frames["reward"].to_numpy() == 1) - (params.reward_hold_frame - 1)
    hold[hit_start[hit_start >= 0]] = True
    active = np.isfinite(angle) & ~hold
    error = np.where(active, (params.target_angle_deg - angle) / params.step_deg, np.nan)
    deriv = np.full(angle.size, np.nan)
    width = max(1, int(round(smooth_s * fs_hz)))
    labels, n_runs = ndimage.label(active)
    for run in ndimage.find_objects(labels):
        seg = error[run[0]]
        if seg.size < 3:
            continue
        smooth = ndimage.uniform_filter1d(seg, width, mode="nearest")
        deriv[run[0]] = np.gradient(smooth) * fs_hz
    epoch = np.full(angle.size, NO_EPOCH, dtype=object)
    epoch[deriv < 0] = "reduction"
    epoch[deriv > 0] = "increase"
    trend = bci.causal_error_trend(error, fs_hz=fs_hz, window_s=trend_window_s, gap_s=trend_gap_s)
    return pd.DataFrame(
        {
            "frame": frames["frame"].to_numpy(),
            "error": error,
            "error_derivative": deriv,
            "epoch": epoch.astype(str),
            "error_trend": trend,
            "trend_epoch": bci.trend_epochs(trend).astype(str),
        }
    )


def simulate_dendrites(
    geometry: dict[str, Any],
    bursts: pd.DataFrame,
    epoch: np.ndarray,
    *,
    n_frames: int,
    settings: SimulateSettings,
    rng: np.random.Generator,
    opto: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Coincident and dendrite-only events and tuft calcium (tuft, time) dF/F.

    ``epoch`` (per frame) is the epoch that carries the planted residual: the error trend
    before each frame (``task_error``'s ``trend_epoch``). ``opto`` (per frame, 0/1; a
    cohort with conditions) removes ``inhibition_residual_removed`` of the planted
    residual of bursts on lit frames.

    Returns the event table (kind, neuron, tuft, group, frame, time_s, epoch, n_spikes,
    soma_magnitude, predicted, planted_residual, residual, dendrite_magnitude; with
    ``opto`` also ``opto`` and ``instructive_residual``, the planted residual before
    removal) and the noise-free tuft calcium.
    """
    neurons = geometry["neurons"]
    groups = neurons.group.to_numpy()[bursts.neuron.to_numpy()]
    ep = epoch[bursts.frame.to_numpy()]
    sign = np.where(groups == "P+", 1.0, np.where(groups == "P-", -1.0, 0.0))
    epoch_factor = np.where(
        ep == "reduction", 1.0, np.where(ep == "increase", settings.increase_residual_factor, 0.0)
    )
    instructive = 0.0 if settings.null else 1.0
    instructive = instructive * settings.residual_amplitude * sign * epoch_factor
    lit = opto[bursts.frame.to_numpy()] > 0 if opto is not None else False
    planted = instructive * (1 - settings.inhibition_residual_removed * lit)
    day_gain = neurons.coupling_gain.to_numpy()
    if settings.coupling_gain_drift_sd > 0:  # no draw when off: earlier realizations stay
        day_gain = day_gain * np.exp(
            rng.normal(0, settings.coupling_gain_drift_sd, size=len(neurons))
        )
    gain = day_gain[bursts.neuron.to_numpy()]
    intercept = neurons.coupling_intercept.to_numpy()[bursts.neuron.to_numpy()]
    s_ref = settings.spike_dff * settings.mean_burst_spikes
    drive = s_ref * (bursts.soma_magnitude.to_numpy() / s_ref) ** settings.coupling_exponent
    predicted = intercept + gain * drive
    noisy = predicted + planted + rng.normal(0, settings.residual_noise_sd, size=planted.size)
    magnitude = np.clip(noisy, 0.02, None)
    coincident = pd.DataFrame(
        {
            "kind": "coincident",
            "neuron": bursts.neuron.to_numpy(),
            "tuft": bursts.neuron.to_numpy(),
            "group": groups.astype(str),
            "frame": bursts.frame.to_numpy(),
            "epoch": ep.astype(str),
            "n_spikes": bursts.n_spikes.to_numpy(),
            "soma_magnitude": bursts.soma_magnitude.to_numpy(),
            "predicted": predicted,
            "planted_residual": planted,
            "residual": magnitude - predicted,
            "dendrite_magnitude": magnitude,
        }
    )
    n_tufts = len(geometry["dendrites"])
    p = settings.dendrite_only_rate_hz / settings.fs_hz
    tuft, frame = np.nonzero(rng.random((n_tufts, n_frames)) < p)
    owner = geometry["dendrites"].neuron.to_numpy()[tuft]
    only = pd.DataFrame(
        {
            "kind": "dendrite_only",
            "neuron": owner,
            "tuft": tuft,
            "group": np.where(
                owner >= 0, neurons.group.to_numpy()[np.maximum(owner, 0)], SIMULATED_NON_TARGET
            ).astype(str),
            "frame": frame,
            "epoch": epoch[frame].astype(str),
            "n_spikes": 0,
            "soma_magnitude": 0.0,
            "predicted": np.nan,
            "planted_residual": np.nan,
            "residual": np.nan,
            "dendrite_magnitude": rng.uniform(0.2, 0.8, size=tuft.size),
        }
    )
    if opto is not None:
        coincident["opto"] = np.asarray(lit, dtype=np.int64)
        coincident["instructive_residual"] = instructive
        only["opto"] = (opto[frame] > 0).astype(np.int64)
        only["instructive_residual"] = np.nan
    events = pd.concat([coincident, only], ignore_index=True)
    events = events.sort_values(["frame", "kind", "tuft"], kind="stable").reset_index(drop=True)
    events.insert(5, "time_s", events.frame / settings.fs_hz)
    amp = np.zeros((n_tufts, n_frames))
    np.add.at(amp, (events.tuft.to_numpy(), events.frame.to_numpy()), events.dendrite_magnitude)
    kernel = calcium_kernel(settings.tau_rise_s, settings.tau_dendrite_decay_s, settings.fs_hz)
    return events, _convolve(amp, kernel)


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
        :func:`analytic_online_f` with zero logged shifts.

    Returns
    -------
    dict
        ``subject``, ``condition``, ``geometry`` (see :func:`simulate_geometry`), ``threshold``,
        ``failure_bound``, ``days``: list of per-day dicts with ``session``,
        ``transform``, ``sgeom`` (:func:`session_geometry`), ``targets`` (polygons),
        ``motion``, ``bursts``, ``spikes``, ``soma_calcium``, ``neuropil_trace``,
        ``online_f``, ``online_dff`` (the rig's dF/F of ``online_f``), ``bci`` (cloose
        log + licks, shift_row, shift_col, and opto in a cohort with conditions),
        ``error`` (:func:`task_error`), ``events``, ``dendrite_calcium``, ``rates_hz``,
        ``noise_seed`` (int, for the movie renderer).
    """
    seeds = rng.integers(0, 2**63 - 1, size=3 + 6 * settings.n_days)
    geometry = simulate_geometry(settings, rng=np.random.default_rng(seeds[0]))
    neurons = geometry["neurons"]
    params = settings.task_params
    rates = neurons.burst_rate_hz.to_numpy().copy()
    pos = (neurons.group == "P+").to_numpy()
    neg = (neurons.group == "P-").to_numpy()

    # Day-1 baseline (trace level only) calibrates the task for all days.
    base_geom = session_geometry(
        geometry, draw_day_transform(settings, day_index=0, rng=None), settings=settings
    )
    base_targets = target_polygons(
        geometry, draw_day_transform(settings, day_index=0, rng=None), settings=settings
    )
    base_soma = simulate_soma(
        geometry,
        rates,
        n_frames=settings.baseline_frames,
        settings=settings,
        rng=np.random.default_rng(seeds[1]),
    )
    shape = (settings.n_rows, settings.n_cols)
    base_f = analytic_online_f(
        base_geom,
        polygon_masks(base_targets, shape),
        base_soma,
        raw_offset=settings.raw_offset,
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

    days = []
    for d in range(settings.n_days):
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
            "motion": simulate_motion(n, settings=settings, rng=np.random.default_rng(s[1])),
            "noise_seed": int(s[2]),
        }
        for spike_day, frame, row_px, col_px in settings.motion_spikes:
            if spike_day == d:
                day["motion"]["shift_row"][frame] += row_px
                day["motion"]["shift_col"][frame] += col_px
        soma = simulate_soma(
            geometry, rates, n_frames=n, settings=settings, rng=np.random.default_rng(s[3])
        )
        silent = [t for silent_day, t in settings.silent_targets if silent_day == d]
        day.update(_silence(soma, np.flatnonzero(neurons.target_id.isin(silent))))
        if online_f is None:
            F = analytic_online_f(
                sgeom,
                polygon_masks(targets, shape),
                day,
                raw_offset=settings.raw_offset,
                rng=np.random.default_rng(s[4]),
            )
            shift_row = shift_col = np.zeros(n, dtype=np.int64)
        else:
            F, shift_row, shift_col = online_f(day)
        online_dff = _online_dff(F, params)
        readout = _readout(online_dff, targets, params)
        bci_log = cloose.run_task(
            readout, threshold=threshold, failure_bound=failure_bound, params=params
        )
        licks = np.zeros(n, dtype=np.int64)
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
                rng=np.random.default_rng([int(s[5]), 1]),
            )
            bci_log["opto"] = opto
        error = task_error(
            bci_log,
            params=params,
            fs_hz=settings.fs_hz,
            smooth_s=settings.epoch_smooth_s,
            trend_window_s=settings.epoch_window_s,
            trend_gap_s=settings.epoch_gap_s,
        )
        events, dend = simulate_dendrites(
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
        days.append(day)
        n_hits = int(bci_log.reward.sum())
        n_trials = int(bci_log.new_trial.sum())
        log.info("%s %s: %d trials, %d hits", subject, day["session"], n_trials, n_hits)
        # Learning: residuals in reduction epochs push target rates for the next day.
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
            rates = rates * np.exp(settings.learning_rate_per_day * mean_drive * (pos | neg))
    return {
        "subject": subject,
        "condition": settings.condition_of(subject),
        "geometry": geometry,
        "threshold": threshold,
        "failure_bound": failure_bound,
        "days": days,
    }


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


def render_plane(
    day: dict[str, Any],
    *,
    plane: int,
    settings: SimulateSettings,
    chunk_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream raw uint16 frames (time, row, col) of one plane of one simulated day.

    Clean photon rate = static image + sum_k brightness_k * calcium_k(t) + neuropil image x
    neuropil_trace(t); warped by the day's motion (bilinear); Poisson shot noise; raw =
    ``raw_offset`` + photons. Plane 1 needs ``day["dendrite_calcium"]``. Only one chunk is
    held at a time; the noise generator is seeded per (day, plane) for determinism.
    """
    chunk_frames = chunk_frames or settings.chunk_frames
    static, fp, npil = _plane_components(day["sgeom"], plane)
    activity = day["soma_calcium"] if plane == 0 else day["dendrite_calcium"]
    n_frames = activity.shape[1]
    shape = static.shape
    fp_flat = fp.reshape(fp.shape[0], -1)
    rng = np.random.default_rng([day["noise_seed"], plane])
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        clean = activity[:, start:stop].T @ fp_flat
        clean = clean.reshape(-1, *shape) + static[None]
        clean += npil[None] * day["neuropil_trace"][plane, start:stop, None, None]
        out = np.empty((stop - start, *shape), dtype=np.uint16)
        for i, t in enumerate(range(start, stop)):
            dr, dc = displacement_field(day["motion"], t, shape)
            warped = ndimage.map_coordinates(clean[i], [rr - dr, cc - dc], order=1, mode="nearest")
            photons = rng.poisson(np.clip(warped, 0, None))
            out[i] = np.minimum(photons + settings.raw_offset, 65535)
        yield out


def settings_for(preset: Literal["sample", "validate"], **overrides: Any) -> SimulateSettings:
    """Settings of a named preset with overrides (validated)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {sorted(PRESETS)}")
    return SimulateSettings.from_mapping({**PRESETS[preset], **overrides})


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m analysis.simulate --out DIR --seed N [--preset ...] [--null] ...``."""
    import yaml

    from analysis import session_format

    parser = argparse.ArgumentParser(
        prog="python -m analysis.simulate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="output root (raw/ and truth/)")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--preset", default="sample", choices=sorted(PRESETS))
    parser.add_argument("--null", action="store_true", help="no vectorized signal")
    parser.add_argument("--subjects", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None, help="frames per plane per day")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other SimulateSettings key (value read as YAML), e.g. coupling_exponent=1.15",
    )
    parser.add_argument(
        "--tiff-compression",
        default="zlib",
        choices=session_format.TIFF_COMPRESSIONS,
        help="zlib (default, smallest), zlib-fast (level 1, for large cohorts) or none "
        "(fastest to write, e.g. long benchmark movies)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {"null": args.null}
    for key, value in (
        ("n_subjects", args.subjects),
        ("n_days", args.days),
        ("n_frames", args.frames),
    ):
        if value is not None:
            overrides[key] = value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    settings = settings_for(args.preset, **overrides)
    rng = np.random.default_rng(args.seed)
    shape = (settings.n_rows, settings.n_cols)
    for k in range(settings.n_subjects):
        subject = f"m{k + 1:02d}"

        def online_f(day: dict[str, Any], subject: str = subject) -> tuple[np.ndarray, ...]:
            masks = polygon_masks(day["targets"], shape)
            path = session_format.session_dir(args.out, subject, day["session"]) / "plane0.tif"
            parts, reference = [], None
            with session_format.PlaneWriter(path, compression=args.tiff_compression) as writer:
                for chunk in render_plane(day, plane=0, settings=settings):
                    writer.write(chunk)
                    if reference is None:
                        reference = chunk[: min(50, len(chunk))].mean(axis=0)
                    parts.append(
                        online_target_f(
                            chunk,
                            target_masks=masks,
                            reference=reference,
                            max_shift_px=settings.max_motion_px + 2,
                        )
                    )
            return tuple(np.concatenate(p, axis=-1) for p in zip(*parts, strict=True))

        result = simulate_subject(settings, subject=subject, rng=rng, online_f=online_f)
        for day in result["days"]:
            path = session_format.session_dir(args.out, subject, day["session"]) / "plane1.tif"
            with session_format.PlaneWriter(path, compression=args.tiff_compression) as writer:
                for chunk in render_plane(day, plane=1, settings=settings):
                    writer.write(chunk)
        session_format.write_simulation(args.out, result, settings=settings)
    session_format.write_sessions_table(args.out, settings=settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
