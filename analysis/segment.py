"""Segment stage: somata and apical tuft dendrites from a registered movie.

Input: one registered plane, a ``(time, row, col)`` int16 array-like (usually a memmap
from ``analysis.io.open_movie``), its mean image and the volume rate ``fs_hz``.
Output: an ``xr.DataArray`` of masks with dims ``(roi, row, col)``, float32 weights that
sum to 1 inside each ROI and are 0 outside, integer ``roi`` ids 0..N-1 and per-roi
coordinates:

- somata (:func:`detect_somata`): ``is_cell``, ``area_px``, ``compactness``, ``skewness``,
  ``mean_brightness``, ``contrast``, ``blob_z``, ``blob_snr``, ``anatomical``,
  ``centroid_row``, ``centroid_col``;
- dendrites (:func:`detect_dendrites`): ``area_px``, ``length_px``, ``n_fragments``,
  ``centroid_row``, ``centroid_col``.

Somata come from suite2p's functional detection (sparsery; Stringer & Pachitariu,
doi:10.1101/061507), so no model weights are needed, plus soma-sized bright or dark
blobs of the mean image (Laplacian of Gaussian) where sparsery found no cell: somata
too quiet to detect by their activity. sparsery ROIs spanning several
somata are cut at their weight peaks, ROIs splitting one soma are merged, dim rims are
trimmed; cells are told from neuropil fragments by rules on area (relative to the
expected diameter), compactness, the skewness of the ROI trace and the mean-image
contrast against a surrounding ring.
Dendrites are ridges of the local correlation image (Sato tubeness filter), cut into
fragments at local correlation maxima; fragments of one tuft are merged when their
traces correlate, and kept when the merged skeleton is long enough.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from scipy import ndimage, sparse, stats

from analysis import io, suite2p_kernels
from analysis.dims import COL, MASK_DIMS, ROI, ROW
from analysis.settings import StageSettings, require

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SegmentSettings(StageSettings):
    """Settings of the segment stage (config section ``segment``).

    Soma detection (suite2p sparsery)
        diameter_px: expected soma diameter; sets sparsery's spatial scale
        (``round(log2(diameter_px / 3))``, clipped to 1..4) and suite2p's ROI statistics.
        tau_s: indicator decay time; suite2p bins ``round(tau_s * fs_hz)`` frames together.
        threshold_scaling: sparsery peak threshold multiplier (higher = fewer ROIs).
        max_rois: upper bound on the number of ROIs sparsery extracts.
        highpass_time_bins: temporal high-pass window, in binned frames.
        highpass_neuropil_px: spatial high-pass (neuropil) filter size of sparsery (somata).
        max_overlap: drop ROIs sharing more than this fraction of pixels with others.
        merge_distance_fraction: sparsery ROIs whose centroids are closer than this
        fraction of ``diameter_px`` are merged (one soma split in two), as long as the
        union's area stays within ``max_area_fraction``.
        trim_fraction: after merging, pixels weighted below this fraction of the ROI's
        peak weight are dropped (dim rims spilling onto neighbouring somata).
        merge_core_iou: close ROIs whose untrimmed union is too large are still merged
        when their cores (pixels >= ``trim_fraction`` of the peak) overlap at least this
        much (IoU) and the union of the cores fits: two halves of one soma whose dim
        rims spill far, not two somata (their cores do not overlap).
        max_binned_frames: cap on the number of binned frames sparsery gets; longer
        movies get longer bins. sparsery holds about five binned movies, so this bounds
        the stage's memory (500: ~0.7 GB at 256 x 256 px) whatever the recording length.
    Cell classification (no downloaded classifier)
        min_area_fraction, max_area_fraction: allowed ROI area, as fractions of the
        area of a disk of ``diameter_px``.
        max_compactness: compactness (mean pixel distance from the centroid over that of a
        filled disk of equal area; ~1 = disk, larger = more scattered).
        min_skewness: skewness of the ROI's binned trace; sparse calcium transients are
        strongly positively skewed, neuropil fragments are not.
        min_contrast: mean-image brightness inside the ROI over that of a ring half a
        diameter wide around it; somata (indicator-filled cytoplasm) stand out from the
        neuropil, patches of neuropil do not.
    Anatomical detection (mean image; finds somata too quiet for sparsery)
        anatomical: also look for soma-sized blobs in the mean image and add those away
        from the functional cells. A blob passing both rules below is a cell when it
        passes the area and compactness rules (not the activity rules: such somata may
        be nearly silent). Off by default: on the simulated 256 px validation cohort it
        added 20-30 false somata per session (soma F1 0.96 -> 0.81), on the real
        neurofinder movie it doubled F1 (0.16 -> 0.32); turn it on for fields with many
        silent or dark somata and check the ROIs.
        anatomical_min_z: the blob's Laplacian-of-Gaussian response (soma scale, on the
        locally contrast-normalised mean image), in robust SDs of that response over the
        image; bright somata and dark (nucleus-filled, indicator-excluded) somata both
        count. Measures how much the blob stands out from the neuropil texture.
        anatomical_min_snr: the same response on the plain mean image over its standard
        error from the frames' noise; keeps noise from passing as texture in flat images.
    Dendrite detection
        dendrite_bin_s: time bin (s) averaged before computing correlations (about the
        dendritic event decay).
        dendrite_neuropil_block_px: neuropil of the dendrite plane = median of square blocks
        of this size in each binned frame, bilinearly interpolated.
        motion_block_px: residual registration error is removed in square blocks of this
        size (fit of the mean image's gradients to each binned frame).
        ridge_sigmas_px: scales of the Sato ridge filter (about half the dendrite width).
        ridge_threshold_sd: ridge pixels have a ridge response above this many robust SDs
        (from the median minus the 25th percentile) above the image median.
        correlation_threshold_sd: ridge pixels must also have a local correlation this many
        robust SDs above the correlation image's median.
        seed_distance_px: minimum distance between fragment seeds (local correlation
        maxima); smaller cuts touching dendrites into more, shorter fragments.
        seed_smoothing_px: Gaussian smoothing (SD) of the correlation image before seeds
        are found; more smoothing leaves a short dendrite touching a longer one without
        a seed of its own (it becomes part of the other's fragment).
        min_fragment_skewness: fragments whose binned trace has a lower skewness are
        dropped; the neuropil high-pass leaves a negative copy of each dendrite's activity
        in a halo around it (negatively skewed), which this removes.
        min_length_px: merged ROIs whose skeleton is shorter are dropped (a skeleton is
        about 2 px shorter than the dendrite it traces).
        min_dendrite_area_px: merged ROIs with fewer pixels are dropped (a dendrite
        segment 2-3 px wide and ``min_length_px`` long covers more).
        merge_corr_threshold: fragments are merged (average-linkage clustering) while their
        binned traces correlate at least this much on average (one tuft).
    device: torch device for suite2p ("cpu" on machines without a GPU).
    """

    section: ClassVar[str] = "segment"

    diameter_px: float = 8.0
    tau_s: float = 1.0
    threshold_scaling: float = 1.0
    max_rois: int = 500
    highpass_time_bins: int = 100
    highpass_neuropil_px: int = 25
    max_overlap: float = 0.75
    merge_distance_fraction: float = 0.7
    trim_fraction: float = 0.3
    merge_core_iou: float = 0.3
    max_binned_frames: int = 500
    min_area_fraction: float = 0.4
    max_area_fraction: float = 2.5
    max_compactness: float = 1.6
    min_skewness: float = 0.5
    min_contrast: float = 1.2
    anatomical: bool = False
    anatomical_min_z: float = 2.5
    anatomical_min_snr: float = 5.0
    dendrite_bin_s: float = 0.4
    ridge_sigmas_px: tuple[float, ...] = (1.0,)
    dendrite_neuropil_block_px: int = 16
    motion_block_px: int = 28
    ridge_threshold_sd: float = 0.5
    correlation_threshold_sd: float = 1.5
    seed_distance_px: int = 2
    seed_smoothing_px: float = 0.5
    min_fragment_skewness: float = 0.3
    min_length_px: int = 6
    min_dendrite_area_px: int = 18
    merge_corr_threshold: float = 0.6
    device: str = "cpu"

    def __post_init__(self) -> None:
        require(self.diameter_px >= 3, "segment.diameter_px must be >= 3 px")
        require(self.tau_s > 0, "segment.tau_s must be > 0 s")
        require(self.threshold_scaling > 0, "segment.threshold_scaling must be > 0")
        require(self.max_rois >= 1, "segment.max_rois must be >= 1")
        require(self.highpass_time_bins >= 1, "segment.highpass_time_bins must be >= 1")
        require(self.highpass_neuropil_px >= 1, "segment.highpass_neuropil_px must be >= 1")
        require(0 < self.max_overlap <= 1, "segment.max_overlap must be in (0, 1]")
        require(self.max_binned_frames >= 10, "segment.max_binned_frames must be >= 10")
        require(self.merge_distance_fraction >= 0, "segment.merge_distance_fraction must be >= 0")
        require(0 <= self.trim_fraction < 1, "segment.trim_fraction must be in [0, 1)")
        require(0 < self.merge_core_iou <= 1, "segment.merge_core_iou must be in (0, 1]")
        require(
            0 <= self.min_area_fraction <= self.max_area_fraction,
            "segment.min_area_fraction must be >= 0 and <= segment.max_area_fraction",
        )
        require(self.max_compactness >= 1, "segment.max_compactness must be >= 1")
        require(self.min_contrast >= 0, "segment.min_contrast must be >= 0")
        require(self.anatomical_min_z > 0, "segment.anatomical_min_z must be > 0")
        require(self.anatomical_min_snr > 0, "segment.anatomical_min_snr must be > 0")
        require(self.dendrite_bin_s > 0, "segment.dendrite_bin_s must be > 0 s")
        require(
            len(self.ridge_sigmas_px) > 0 and all(s > 0 for s in self.ridge_sigmas_px),
            "segment.ridge_sigmas_px must be a non-empty list of positive scales (px)",
        )
        require(
            self.dendrite_neuropil_block_px >= 4, "segment.dendrite_neuropil_block_px must be >= 4"
        )
        require(self.motion_block_px >= 8, "segment.motion_block_px must be >= 8 px")
        require(self.ridge_threshold_sd > 0, "segment.ridge_threshold_sd must be > 0")
        require(self.correlation_threshold_sd > 0, "segment.correlation_threshold_sd must be > 0")
        require(self.seed_distance_px >= 1, "segment.seed_distance_px must be >= 1 px")
        require(self.seed_smoothing_px >= 0, "segment.seed_smoothing_px must be >= 0 px")
        require(self.min_length_px >= 1, "segment.min_length_px must be >= 1 px")
        require(self.min_dendrite_area_px >= 1, "segment.min_dendrite_area_px must be >= 1 px")
        require(
            -1 <= self.merge_corr_threshold <= 1,
            "segment.merge_corr_threshold must be in [-1, 1]",
        )
        require(self.device in ("cpu", "cuda", "mps"), "segment.device must be cpu, cuda or mps")


def _check_inputs(movie: Any, mean_image: np.ndarray, fs_hz: float) -> tuple[int, int, int]:
    if getattr(movie, "ndim", None) != 3:
        raise ValueError(
            f"movie must be a 3-d (time, row, col) array, got shape {getattr(movie, 'shape', None)}"
        )
    n_frames, n_rows, n_cols = movie.shape
    if np.shape(mean_image) != (n_rows, n_cols):
        raise ValueError(
            f"mean_image shape {np.shape(mean_image)} does not match the movie's "
            f"(row, col) = ({n_rows}, {n_cols})"
        )
    if not (np.isfinite(fs_hz) and fs_hz > 0):
        raise ValueError(f"fs_hz must be a positive frame rate in Hz, got {fs_hz}")
    if n_frames < 20:
        raise ValueError(f"movie has {n_frames} frames; at least 20 are needed to find ROIs")
    return n_frames, n_rows, n_cols


def _masks_dataarray(
    weights: list[np.ndarray], shape: tuple[int, int], coords: dict[str, np.ndarray]
) -> xr.DataArray:
    masks = np.zeros((len(weights), *shape), np.float32)
    for k, w in enumerate(weights):
        masks[k] = w / w.sum()
    return xr.DataArray(
        masks,
        dims=MASK_DIMS,
        coords={
            ROI: np.arange(len(weights), dtype=np.int64),
            ROW: np.arange(shape[0], dtype=np.int64),
            COL: np.arange(shape[1], dtype=np.int64),
            **{name: (ROI, values) for name, values in coords.items()},
        },
        name="masks",
    )


def _centroids(weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = [], []
    for w in weights:
        r, c = ndimage.center_of_mass(w)
        rows.append(r)
        cols.append(c)
    return np.asarray(rows, np.float32), np.asarray(cols, np.float32)


def detect_somata(
    movie: Any,
    *,
    mean_image: np.ndarray,
    fs_hz: float,
    settings: SegmentSettings,
    threads: int | None = None,
) -> xr.DataArray:
    """Find somata with suite2p's sparsery functional detection and classify them.

    Steps: sparsery on the binned movie (spatial scale from ``diameter_px``); every ROI
    whose smoothed weights hold several peaks at least half a diameter apart is cut by a
    watershed (:func:`_split_blobs`); ROIs whose centroids lie within
    ``merge_distance_fraction * diameter_px`` are merged while the union fits
    ``max_area_fraction`` (:func:`_merge_split_somata`), and pixels below
    ``trim_fraction`` of each ROI's peak are dropped; cells pass the area, compactness,
    skewness and contrast rules. With ``anatomical``, mean-image blobs away from those
    cells are added (:func:`_anatomical_rois`) and are cells when they pass the area and
    compactness rules.

    Parameters
    ----------
    movie : array-like, shape (time, row, col), int16
        Registered movie of the soma plane; read in batches by suite2p's ``bin_movie``.
    mean_image : ndarray, shape (row, col)
        Mean image of the registered movie; gives each ROI's ``mean_brightness``.
    fs_hz : float
        Frame (volume) rate in Hz.
    settings : SegmentSettings
        Detection and classification settings.
    threads : int, optional
        CPU threads for torch (the rule's ``threads``); default: torch's (all cores).

    Returns
    -------
    xr.DataArray, dims (roi, row, col), float32
        suite2p ``lam`` weights (merged, trimmed) normalised to sum 1 per ROI.
        Coordinates on ``roi``: ``is_cell`` (bool), ``area_px`` (int), ``compactness``
        (mean pixel distance from the centroid over a disk's, ~1 = disk), ``skewness`` (of
        the binned ROI trace), ``mean_brightness`` (mean-image units), ``contrast`` (ROI
        over surrounding-ring mean brightness), ``blob_z``, ``blob_snr`` (mean-image blob
        response at the centroid, see :func:`_blob_images`; negative = dark),
        ``anatomical`` (True: added from the mean image, uniform weights, a cell on area
        and compactness alone), ``centroid_row``, ``centroid_col`` (px, weighted). No ROIs
        gives a length-0 ``roi``.

    Examples
    --------
    >>> masks = detect_somata(movie, mean_image=movie.mean(0), fs_hz=15.0,
    ...                       settings=SegmentSettings())  # doctest: +SKIP
    >>> masks.where(masks.is_cell, drop=True)  # doctest: +SKIP
    """
    import torch
    from suite2p.detection import detect
    from suite2p.parameters import default_settings

    if threads is not None:
        # after importing suite2p: its numba import resets torch's OpenMP thread count
        torch.set_num_threads(threads)
    suite2p_kernels.install()
    n_frames, n_rows, n_cols = _check_inputs(movie, mean_image, fs_hz)
    det = default_settings()["detection"]
    det["algorithm"] = "sparsery"
    det["threshold_scaling"] = settings.threshold_scaling
    det["highpass_time"] = settings.highpass_time_bins
    det["max_overlap"] = settings.max_overlap
    det["nbins"] = settings.max_binned_frames
    det["sparsery_settings"] = dict(
        det["sparsery_settings"],
        highpass_neuropil=settings.highpass_neuropil_px,
        max_ROIs=settings.max_rois,
        spatial_scale=int(np.clip(np.round(np.log2(settings.diameter_px / 3.0)), 1, 4)),
    )
    det["bin_size"] = int(
        max(1, n_frames // settings.max_binned_frames, round(settings.tau_s * fs_hz))
    )
    logger.info("sparsery on binned frames of %d frames", det["bin_size"])
    try:
        # suite2p bins the movie itself, so its binned copy is freed once high-pass
        # filtered: one binned movie fewer in memory while sparsery runs
        _, stat, _ = detect.detection_wrapper(
            movie,
            diameter=[settings.diameter_px, settings.diameter_px],
            tau=settings.tau_s,
            fs=fs_hz,
            settings=det,
            device=torch.device(settings.device),
        )
    except ValueError as err:
        if "no ROIs" not in str(err):
            raise
        logger.warning("suite2p found no ROIs in this movie: %s", err)
        stat = []
    # the same binned movie again, for the ROI traces (skewness)
    binned = detect.bin_movie(
        movie,
        det["bin_size"],
        yrange=[0, n_rows],
        xrange=[0, n_cols],
        nbins=settings.max_binned_frames,
    )

    stat = [s for s in stat if s["lam"].sum() > 0]
    # one full-frame image per ROI is built at a time and handed straight on, so the
    # sparsery images, their split parts and the merged ROIs are not all held at once
    weights = _merge_split_somata(
        [
            part
            for s in stat
            for part in _split_blobs(_weight_image(s, (n_rows, n_cols)), settings.diameter_px)
        ],
        max_distance_px=settings.merge_distance_fraction * settings.diameter_px,
        max_area_px=settings.max_area_fraction * _disk_area(settings.diameter_px),
        trim_fraction=settings.trim_fraction,
        min_core_iou=settings.merge_core_iou,
    )
    flat = binned.reshape(binned.shape[0], -1)
    ring_px = max(1, int(round(settings.diameter_px / 2)))
    disk = _disk_area(settings.diameter_px)
    feats = _roi_features(weights, flat, mean_image, ring_px)
    is_cell = (
        (feats["area_px"] >= settings.min_area_fraction * disk)
        & (feats["area_px"] <= settings.max_area_fraction * disk)
        & (feats["compactness"] <= settings.max_compactness)
        & (feats["skewness"] >= settings.min_skewness)
        & (feats["contrast"] >= settings.min_contrast)
    )
    blob_z, blob_snr = _blob_images(
        np.asarray(mean_image, np.float64), settings.diameter_px, _mean_image_noise(binned)
    )
    added = []
    if settings.anatomical:
        # blobs are candidates of their own, added where no functional cell sits
        added = _anatomical_rois(
            blob_z,
            blob_snr,
            [w for w, c in zip(weights, is_cell, strict=True) if c],
            diameter_px=settings.diameter_px,
            min_z=settings.anatomical_min_z,
            min_snr=settings.anatomical_min_snr,
            max_distance_px=settings.merge_distance_fraction * settings.diameter_px,
        )
        extra = _roi_features(added, flat, mean_image, ring_px)
        # the blob rules replace the activity rules: these somata may be nearly silent
        is_cell = np.concatenate(
            [
                is_cell,
                (extra["area_px"] >= settings.min_area_fraction * disk)
                & (extra["area_px"] <= settings.max_area_fraction * disk)
                & (extra["compactness"] <= settings.max_compactness),
            ]
        )
        feats = {k: np.concatenate([feats[k], extra[k]]) for k in feats}
    n_functional = len(weights)
    weights = weights + added
    centroid_row, centroid_col = _centroids(weights)
    at = (np.round(centroid_row).astype(int), np.round(centroid_col).astype(int))
    logger.info(
        "detect_somata: %d sparsery ROIs, %d after merging, %d mean-image blobs added, "
        "%d classified as cells",
        len(stat),
        n_functional,
        len(added),
        is_cell.sum(),
    )
    return _masks_dataarray(
        weights,
        (n_rows, n_cols),
        {
            "is_cell": is_cell.astype(bool),
            **feats,
            "blob_z": blob_z[at].astype(np.float32),
            "blob_snr": blob_snr[at].astype(np.float32),
            "anatomical": np.arange(len(weights)) >= n_functional,
            "centroid_row": centroid_row,
            "centroid_col": centroid_col,
        },
    )


def _roi_features(
    weights: list[np.ndarray], flat: np.ndarray, mean_image: np.ndarray, ring_px: int
) -> dict[str, np.ndarray]:
    """Classification features of each ROI: ``area_px``, ``compactness``, ``skewness``
    (of its weighted trace in ``flat``, binned frames x pixels), ``mean_brightness`` and
    ``contrast`` (mean image inside over a ring ``ring_px`` wide around it)."""
    area, compact, skew, bright, contrast = [], [], [], [], []
    for w in weights:
        pix = w > 0
        ring = ndimage.binary_dilation(pix, iterations=ring_px) & ~pix
        surround = mean_image[ring].mean() if ring.any() else mean_image[pix].mean()
        contrast.append(float(mean_image[pix].mean() / max(surround, 1e-6)))
        trace = flat[:, pix.ravel()] @ (w[pix] / w[pix].sum())
        area.append(int(pix.sum()))
        compact.append(_compactness(pix))
        skew.append(float(stats.skew(trace)) if trace.std() > 0 else 0.0)
        bright.append(float(np.average(mean_image[pix], weights=w[pix])))
    return {
        "area_px": np.asarray(area, np.int64),
        "compactness": np.asarray(compact, np.float32),
        "skewness": np.asarray(skew, np.float32),
        "mean_brightness": np.asarray(bright, np.float32),
        "contrast": np.asarray(contrast, np.float32),
    }


def _mean_image_noise(binned: np.ndarray) -> float:
    """Standard error of a mean-image pixel: the median pixel's frame-to-frame noise of the
    binned movie (differences, so slow drifts do not count) over sqrt(number of bins)."""
    if len(binned) < 2:
        return 0.0
    sd = np.diff(binned, axis=0).std(axis=0) / np.sqrt(2.0)
    return float(np.median(sd) / np.sqrt(len(binned)))


def _blob_images(
    mean_image: np.ndarray, diameter_px: float, noise_sd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Soma-scale blob response of the mean image, as texture z and noise SNR images.

    The scale-normalised Laplacian of Gaussian at ``sigma = diameter / (2 sqrt 2)``
    (largest for a disk of ``diameter_px``), signed so bright blobs are positive. ``z``:
    on the locally contrast-normalised mean image (background and local SD from Gaussians
    of ``diameter_px``, so dim and bright regions weigh alike), in robust SDs (median
    absolute deviation) over the image. ``snr``: on the mean image minus its background,
    over the response's standard error when pixels carry independent noise of
    ``noise_sd``.
    """
    sigma = diameter_px / (2.0 * np.sqrt(2.0))
    high = mean_image - ndimage.gaussian_filter(mean_image, diameter_px)
    local_sd = np.sqrt(ndimage.gaussian_filter(high**2, diameter_px))
    lcn = high / np.maximum(local_sd, 1e-6 * max(float(local_sd.max()), 1e-12))
    response = -ndimage.gaussian_laplace(lcn, sigma)
    mad = np.median(np.abs(response - np.median(response))) / 0.6745
    z = (response - np.median(response)) / (mad if mad > 0 else 1.0)
    # on the background-subtracted image: the discrete kernel's sum is not exactly 0
    plain = -ndimage.gaussian_laplace(high, sigma)
    snr = plain / np.maximum(noise_sd * _laplace_noise_gain(mean_image.shape, sigma), 1e-12)
    return z, snr


def _laplace_noise_gain(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Per-pixel SD of ``ndimage.gaussian_laplace`` of unit white noise.

    Near the edges the mirrored boundary counts pixels twice, which raises the response's
    noise there; the filter is the sum of two separable terms (second derivative along
    one axis, smoothing along the other), so its row norms follow from 1-d matrices.
    """
    norms = []
    for n in shape:
        smooth = ndimage.gaussian_filter1d(np.eye(n), sigma, axis=0, order=0)
        second = ndimage.gaussian_filter1d(np.eye(n), sigma, axis=0, order=2)
        norms.append(((smooth * smooth).sum(1), (second * smooth).sum(1), (second * second).sum(1)))
    (s00_r, s02_r, s22_r), (s00_c, s02_c, s22_c) = norms
    var = np.outer(s22_r, s00_c) + 2 * np.outer(s02_r, s02_c) + np.outer(s00_r, s22_c)
    return np.sqrt(var)


def _anatomical_rois(
    blob_z: np.ndarray,
    blob_snr: np.ndarray,
    functional: list[np.ndarray],
    *,
    diameter_px: float,
    min_z: float,
    min_snr: float,
    max_distance_px: float,
) -> list[np.ndarray]:
    """Soma-sized bright and dark blobs of the mean image that no functional ROI covers.

    Blob centres are local extrema of ``blob_z`` (half a diameter apart) passing
    ``min_z`` and, with the same sign, ``min_snr``; each ROI is the connected part of
    the pixels within 0.75 diameters of its centre whose response has the centre's sign
    (a disk's Laplacian changes sign near its edge). Blobs whose centroid lies within
    ``max_distance_px`` of a functional ROI's, or with over half their pixels inside one,
    are left to the functional ROI. Blobs weaker than the strongest response of the
    other sign within half a diameter (the surround of a stronger blob) are dropped.

    Returns
    -------
    list of ndarray (row, col)
        Uniform weights (1 inside), one per added ROI.
    """
    from skimage.feature import peak_local_max

    taken = np.any([w > 0 for w in functional], axis=0) if functional else None
    centres = np.array([ndimage.center_of_mass(w) for w in functional]).reshape(-1, 2)
    rr, cc = np.indices(blob_z.shape)
    radius = 0.75 * diameter_px
    ring_px = max(1, int(round(diameter_px / 2)))
    out = []
    for sign in (1.0, -1.0):
        signed = sign * blob_z
        peaks = peak_local_max(
            signed, min_distance=max(1, int(round(diameter_px / 2))), threshold_abs=min_z
        )
        for r, c in peaks:
            if sign * blob_snr[r, c] < min_snr:
                continue
            near = (signed > 0) & (np.hypot(rr - r, cc - c) <= radius)
            labels, _ = ndimage.label(near)
            pix = labels == labels[r, c]
            centre = np.array(ndimage.center_of_mass(pix))
            if len(centres) and np.hypot(*(centres - centre).T).min() <= max_distance_px:
                continue
            if taken is not None and taken[pix].sum() > 0.5 * pix.sum():
                continue
            # the Laplacian's surround of a blob is an extremum of the other sign: a blob
            # must be stronger than any opposite response within half a diameter
            surround = ndimage.binary_dilation(pix, iterations=ring_px)
            if -signed[surround].min() >= signed[r, c]:
                continue
            out.append(pix.astype(np.float64))
    return out


def _disk_area(diameter_px: float) -> float:
    return float(np.pi * (diameter_px / 2.0) ** 2)


def _compactness(pix: np.ndarray) -> float:
    """Mean pixel distance from the centroid over that of a filled disk of equal area (>= ~1).

    Same idea as suite2p's ``compact``, computed here because merged and trimmed ROIs no
    longer match suite2p's statistics.
    """
    rows, cols = np.nonzero(pix)
    mean_dist = np.hypot(rows - rows.mean(), cols - cols.mean()).mean()
    # a filled disk of area A has mean distance (2/3) sqrt(A / pi) from its centre
    disk = (2.0 / 3.0) * np.sqrt(len(rows) / np.pi)
    return float(max(mean_dist, 1e-6) / max(disk, 1e-6)) if len(rows) > 1 else 1.0


def _weight_image(stat: dict, shape: tuple[int, int]) -> np.ndarray:
    """A suite2p ROI's ``lam`` weights as a full-frame float64 image."""
    weight = np.zeros(shape, np.float64)
    weight[stat["ypix"], stat["xpix"]] = stat["lam"]
    return weight


def _split_blobs(weight: np.ndarray, diameter_px: float) -> list[np.ndarray]:
    """Cut an ROI whose weights hold several soma-sized blobs into one ROI per blob.

    sparsery grows an ROI over every pixel active in the seed's active frames, so two
    neighbouring somata firing together can end up in one ROI. The weights (smoothed at
    a sixth of the diameter) then have several peaks at least half a diameter apart;
    a watershed from those peaks splits them.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    smooth = ndimage.gaussian_filter(weight, diameter_px / 6.0)
    support = weight > 0
    peaks = peak_local_max(
        smooth,
        min_distance=max(1, int(round(diameter_px * 0.5))),
        threshold_rel=0.3,
        labels=support.astype(int),
    )
    if len(peaks) < 2:
        return [weight]
    markers = np.zeros(weight.shape, np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-smooth, markers, mask=support)
    return [np.where(labels == k, weight, 0.0) for k in range(1, len(peaks) + 1)]


def _merge_split_somata(
    weights: list[np.ndarray],
    *,
    max_distance_px: float,
    max_area_px: float,
    trim_fraction: float,
    min_core_iou: float,
) -> list[np.ndarray]:
    """Merge sparsery ROIs that split one soma, then trim each ROI's faint rim.

    sparsery subtracts each ROI's activity from the movie before looking for the next
    peak, so the residual of a soma often becomes a second ROI a few px from the first,
    whose trace need not correlate with it (the shared part was removed). ROIs are
    therefore merged on geometry: centroids of the cores (pixels >= ``trim_fraction`` of
    each peak, weighted; a dim tail can pull a whole-ROI centroid off its soma) closer
    than ``max_distance_px`` (a fraction of the soma diameter; neighbouring somata sit
    about a diameter apart or more) whose union stays within ``max_area_px``, or whose
    cores overlap at IoU >= ``min_core_iou`` with a union of cores within
    ``max_area_px`` (the halves of one soma, whose dim rims can make the plain union too
    large). Pairs are visited from the closest, groups grow transitively. Each member's
    weights are scaled to a maximum of 1 and the group takes the pixelwise maximum;
    pixels below ``trim_fraction`` of the peak (dim rims that spill onto neighbouring
    somata) are dropped.

    Parameters
    ----------
    weights : list of ndarray (row, col)
        Non-negative suite2p ``lam`` images, one per ROI. Consumed: the images are
        scaled in place and the list emptied as the groups are built, so a full frame
        per ROI is not held twice.
    max_distance_px, max_area_px, trim_fraction, min_core_iou : float
        See above (``min_core_iou`` 1.0: only identical cores merge on it).

    Returns
    -------
    list of ndarray (row, col)
        Merged, trimmed weight images (maximum 1), in order of each group's first ROI.
    """
    if not weights:
        return []
    scaled = weights
    for w in scaled:
        w /= w.max()
    com = np.array([ndimage.center_of_mass(np.where(w >= trim_fraction, w, 0)) for w in scaled])
    dist = np.hypot(*(com[:, None, :] - com[None, :, :]).transpose(2, 0, 1))
    group = np.arange(len(scaled))
    members = {k: [k] for k in range(len(scaled))}
    ii, jj = np.triu_indices(len(scaled), k=1)
    close = dist[ii, jj] <= max_distance_px
    for i, j in sorted(zip(ii[close], jj[close], strict=True), key=lambda p: dist[p]):
        gi, gj = group[i], group[j]
        if gi == gj:
            continue
        union = np.any([scaled[k] > 0 for k in members[gi] + members[gj]], axis=0)
        if union.sum() > max_area_px and not _cores_overlap(
            [scaled[k] for k in members[gi]],
            [scaled[k] for k in members[gj]],
            trim_fraction=trim_fraction,
            min_iou=min_core_iou,
            max_area_px=max_area_px,
        ):
            continue
        members[gi] += members.pop(gj)
        group[members[gi]] = gi
    out = []
    for g in sorted(members):
        w = np.max([scaled[k] for k in members[g]], axis=0)
        out.append(np.where(w >= trim_fraction * w.max(), w, 0.0))
        for k in members[g]:
            scaled[k] = None
    scaled.clear()
    return out


def _cores_overlap(
    first: list[np.ndarray],
    second: list[np.ndarray],
    *,
    trim_fraction: float,
    min_iou: float,
    max_area_px: float,
) -> bool:
    """Whether two groups of peak-scaled weight images share their cores (pixels >=
    ``trim_fraction``) at IoU >= ``min_iou``, with the union of the cores (the merged
    ROI after trimming) within ``max_area_px``."""
    core_a = np.any([w >= trim_fraction for w in first], axis=0)
    core_b = np.any([w >= trim_fraction for w in second], axis=0)
    union = (core_a | core_b).sum()
    return bool(union <= max_area_px and (core_a & core_b).sum() >= min_iou * union)


def _block_median(frames: np.ndarray, block_px: int) -> np.ndarray:
    """Spatial background of each frame: median of ``block_px`` blocks, bilinearly upsampled.

    A median ignores the sparse active dendrites inside a block, where a running mean
    would subtract a negative copy of their activity from every pixel around them.
    """
    n_t, n_rows, n_cols = frames.shape
    nb_r, nb_c = -(-n_rows // block_px), -(-n_cols // block_px)
    padded = np.full((n_t, nb_r * block_px, nb_c * block_px), np.nan, np.float32)
    padded[:, :n_rows, :n_cols] = frames
    blocks = padded.reshape(n_t, nb_r, block_px, nb_c, block_px).transpose(0, 1, 3, 2, 4)
    medians = np.nanmedian(blocks.reshape(n_t, nb_r, nb_c, -1), axis=-1)
    grid = np.meshgrid(
        (np.arange(n_rows) + 0.5) / block_px - 0.5,
        (np.arange(n_cols) + 0.5) / block_px - 0.5,
        indexing="ij",
    )
    return np.stack([ndimage.map_coordinates(m, grid, order=1, mode="nearest") for m in medians])


def _remove_residual_motion(
    frames: np.ndarray, mean_image: np.ndarray, block_px: int
) -> np.ndarray:
    """Subtract, block by block, the part of each frame explained by mean-image gradients.

    Sub-pixel registration errors move bright static dendrites; to first order this adds
    ``-grad(mean_image) . shift`` to a frame, which correlates the pixels along a
    dendrite's edges across every tuft. Fitting the two gradient images (plus a constant)
    to each block of each frame and removing the fit takes this out.
    """
    grad_r, grad_c = np.gradient(ndimage.gaussian_filter(mean_image.astype(np.float64), 0.5))
    out = frames.copy()
    n_t, n_rows, n_cols = frames.shape
    for r0 in range(0, n_rows, block_px):
        for c0 in range(0, n_cols, block_px):
            rs, cs = slice(r0, r0 + block_px), slice(c0, c0 + block_px)
            design = np.stack(
                [grad_r[rs, cs].ravel(), grad_c[rs, cs].ravel(), np.ones(grad_r[rs, cs].size)], 1
            )
            data = out[:, rs, cs].reshape(n_t, -1).T
            coef = np.linalg.lstsq(design, data, rcond=None)[0]
            out[:, rs, cs] -= (design @ coef).T.reshape(n_t, *grad_r[rs, cs].shape)
    return out


def _clean_bins(
    movie: Any,
    mean_image: np.ndarray,
    *,
    bin_frames: int,
    neuropil_block_px: int,
    motion_block_px: int,
    batch_frames: int = 150,
) -> Iterator[np.ndarray]:
    """Bin in time and clean, streamed: yields batches of binned frames (bin, row, col).

    ``batch_frames`` raw frames are read at a time (rounded down to whole bins). Each bin
    is cleaned on its own, so the batch size changes only memory: 150 frames of 256 x 256
    px keep the dendrite job near 0.3 GB, where 600 needed 0.6 GB, and run as fast.

    Each binned frame minus the mean image has its residual motion removed
    (:func:`_remove_residual_motion`) and its neuropil (:func:`_block_median`)
    subtracted; without these, shared motion and neuropil make every fragment's trace
    correlate and unrelated tufts would merge.
    """
    n_bins = movie.shape[0] // bin_frames
    batch = max(bin_frames, (batch_frames // bin_frames) * bin_frames)
    for start in range(0, n_bins * bin_frames, batch):
        stop = min(start + batch, n_bins * bin_frames)
        chunk = np.asarray(movie[start:stop], np.float32)
        binned = chunk.reshape(-1, bin_frames, *movie.shape[1:]).mean(axis=1) - mean_image
        binned = _remove_residual_motion(binned, mean_image, motion_block_px)
        binned -= _block_median(binned, neuropil_block_px)
        yield binned.astype(np.float32)


# neighbour offsets (row, col) whose products give every pixel's 8 neighbours once per pair
_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _pair_slices(n_rows: int, n_cols: int, dr: int, dc: int) -> tuple[tuple, tuple]:
    """Slices of pixels p and of their neighbours p + (dr, dc), both inside the frame."""
    a = (slice(0, n_rows - dr), slice(max(-dc, 0), n_cols - max(dc, 0)))
    b = (slice(dr, n_rows), slice(max(dc, 0), n_cols + min(dc, 0)))
    return a, b


class _PixelStats:
    """Per-pixel moments and neighbour cross-products of binned frames, accumulated in
    batches (float64), so the local correlation image needs no movie in memory."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.n = 0
        self.total = np.zeros(shape, np.float64)
        self.squares = np.zeros(shape, np.float64)
        self.products = [np.zeros((shape[0] - dr, shape[1] - abs(dc))) for dr, dc in _NEIGHBOURS]

    def add(self, frames: np.ndarray) -> None:
        self.n += len(frames)
        self.total += frames.sum(axis=0, dtype=np.float64)
        self.squares += np.square(frames).sum(axis=0, dtype=np.float64)
        for acc, (dr, dc) in zip(self.products, _NEIGHBOURS, strict=True):
            a, b = _pair_slices(*frames.shape[1:], dr, dc)
            acc += (frames[(slice(None), *a)] * frames[(slice(None), *b)]).sum(
                axis=0, dtype=np.float64
            )

    def mean_sd(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population SD per pixel; SD 1 where a pixel is constant."""
        mean = self.total / self.n
        sd = np.sqrt(np.maximum(self.squares / self.n - mean**2, 0.0))
        return mean, np.where(sd > 0, sd, 1.0)

    def local_correlation(self) -> np.ndarray:
        """Mean correlation of each pixel with its (up to 8) neighbours."""
        mean, sd = self.mean_sd()
        total = np.zeros(mean.shape, np.float64)
        count = np.zeros(mean.shape, np.float64)
        for acc, (dr, dc) in zip(self.products, _NEIGHBOURS, strict=True):
            a, b = _pair_slices(*mean.shape, dr, dc)
            corr = (acc / self.n - mean[a] * mean[b]) / (sd[a] * sd[b])
            for side in (a, b):
                total[side] += corr
                count[side] += 1
        return (total / count).astype(np.float32)


def _fragment_traces(
    bins: Any, fragments: list[np.ndarray], pixel_stats: _PixelStats, *, batch_bins: int = 64
) -> np.ndarray:
    """Mean z-scored trace (fragment, bin) of each fragment over the binned frames ``bins``
    (read in batches); z-scores use the per-pixel mean and SD of ``pixel_stats``."""
    mean, sd = pixel_stats.mean_sd()
    n_bins = len(bins)
    if not fragments:
        return np.zeros((0, n_bins))
    # mean over a fragment's pixels of (x - mean) / sd, as one sparse product per batch
    rows = np.concatenate([np.full(f.sum(), i) for i, f in enumerate(fragments)])
    pixels = np.concatenate([np.flatnonzero(f) for f in fragments])
    npix = np.array([f.sum() for f in fragments], np.float64)
    scale = sparse.csr_matrix(
        (1.0 / (npix[rows] * sd.ravel()[pixels]), (rows, pixels)),
        shape=(len(fragments), mean.size),
    )
    offset = scale @ mean.ravel()
    traces = np.empty((len(fragments), n_bins))
    for start in range(0, n_bins, batch_bins):
        chunk = np.asarray(bins[start : start + batch_bins], np.float64).reshape(-1, mean.size)
        traces[:, start : start + len(chunk)] = (scale @ chunk.T) - offset[:, None]
    return traces


def _merge_groups(traces: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage clusters of traces (fragment, time) whose mean correlation >= threshold.

    Average rather than single linkage, so a chain of weak correlations does not merge
    unrelated tufts.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if len(traces) < 2:
        return [[i] for i in range(len(traces))]
    dist = np.clip(1.0 - np.corrcoef(traces), 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    return [list(np.flatnonzero(labels == g)) for g in np.unique(labels)]


def _robust_z(image: np.ndarray) -> np.ndarray:
    """Z-score against the lower half of the pixel distribution.

    Tufts can cover a large share of a dendrite plane, so the spread is taken from the
    median minus the 25th percentile (background-dominated), not the MAD of all pixels.
    """
    p25, median = np.percentile(image, [25, 50])
    sd = (median - p25) / 0.6745
    return (image - median) / (sd if sd > 0 else 1.0)


def detect_dendrites(
    movie: Any, *, mean_image: np.ndarray, fs_hz: float, settings: SegmentSettings
) -> xr.DataArray:
    """Find thin, elongated, branching dendrite ROIs and merge fragments of one tuft.

    Steps: bin the movie in time, subtract the mean image, remove residual motion (fit
    of the mean image's gradients in ``motion_block_px`` blocks) and neuropil (median of
    ``dendrite_neuropil_block_px`` blocks), z-score each pixel; local correlation image (mean
    correlation with the 8 neighbours), which lights up pixels sharing calcium activity;
    Sato ridge filter (Sato et al. 1998, doi:10.1016/S1361-8415(98)80009-1) on it at
    ``ridge_sigmas_px``; foreground = robust-z ridge response above
    ``ridge_threshold_sd`` and robust-z local correlation above
    ``correlation_threshold_sd``; the foreground is cut into fragments by a watershed
    seeded at local maxima of the correlation image smoothed by ``seed_smoothing_px``
    (``seed_distance_px`` apart), so touching dendrites of different tufts separate;
    fragments are merged by average-linkage clustering of their binned traces (mean
    correlation >= ``merge_corr_threshold``, one tuft); merged ROIs whose skeleton is
    shorter than ``min_length_px`` or with fewer than ``min_dendrite_area_px`` pixels are
    dropped.

    Parameters
    ----------
    movie : array-like, shape (time, row, col), int16
        Registered movie of the dendrite plane; read in batches.
    mean_image : ndarray, shape (row, col)
        Mean image of the registered movie; checked against the movie's shape and used to
        give each ROI's ``mean_brightness``.
    fs_hz : float
        Frame (volume) rate in Hz; the time bin is ``round(dendrite_bin_s * fs_hz)`` frames.
    settings : SegmentSettings
        Dendrite settings.

    Returns
    -------
    xr.DataArray, dims (roi, row, col), float32
        Uniform weights summing to 1 per ROI. Coordinates on ``roi``: ``area_px``,
        ``length_px`` (skeleton pixels), ``n_fragments`` (merged fragments),
        ``mean_brightness``, ``centroid_row``, ``centroid_col`` (px).
    """
    from skimage.feature import peak_local_max
    from skimage.filters import sato
    from skimage.morphology import skeletonize
    from skimage.segmentation import watershed

    n_frames, n_rows, n_cols = _check_inputs(movie, mean_image, fs_hz)
    bin_frames = int(np.clip(round(settings.dendrite_bin_s * fs_hz), 1, max(n_frames // 10, 1)))
    pixel_stats = _PixelStats((n_rows, n_cols))
    with tempfile.TemporaryDirectory() as tmp:
        # the cleaned bins go to a scratch file, read back for the fragment traces: memory
        # does not grow with the movie's length
        spill = io.create_movie(
            Path(tmp) / "bins.bin",
            io.MovieHeader(n_frames // bin_frames, n_rows, n_cols, "float32", fs_hz / bin_frames),
        )
        written = 0
        for binned in _clean_bins(
            movie,
            np.asarray(mean_image, np.float32),
            bin_frames=bin_frames,
            neuropil_block_px=settings.dendrite_neuropil_block_px,
            motion_block_px=settings.motion_block_px,
        ):
            pixel_stats.add(binned)
            spill[written : written + len(binned)] = binned
            written += len(binned)
        corr_img = pixel_stats.local_correlation()
        ridge = sato(corr_img, sigmas=settings.ridge_sigmas_px, black_ridges=False)
        fg = (_robust_z(ridge) > settings.ridge_threshold_sd) & (
            _robust_z(corr_img) > settings.correlation_threshold_sd
        )
        # cut the foreground into fragments around local correlation maxima: touching or
        # crossing dendrites of different tufts then end up in different fragments
        smooth = ndimage.gaussian_filter(corr_img, settings.seed_smoothing_px)
        peaks = peak_local_max(
            np.where(fg, smooth, 0.0),
            min_distance=settings.seed_distance_px,
            labels=fg.astype(int),
        )
        markers = np.zeros(fg.shape, np.int64)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = watershed(-smooth, markers, mask=fg)
        fragments = [labels == k for k in range(1, labels.max() + 1)]
        traces = _fragment_traces(spill, fragments, pixel_stats)
        spill.close()
    keep = [
        i
        for i, f in enumerate(fragments)
        if f.sum() >= 3 and stats.skew(traces[i]) >= settings.min_fragment_skewness
    ]
    fragments, traces = [fragments[i] for i in keep], traces[keep]
    groups = _merge_groups(traces, settings.merge_corr_threshold)

    weights, length_px, n_frag, bright = [], [], [], []
    for g in groups:
        pix = np.any([fragments[i] for i in g], axis=0)
        length = int(skeletonize(pix).sum())
        if length < settings.min_length_px or pix.sum() < settings.min_dendrite_area_px:
            continue
        weights.append(pix.astype(np.float64))
        length_px.append(length)
        n_frag.append(len(g))
        bright.append(float(mean_image[pix].mean()))
    centroid_row, centroid_col = _centroids(weights)
    logger.info("detect_dendrites: %d fragments merged into %d ROIs", len(fragments), len(weights))
    return _masks_dataarray(
        weights,
        (n_rows, n_cols),
        {
            "area_px": np.asarray([int(w.sum()) for w in weights], np.int64),
            "length_px": np.asarray(length_px, np.int64),
            "n_fragments": np.asarray(n_frag, np.int64),
            "mean_brightness": np.asarray(bright, np.float32),
            "centroid_row": centroid_row,
            "centroid_col": centroid_col,
        },
    )
