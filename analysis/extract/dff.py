"""dF/F with an explicit running-percentile baseline."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from scipy import ndimage

from analysis.dims import ROI, TRACE_DIMS
from analysis.extract.settings import BASELINE_POINTS_PER_WINDOW, ExtractSettings
from analysis.settings import require

log = logging.getLogger(__name__)


def compute_dff(traces: xr.Dataset, *, fs_hz: float, settings: ExtractSettings) -> xr.Dataset:
    """Neuropil-corrected fluorescence, explicit F0 baselines and dF/F.

    Parameters
    ----------
    traces : xarray.Dataset
        With ``F(roi, time)`` and ``Fneu(roi, time)`` (from :func:`extract_traces`).
    fs_hz : float
        Frame rate, Hz.
    settings : ExtractSettings

    Returns
    -------
    xarray.Dataset
        A copy of ``traces`` plus, all float32 ``(roi, time)``:
        ``Fcorr = F - neuropil_coefficient * Fneu``;
        ``baseline`` = F0 of ``Fcorr`` = running ``baseline_percentile``-th percentile
        (centred window ``baseline_window_s``, NaN samples skipped) of ``Fcorr`` smoothed
        with a Gaussian of sigma ``baseline_smooth_s``; ``baseline_F`` = the same for ``F``;
        ``dff = (Fcorr - baseline) / den`` with ``den = max(baseline, min_baseline_fraction
        * baseline_F)`` (``dff_denominator="Fcorr"``) or ``den = baseline_F`` (``"F"``).
        dF/F is a fraction (not %).

        An ROI whose raw-F baseline is not positive anywhere has undefined dF/F: NaN,
        with a warning.
    """
    for name in ("F", "Fneu"):
        if name not in traces:
            raise ValueError(f"compute_dff: traces lack '{name}' (from extract_traces)")
    require(fs_hz > 0, "compute_dff: fs_hz must be > 0")
    F = traces["F"].transpose(*TRACE_DIMS).to_numpy().astype(np.float64)
    fneu = traces["Fneu"].transpose(*TRACE_DIMS).to_numpy().astype(np.float64)
    fcorr = F - settings.neuropil_coefficient * fneu

    window = max(1, int(round(settings.baseline_window_s * fs_hz)))
    sigma = settings.baseline_smooth_s * fs_hz
    baseline = _running_percentile(nan_gaussian(fcorr, sigma), window, settings.baseline_percentile)
    baseline_f = _running_percentile(nan_gaussian(F, sigma), window, settings.baseline_percentile)
    with np.errstate(invalid="ignore"):
        nonpositive = np.any(baseline_f <= 0, axis=1)
    if np.any(nonpositive):
        # no fluorescence to normalise by (e.g. an ROI in a dark, unimaged border): dF/F is
        # undefined there, so it is NaN rather than a huge ratio
        log.warning(
            "compute_dff: raw-F baseline <= 0 for ROIs %s: dF/F set to NaN (check the "
            "movie's offset subtraction if this affects many ROIs)",
            traces[ROI].values[nonpositive].tolist(),
        )
    if settings.dff_denominator == "F":
        den = baseline_f
    else:
        floor = settings.min_baseline_fraction * baseline_f
        with np.errstate(invalid="ignore"):
            low = baseline < floor
        if np.any(low):
            log.warning(
                "dF/F denominator floored at %g x baseline_F on %d frames of ROIs %s",
                settings.min_baseline_fraction,
                int(low.sum()),
                traces[ROI].values[np.any(low, axis=1)].tolist(),
            )
        den = np.where(low, floor, baseline)
    dff = (fcorr - baseline) / den
    dff[nonpositive] = np.nan
    out = traces.copy()
    for name, values in (
        ("Fcorr", fcorr),
        ("baseline", baseline),
        ("baseline_F", baseline_f),
        ("dff", dff),
    ):
        out[name] = (TRACE_DIMS, values.astype(np.float32))
    return out.assign_attrs(fs_hz=float(fs_hz))


def nan_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along the last axis that skips NaN samples (normalised)."""
    if sigma <= 0:
        return x.copy()
    valid = np.isfinite(x)
    num = ndimage.gaussian_filter1d(np.where(valid, x, 0.0), sigma, axis=-1, mode="nearest")
    den = ndimage.gaussian_filter1d(valid.astype(np.float64), sigma, axis=-1, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out


def _running_percentile(x: np.ndarray, window: int, q: float) -> np.ndarray:
    """Centred running NaN-percentile along the last axis (truncated at the edges).

    Evaluated every ``window / BASELINE_POINTS_PER_WINDOW`` frames and interpolated; NaN
    samples are skipped, and frames where ``x`` is NaN stay NaN.
    """
    n_time = x.shape[-1]
    step = max(1, window // BASELINE_POINTS_PER_WINDOW)
    centres = np.arange(0, n_time, step)
    if centres[-1] != n_time - 1:
        centres = np.append(centres, n_time - 1)
    half = window // 2
    values = np.empty((x.shape[0], centres.size))
    for j, c in enumerate(centres):
        seg = x[:, max(0, c - half) : c + half + 1]
        with np.errstate(all="ignore"):
            values[:, j] = _nanpercentile_rows(seg, q)
    out = np.empty_like(x)
    frames = np.arange(n_time)
    for k in range(x.shape[0]):
        ok = np.isfinite(values[k])
        out[k] = np.interp(frames, centres[ok], values[k, ok]) if ok.any() else np.nan
    out[~np.isfinite(x)] = np.nan
    return out


def _nanpercentile_rows(seg: np.ndarray, q: float) -> np.ndarray:
    # np.percentile is vectorised over rows, np.nanpercentile loops over them: keep the
    # latter for the rows that need it (same values either way)
    finite = np.isfinite(seg)
    complete = finite.all(axis=1)
    partial = finite.any(axis=1) & ~complete
    result = np.full(seg.shape[0], np.nan)
    if complete.any():
        result[complete] = np.percentile(seg[complete], q, axis=1)
    if partial.any():
        result[partial] = np.nanpercentile(seg[partial], q, axis=1)
    return result


def maximin_baseline(trace: np.ndarray, *, window_frames: int, smooth_frames: float) -> np.ndarray:
    """Slow baseline of a trace: max filter of the min filter of the smoothed trace.

    The baseline suite2p subtracts before deconvolution; it follows drifts slower than
    ``window_frames`` and stays under transients shorter than that.
    """
    smooth = ndimage.gaussian_filter1d(trace, smooth_frames) if smooth_frames > 0 else trace
    low = ndimage.minimum_filter1d(smooth, window_frames, mode="nearest")
    return ndimage.maximum_filter1d(low, window_frames, mode="nearest")
