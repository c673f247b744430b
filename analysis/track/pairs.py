"""Somata paired with their tuft dendrites by bAP coupling (circular-shift shuffle test)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from analysis.dims import ROI, TIME
from analysis.track.settings import TrackSettings

logger = logging.getLogger(__name__)


def _sample_rate(traces: xr.DataArray) -> float:
    steps = np.diff(np.asarray(traces[TIME].values, float))
    steps = steps[steps > 0]
    if not len(steps):
        raise ValueError("traces need an increasing 'time' coordinate (s) to infer fs_hz")
    return 1.0 / float(np.median(steps))


def _event_trace(x: np.ndarray, window: int, threshold_sd: float) -> np.ndarray:
    """High-pass (running mean removed), robust-z, keep only supra-threshold activity."""
    x = np.nan_to_num(x - np.nanmean(x, axis=1, keepdims=True))
    x = x - ndimage.uniform_filter1d(x, size=window, axis=1, mode="nearest")
    sd = 1.4826 * np.median(np.abs(x - np.median(x, axis=1, keepdims=True)), axis=1)
    z = x / np.where(sd > 0, sd, 1.0)[:, None]
    return np.where(z > threshold_sd, z, 0.0)


def pair_dendrites(
    soma_traces: xr.DataArray,
    dendrite_traces: xr.DataArray,
    *,
    settings: TrackSettings,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Pair dendrites with somata by back-propagating AP coupling, with a shuffle test.

    Each trace is high-passed (running mean over ``highpass_window_s`` removed),
    robust-z-scored (median absolute deviation) and thresholded at
    ``event_threshold_sd`` so only events remain. ``corr`` is the Pearson correlation
    of these event traces. Null: every dendrite is circularly shifted by
    ``n_shuffles`` random lags (>= ``min_shift_s`` from 0); for each lag the maximum
    correlation over all somata is taken, so ``p_value`` = (1 + #null max >= corr) /
    (1 + n_shuffles) is corrected for testing many somata per dendrite. A dendrite is
    paired with the soma of highest ``corr`` among those with p < ``alpha`` and
    ``corr >= min_corr``; a soma may have several dendrites.

    Parameters
    ----------
    soma_traces, dendrite_traces : xr.DataArray, dims (roi, time)
        dF/F (or F) on the same frames, ``time`` in s (may be sessions concatenated;
        the frame rate is the median positive time step). NaNs count as baseline.
    settings : TrackSettings
        Pairing settings.
    rng : np.random.Generator
        Source of the shuffle lags.

    Returns
    -------
    pd.DataFrame
        One row per (soma, dendrite): ``soma_roi, dendrite_roi, corr, p_value, paired``.
    """
    for name, tr in (("soma_traces", soma_traces), ("dendrite_traces", dendrite_traces)):
        if tuple(tr.dims) != (ROI, TIME):
            raise ValueError(f"{name} dims {tr.dims} != ('roi', 'time')")
    n_t = soma_traces.sizes[TIME]
    if dendrite_traces.sizes[TIME] != n_t:
        raise ValueError(
            f"soma ({n_t}) and dendrite ({dendrite_traces.sizes[TIME]}) traces must cover "
            "the same frames"
        )
    fs_hz = _sample_rate(soma_traces)
    window = max(3, int(round(settings.highpass_window_s * fs_hz)))
    min_shift = int(round(settings.min_shift_s * fs_hz))
    if n_t - 2 * min_shift < 1:
        raise ValueError(
            f"traces ({n_t} frames) too short for min_shift_s={settings.min_shift_s} s at "
            f"{fs_hz:.1f} Hz"
        )
    s = _event_trace(np.asarray(soma_traces.values, float), window, settings.event_threshold_sd)
    d = _event_trace(np.asarray(dendrite_traces.values, float), window, settings.event_threshold_sd)
    s = s - s.mean(axis=1, keepdims=True)
    d = d - d.mean(axis=1, keepdims=True)
    s_norm = np.linalg.norm(s, axis=1)
    s_fft = np.fft.rfft(s)
    lags = rng.integers(min_shift, n_t - min_shift + 1, size=(settings.n_shuffles, d.shape[0]))
    corr = np.zeros((s.shape[0], d.shape[0]))
    p = np.ones_like(corr)
    for j in range(d.shape[0]):
        norm = s_norm * np.linalg.norm(d[j])
        if not np.any(norm > 0):
            continue
        # circular cross-correlation at every lag at once: xc[i, k] = sum_t s_i(t) d_j(t - k)
        xc = np.fft.irfft(s_fft * np.conj(np.fft.rfft(d[j])), n=n_t)
        xc = np.where(norm[:, None] > 0, xc / np.where(norm > 0, norm, 1.0)[:, None], 0.0)
        corr[:, j] = xc[:, 0]
        null_max = xc.max(axis=0)[lags[:, j]]
        p[:, j] = (1 + (null_max[None, :] >= corr[:, j, None]).sum(axis=1)) / (
            1 + settings.n_shuffles
        )

    candidate = (p < settings.alpha) & (corr >= settings.min_corr)
    paired = np.zeros_like(candidate)
    for j in range(d.shape[0]):
        if candidate[:, j].any():
            paired[np.argmax(np.where(candidate[:, j], corr[:, j], -np.inf)), j] = True
    soma_ids = soma_traces[ROI].values
    dend_ids = dendrite_traces[ROI].values
    ii, jj = np.meshgrid(np.arange(len(soma_ids)), np.arange(len(dend_ids)), indexing="ij")
    logger.info("pair_dendrites: %d of %d dendrites paired", paired.any(0).sum(), len(dend_ids))
    return pd.DataFrame(
        {
            "soma_roi": soma_ids[ii.ravel()].astype(np.int64),
            "dendrite_roi": dend_ids[jj.ravel()].astype(np.int64),
            "corr": corr.ravel(),
            "p_value": p.ravel(),
            "paired": paired.ravel(),
        }
    )
