"""Somato-dendritic (SD) events and residuals, measured so a closed loop cannot fake them.

Part of the stats stage (:func:`analysis.stats.compute_cohort_statistics` calls these in
order). Each step guards against one way a closed-loop null experiment can look
vectorized (docs/statistics.md has the design and the calibration):

1. :func:`measure_sd_events`: the dendritic response of **every** detected somatic event,
   read in a window locked to the soma onset whether or not a dendritic event was
   detected (keeping only detected dendritic events selects on the outcome). Each row is
   classified ``coupled`` (a dendritic event within ``coincidence_window_s``) or
   ``soma_only``; dendritic events without a somatic one are rows of kind
   ``dendrite_only`` (reported, never fitted). Soma and dendrite responses are the same
   linear statistic: mean dF/F over ``response_window_s`` after onset minus the mean over
   ``response_baseline_s`` before it, so trace noise adds to them and never bends them.
   The soma statistic's noise variance is measured per ROI and session from the same
   statistic at quiet frames (no own event for ``quiet_s`` before).
2. :func:`assign_epochs`: an event's epoch comes from the task error **before** its onset
   (:func:`analysis.bci.causal_error_trend`, a window ending ``gap_s`` before onset), not
   from a window around it that the event itself moves; events whose soma had another
   event within ``own_event_exclusion_s`` before (which pushed the cursor over that
   window) get epoch 'none'.
3. :func:`fit_sd_residuals`: dendritic on somatic response per pair, by errors-in-variables
   (adjusted least squares with the measured soma noise variance), so regression dilution
   cannot make residuals grow with true somatic size; a quadratic term where the data
   prefer it and the curve stays monotone.

Modules: ``events`` (:func:`measure_sd_events`), ``epochs`` (:func:`assign_epochs`),
``fit`` (:func:`fit_sd_residuals`, the SD residual itself), ``columns`` (table columns,
fit options).
"""

from __future__ import annotations

from analysis.residuals.columns import (
    EPOCH_REFERENCES,
    FIT_COLUMNS,
    KINDS,
    SD_EVENT_COLUMNS,
    SD_FITS,
    SD_MODELS,
    SOMATIC_KINDS,
)
from analysis.residuals.epochs import assign_epochs
from analysis.residuals.events import measure_sd_events, quiet_noise_variance, window_response
from analysis.residuals.fit import fit_sd_residuals, residual_by_true_size

__all__ = [
    "EPOCH_REFERENCES",
    "FIT_COLUMNS",
    "KINDS",
    "SD_EVENT_COLUMNS",
    "SD_FITS",
    "SD_MODELS",
    "SOMATIC_KINDS",
    "assign_epochs",
    "fit_sd_residuals",
    "measure_sd_events",
    "quiet_noise_variance",
    "residual_by_true_size",
    "window_response",
]
