"""Compare pipeline outputs with simulator ground truth (stage ``validate``, synthetic data only).

Contract
--------
Pure ``compare_*`` functions in the style of SpikeInterface's comparison module: each takes
one stage's output and the matching truth (:mod:`analysis.simulate`, files read by
:mod:`analysis.session_format`) and returns plain numbers (a ``dict``) and, where there is
one row per unit, a tidy :class:`pandas.DataFrame`. ROIs are matched to true units with
the Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`), never greedily, so
results do not depend on ROI order.

Coordinates
-----------
Truth masks and shifts are in each session's motion-free raw coordinates. The register
stage aligns every frame to its own reference image, which sits at an arbitrary constant
offset ``o = (o_row, o_col)`` from the motion-free frame: estimated shift = true shift +
``o`` (the ``offset_row_px``, ``offset_col_px`` of :func:`compare_shifts`), and a
structure at motion-free position ``p`` appears at ``p - o`` in the registered movie.
:func:`compare_rois` and :func:`compare_transforms` take that offset so that detected
masks and estimated transforms (both in registered coordinates) are compared in the
right frame.

Outputs
-------
- :func:`compare_shifts`: median absolute error of within-session shifts, px
  (:func:`compare_registration`: of a ``registration.nc`` against a simulated truth).
- :func:`compare_rois`: IoU / centroid-distance matches and precision, recall, F1.
- :func:`compare_transforms`: cross-day mapping error of points, px.
- :func:`compare_traces`: Pearson r of each matched ROI's trace with the true calcium.
- :func:`compare_spikes`: Pearson r of binned deconvolved activity with true spikes.
- :func:`compare_tracking`: fraction of tracked ROIs linked to one true neuron.
- :func:`compare_pairing`: soma-dendrite pairing precision, recall and accuracy.
- :func:`compare_targets`: fraction of online targets mapped to their true neuron.

Modules: ``rois`` (registration shifts, ROI masks, cross-day transforms), ``signals``
(traces, spikes), ``identity`` (tracking, pairing, targets), ``score`` (a whole run's
imaging metrics, :func:`score_run`), ``common`` (shared checks).
"""

from __future__ import annotations

from analysis.validate.identity import compare_pairing, compare_targets, compare_tracking
from analysis.validate.rois import (
    TRANSFORM_KEYS,
    compare_registration,
    compare_rois,
    compare_shifts,
    compare_transforms,
)
from analysis.validate.score import (
    IMAGING_GOALS,
    ValidateSettings,
    score_run,
    score_subject,
    suite2p_default_spikes,
)
from analysis.validate.signals import compare_spikes, compare_traces

__all__ = [
    "IMAGING_GOALS",
    "TRANSFORM_KEYS",
    "ValidateSettings",
    "compare_pairing",
    "compare_rois",
    "compare_registration",
    "compare_shifts",
    "compare_spikes",
    "compare_targets",
    "compare_traces",
    "compare_tracking",
    "compare_transforms",
    "score_run",
    "score_subject",
    "suite2p_default_spikes",
]
