"""The extract stage's settings (config section ``extract``)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from analysis.settings import StageSettings, require

# Running percentiles are evaluated at this many points per window and interpolated
# linearly in between: the baseline cannot vary faster than the window anyway.
BASELINE_POINTS_PER_WINDOW = 20

# Peak bytes per ROI and frame of the per-ROI steps on one block of ROIs (its F/Fneu read
# from scratch, blanking, dF/F, deconvolution, events, the float32 result written): 90
# with tracemalloc, 96 of peak RSS on 500 ROIs x 20,000 frames; rounded up.
BLOCK_BYTES_PER_ROI_FRAME = 128


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
    max_memory_gb : float
        Memory for the per-ROI steps, GB: ROIs are processed and written in blocks of
        as many as fit (:meth:`roi_block`, at least one), so memory does not grow with
        the number of ROIs. Does not change the results.
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
    max_memory_gb: float = 1.0

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
        require(self.max_memory_gb > 0, "extract.max_memory_gb must be > 0 GB")

    def roi_block(self, n_frames: int) -> int:
        """ROIs per block for traces of ``n_frames`` frames: as many as fit in
        ``max_memory_gb`` at ``BLOCK_BYTES_PER_ROI_FRAME`` each (at least 1)."""
        per_roi = BLOCK_BYTES_PER_ROI_FRAME * max(1, n_frames)
        return max(1, int(self.max_memory_gb * 1e9 // per_roi))
