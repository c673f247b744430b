"""Soma-locked SD events: somatic and dendritic responses of each paired soma and
dendrite, read in the same windows around every event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from analysis.dims import FRAME, ROI
from analysis.residuals.columns import SD_EVENT_COLUMNS
from analysis.tables import require_columns
from analysis.vocabulary import NON_TARGET

log = logging.getLogger(__name__)


def window_response(y: np.ndarray, *, baseline_frames: int, response_frames: int) -> np.ndarray:
    """Per frame t: mean of ``y[t : t + response]`` minus mean of ``y[t - baseline : t]``.

    NaN where either window leaves the trace or holds a NaN. Linear in ``y``, so additive
    trace noise stays additive (and measurable) in the statistic.
    """
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(y)
    csum = np.concatenate([[0.0], np.cumsum(np.where(finite, y, 0.0))])
    cfin = np.concatenate([[0], np.cumsum(finite)])
    t = np.arange(y.size)
    lo, hi = t - baseline_frames, t + response_frames
    ok = (lo >= 0) & (hi <= y.size)
    out = np.full(y.size, np.nan)
    t, lo, hi = t[ok], lo[ok], hi[ok]
    whole = (cfin[hi] - cfin[t] == response_frames) & (cfin[t] - cfin[lo] == baseline_frames)
    t, lo, hi = t[whole], lo[whole], hi[whole]
    out[t] = (csum[hi] - csum[t]) / response_frames - (csum[t] - csum[lo]) / baseline_frames
    return out


def quiet_noise_variance(
    response: np.ndarray, onsets: np.ndarray, *, before_frames: int, after_frames: int
) -> float:
    """Robust variance of the window statistic at frames far from any of the ROI's events.

    A frame is quiet when no event onset lies within ``before_frames`` before it or
    ``after_frames`` after it; the variance is ``(1.4826 MAD)^2`` of the statistic there
    (robust to the small events detection missed). NaN with fewer than 20 quiet frames.
    """
    n = response.size
    near = np.zeros(n + 1, np.int64)
    onsets = np.asarray(onsets, np.int64)
    np.add.at(near, np.clip(onsets - after_frames, 0, n), 1)
    np.add.at(near, np.clip(onsets + before_frames + 1, 0, n), -1)
    quiet = (np.cumsum(near)[:n] == 0) & np.isfinite(response)
    if quiet.sum() < 20:
        return np.nan
    values = response[quiet]
    return float((1.4826 * np.median(np.abs(values - np.median(values)))) ** 2)


def positions_of(coord: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Index of each frame number in the sorted ``coord`` (-1 where it is absent)."""
    coord = np.asarray(coord, np.int64)
    pos = np.searchsorted(coord, frames)
    ok = (pos < coord.size) & (coord[np.minimum(pos, coord.size - 1)] == frames)
    return np.where(ok, pos, -1)


def _frame_positions(trace: xr.DataArray, frames: np.ndarray) -> np.ndarray:
    """Position along ``time`` of each frame number (-1 where the trace lacks it)."""
    return positions_of(trace[FRAME].values, frames)


def _statistic(
    cache: dict,
    plane: str,
    roi: int,
    trace: xr.DataArray,
    onsets: np.ndarray,
    windows: tuple[int, int, int],
) -> tuple[np.ndarray, float]:
    """The window statistic of one ROI at every frame and its quiet-frame noise variance
    (computed once per plane and ROI of a session: a soma may pair with several tufts)."""
    if (plane, roi) not in cache:
        baseline, response, quiet = windows
        values = window_response(
            trace.sel({ROI: roi}).values, baseline_frames=baseline, response_frames=response
        )
        noise = quiet_noise_variance(
            values, _frame_positions(trace, onsets), before_frames=quiet, after_frames=response
        )
        cache[(plane, roi)] = (values, noise)
    return cache[(plane, roi)]


def values_at(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.where(positions >= 0, values[np.maximum(positions, 0)], np.nan)


def measure_sd_events(
    events: pd.DataFrame,
    pairs: pd.DataFrame,
    targets: pd.DataFrame,
    soma_dff: Mapping[tuple[str, str], xr.DataArray],
    dendrite_dff: Mapping[tuple[str, str], xr.DataArray],
    fs_hz: Mapping[tuple[str, str], float],
    *,
    coincidence_window_s: float,
    response_window_s: float,
    response_baseline_s: float,
    quiet_s: float,
) -> pd.DataFrame:
    """Soma-locked dendritic responses of every somatic event of each paired soma.

    Parameters
    ----------
    events : pandas.DataFrame
        Detected events of both planes: ``subject, session, plane_role ('soma' |
        'dendrite'), roi, frame`` (onset frame), ``time_s, amplitude``.
    pairs : pandas.DataFrame
        ``subject, soma_roi, dendrite_roi, paired``; only paired rows are used.
    targets : pandas.DataFrame
        ``subject, session, target_id, group, roi`` (soma roi).
    soma_dff, dendrite_dff : mapping
        ``(subject, session) -> dF/F (roi, time)`` with a ``frame`` coordinate.
    fs_hz : mapping
        ``(subject, session) -> volume rate``.
    coincidence_window_s : float
        A somatic event is ``coupled`` when a dendritic event's onset is within this.
    response_window_s, response_baseline_s : float
        Windows of the response statistic after and before onset.
    quiet_s : float
        Frames with an own event onset less than this before them are not quiet (noise).

    Returns
    -------
    pandas.DataFrame
        :data:`SD_EVENT_COLUMNS`: one row per (somatic event, paired dendrite) and per
        dendrite-only event. ``soma_amplitude`` and ``dendrite_amplitude`` are the window
        statistics (dF/F); ``soma_noise_var`` the soma statistic's noise variance in that
        ROI and session; ``soma_event_amplitude`` the detector's amplitude (NaN for
        dendrite-only rows).
    """
    require_columns(
        events,
        ["subject", "session", "plane_role", "roi", "frame", "time_s", "amplitude"],
        "events",
    )
    require_columns(pairs, ["subject", "soma_roi", "dendrite_roi", "paired"], "pairs")
    require_columns(targets, ["subject", "session", "target_id", "group", "roi"], "targets")
    paired = pairs[pairs["paired"].astype(bool)]
    by_roi = events.groupby(["subject", "session", "plane_role", "roi"]).indices
    parts = []
    for (subject, session), soma_trace in sorted(soma_dff.items()):
        dend_trace = dendrite_dff.get((subject, session))
        if dend_trace is None:
            continue
        fs = float(fs_hz[(subject, session)])
        baseline = max(1, int(round(response_baseline_s * fs)))
        response = max(1, int(round(response_window_s * fs)))
        quiet = max(1, int(round(quiet_s * fs)))
        soma_rois = set(np.asarray(soma_trace[ROI].values).tolist())
        dend_rois = set(np.asarray(dend_trace[ROI].values).tolist())
        cache: dict[tuple[str, int], tuple[np.ndarray, float]] = {}
        windows = (baseline, response, quiet)

        for pair in paired[paired["subject"] == subject].itertuples(index=False):
            s_roi, d_roi = int(pair.soma_roi), int(pair.dendrite_roi)
            if s_roi not in soma_rois or d_roi not in dend_rois:
                continue
            parts.append(
                _pair_events(
                    events,
                    by_roi,
                    (subject, session, s_roi, d_roi),
                    (soma_trace, dend_trace),
                    cache=cache,
                    windows=windows,
                    coincidence_window_s=coincidence_window_s,
                )
            )
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=SD_EVENT_COLUMNS[:-2])
    )
    tgt = targets[["subject", "session", "roi", "group", "target_id"]].rename(
        columns={"roi": "soma_roi"}
    )
    out = out.merge(tgt, on=["subject", "session", "soma_roi"], how="left")
    out["group"] = out["group"].fillna(NON_TARGET)
    out["target_id"] = out["target_id"].fillna(-1).astype(int)
    counts = out["kind"].value_counts().to_dict()
    log.info("soma-locked SD events from %d pairs: %s", len(paired), counts)
    return (
        out[SD_EVENT_COLUMNS]
        .sort_values(["subject", "session", "soma_roi", "dendrite_roi", "time_s"])
        .reset_index(drop=True)
    )


def _pair_events(
    events: pd.DataFrame,
    by_roi: Mapping[tuple, np.ndarray],
    key: tuple[str, str, int, int],
    traces: tuple[xr.DataArray, xr.DataArray],
    *,
    cache: dict[tuple[str, int], tuple[np.ndarray, float]],
    windows: tuple[int, int, int],
    coincidence_window_s: float,
) -> pd.DataFrame:
    """The soma-locked events of one soma-dendrite pair in one session: every somatic event
    ('coupled' when a dendritic event lies within ``coincidence_window_s``, else
    'soma_only') and every dendritic event without a somatic one ('dendrite_only'), with
    both responses read in the same windows."""
    subject, session, s_roi, d_roi = key
    soma_trace, dend_trace = traces
    s_rows = by_roi.get((subject, session, "soma", s_roi), np.zeros(0, np.int64))
    d_rows = by_roi.get((subject, session, "dendrite", d_roi), np.zeros(0, np.int64))
    s_ev, d_ev = events.iloc[s_rows], events.iloc[d_rows]
    s_frames = s_ev["frame"].to_numpy(np.int64)
    s_resp, s_noise = _statistic(cache, "soma", s_roi, soma_trace, s_frames, windows)
    d_resp, _ = _statistic(
        cache, "dendrite", d_roi, dend_trace, d_ev["frame"].to_numpy(np.int64), windows
    )
    s_t, d_t = s_ev["time_s"].to_numpy(float), np.sort(d_ev["time_s"].to_numpy(float))
    coupled = _has_neighbour(s_t, d_t, coincidence_window_s)
    lonely = ~_has_neighbour(d_ev["time_s"].to_numpy(float), np.sort(s_t), coincidence_window_s)
    d_only = d_ev[lonely]
    frames = np.concatenate([s_frames, d_only["frame"].to_numpy(np.int64)])
    s_pos = _frame_positions(soma_trace, frames)
    d_pos = _frame_positions(dend_trace, frames)
    kind = np.concatenate(
        [np.where(coupled, "coupled", "soma_only"), np.full(len(d_only), "dendrite_only")]
    )
    return pd.DataFrame(
        {
            "subject": subject,
            "session": session,
            "soma_roi": s_roi,
            "dendrite_roi": d_roi,
            "kind": kind,
            "frame": frames,
            "time_s": np.concatenate([s_t, d_only["time_s"].to_numpy(float)]),
            "soma_amplitude": values_at(s_resp, s_pos),
            "dendrite_amplitude": values_at(d_resp, d_pos),
            "soma_noise_var": s_noise,
            "soma_event_amplitude": np.concatenate(
                [s_ev["amplitude"].to_numpy(float), np.full(len(d_only), np.nan)]
            ),
        }
    )


def _has_neighbour(times: np.ndarray, sorted_other: np.ndarray, window: float) -> np.ndarray:
    """Whether each time has a time of ``sorted_other`` within ``window`` seconds."""
    if not sorted_other.size:
        return np.zeros(times.size, bool)
    i = np.searchsorted(sorted_other, times)
    before = np.abs(times - sorted_other[np.clip(i - 1, 0, sorted_other.size - 1)])
    after = np.abs(sorted_other[np.clip(i, 0, sorted_other.size - 1)] - times)
    return np.minimum(before, after) <= window * (1 + 1e-9)
