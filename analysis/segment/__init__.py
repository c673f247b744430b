"""Segment stage: somata and apical tuft dendrites from a registered movie.

Input: one registered plane, a ``(time, row, col)`` int16 array-like (usually a memmap
from ``analysis.io.open_movie``), its mean image and the volume rate ``fs_hz``.
Output: a sparse mask set (:mod:`analysis.masks`: pixel lists with float32 weights that
sum to 1 inside each ROI), integer ``roi`` ids 0..N-1 and per-roi coordinates:

- somata (:func:`detect_somata`): ``is_cell``, ``area_px``, ``compactness``, ``skewness``,
  ``mean_brightness``, ``contrast``, ``blob_z``, ``blob_snr``, ``correlation_contrast``,
  ``event_area_px``, ``cell_probability``, ``rim_px``, ``anatomical``, ``centroid_row``,
  ``centroid_col``;
- dendrites (:func:`detect_dendrites`): ``area_px``, ``length_px``, ``n_fragments``,
  ``centroid_row``, ``centroid_col``.

Somata come from suite2p's functional detection (sparsery; Stringer & Pachitariu,
doi:10.1101/061507), so no model weights are needed, plus soma-sized bright or dark
blobs of the mean image (Laplacian of Gaussian) where sparsery found no cell: somata
too quiet to detect by their activity. sparsery ROIs spanning several
somata are cut at their weight peaks, ROIs splitting one soma are merged, dim rims are
trimmed; cells are told from neuropil fragments by rules on area (relative to the
expected diameter), compactness, the skewness of the ROI trace, the mean-image
contrast against a surrounding ring and the area the ROI's events light; each cell then
gains the 1-px rim its events light.
Dendrites are ridges of the local correlation image (Sato tubeness filter), cut into
fragments at local correlation maxima; fragments of one tuft are merged when their
traces correlate, and kept when the merged skeleton is long enough.

Modules: ``settings`` (SegmentSettings), ``somata`` (:func:`detect_somata`), ``anatomy``
(mean-image blobs), ``footprint`` (event areas, rims), ``dendrites``
(:func:`detect_dendrites`), ``common`` (input checks, the sparse mask set).
"""

from __future__ import annotations

from analysis.segment.dendrites import detect_dendrites
from analysis.segment.settings import SegmentSettings
from analysis.segment.somata import detect_somata

__all__ = [
    "SegmentSettings",
    "detect_dendrites",
    "detect_somata",
]
