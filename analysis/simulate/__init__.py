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

Modules: ``settings`` (SimulateSettings, presets, labels), ``geometry`` (field of view,
targets, cross-day transforms), ``realism`` (the realistic field: random somata, rings,
silent and out-of-focus cells, vessels, processes, grainy neuropil), ``activity`` (somata,
online F, motion, task error, dendrites), ``rendering`` (raw frames, the detector),
``subject`` (one subject over days, the closed loop and learning), ``cli``
(``python -m analysis.simulate``).
"""

from __future__ import annotations

from analysis.simulate.activity import (
    analytic_online_f,
    calcium_kernel,
    online_target_f,
    simulate_dendrites,
    simulate_motion,
    simulate_soma,
    task_error,
)
from analysis.simulate.geometry import (
    draw_day_transform,
    polygon_masks,
    session_geometry,
    simulate_geometry,
    target_polygons,
    to_session_coords,
)
from analysis.simulate.rendering import displacement_field, render_plane
from analysis.simulate.settings import (
    CONTROL_CONDITION,
    EPOCH_CODES,
    GROUPS,
    INHIBITION_SETTINGS,
    PLANTED_EPOCH_COLUMN,
    PRESETS,
    REALISM_DEFAULTS,
    SimulateSettings,
    settings_for,
)
from analysis.simulate.subject import opto_frames, simulate_subject, simulate_traces

__all__ = [
    "CONTROL_CONDITION",
    "EPOCH_CODES",
    "GROUPS",
    "INHIBITION_SETTINGS",
    "PLANTED_EPOCH_COLUMN",
    "PRESETS",
    "REALISM_DEFAULTS",
    "SimulateSettings",
    "analytic_online_f",
    "calcium_kernel",
    "displacement_field",
    "draw_day_transform",
    "online_target_f",
    "opto_frames",
    "polygon_masks",
    "render_plane",
    "session_geometry",
    "settings_for",
    "simulate_dendrites",
    "simulate_geometry",
    "simulate_motion",
    "simulate_soma",
    "simulate_subject",
    "simulate_traces",
    "target_polygons",
    "task_error",
    "to_session_coords",
]
