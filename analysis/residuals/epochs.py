"""The task-error epoch of each SD event (before its onset, or at it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from analysis import bci
from analysis.residuals.columns import EPOCH_REFERENCES, SOMATIC_KINDS
from analysis.residuals.events import positions_of, values_at
from analysis.tables import require_columns


def assign_epochs(
    sd_events: pd.DataFrame,
    epochs: pd.DataFrame,
    fs_hz: Mapping[tuple[str, str], float],
    *,
    reference: Literal["pre_onset", "at_onset"],
    window_s: float,
    gap_s: float,
    own_event_exclusion_s: float,
) -> pd.DataFrame:
    """Task epoch of each event, from the error trend its soma cannot have caused.

    Parameters
    ----------
    sd_events : pandas.DataFrame
        From :func:`measure_sd_events` (``subject, session, soma_roi, kind, frame,
        time_s``).
    epochs : pandas.DataFrame
        Per frame, from :func:`analysis.bci.compute_task_error`: ``subject, session,
        frame, error, error_derivative, epoch``.
    fs_hz : mapping
        ``(subject, session) -> volume rate``.
    reference : {'pre_onset', 'at_onset'}
        'pre_onset' (default of the stats stage): the sign of the error's slope over
        ``window_s`` ending ``gap_s`` before onset. 'at_onset': the per-frame epoch at
        the onset frame (a centred window the event itself moves: biased in a closed loop,
        kept to show that bias).
    window_s, gap_s : float
        The pre-onset window.
    own_event_exclusion_s : float
        With 'pre_onset', an event whose soma had a somatic event (same session)
        starting less than this before it gets epoch 'none': that earlier event drove the
        cursor over the window.

    Returns
    -------
    pandas.DataFrame
        ``sd_events`` with ``error_trend`` (steps/s; the derivative at onset for
        'at_onset'), ``epoch`` and ``preceded`` (bool: an own event within the exclusion).
    """
    require_columns(
        sd_events, ["subject", "session", "soma_roi", "kind", "frame", "time_s"], "sd_events"
    )
    require_columns(
        epochs, ["subject", "session", "frame", "error", "error_derivative", "epoch"], "epochs"
    )
    if reference not in EPOCH_REFERENCES:
        raise ValueError(f"epoch reference must be one of {EPOCH_REFERENCES}, got {reference!r}")
    out = sd_events.copy()
    out["error_trend"] = np.nan
    out["epoch"] = "none"
    out["preceded"] = False
    frames_of = epochs.groupby(["subject", "session"], sort=False).indices
    for key, rows in out.groupby(["subject", "session"], sort=False).indices.items():
        ep_rows = frames_of.get(key)
        if ep_rows is None:
            continue
        table = epochs.iloc[ep_rows].sort_values("frame")
        pos = positions_of(table["frame"].to_numpy(), out["frame"].to_numpy(np.int64)[rows])
        if reference == "at_onset":
            trend = table["error_derivative"].to_numpy(float)
            labels = table["epoch"].to_numpy(object)
        else:
            trend = bci.causal_error_trend(
                table["error"].to_numpy(float),
                fs_hz=float(fs_hz[key]),
                window_s=window_s,
                gap_s=gap_s,
            )
            labels = bci.trend_epochs(trend)
        out.iloc[rows, out.columns.get_loc("error_trend")] = values_at(trend, pos)
        out.iloc[rows, out.columns.get_loc("epoch")] = np.where(
            pos >= 0, labels[np.maximum(pos, 0)], "none"
        )
    if reference == "pre_onset":
        preceded = _preceded_by_own_event(out, own_event_exclusion_s)
        out["preceded"] = preceded
        out.loc[preceded, "epoch"] = "none"
    return out


def _preceded_by_own_event(sd_events: pd.DataFrame, within_s: float) -> np.ndarray:
    """Whether the row's soma had a somatic event starting in ``[t - within_s, t)``."""
    preceded = np.zeros(len(sd_events), bool)
    somatic = sd_events["kind"].isin(SOMATIC_KINDS).to_numpy()
    keys = ["subject", "session", "soma_roi"]
    time = sd_events["time_s"].to_numpy(float)
    for rows in sd_events.groupby(keys, sort=False).indices.values():
        own = np.unique(time[rows[somatic[rows]]])  # one soma event may pair with 2 tufts
        t = time[rows]
        # strictly earlier own onsets within the window
        first = np.searchsorted(own, t - within_s, "left")
        before = np.searchsorted(own, t - 1e-9, "left")
        preceded[rows] = before > first
    return preceded
