"""Prediction: early residuals vs later activity change, and residuals predicted from
the surrounding network's activity.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from analysis.dims import ROI, TIME
from analysis.inference import (
    InsufficientDataError,
    permutation_p,
    result_row,
    sign_flip_greater,
)
from analysis.settings import require
from analysis.stats.common import require_input_columns, session_day_index
from analysis.stats.names import EARLY_CHANGE_TEST, NETWORK_NEUROPIL_TEST, NETWORK_TEST
from analysis.stats.settings import StatsSettings

log = logging.getLogger(__name__)


def run_early_change_test(
    events: pd.DataFrame,
    activity: pd.DataFrame,
    *,
    settings: StatsSettings,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Do a neuron's early residuals predict its later change in activity?

    Per neuron: ``early_residual_z`` = mean residual z of its events in error-reduction
    epochs during its subject's early sessions; ``activity_change`` = mean dF/F over the
    late sessions minus over the early ones (``early_fraction``, ``late_fraction``).
    Statistic: Pearson r across neurons after centring both variables within each
    animal x group (P+, P-, non-target), so neither animal offsets nor the groups'
    opposite residual signs and opposite learning (P- activity falls by design) can
    create a correlation. Null: early residuals are permuted among neurons within each
    animal x group; blocks of fewer than 3 neurons are left out.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, session, soma_roi, epoch, residual_z``.
    activity : pandas.DataFrame
        ``subject, session, roi, mean_dff`` (all sessions, from :func:`compute_activity`).
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    neurons : pandas.DataFrame
        ``subject, soma_roi, early_residual_z, n_events, activity_change`` (plus ``group``
        when present in ``events``).
    test : pandas.DataFrame
        One row with :data:`TEST_COLUMNS`.
    """
    require_input_columns(
        events, ["subject", "session", "soma_roi", "epoch", "residual_z"], "events"
    )
    require_input_columns(activity, ["subject", "session", "roi", "mean_dff"], "activity")
    act = activity.assign(day_index=session_day_index(activity))
    n_days = act.groupby("subject")["day_index"].transform("max") + 1
    n_early = np.maximum(1, np.floor(settings.early_fraction * n_days))
    n_late = np.maximum(1, np.floor(settings.late_fraction * n_days))
    act = act.assign(early=act["day_index"] < n_early)
    early = act[act["early"]]
    late = act[(act["day_index"] >= n_days - n_late) & ~act["early"]]
    change = (
        late.groupby(["subject", "roi"])["mean_dff"].mean()
        - early.groupby(["subject", "roi"])["mean_dff"].mean()
    ).dropna()
    change = change.rename("activity_change").reset_index().rename(columns={"roi": "soma_roi"})
    # Events take the activity table's day order so both share one definition of "early".
    session_day = act[["subject", "session", "early"]].drop_duplicates()
    ev_days = events.merge(session_day, on=["subject", "session"], how="inner")
    sel = ev_days[
        ev_days["early"] & (ev_days["epoch"] == "reduction") & np.isfinite(ev_days["residual_z"])
    ]
    keys = ["subject", "soma_roi", *(["group"] if "group" in sel.columns else [])]
    res = sel.groupby(keys, as_index=False).agg(
        early_residual_z=("residual_z", "mean"), n_events=("residual_z", "size")
    )
    neurons = res.merge(change, on=["subject", "soma_roi"], how="inner")
    block_keys = [k for k in keys if k != "soma_roi"]
    neurons = neurons.groupby(block_keys).filter(lambda g: len(g) >= 3).reset_index(drop=True)
    if len(neurons) < 4:
        raise InsufficientDataError(
            "fewer than 4 neurons (in animal x group blocks of >= 3 neurons) have both "
            "early reduction-epoch residuals and a late-minus-early activity change"
        )
    block = pd.factorize(pd.MultiIndex.from_frame(neurons[block_keys]))[0]
    x = neurons["early_residual_z"].to_numpy(float)
    y = neurons["activity_change"].to_numpy(float)
    x = x - (np.bincount(block, weights=x) / np.bincount(block))[block]
    y = y - (np.bincount(block, weights=y) / np.bincount(block))[block]

    def corr(xv: np.ndarray) -> float:
        denom = np.sqrt((xv @ xv) * (y @ y))
        return float(xv @ y / denom) if denom > 0 else 0.0

    observed = corr(x)
    blocks = [np.flatnonzero(block == b) for b in np.unique(block)]
    null = np.empty(settings.n_permutations)
    for k in range(settings.n_permutations):
        xp = x.copy()
        for idx in blocks:
            xp[idx] = x[rng.permutation(idx)]
        null[k] = corr(xp)
    test = result_row(
        EARLY_CHANGE_TEST,
        statistic=observed,
        p_value=permutation_p(null, observed, "two-sided"),
        alternative="two-sided",
        n_animals=int(neurons["subject"].nunique()),
        n_neurons=len(neurons),
        n_events=int(neurons["n_events"].sum()),
        n_permutations=settings.n_permutations,
    )
    return neurons, test


def _cv_ridge_r(x: np.ndarray, y: np.ndarray, folds: np.ndarray, alpha: float) -> np.ndarray:
    """Correlation of out-of-fold ridge predictions with y, per column of y (event, k).

    Closed form on centred data; every column (e.g. the observed residuals and their
    shuffles) is fitted with the same folds in one solve per fold. 0 where the
    predictions or the column are constant.
    """
    # rows grouped by fold, C order: every fold's rows are one contiguous slice
    order = np.argsort(folds, kind="stable")
    x, y = x[order], np.ascontiguousarray(y)[order]
    bounds = np.searchsorted(folds[order], np.unique(folds)).tolist() + [len(folds)]
    pred = np.empty_like(y)
    ridge = alpha * np.eye(x.shape[1])
    # whole-data sums once; each fold's training sums are these minus its test rows (no
    # copy of the training rows of y, which has a column per shuffle)
    xty, x_sum, y_sum = x.T @ y, x.sum(0), y.sum(0)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        x_test, y_test = x[a:b], y[a:b]
        n_train = len(folds) - (b - a)
        y_train_sum = y_sum - y_test.sum(0)
        xm, ym = (x_sum - x_test.sum(0)) / n_train, y_train_sum / n_train
        xt = np.concatenate([x[:a], x[b:]]) - xm
        # xt.T @ y_train == x_train.T @ y_train - xm y_train_sum (y need not be centred)
        rhs = xty - x_test.T @ y_test - np.outer(xm, y_train_sum)
        coef = np.linalg.solve(xt.T @ xt + ridge, rhs)
        pred[a:b] = (x_test - xm) @ coef + ym
    pc, yc = pred - pred.mean(0), y - y.mean(0)
    # column sums of products without n x k temporaries
    norm = np.sqrt(np.einsum("ij,ij->j", pc, pc) * np.einsum("ij,ij->j", yc, yc))
    r = np.einsum("ij,ij->j", pc, yc) / np.where(norm > 0, norm, 1.0)
    return np.where(norm > 0, np.clip(r, -1.0, 1.0), 0.0)


NETWORK_COLUMNS = [
    "subject",
    "session",
    "test",
    "n_events",
    "n_neurons",
    "n_features",
    "r_cv",
    "null_mean",
    "null_sd",
    "p_value",
    "n_permutations",
    "r_cv_neuropil",
    "null_mean_neuropil",
]


def compute_network_prediction(
    events: pd.DataFrame,
    dff: xr.DataArray,
    *,
    fs_hz: float,
    settings: StatsSettings,
    rng: np.random.Generator,
    exclude_rois: Iterable[int] = (),
    neuropil: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Predict one session's residuals from the other somata's activity (cross-validated).

    Predictors for an event: each soma ROI's mean dF/F over ``network_window_s`` around
    the event's soma onset, z-scored across events; the event's own soma is zeroed so a
    neuron never predicts its own residual, and ``exclude_rois`` (the BCI targets) are not
    predictors at all: they drive the cursor, so their activity carries the task epoch.
    Ridge regression (``ridge_alpha``) with ``n_folds``-fold cross-validation; score =
    correlation of out-of-fold predictions with ``residual_z``. Null: the same procedure
    on residuals shuffled among the events of the same neuron (``n_network_shuffles``
    times), so differences between neurons' mean residuals cannot be "predicted". With
    ``neuropil`` (the same ROIs' neuropil traces), the same score from neuropil alone is
    the control for shared contamination and slow drive.

    Parameters
    ----------
    events : pandas.DataFrame
        One session's residual events: ``subject, session, soma_roi, frame, residual_z``.
    dff : xarray.DataArray
        That session's soma-plane dF/F, dims ``(roi, time)`` with a ``frame`` coordinate.
    fs_hz : float
    settings : StatsSettings
    rng : numpy.random.Generator
    exclude_rois : iterable of int
        ROIs never used as predictors.
    neuropil : xarray.DataArray, optional
        Neuropil traces ``(roi, time)`` on the same frames.

    Returns
    -------
    pandas.DataFrame
        One row of :data:`NETWORK_COLUMNS` (``*_neuropil`` NaN without ``neuropil``);
        empty if the session has fewer than ``min_events_network`` events.
    """
    require_input_columns(
        events, ["subject", "session", "soma_roi", "frame", "residual_z"], "events"
    )
    for name, trace in (("dff", dff), ("neuropil", neuropil)):
        if trace is not None and (
            not isinstance(trace, xr.DataArray) or set(trace.dims) != {ROI, TIME}
        ):
            raise ValueError(f"{name} must be an xarray.DataArray with dims ({ROI}, {TIME})")
    if events[["subject", "session"]].drop_duplicates().shape[0] > 1:
        raise ValueError("compute_network_prediction takes the events of one session")
    require(fs_hz > 0, "fs_hz must be > 0")
    ev = events[np.isfinite(events["residual_z"])].reset_index(drop=True)
    if len(ev) < settings.min_events_network:
        log.info("network prediction skipped: %d events < %d", len(ev), settings.min_events_network)
        return pd.DataFrame(columns=NETWORK_COLUMNS)
    dff = dff.transpose(ROI, TIME)
    keep = ~np.isin(np.asarray(dff[ROI]), np.asarray(list(exclude_rois), dtype=np.int64))
    y = ev["residual_z"].to_numpy(float)
    folds = rng.permutation(np.arange(len(y)) % settings.n_folds)
    # column 0 the observed residuals, then shuffles within each neuron, all fitted in one
    # pass; column-major: each shuffle is written, and each fold's rows read, as one column
    ys = np.empty((len(y), 1 + settings.n_network_shuffles), order="F")
    ys[:, 0] = y
    neuron_rows = list(ev.groupby("soma_roi").indices.values())
    for k in range(settings.n_network_shuffles):
        shuffled = y.copy()
        for rows in neuron_rows:
            shuffled[rows] = y[rng.permutation(rows)]
        ys[:, 1 + k] = shuffled
    window = tuple(int(round(w * fs_hz)) for w in settings.network_window_s)
    x = _window_predictors(dff[keep], ev, window)
    r = _cv_ridge_r(x, ys, folds, settings.ridge_alpha)
    observed, null = float(r[0]), r[1:]
    row = dict(
        subject=ev["subject"].iloc[0],
        session=ev["session"].iloc[0],
        test=NETWORK_TEST,
        n_events=len(y),
        n_neurons=int(ev["soma_roi"].nunique()),
        n_features=x.shape[1],
        r_cv=observed,
        null_mean=float(null.mean()),
        null_sd=float(null.std(ddof=1)),
        p_value=permutation_p(null, observed, "greater"),
        n_permutations=null.size,
        r_cv_neuropil=np.nan,
        null_mean_neuropil=np.nan,
    )
    if neuropil is not None:
        neuropil = neuropil.transpose(ROI, TIME).sel({ROI: dff[ROI].values[keep]})
        r_np = _cv_ridge_r(
            _window_predictors(neuropil, ev, window), ys, folds, settings.ridge_alpha
        )
        row.update(r_cv_neuropil=float(r_np[0]), null_mean_neuropil=float(r_np[1:].mean()))
    return pd.DataFrame([row], columns=NETWORK_COLUMNS)


def _window_predictors(
    traces: xr.DataArray, events: pd.DataFrame, window: tuple[int, int]
) -> np.ndarray:
    """(event, roi) mean of each trace over ``window`` frames around each event's onset,
    z-scored across events; the event's own ROI (when among the traces) set to 0."""
    values = np.asarray(traces.values, dtype=float)
    n_time = values.shape[1]
    frames = np.asarray(traces["frame"]) if "frame" in traces.coords else np.arange(n_time)
    lo, hi = window
    pos = np.searchsorted(frames, events["frame"].to_numpy())
    cums = np.concatenate(
        [np.zeros((values.shape[0], 1)), np.cumsum(np.nan_to_num(values), axis=1)], axis=1
    )
    start = np.clip(pos + lo, 0, n_time - 1)
    stop = np.clip(pos + max(hi, lo + 1), start + 1, n_time)
    cums = np.ascontiguousarray(cums.T)  # (time, roi): each event gathers whole rows
    x = (cums[stop] - cums[start]) / (stop - start)[:, None]
    sd = x.std(0)
    x = np.where(sd > 0, (x - x.mean(0)) / np.where(sd > 0, sd, 1), 0.0)
    column_of_roi = {int(r): k for k, r in enumerate(np.asarray(traces[ROI]))}
    own = np.array([column_of_roi.get(int(r), -1) for r in events["soma_roi"]])
    x[np.flatnonzero(own >= 0), own[own >= 0]] = 0.0
    return x


def run_network_test(
    network: pd.DataFrame, *, settings: StatsSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Cohort test of network prediction: is cross-validated r above its shuffle null?

    Per animal, the mean over sessions of ``r_cv - null_mean``; statistic = mean over
    animals; null by random sign flips of the animal values (exact when there are few
    animals: all 2^n flips are enumerated for n <= 12). Where the sessions have the
    neuropil control (``r_cv_neuropil``), a second row, :data:`NETWORK_NEUROPIL_TEST`, is
    the same test on it: if neuropil alone predicts as well, the network's prediction may
    be shared contamination or slow drive rather than the network.

    Parameters
    ----------
    network : pandas.DataFrame
        Concatenated outputs of :func:`compute_network_prediction`.
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        One or two rows with :data:`TEST_COLUMNS`.
    """
    require_input_columns(
        network, ["subject", "session", "n_events", "n_neurons", "r_cv", "null_mean"], "network"
    )
    if network.empty:
        raise InsufficientDataError("no session had enough events for network prediction")
    rows = [(NETWORK_TEST, network["r_cv"] - network["null_mean"])]
    if "r_cv_neuropil" in network and network["r_cv_neuropil"].notna().all():
        rows.append(
            (NETWORK_NEUROPIL_TEST, network["r_cv_neuropil"] - network["null_mean_neuropil"])
        )
    tests = []
    for name, session_gain in rows:
        gain = session_gain.groupby(network["subject"]).mean().to_numpy(float)
        stat, p, n_perm = sign_flip_greater(gain, n_random=settings.n_permutations, rng=rng)
        tests.append(
            result_row(
                name,
                statistic=stat,
                p_value=p,
                alternative="greater",
                n_animals=gain.size,
                # neurons predicted: the largest per-session count of each animal, summed
                n_neurons=int(network.groupby("subject")["n_neurons"].max().sum()),
                n_events=int(network["n_events"].sum()),
                n_permutations=n_perm,
                n_sessions=len(network),
            )
        )
    return pd.concat(tests, ignore_index=True)
