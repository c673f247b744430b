"""The somato-dendritic fit and its residuals: dendritic from somatic response per
pair, errors-in-variables, linear or quadratic.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.residuals.columns import FIT_COLUMNS, SD_FITS, SD_MODELS, SOMATIC_KINDS
from analysis.tables import require_columns

log = logging.getLogger(__name__)


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
        coef, used = _fit_model(x, y, v, model=model, min_events=min_events)
        fitted = _evaluate(coef, x, v)
        resid = y - fitted
        n_coef = len(coef)
        sd = float(np.std(resid, ddof=n_coef)) if x.size > n_coef else np.nan
        fit = _fit_summary(x, y, v, coef, resid, reliability=reliability, residual_sd=sd)
        fits.append(dict(zip(keys, key, strict=True), method=method, model=used, **fit))
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


def _fit_model(
    x: np.ndarray, y: np.ndarray, v: np.ndarray, *, model: str, min_events: int
) -> tuple[np.ndarray, str]:
    """Coefficients and name of the fitted model: linear, or quadratic when asked for or
    (``auto``) preferred by AIC and there are two events more than ``min_events``."""
    coef_lin = _adjusted_lstsq(x, y, v, degree=1)
    coef, used = coef_lin, "linear"
    if model != "linear" and x.size >= min_events + 2:
        coef_q = _adjusted_lstsq(x, y, v, degree=2)
        if coef_q is not None and (
            model == "quadratic" or _prefers_quadratic(x, y, v, coef_lin, coef_q)
        ):
            coef, used = coef_q, "quadratic"
    return coef, used


def _fit_summary(
    x: np.ndarray,
    y: np.ndarray,
    v: np.ndarray,
    coef: np.ndarray,
    resid: np.ndarray,
    *,
    reliability: float,
    residual_sd: float,
) -> dict[str, Any]:
    """One pair's row of the fits table after its key, method and model."""
    n_coef = len(coef)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "n_events": int(x.size),
        "intercept": float(coef[0]),
        "slope": float(coef[1]),
        "curvature": float(coef[2]) if n_coef == 3 else 0.0,
        "reliability": reliability,
        "soma_noise_sd": float(np.sqrt(np.mean(v))),
        "r2": 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else np.nan,
        "residual_sd": residual_sd,
    }


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
