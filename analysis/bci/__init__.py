"""BCI stage: trials, task error and its epochs, trial-aligned traces, cursor replay.

Contract (docs/contracts.md "bci.py"):

- Input: the per-volume BCI log ``frames`` (the ``bci_frames.tsv`` columns ``frame``
  (0-based volume index), ``trial`` (-1 outside trials), ``new_trial``, ``readout``,
  ``angle_deg`` (NaN when grey or black), ``reward``, ``aversive``; optional ``licks``,
  ``opto``, ``shift_row``, ``shift_col``) and ``meta`` (``threshold``, ``failure_bound``,
  ``target_angle_deg``, ``max_trial_frames``).
- :func:`compute_trials` -> one row per trial: ``trial, start_frame, end_frame, outcome,
  reward_frame, aversive_frame, time_to_outcome_s, active_start_frame, active_end_frame,
  n_active_frames, decision_frame, opto_fraction, light_on``.
- :func:`compute_task_error` -> one row per frame: ``frame, trial, error,
  error_derivative, epoch``.
- :func:`align_trials` -> ``(trial, roi, lag)`` windows of a trace around event frames.
- :func:`replay_cursor` / :func:`compare_readout`: the online readout recomputed from
  offline target traces with :mod:`analysis.cloose`, and its agreement with the log.

Reading a trial from the log (the CLOOSE state machine, see :mod:`analysis.cloose`).
A trial is the contiguous block of frames carrying its index: grey frames, then the
active frames (grating under closed-loop control), then for a hit or a failure the
outcome hold. The outcome is **hit** if a reward frame falls in the trial, **failure**
if an aversive frame does, otherwise **timeout**. The *decision frame* of a hit or
failure is the first frame of the hold, found by walking back from the reward/aversive
TTL over frames showing the same angle (the reward TTL comes on the 3rd hold frame, the
white noise on the 1st). Active frames run from the first frame showing a grating to the
frame before the decision frame (to the last grating frame for a timeout). A last trial
cut short by the end of the recording (no outcome and fewer than ``max_trial_frames``
active frames) has no outcome and is left out (logged).

Modules: ``settings`` (BciSettings, input checks), ``trials`` (:func:`compute_trials`),
``error`` (task error and epochs), ``aligned`` (:func:`align_trials`), ``replay`` (cursor
replay).
"""

from __future__ import annotations

from analysis.bci.aligned import align_trials
from analysis.bci.error import causal_error_trend, compute_task_error, trend_epochs
from analysis.bci.replay import compare_readout, replay_cursor
from analysis.bci.settings import FRAME_COLUMNS, META_KEYS, BciSettings
from analysis.bci.trials import compute_trials

__all__ = [
    "BciSettings",
    "FRAME_COLUMNS",
    "META_KEYS",
    "align_trials",
    "causal_error_trend",
    "compare_readout",
    "compute_task_error",
    "compute_trials",
    "replay_cursor",
    "trend_epochs",
]
