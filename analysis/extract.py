"""Extract stage: fluorescence traces, neuropil, dF/F, deconvolution and events.

Contract (docs/contracts.md "extract.py"):

- Input: a registered movie ``(time, row, col)`` (array-like, e.g. a read-only memmap; it
  is read in batches of frames and never loaded whole) and masks ``(roi, row, col)``
  float32 weights in the same session coordinates.
- :func:`extract_traces` -> Dataset ``F(roi, time)``, ``Fneu(roi, time)`` float32.
  ``F`` is the weight-normalised mean of the mask pixels; ``Fneu`` is the plain mean of
  an annulus of pixels whose distance to the ROI lies in
  ``(neuropil_inner_radius_px, neuropil_outer_radius_px]``, excluding the pixels of
  every ROI (the outer radius grows until ``min_neuropil_pixels`` are found).
- :func:`compute_dff` adds ``Fcorr = F - c * Fneu``, ``baseline`` (F0 of ``Fcorr``),
  ``baseline_F`` (F0 of ``F``) and ``dff``. F0 is the ``baseline_percentile``-th
  running percentile, over a centred window of ``baseline_window_s``, of the trace after
  Gaussian smoothing (sigma ``baseline_smooth_s``). dF/F is
  ``(Fcorr - baseline) / denominator``. By default (``dff_denominator="Fcorr"``) the
  denominator is ``baseline``, so dF/F is the cell's own fractional change, but never
  less than ``min_baseline_fraction * baseline_F``: after neuropil subtraction the
  baseline of ``Fcorr`` can approach zero or go negative and would blow dF/F up, while
  ``baseline_F`` (raw F) is a true, positive fluorescence level. Floored frames are
  logged. ``dff_denominator="F"`` divides by ``baseline_F`` throughout (smaller values,
  scaled by each ROI's neuropil fraction).
- :func:`deconvolve` -> ``spikes(roi, time)``, ``denoised(roi, time)`` with OASIS
  (Friedrich, Zhou & Paninski 2017, doi:10.1371/journal.pcbi.1005423).
- :func:`detect_events` -> table ``roi, frame, peak_frame, time_s, amplitude, peak_dff,
  noise_sd``.

Every trace carries ``time`` in seconds (``frame / fs_hz``) and an integer ``frame``
coordinate on the ``time`` dim.

NaN handling. Dropped or blanked frames are NaN pixels in a float movie; ``F``/``Fneu``
are NaN on frames where any pixel of that ROI (or annulus) is NaN. Baselines skip NaN
samples (NaN-aware smoothing and percentiles), so ``dff`` is NaN exactly where ``F`` or
``Fneu`` is. OASIS needs a complete trace: NaN frames are linearly interpolated for the
fit and set back to NaN in ``spikes`` and ``denoised``. Events cannot peak on a NaN frame.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, signal, sparse

from analysis.dims import FRAME, MASK_DIMS, ROI, TIME, TRACE_DIMS
from analysis.runlog import Progress
from analysis.settings import StageSettings, require
from analysis.tables import true_runs

log = logging.getLogger(__name__)

# Running percentiles are evaluated at this many points per window and interpolated
# linearly in between: the baseline cannot vary faster than the window anyway.
_BASELINE_POINTS_PER_WINDOW = 20


@dataclasses.dataclass(frozen=True)
class ExtractSettings(StageSettings):
    """Settings of the extract stage (config section ``extract``).

    Attributes
    ----------
    neuropil_coefficient : float
        ``c`` in ``Fcorr = F - c * Fneu`` (0-1.5; 0.7 is the usual GCaMP value).
    neuropil_inner_radius_px : float
        Gap between an ROI and its neuropil annulus, px (distance to the nearest ROI pixel).
    neuropil_outer_radius_px : float
        Outer edge of the annulus, px; grown by 1.5x until ``min_neuropil_pixels``.
    min_neuropil_pixels : int
        Fewest pixels an annulus may have before its outer radius is grown.
    baseline_window_s : float
        Length of the centred running-percentile window for F0, seconds.
    baseline_percentile : float
        Percentile (0-100) of the smoothed trace taken as F0.
    baseline_smooth_s : float
        Gaussian sigma applied before the running percentile, seconds (0 = none).
    dff_denominator : {"Fcorr", "F"}
        Baseline used as the dF/F denominator: of Fcorr (default, floored) or of raw F.
    min_baseline_fraction : float
        With ``"Fcorr"``, the denominator is at least this fraction of ``baseline_F``.
    tau_decay_s : float
        Indicator decay time constant for OASIS, seconds.
    tau_rise_s : float
        Rise time constant, seconds (used by ``oasis_ar2`` only).
    deconvolution_method : {"oasis_ar1", "oasis_ar2"}
        AR(1) (decay only) or AR(2) (rise and decay) calcium model. AR(2) is the
        default: at 15 Hz the indicator's rise spans a frame, and ignoring it puts
        inferred spikes a frame late (median r with true spikes in 40 ms bins on the
        sample: 0.97 AR(2) vs 0.87 AR(1); suite2p's default deconvolution 0.91).
    estimate_tau : bool
        Estimate the AR coefficients per ROI from the data instead of using the taus.
    deconv_baseline_window_s : float
        Window of the maximin baseline (min then max filter of the smoothed trace)
        subtracted before OASIS, seconds (suite2p's default preprocessing): slow drifts
        left in dF/F otherwise make OASIS's noise-constrained AR(2) fit take minutes
        per trace.
    deconv_baseline_smooth_s : float
        Gaussian sigma of the smoothing before that min-max, seconds.
    spike_smooth_s : float
        Gaussian sigma applied to the deconvolved activity, seconds (0 = none). OASIS
        puts each spike on one frame, but spike times read from calcium are only known
        to tens of ms (the indicator's rise, the scan within a frame); at frame rates
        well above 25 Hz a spike placed one frame off would otherwise miss its 40 ms bin.
        0.015 s is under a quarter of a frame at 15 Hz (no effect there); it raised the
        median r with ground-truth spikes (40 ms bins) on 60 Hz GCaMP6s recordings
        (CASCADE DS14) from 0.50 to 0.55 (``benchmarks/realdata.py``).
    event_threshold_sd : float
        Detection threshold in robust noise SDs, applied to the rise over ``event_rise_s``
        and to the amplitude (see :func:`detect_events`).
    event_min_separation_s : float
        Minimum time between two event peaks of one ROI, seconds.
    event_smooth_s : float
        Gaussian sigma of the smoothing used to detect events (rises), seconds.
    event_median_s : float
        Width of the running median on which peaks, troughs and amplitudes are read,
        seconds (the largest odd number of frames that fits; a median keeps step edges).
    event_rise_s : float
        Window over which a rise is measured for detection, seconds (about the
        indicator's rise time).
    event_lookback_s : float
        How far before a rise the preceding minimum is searched, seconds (never further
        back than the previous event's peak).
    event_onset_fraction : float
        Event onset = first frame after the preceding minimum where the smoothed trace
        has risen by this fraction of the amplitude.
    """

    section = "extract"

    neuropil_coefficient: float = 0.7
    neuropil_inner_radius_px: float = 2.0
    neuropil_outer_radius_px: float = 10.0
    min_neuropil_pixels: int = 50
    baseline_window_s: float = 60.0
    baseline_percentile: float = 10.0
    baseline_smooth_s: float = 1.0
    dff_denominator: Literal["Fcorr", "F"] = "Fcorr"
    min_baseline_fraction: float = 0.1
    tau_decay_s: float = 0.7
    tau_rise_s: float = 0.07
    deconvolution_method: Literal["oasis_ar1", "oasis_ar2"] = "oasis_ar2"
    estimate_tau: bool = False
    deconv_baseline_window_s: float = 60.0
    deconv_baseline_smooth_s: float = 0.7
    spike_smooth_s: float = 0.015
    event_threshold_sd: float = 4.0
    event_min_separation_s: float = 0.5
    event_smooth_s: float = 0.05
    event_median_s: float = 0.1
    event_rise_s: float = 0.2
    event_lookback_s: float = 0.2
    event_onset_fraction: float = 0.5

    def __post_init__(self) -> None:
        require(
            0 <= self.neuropil_coefficient <= 1.5,
            "extract.neuropil_coefficient must be in 0..1.5",
        )
        require(self.neuropil_inner_radius_px >= 0, "extract.neuropil_inner_radius_px must be >= 0")
        require(
            self.neuropil_outer_radius_px > self.neuropil_inner_radius_px,
            "extract.neuropil_outer_radius_px must be > neuropil_inner_radius_px",
        )
        require(self.min_neuropil_pixels >= 1, "extract.min_neuropil_pixels must be >= 1")
        require(self.baseline_window_s > 0, "extract.baseline_window_s must be > 0")
        require(
            0 <= self.baseline_percentile <= 100, "extract.baseline_percentile must be in 0..100"
        )
        require(self.baseline_smooth_s >= 0, "extract.baseline_smooth_s must be >= 0")
        require(
            self.dff_denominator in ("F", "Fcorr"), "extract.dff_denominator must be 'F' or 'Fcorr'"
        )
        require(
            0 < self.min_baseline_fraction <= 1, "extract.min_baseline_fraction must be in (0, 1]"
        )
        require(self.tau_decay_s > 0, "extract.tau_decay_s must be > 0")
        require(self.deconv_baseline_window_s > 0, "extract.deconv_baseline_window_s must be > 0")
        require(self.deconv_baseline_smooth_s >= 0, "extract.deconv_baseline_smooth_s must be >= 0")
        require(self.spike_smooth_s >= 0, "extract.spike_smooth_s must be >= 0 s")
        require(
            0 < self.tau_rise_s < self.tau_decay_s,
            "extract.tau_rise_s must be in (0, tau_decay_s)",
        )
        require(
            self.deconvolution_method in ("oasis_ar1", "oasis_ar2"),
            "extract.deconvolution_method must be 'oasis_ar1' or 'oasis_ar2'",
        )
        require(self.event_threshold_sd > 0, "extract.event_threshold_sd must be > 0")
        require(self.event_min_separation_s >= 0, "extract.event_min_separation_s must be >= 0")
        require(self.event_smooth_s >= 0, "extract.event_smooth_s must be >= 0")
        require(self.event_median_s >= 0, "extract.event_median_s must be >= 0")
        require(self.event_rise_s > 0, "extract.event_rise_s must be > 0")
        require(self.event_lookback_s > 0, "extract.event_lookback_s must be > 0")
        require(0 < self.event_onset_fraction < 1, "extract.event_onset_fraction must be in (0, 1)")


# --- traces ------------------------------------------------------------------------------


def compute_neuropil_masks(masks: xr.DataArray, *, settings: ExtractSettings) -> xr.DataArray:
    """Neuropil annulus of each ROI, excluding the pixels of every ROI.

    Parameters
    ----------
    masks : xarray.DataArray (roi, row, col)
        Non-negative ROI weights (0 outside the ROI).
    settings : ExtractSettings

    Returns
    -------
    xarray.DataArray (roi, row, col) bool
        Annulus pixels: distance to the ROI in ``(inner, outer]`` px and in no ROI. The
        outer radius is grown by 1.5x (up to the FOV diagonal) until the annulus holds
        ``min_neuropil_pixels``; coordinate ``neuropil_outer_radius_px`` records the
        radius used.

    Raises
    ------
    ValueError
        If an ROI has no neuropil pixel at all (the ROIs cover the whole FOV).
    """
    _check_masks(masks)
    weights = masks.transpose(*MASK_DIMS).to_numpy()
    in_roi = weights > 0
    any_roi = in_roi.any(axis=0)
    n_rows, n_cols = any_roi.shape
    max_radius = float(np.hypot(n_rows, n_cols))
    annuli = np.zeros(in_roi.shape, dtype=bool)
    radii = np.zeros(in_roi.shape[0], dtype=np.float32)
    for k in range(in_roi.shape[0]):
        dist = ndimage.distance_transform_edt(~in_roi[k])
        outer = settings.neuropil_outer_radius_px
        while True:
            ring = (dist > settings.neuropil_inner_radius_px) & (dist <= outer) & ~any_roi
            if ring.sum() >= settings.min_neuropil_pixels or outer >= max_radius:
                break
            outer *= 1.5
        roi_id = masks[ROI].values[k]
        if not ring.any():
            raise ValueError(
                f"ROI {roi_id}: no neuropil pixel outside all ROIs; the masks cover the FOV"
            )
        if ring.sum() < settings.min_neuropil_pixels:
            log.warning(
                "ROI %s: neuropil annulus has only %d pixels (< min_neuropil_pixels %d)",
                roi_id,
                int(ring.sum()),
                settings.min_neuropil_pixels,
            )
        annuli[k] = ring
        radii[k] = outer
    out = xr.DataArray(annuli, dims=MASK_DIMS, coords={ROI: masks[ROI].values})
    return out.assign_coords(neuropil_outer_radius_px=(ROI, radii))


def extract_traces(
    movie: np.ndarray,
    masks: xr.DataArray,
    *,
    fs_hz: float,
    settings: ExtractSettings,
    batch_frames: int = 128,
) -> xr.Dataset:
    """ROI and neuropil fluorescence, streamed over the movie in batches of frames.

    Parameters
    ----------
    movie : array-like (time, row, col)
        Registered movie (e.g. a read-only ``np.memmap``); only ``batch_frames`` frames
        are in memory at once, converted to float32.
    masks : xarray.DataArray (roi, row, col)
        Non-negative ROI weights with integer ``roi`` ids, same (row, col) shape as movie.
    fs_hz : float
        Frame (volume) rate, Hz.
    settings : ExtractSettings
    batch_frames : int
        Frames read per batch.

    Returns
    -------
    xarray.Dataset
        ``F(roi, time)``: weighted mean of the ROI pixels; ``Fneu(roi, time)``: mean of
        the neuropil annulus (both float32, movie units). Coordinates ``time`` (s),
        ``frame`` (int), ``roi``, ``n_pixels(roi)``, ``n_neuropil_pixels(roi)``,
        ``neuropil_outer_radius_px(roi)``; attr ``fs_hz``. An ROI whose mask is empty
        (a tracked neuron outside this day's field of view) gets NaN traces.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> movie = rng.normal(100, 1, (20, 32, 32)).astype(np.float32)
    >>> masks = xr.DataArray(np.zeros((1, 32, 32), np.float32), dims=("roi", "row", "col"),
    ...                      coords={"roi": [0]})
    >>> masks[0, 10:14, 10:14] = 1
    >>> extract_traces(movie, masks, fs_hz=10.0, settings=ExtractSettings()).F.shape
    (1, 20)
    """
    if getattr(movie, "ndim", None) != 3:
        raise ValueError(
            f"extract_traces: movie must be (time, row, col), got shape {np.shape(movie)}"
        )
    _check_masks(masks, allow_empty=True)
    n_time, n_rows, n_cols = movie.shape
    if masks.sizes["row"] != n_rows or masks.sizes["col"] != n_cols:
        raise ValueError(
            f"extract_traces: masks are {masks.sizes['row']}x{masks.sizes['col']} px but the "
            f"movie is {n_rows}x{n_cols} px; masks must be in the movie's coordinates"
        )
    require(fs_hz > 0, "extract_traces: fs_hz must be > 0")
    require(batch_frames >= 1, "extract_traces: batch_frames must be >= 1")

    all_rois = masks[ROI].values
    in_view = (masks.transpose(*MASK_DIMS).to_numpy() > 0).any(axis=(1, 2))
    if not in_view.all():
        log.warning("ROIs %s have empty masks (outside the field of view): NaN traces",
                    all_rois[~in_view].tolist())  # fmt: skip
    masks = masks.isel({ROI: np.flatnonzero(in_view)})
    n_roi = masks.sizes[ROI]
    weights = sparse.csr_matrix(
        masks.transpose(*MASK_DIMS).to_numpy().reshape(n_roi, -1), dtype=np.float32
    )
    neuropil = compute_neuropil_masks(masks, settings=settings)
    ring = sparse.csr_matrix(neuropil.to_numpy().reshape(n_roi, -1), dtype=np.float32)
    # One sparse (2 * roi, pixel) matrix of row-normalised weights: each batch is one product.
    projector = sparse.vstack(
        [_normalise_rows(weights), _normalise_rows(ring)], format="csr", dtype=np.float32
    )

    out = np.empty((2 * n_roi, n_time), dtype=np.float32)
    progress = Progress(log, "extraction", n_time)
    for start in range(0, n_time, batch_frames):
        stop = min(start + batch_frames, n_time)
        block = np.asarray(movie[start:stop], dtype=np.float32).reshape(stop - start, -1)
        out[:, start:stop] = projector @ block.T
        progress.update(stop - start)
    log.info("extracted %d ROIs over %d frames", n_roi, n_time)

    coords = _trace_coords(n_time, fs_hz)
    coords[ROI] = masks[ROI].values
    ds = xr.Dataset(
        {"F": (TRACE_DIMS, out[:n_roi]), "Fneu": (TRACE_DIMS, out[n_roi:])}, coords=coords
    )
    ds = ds.assign_coords(
        n_pixels=(ROI, weights.getnnz(axis=1)),
        n_neuropil_pixels=(ROI, ring.getnnz(axis=1)),
        neuropil_outer_radius_px=(ROI, neuropil["neuropil_outer_radius_px"].values),
    ).assign_attrs(fs_hz=float(fs_hz))
    return ds.reindex(
        {ROI: all_rois},
        fill_value={
            "F": np.nan,
            "Fneu": np.nan,
            "n_pixels": 0,
            "n_neuropil_pixels": 0,
            "neuropil_outer_radius_px": np.nan,
        },
    )


def blank_frames(traces: xr.Dataset, exclude: np.ndarray) -> xr.Dataset:
    """Set every trace to NaN on excluded frames (dropped, or flagged bad by register).

    Such frames carry no trustworthy signal; NaN keeps them out of baselines, dF/F and
    events (see the module's NaN handling).

    Parameters
    ----------
    traces : xarray.Dataset
        From :func:`extract_traces` (``time`` dim).
    exclude : bool array (time,)
        True on frames to blank.
    """
    exclude = np.asarray(exclude, dtype=bool).ravel()
    if exclude.size != traces.sizes[TIME]:
        raise ValueError(
            f"blank_frames: {exclude.size} frame flags for {traces.sizes[TIME]} trace frames"
        )
    if exclude.any():
        log.info("%d frames set to NaN (dropped or bad)", int(exclude.sum()))
    return traces.where(xr.DataArray(~exclude, dims=TIME, coords={TIME: traces[TIME]}))


def _normalise_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Scale each row to sum 1 (rows are non-empty: checked upstream)."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sparse.diags(1.0 / sums) @ matrix


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
    baseline = _running_percentile(
        _nan_gaussian(fcorr, sigma), window, settings.baseline_percentile
    )
    baseline_f = _running_percentile(_nan_gaussian(F, sigma), window, settings.baseline_percentile)
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


def _nan_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
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

    Evaluated every ``window / _BASELINE_POINTS_PER_WINDOW`` frames and interpolated; NaN
    samples are skipped, and frames where ``x`` is NaN stay NaN.
    """
    n_time = x.shape[-1]
    step = max(1, window // _BASELINE_POINTS_PER_WINDOW)
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


# --- deconvolution and events -----------------------------------------------------------


def maximin_baseline(trace: np.ndarray, *, window_frames: int, smooth_frames: float) -> np.ndarray:
    """Slow baseline of a trace: max filter of the min filter of the smoothed trace.

    The baseline suite2p subtracts before deconvolution; it follows drifts slower than
    ``window_frames`` and stays under transients shorter than that.
    """
    smooth = ndimage.gaussian_filter1d(trace, smooth_frames) if smooth_frames > 0 else trace
    low = ndimage.minimum_filter1d(smooth, window_frames, mode="nearest")
    return ndimage.maximum_filter1d(low, window_frames, mode="nearest")


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

    _check_traces(dff, "deconvolve")
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
    _check_traces(dff, "detect_events")
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
        smooth = _nan_gaussian(y[None], sigma)[0]
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


# --- helpers ----------------------------------------------------------------------------


def _trace_coords(n_time: int, fs_hz: float) -> dict:
    frames = np.arange(n_time, dtype=np.int64)
    return {TIME: (TIME, frames / fs_hz), FRAME: (TIME, frames)}


def _check_masks(masks: xr.DataArray, *, allow_empty: bool = False) -> None:
    if not isinstance(masks, xr.DataArray) or set(masks.dims) != set(MASK_DIMS):
        raise ValueError(f"masks must be an xarray.DataArray with dims {MASK_DIMS}")
    values = masks.to_numpy()
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("masks must hold finite, non-negative weights")
    empty = masks[ROI].values[~(values.reshape(values.shape[0], -1) > 0).any(axis=1)]
    if empty.size and not allow_empty:
        raise ValueError(f"masks: ROIs {empty.tolist()} have no pixel with weight > 0")


def _check_traces(traces: xr.DataArray, who: str) -> None:
    if not isinstance(traces, xr.DataArray) or set(traces.dims) != set(TRACE_DIMS):
        raise ValueError(f"{who}: expected an xarray.DataArray with dims {TRACE_DIMS}")
    for name in (TIME, FRAME):
        if name not in traces.coords:
            raise ValueError(f"{who}: traces need a '{name}' coordinate on the time dim")
