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

Memory. :func:`extract_plane` runs the stage for one plane without holding every ROI's
traces: :func:`extract_traces` streams the movie in batches of frames and writes ``F`` and
``Fneu`` to a scratch file (``out``), then the per-ROI steps (:func:`blank_frames`,
:func:`compute_dff`, :func:`deconvolve`, :func:`detect_events`, :func:`process_block`)
run on blocks of ``ExtractSettings.roi_block(n_frames)`` ROIs (``max_memory_gb``), each
written to the traces file as it is done. Every step is per ROI, so the result is the
same as on all ROIs at once.

Every trace carries ``time`` in seconds (``frame / fs_hz``) and an integer ``frame``
coordinate on the ``time`` dim.

NaN handling. Dropped or blanked frames are NaN pixels in a float movie; ``F``/``Fneu``
are NaN on frames where any pixel of that ROI (or annulus) is NaN. Baselines skip NaN
samples (NaN-aware smoothing and percentiles), so ``dff`` is NaN exactly where ``F`` or
``Fneu`` is. OASIS needs a complete trace: NaN frames are linearly interpolated for the
fit and set back to NaN in ``spikes`` and ``denoised``. Events cannot peak on a NaN frame.

Modules: ``settings`` (ExtractSettings), ``traces`` (F and neuropil), ``dff`` (dF/F and
its baseline), ``events`` (deconvolution, events), ``plane`` (the stage in blocks of
ROIs), ``common`` (checks).
"""

from __future__ import annotations

from analysis.extract.dff import compute_dff, maximin_baseline
from analysis.extract.events import deconvolve, detect_events, native_step
from analysis.extract.plane import concat_events, extract_plane, process_block, roi_blocks
from analysis.extract.settings import ExtractSettings
from analysis.extract.traces import blank_frames, compute_neuropil_masks, extract_traces

__all__ = [
    "ExtractSettings",
    "blank_frames",
    "compute_dff",
    "compute_neuropil_masks",
    "concat_events",
    "deconvolve",
    "detect_events",
    "extract_plane",
    "extract_traces",
    "maximin_baseline",
    "native_step",
    "process_block",
    "roi_blocks",
]
