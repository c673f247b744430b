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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from analysis import bci
from analysis.dims import FRAME, ROI
from analysis.tables import require_columns
from analysis.vocabulary import NON_TARGET

log = logging.getLogger(__name__)

KINDS = ("coupled", "soma_only", "dendrite_only")
SOMATIC_KINDS = ("coupled", "soma_only")
EPOCH_REFERENCES = ("pre_onset", "at_onset")
SD_FITS = ("errors_in_variables", "ols")
SD_MODELS = ("auto", "linear", "quadratic")

SD_EVENT_COLUMNS = [
    "subject",
    "session",
    "soma_roi",
    "dendrite_roi",
    "kind",
    "frame",
    "time_s",
    "soma_amplitude",
    "dendrite_amplitude",
    "soma_noise_var",
    "soma_event_amplitude",
    "group",
    "target_id",
]
FIT_COLUMNS = [
    "subject",
    "soma_roi",
    "dendrite_roi",
    "n_events",
    "method",
    "model",
    "intercept",
    "slope",
    "curvature",
    "reliability",
    "soma_noise_sd",
    "r2",
    "residual_sd",
]


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


def _positions(coord: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Index of each frame number in the sorted ``coord`` (-1 where it is absent)."""
    coord = np.asarray(coord, np.int64)
    pos = np.searchsorted(coord, frames)
    ok = (pos < coord.size) & (coord[np.minimum(pos, coord.size - 1)] == frames)
    return np.where(ok, pos, -1)


def _frame_positions(trace: xr.DataArray, frames: np.ndarray) -> np.ndarray:
    """Position along ``time`` of each frame number (-1 where the trace lacks it)."""
    return _positions(trace[FRAME].values, frames)


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


def _at(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
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
            lonely = ~_has_neighbour(
                d_ev["time_s"].to_numpy(float), np.sort(s_t), coincidence_window_s
            )
            d_only = d_ev[lonely]
            frames = np.concatenate([s_frames, d_only["frame"].to_numpy(np.int64)])
            s_pos = _frame_positions(soma_trace, frames)
            d_pos = _frame_positions(dend_trace, frames)
            kind = np.concatenate(
                [np.where(coupled, "coupled", "soma_only"), np.full(len(d_only), "dendrite_only")]
            )
            parts.append(
                pd.DataFrame(
                    {
                        "subject": subject,
                        "session": session,
                        "soma_roi": s_roi,
                        "dendrite_roi": d_roi,
                        "kind": kind,
                        "frame": frames,
                        "time_s": np.concatenate([s_t, d_only["time_s"].to_numpy(float)]),
                        "soma_amplitude": _at(s_resp, s_pos),
                        "dendrite_amplitude": _at(d_resp, d_pos),
                        "soma_noise_var": s_noise,
                        "soma_event_amplitude": np.concatenate(
                            [s_ev["amplitude"].to_numpy(float), np.full(len(d_only), np.nan)]
                        ),
                    }
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


def _has_neighbour(times: np.ndarray, sorted_other: np.ndarray, window: float) -> np.ndarray:
    """Whether each time has a time of ``sorted_other`` within ``window`` seconds."""
    if not sorted_other.size:
        return np.zeros(times.size, bool)
    i = np.searchsorted(sorted_other, times)
    before = np.abs(times - sorted_other[np.clip(i - 1, 0, sorted_other.size - 1)])
    after = np.abs(sorted_other[np.clip(i, 0, sorted_other.size - 1)] - times)
    return np.minimum(before, after) <= window * (1 + 1e-9)


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
        pos = _positions(table["frame"].to_numpy(), out["frame"].to_numpy(np.int64)[rows])
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
        out.iloc[rows, out.columns.get_loc("error_trend")] = _at(trend, pos)
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


def fit_sd_residuals(
    sd_events: pd.DataFrame,
    *,
    method: Literal["errors_in_variables", "ols"],
    model: Literal["auto", "linear", "quadratic"],
    min_events: int,
    min_reliability: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-pair fit of dendritic on somatic response; signed, z-scored residuals.

    ``errors_in_variables`` (default of the stats stage): adjusted least squares
    (Cheng & Schneeweiss 1998, doi 10.1111/1467-9868.00125) with each event's measured
    soma noise variance ``v``: the moments of the true somatic response are estimated as
    ``E[s^2] = mean(x^2 - v)`` (and likewise for the cubic and quartic terms), so the slope
    is not attenuated by the noise in ``x``, and residuals ``y - (a + b x + c (x^2 - v))``
    have mean 0 at every true somatic size. A pair whose reliability (true over measured
    variance of ``x``) is below ``min_reliability`` cannot be corrected stably and is not
    fitted. ``ols``: plain least squares on the measured ``x`` (attenuated slope; kept as
    the reference that shows the bias).

    ``model``: 'linear', 'quadratic', or 'auto' (quadratic only where it lowers the AIC
    by more than 2 and the fitted curve rises over the pair's central 90% of ``x``: a
    monotone supralinear or sublinear coupling; otherwise linear, the paper's model).

    Parameters
    ----------
    sd_events : pandas.DataFrame
        From :func:`measure_sd_events` (rows of kind 'dendrite_only' are not fitted).
    method, model : str
    min_events : int
        Somatic events a pair needs for a fit.
    min_reliability : float

    Returns
    -------
    events : pandas.DataFrame
        The somatic rows of fitted pairs with ``fitted``, ``residual`` (dF/F) and
        ``residual_z`` (residual / the pair's residual SD).
    fits : pandas.DataFrame
        :data:`FIT_COLUMNS`, one row per fitted pair.
    """
    require_columns(
        sd_events,
        [
            "subject",
            "soma_roi",
            "dendrite_roi",
            "kind",
            "soma_amplitude",
            "dendrite_amplitude",
            "soma_noise_var",
        ],
        "sd_events",
    )
    if method not in SD_FITS:
        raise ValueError(f"SD fit method must be one of {SD_FITS}, got {method!r}")
    if model not in SD_MODELS:
        raise ValueError(f"SD model must be one of {SD_MODELS}, got {model!r}")
    somatic = sd_events[sd_events["kind"].isin(SOMATIC_KINDS)]
    keys = ["subject", "soma_roi", "dendrite_roi"]
    parts, fits = [], []
    skipped = {"events": 0, "reliability": 0}
    for key, grp in somatic.groupby(keys, sort=True):
        x, y, v = (
            grp[c].to_numpy(float)
            for c in ("soma_amplitude", "dendrite_amplitude", "soma_noise_var")
        )
        v = np.nan_to_num(v, nan=0.0) if method == "errors_in_variables" else np.zeros_like(x)
        ok = np.isfinite(x) & np.isfinite(y)
        grp, x, y, v = grp[ok], x[ok], y[ok], v[ok]
        if x.size < min_events:
            skipped["events"] += 1
            continue
        var_x = float(np.var(x))
        reliability = 1.0 - float(np.mean(v)) / var_x if var_x > 0 else 0.0
        if reliability < min_reliability:
            skipped["reliability"] += 1
            continue
        coef_lin = _adjusted_lstsq(x, y, v, degree=1)
        coef, used = coef_lin, "linear"
        if model != "linear" and x.size >= min_events + 2:
            coef_q = _adjusted_lstsq(x, y, v, degree=2)
            if coef_q is not None and (
                model == "quadratic" or _prefers_quadratic(x, y, v, coef_lin, coef_q)
            ):
                coef, used = coef_q, "quadratic"
        fitted = _evaluate(coef, x, v)
        resid = y - fitted
        n_coef = len(coef)
        sd = float(np.std(resid, ddof=n_coef)) if x.size > n_coef else np.nan
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        fits.append(
            dict(
                zip(keys, key, strict=True),
                n_events=int(x.size),
                method=method,
                model=used,
                intercept=float(coef[0]),
                slope=float(coef[1]),
                curvature=float(coef[2]) if n_coef == 3 else 0.0,
                reliability=reliability,
                soma_noise_sd=float(np.sqrt(np.mean(v))),
                r2=1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else np.nan,
                residual_sd=sd,
            )
        )
        parts.append(
            grp.assign(fitted=fitted, residual=resid, residual_z=resid / sd if sd > 0 else np.nan)
        )
    if any(skipped.values()):
        log.info(
            "not fitted: %d pairs with < %d somatic events, %d with soma reliability < %.2f",
            skipped["events"],
            min_events,
            skipped["reliability"],
            min_reliability,
        )
    events = (
        pd.concat(parts, ignore_index=True)
        if parts
        else somatic.iloc[:0].assign(fitted=[], residual=[], residual_z=[])
    )
    return events, pd.DataFrame(fits, columns=FIT_COLUMNS)


def _adjusted_lstsq(x: np.ndarray, y: np.ndarray, v: np.ndarray, *, degree: int):
    """Polynomial coefficients (a, b[, c]) from noise-adjusted moments; None if singular.

    With ``x = s + u``, ``u`` of variance ``v`` independent of ``s``: ``E[x^2] = s^2 + v``,
    ``E[x^3] = s^3 + 3 s v``, ``E[x^4] = s^4 + 6 s^2 v + 3 v^2``, ``E[x^2 y] = s^2 y + v y``.
    """
    m = [
        1.0,
        x.mean(),
        np.mean(x**2 - v),
        np.mean(x**3 - 3 * x * v),
        np.mean(x**4 - 6 * x**2 * v + 3 * v**2),
    ]
    rhs = [y.mean(), np.mean(x * y), np.mean((x**2 - v) * y)]
    k = degree + 1
    matrix = np.array([[m[i + j] for j in range(k)] for i in range(k)])
    if np.linalg.cond(matrix) > 1e10:
        return None
    return np.linalg.solve(matrix, np.array(rhs[:k]))


def _evaluate(coef: np.ndarray, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Fitted values, with ``x^2 - v`` (unbiased for the true square) as the square."""
    out = coef[0] + coef[1] * x
    return out + coef[2] * (x**2 - v) if len(coef) == 3 else out


def _aic(resid: np.ndarray, n_coef: int) -> float:
    n = resid.size
    return float(n * np.log(max(float(resid @ resid), 1e-300) / n) + 2 * (n_coef + 1))


def _prefers_quadratic(x, y, v, coef_lin, coef_q) -> bool:
    """Quadratic lowers the AIC by > 2 and rises over the central 90% of ``x``."""
    gain = _aic(y - _evaluate(coef_lin, x, v), 2) - _aic(y - _evaluate(coef_q, x, v), 3)
    lo, hi = np.quantile(x, [0.05, 0.95])
    rising = all(coef_q[1] + 2 * coef_q[2] * s > 0 for s in (lo, hi))
    return gain > 2 and rising


def residual_by_true_size(
    events: pd.DataFrame, truth_size: np.ndarray, *, n_bins: int = 8
) -> pd.DataFrame:
    """Mean residual z in quantile bins of a true somatic size (simulations only).

    The check that a fit is unbiased: on null data the residual must be flat in the
    *true* size (its correlation with the measured size is 0 by construction and says
    nothing). ``truth_size`` is aligned with ``events``' rows.
    """
    size = np.asarray(truth_size, float)
    edges = np.unique(np.quantile(size[np.isfinite(size)], np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.digitize(size, edges[1:-1]), 0, len(edges) - 2)
    table = pd.DataFrame({"bin": bins, "true_size": size, "residual_z": events["residual_z"]})
    return table.groupby("bin", as_index=False).agg(
        true_size=("true_size", "mean"),
        mean_residual_z=("residual_z", "mean"),
        sem_residual_z=("residual_z", lambda r: r.std(ddof=1) / np.sqrt(max(len(r), 1))),
        n_events=("residual_z", "size"),
    )
