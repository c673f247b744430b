"""Stage 8, stats: behaviour, target activity, somato-dendritic residuals and their tests.

Input contract (tidy tables the workflow glue builds from saved results; every function
validates the columns it needs and names the missing ones):

- ``events``: one row per detected event, from ``extract`` (soma and dendrite planes
  concatenated): ``subject, session, plane_role ('soma' | 'dendrite'), roi, frame,
  peak_frame, time_s, amplitude`` (amplitude in dF/F).
- ``pairs``: from ``track.pair_dendrites`` per subject: ``subject, soma_roi,
  dendrite_roi, paired`` (bool). ROI ids are stable across a subject's sessions.
- ``soma_dff``, ``dendrite_dff``: per (subject, session), the planes' dF/F ``(roi, time)``
  from ``extract``, where the soma-locked responses are read (:mod:`analysis.residuals`).
- ``targets``: from ``track.map_targets``: ``subject, session, target_id, group
  ('P+' | 'P-'), roi`` (soma roi id).
- ``epochs``: per frame, from ``bci.compute_task_error``: ``subject, session, frame,
  error, error_derivative, epoch ('reduction' | 'increase' | 'none')``.
- ``trials``: from ``bci.compute_trials``: ``subject, session, trial, start_frame,
  end_frame, outcome ('hit' | 'failure' | 'timeout'), reward_frame, aversive_frame,
  time_to_outcome_s``.
- ``sessions``: ``subject, session, fs_hz, duration_s`` (imaging volume rate, recording
  length).

Output contract (``results/stats/``): behaviour, activity, soma-locked SD events with
causal epochs and residuals, fits, contrasts, signed separation, outcome-aligned residuals,
early residual vs later change, network prediction, and one ``tests`` table whose rows each
name the test, its statistic, p-value and n (animals, neurons, events); ``summary.txt`` is
:func:`summarize` of that table, with what each test can and cannot claim.

Statistics are hierarchical (neurons nested in animals): per-neuron means are averaged
within an animal, and the headline test takes one number per animal (its signed
separation) across animals, so pooled neurons are never treated as independent animals.
Secondary tests permute labels *within* animals. The closed-loop confounds and how each
setting guards against them: docs/statistics.md.
"""

from __future__ import annotations

# raised by the tests and how they report an untestable claim (analysis.inference)
from analysis.inference import InsufficientDataError, untestable_row
from analysis.stats.behaviour import (
    compute_activity,
    compute_activity_change,
    compute_behaviour,
    compute_group_activity,
)
from analysis.stats.cohort import compute_cohort_statistics, residual_events
from analysis.stats.group_epoch import (
    compute_group_epoch_contrasts,
    compute_signed_separation,
    run_group_epoch_neuron_test,
    run_group_epoch_test,
)
from analysis.stats.names import (
    EARLY_CHANGE_COLUMNS,
    EARLY_CHANGE_TEST,
    GROUP_EPOCH_NEURON_TEST,
    GROUP_EPOCH_TEST,
    NETWORK_NEUROPIL_TEST,
    NETWORK_TEST,
    OUTCOME_TEST,
)
from analysis.stats.outcome import (
    compute_outcome_residuals,
    compute_outcome_timecourse,
    run_outcome_test,
)
from analysis.stats.prediction import (
    NETWORK_COLUMNS,
    compute_network_prediction,
    run_early_change_test,
    run_network_test,
)
from analysis.stats.settings import StatsSettings
from analysis.stats.summary import CLAIMS, summarize

__all__ = [
    "InsufficientDataError",
    "untestable_row",
    "CLAIMS",
    "EARLY_CHANGE_COLUMNS",
    "EARLY_CHANGE_TEST",
    "GROUP_EPOCH_NEURON_TEST",
    "GROUP_EPOCH_TEST",
    "NETWORK_COLUMNS",
    "NETWORK_NEUROPIL_TEST",
    "NETWORK_TEST",
    "OUTCOME_TEST",
    "StatsSettings",
    "compute_activity",
    "compute_activity_change",
    "compute_behaviour",
    "compute_cohort_statistics",
    "compute_group_activity",
    "compute_group_epoch_contrasts",
    "compute_network_prediction",
    "compute_outcome_residuals",
    "compute_outcome_timecourse",
    "compute_signed_separation",
    "residual_events",
    "run_early_change_test",
    "run_group_epoch_neuron_test",
    "run_group_epoch_test",
    "run_network_test",
    "run_outcome_test",
    "summarize",
]
