"""OASIS deconvolution and event detection on dF/F."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, signal

from analysis.dims import FRAME, ROI, TIME, TRACE_DIMS
from analysis.extract.common import check_traces
from analysis.extract.dff import maximin_baseline, nan_gaussian
from analysis.extract.settings import ExtractSettings
from analysis.settings import require
from analysis.tables import true_runs

log = logging.getLogger(__name__)


# A trace interpolated from a slower rate has no power above the original Nyquist
# frequency: that band is at least this many times emptier than the octave below it
# (native traces: within a factor of about 100, from the indicator's spectral slope).
_RESAMPLED_POWER_RATIO = 1e3


def native_step(trace: np.ndarray) -> int:
    """Frames per native sample of a trace resampled from a slower rate; 1 for a native one.

    The empty band is found at the frequency ``f`` (cycles per frame, Welch estimate)
    with the largest drop of the median log power from ``[f / 2, f]`` to ``[f, 2 f]``;
    when that drop exceeds ``_RESAMPLED_POWER_RATIO``, the original Nyquist frequency is
    the highest frequency whose log power is still above the middle of the two levels
    (the edge of the interpolation filter), and the step is the original sampling
    interval, rounded to whole frames.
    """
    if trace.size < 64:
        return 1
    freqs, power = signal.welch(trace - trace.mean(), nperseg=min(256, trace.size))
    freqs = freqs[1:-1]
    power = np.log10(np.maximum(power[1:-1], np.finfo(np.float64).tiny))
    best, cut, middle = 0.0, 0.5, 0.0
    for f in freqs[8:-4]:  # enough bins on both sides of a cut-off
        occupied = np.median(power[(freqs >= f / 2) & (freqs <= f)])
        empty = np.median(power[(freqs > f) & (freqs <= 2 * f)])
        if occupied - empty > best:
            best, cut, middle = occupied - empty, f, (occupied + empty) / 2
    if best <= np.log10(_RESAMPLED_POWER_RATIO):
        return 1
    nyquist = freqs[(freqs <= 2 * cut) & (power > middle)].max()
    return max(1, int(round(0.5 / nyquist)))


def deconvolve(dff: xr.DataArray, *, fs_hz: float, settings: ExtractSettings) -> xr.Dataset:
    """Spike inference per ROI with OASIS (oasis-deconv), L1-penalised, noise-constrained.

    Parameters
    ----------
    dff : xarray.DataArray (roi, time)
        dF/F traces (fraction).
    fs_hz : float
        Frame rate, Hz.
    settings : ExtractSettings
        ``deconvolution_method`` picks AR(1) (``tau_decay_s``) or AR(2) (``tau_decay_s``,
        ``tau_rise_s``); with ``estimate_tau`` the AR coefficients are fitted per ROI;
        ``spike_smooth_s`` smooths the result.

    A trace resampled from a slower rate (see :func:`native_step`) is deconvolved at
    its native rate: the mean of each ``step`` frames, whose spikes are spread evenly
    back over them. At the resampled rate OASIS would read the empty upper band as
    a noise-free trace and fit every wiggle with spikes.

    Returns
    -------
    xarray.Dataset
        ``spikes(roi, time)``: deconvolved activity (dF/F jump per frame, >= 0),
        smoothed by a Gaussian of ``spike_smooth_s`` (which keeps its sum);
        ``denoised(roi, time)``: the fitted calcium trace plus the maximin drift and
        OASIS's constant baseline, in dF/F (overlays ``dff``); ``deconv_baseline(roi)``:
        that constant (on the drift-free trace); ``fitted_tau_decay_s(roi)``:
        decay time constant of the AR model used. All float32; NaN frames of ``dff`` stay
        NaN; an all-NaN ROI gives NaN everywhere.
    """
    from oasis.functions import ar1_to_tau, ar2_to_tau
    from oasis.functions import deconvolve as oasis_deconvolve

    check_traces(dff, "deconvolve")
    require(fs_hz > 0, "deconvolve: fs_hz must be > 0")
    y_all = dff.transpose(*TRACE_DIMS).to_numpy().astype(np.float64)
    ar2 = settings.deconvolution_method == "oasis_ar2"
    if settings.estimate_tau:
        kwargs = {"tau_d": None, "tau_r": None if ar2 else 0}
    else:
        kwargs = {"tau_d": settings.tau_decay_s, "tau_r": settings.tau_rise_s if ar2 else 0}
    spikes = np.full(y_all.shape, np.nan)
    denoised = np.full(y_all.shape, np.nan)
    base = np.full(y_all.shape[0], np.nan)
    tau = np.full(y_all.shape[0], np.nan)
    frames = np.arange(y_all.shape[1])
    for k, y in enumerate(y_all):
        valid = np.isfinite(y)
        if valid.sum() < 2:
            log.warning("deconvolve: ROI %s has < 2 finite frames; left NaN", dff[ROI].values[k])
            continue
        filled = np.interp(frames, frames[valid], y[valid])
        step = native_step(filled)
        if step > 1:
            log.info("deconvolve: ROI %s resampled from %.3g Hz; deconvolved at that rate",
                     dff[ROI].values[k], fs_hz / step)  # fmt: skip
        padded = np.concatenate([filled, np.full(-filled.size % step, filled[-1])])
        native = padded.reshape(-1, step).mean(axis=1)
        rate = fs_hz / step
        drift = maximin_baseline(
            native,
            window_frames=max(1, round(settings.deconv_baseline_window_s * rate)),
            smooth_frames=settings.deconv_baseline_smooth_s * rate,
        )
        # dF/F baselines can sit slightly below 0, so the OASIS baseline may be negative.
        res = oasis_deconvolve(native - drift, framerate=rate, penalty=1, b_nonneg=False, **kwargs)
        s = np.repeat(res.s / step, step)[: filled.size]
        fit = res.c + res.b + drift
        if step > 1:
            fit = np.interp(frames, step * np.arange(native.size) + (step - 1) / 2, fit)
        if settings.spike_smooth_s > 0:
            s = ndimage.gaussian_filter1d(s, settings.spike_smooth_s * fs_hz)
        spikes[k] = np.where(valid, s, np.nan)
        denoised[k] = np.where(valid, fit, np.nan)
        base[k] = res.b
        g = tuple(float(v) for v in np.atleast_1d(res.g))
        if len(g) == 2:
            tau[k] = ar2_to_tau(g[0], g[1], rate)[0]
        elif 0 < g[0] < 1:
            tau[k] = ar1_to_tau(g[0], rate)
    coords = {name: dff.coords[name] for name in dff.coords}
    return xr.Dataset(
        {
            "spikes": (TRACE_DIMS, spikes.astype(np.float32)),
            "denoised": (TRACE_DIMS, denoised.astype(np.float32)),
            "deconv_baseline": (ROI, base.astype(np.float32)),
            "fitted_tau_decay_s": (ROI, tau.astype(np.float32)),
        },
        coords=coords,
    ).assign_attrs(fs_hz=float(fs_hz), deconvolution_method=settings.deconvolution_method)


def detect_events(dff: xr.DataArray, *, fs_hz: float, settings: ExtractSettings) -> pd.DataFrame:
    """Calcium events with amplitudes, detected as fast rises beyond robust noise.

    Detection. The raw noise SD is ``1.4826 * MAD(diff(dff)) / sqrt(2)`` (differences
    discard slow transients, the MAD the fast ones). The trace is smoothed with a Gaussian
    (sigma ``event_smooth_s``, NaN-aware) and an event starts wherever its rise over
    ``event_rise_s`` (``s[t] - s[t - L]``) exceeds ``event_threshold_sd`` times that rise's
    noise SD (exact for white noise through the kernel), so slow drifts and decays never
    trigger and the false-positive rate on pure noise is known.

    Amplitude. Peaks and troughs are read on a running median of width
    ``event_median_s``, which keeps the step edge of a transient (a Gaussian would shave
    the peak and lift the trough). The peak is the median trace's maximum over the rise
    run plus ``L`` frames; the amplitude is that peak minus the minimum of the median trace
    from ``event_lookback_s`` before the run (never before the previous event's peak), i.e.
    the increment on top of any decaying earlier event; it must also reach
    ``event_threshold_sd`` noise SDs of the median trace (``sd * sqrt(pi / (2 * width))``).
    Peaks closer than ``event_min_separation_s`` are merged (the higher is kept). With
    noise the minimum and maximum are read on noisy samples, which biases amplitudes up
    by about one median-trace noise SD.

    Parameters
    ----------
    dff : xarray.DataArray (roi, time)
        dF/F traces with ``time`` (s) and ``frame`` coordinates.
    fs_hz : float
        Frame rate, Hz.
    settings : ExtractSettings

    Returns
    -------
    pandas.DataFrame
        One row per event, sorted by roi then frame: ``roi``, ``frame`` (onset: first frame
        after the preceding minimum at which the rise reaches ``event_onset_fraction`` of
        the amplitude), ``peak_frame``, ``time_s`` (onset time, s), ``amplitude`` (dF/F),
        ``peak_dff`` (median-filtered dF/F at the peak), ``noise_sd`` (raw-trace noise SD).
        ``frame`` values are the trace's ``frame`` coordinate.
    """
    check_traces(dff, "detect_events")
    require(fs_hz > 0, "detect_events: fs_hz must be > 0")
    y_all = dff.transpose(*TRACE_DIMS).to_numpy().astype(np.float64)
    frame_coord = np.asarray(dff[FRAME].values)
    time_coord = np.asarray(dff[TIME].values, dtype=np.float64)
    roi_ids = dff[ROI].values  # once: an xarray lookup per event costs more than detection
    sigma = settings.event_smooth_s * fs_hz
    rise = max(1, int(round(settings.event_rise_s * fs_hz)))
    gain_rise = _rise_noise_gain(sigma, rise)
    # Largest odd frame count within event_median_s (1 = no median).
    width = max(1, int(settings.event_median_s * fs_hz + 1e-9))
    width -= 1 - width % 2
    distance = int(round(settings.event_min_separation_s * fs_hz))
    lookback = max(1, int(round(settings.event_lookback_s * fs_hz)))
    rows = []
    for k, y in enumerate(y_all):
        valid = np.isfinite(y)
        if valid.sum() < rise + 2:
            continue
        diffs = np.diff(y[valid])
        sd = 1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2)
        if not sd > 0:
            continue
        smooth = nan_gaussian(y[None], sigma)[0]
        level = _nan_median(y, width)
        increase = np.full(y.size, np.nan)
        increase[rise:] = smooth[rise:] - smooth[:-rise]
        with np.errstate(invalid="ignore"):
            above = increase > settings.event_threshold_sd * sd * gain_rise
        events: list[list[int]] = []  # [min_frame, peak_frame]
        for start, stop in true_runs(above):
            lo = max(0, start - rise - lookback, events[-1][1] + 1 if events else 0)
            hi = min(y.size, stop + rise)
            peak = start + int(np.nanargmax(level[start:hi]))
            if events and peak - events[-1][1] < distance:
                if level[peak] > level[events[-1][1]]:
                    events[-1][1] = peak
                continue
            i_min = lo + int(np.nanargmin(level[lo : peak + 1]))
            events.append([i_min, peak])
        amp_thr = settings.event_threshold_sd * sd * np.sqrt(np.pi / (2 * width))
        for i_min, peak in events:
            amp = level[peak] - level[i_min]
            if not amp >= amp_thr:
                continue
            climb = level[i_min : peak + 1] - level[i_min]
            onset = i_min + int(np.argmax(climb >= settings.event_onset_fraction * amp))
            rows.append(
                (
                    roi_ids[k],
                    int(frame_coord[onset]),
                    int(frame_coord[peak]),
                    float(time_coord[onset]),
                    float(amp),
                    float(level[peak]),
                    float(sd),
                )
            )
    columns = ["roi", "frame", "peak_frame", "time_s", "amplitude", "peak_dff", "noise_sd"]
    table = pd.DataFrame(rows, columns=columns)
    log.info("detected %d events in %d ROIs", len(table), y_all.shape[0])
    return table.astype({"roi": np.int64, "frame": np.int64, "peak_frame": np.int64})


def _rise_noise_gain(sigma: float, lag: int) -> float:
    """SD of the ``lag``-frame difference of Gaussian-smoothed unit white noise."""
    half = int(8 * max(sigma, 1.0)) + lag
    impulse = np.zeros(2 * half + 1)
    impulse[half] = 1.0
    kernel = ndimage.gaussian_filter1d(impulse, sigma, mode="constant") if sigma > 0 else impulse
    diff = kernel - np.roll(kernel, lag)
    return float(np.sqrt(np.sum(diff**2)))


def _nan_median(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running median of odd ``width`` skipping NaN; NaN where ``x`` is NaN.

    A median filter keeps step edges and monotonic decays, so calcium transients keep
    their peak and the trough before them while the noise shrinks.
    """
    if width <= 1:
        return x.copy()
    half = width // 2
    padded = np.concatenate([np.full(half, np.nan), x, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows inside NaN gaps
        out = np.nanmedian(windows, axis=1)
    out[~np.isfinite(x)] = np.nan
    return out
