"""Apical tuft dendrites: ridges of the local correlation image cut into fragments and
merged by trace correlation.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage, sparse, stats

from analysis import io
from analysis.segment.common import check_inputs, mask_centroids, masks_dataset
from analysis.segment.settings import SegmentSettings

logger = logging.getLogger(__name__)


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


def _index_traces(
    bins: Any, pixel_sets: list[np.ndarray], pixel_stats: _PixelStats, *, batch_bins: int = 64
) -> np.ndarray:
    """Mean z-scored trace (set, bin) of each set of flat pixel indices (an empty set:
    zeros) over the binned frames ``bins`` (read in batches); z-scores use the per-pixel
    mean and SD of ``pixel_stats``."""
    mean, sd = pixel_stats.mean_sd()
    n_bins = len(bins)
    if not pixel_sets:
        return np.zeros((0, n_bins))
    # mean over a set's pixels of (x - mean) / sd, as one sparse product per batch
    rows = np.concatenate([np.full(len(p), i) for i, p in enumerate(pixel_sets)])
    pixels = np.concatenate(pixel_sets).astype(np.int64)
    npix = np.array([len(p) for p in pixel_sets], np.float64)
    scale = sparse.csr_matrix(
        (1.0 / (npix[rows] * sd.ravel()[pixels]), (rows, pixels)),
        shape=(len(pixel_sets), mean.size),
    )
    offset = scale @ mean.ravel()
    traces = np.empty((len(pixel_sets), n_bins))
    for start in range(0, n_bins, batch_bins):
        chunk = np.asarray(bins[start : start + batch_bins], np.float64).reshape(-1, mean.size)
        traces[:, start : start + len(chunk)] = (scale @ chunk.T) - offset[:, None]
    return traces


#: Fragments of at least this many pixels are checked for two crossing tufts ...
SPLIT_MIN_PX = 30
#: ... and split where their pixels follow two traces whose correlation, corrected for
#: their reliabilities, is below this.
SPLIT_MAX_CORR = 0.3
#: Smallest part of a split fragment, px.
SPLIT_MIN_PART_PX = 6
#: Pixels whose traces the split holds at once (float32: bins x this x 4 bytes).
SPLIT_BATCH_PX = 4096
#: Floor of a split-half correlation, so that a noisy fragment's corrected correlations
#: are raised at most about 5-fold.
MIN_HALF_CORR = 0.1


def _pixel_traces(
    bins: Any, pixels: np.ndarray, pixel_stats: _PixelStats, *, batch_bins: int = 64
) -> np.ndarray:
    """Z-scored binned traces (bin, pixel) of the flat pixel indices ``pixels``, float32."""
    mean, sd = (a.ravel()[pixels] for a in pixel_stats.mean_sd())
    out = np.empty((len(bins), len(pixels)), np.float32)
    for start in range(0, len(bins), batch_bins):
        chunk = np.asarray(bins[start : start + batch_bins], np.float64)
        out[start : start + len(chunk)] = (chunk.reshape(len(chunk), -1)[:, pixels] - mean) / sd
    return out


def _reliability(half_a: np.ndarray, half_b: np.ndarray) -> float:
    """Split-half reliability of the mean of two halves' traces: their correlation (floored
    at :data:`MIN_HALF_CORR`, also where a half is constant) stepped up to the whole
    (Spearman-Brown)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(half_a, half_b)[0, 1]
    # a half without variance (constant pixels) carries no signal
    rho = float(np.clip(np.nan_to_num(rho, nan=MIN_HALF_CORR), MIN_HALF_CORR, 1.0))
    return 2 * rho / (1 + rho)


def _checkerboard(shape: tuple[int, int]) -> np.ndarray:
    """Flat bool image, True on the pixels whose row + col is even."""
    return (np.indices(shape).sum(axis=0) % 2 == 0).ravel()


def _two_means(traces: np.ndarray) -> np.ndarray | None:
    """Spherical 2-means of pixel traces (bin, pixel), seeded by the sign of the second
    singular vector: the side of each pixel, or None where a side keeps fewer than
    :data:`SPLIT_MIN_PART_PX` pixels."""
    unit = traces / np.maximum(np.linalg.norm(traces, axis=0), 1e-12)
    side = np.linalg.svd(unit, full_matrices=False)[2][1] > 0
    for _ in range(10):
        if min(side.sum(), (~side).sum()) < SPLIT_MIN_PART_PX:
            return None
        centres = np.stack([unit[:, side == s].mean(axis=1) for s in (False, True)])
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        side = (centres @ unit).argmax(axis=0) == 1
    return None if min(side.sum(), (~side).sum()) < SPLIT_MIN_PART_PX else side


def _parts_correlation(traces: np.ndarray, side: np.ndarray, even: np.ndarray) -> float:
    """Correlation of the two parts' mean traces (``traces``: bin, pixel), divided by the
    geometric mean of the parts' split-half reliabilities (checkerboard halves, ``even``);
    NaN where a part is constant."""
    means, reliabilities = [], []
    for s in (False, True):
        own = side == s
        means.append(traces[:, own].mean(axis=1))
        halves = [traces[:, own & even], traces[:, own & ~even]]
        if min(h.shape[1] for h in halves) == 0:
            reliabilities.append(1.0)
        else:
            reliabilities.append(_reliability(*(h.mean(axis=1) for h in halves)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(*means)[0, 1]
    return float(corr / np.sqrt(reliabilities[0] * reliabilities[1]))


def _split_crossings(
    bins: Any, fragments: list[np.ndarray], pixel_stats: _PixelStats
) -> list[np.ndarray]:
    """Fragments cut in two where their pixels follow two different traces.

    Where two tufts cross, the correlation image makes one ridge with one watershed
    seed, so one fragment holds pieces of both and its ROI misses both tufts. Each
    fragment of :data:`SPLIT_MIN_PX` or more is cut by :func:`_two_means` of its pixels'
    z-scored traces over the even bins; the cut stands where the two parts' traces over
    the odd bins, corrected for their reliabilities, correlate below
    :data:`SPLIT_MAX_CORR`. Fitted and judged on the same bins, a cut that follows the
    pixel noise of one dim tuft looks like two tufts. Pieces of one tuft merge again
    later. Traces are read for :data:`SPLIT_BATCH_PX` pixels at a time.
    """
    large = [k for k, f in enumerate(fragments) if np.count_nonzero(f) >= SPLIT_MIN_PX]
    if not large:
        return fragments
    even = _checkerboard(fragments[0].shape)
    split = list(fragments)
    while large:
        group, budget = [], 0
        while large and (
            not group or budget + np.count_nonzero(fragments[large[0]]) <= SPLIT_BATCH_PX
        ):
            group.append(large.pop(0))
            budget += np.count_nonzero(fragments[group[-1]])
        pixels = [np.flatnonzero(fragments[k]) for k in group]
        z = _pixel_traces(bins, np.concatenate(pixels), pixel_stats)
        start = 0
        for k, pix in zip(group, pixels, strict=True):
            traces = z[:, start : start + len(pix)]
            start += len(pix)
            side = _two_means(traces[0::2])
            # NaN (a constant part) does not cut
            if (
                side is None
                or not _parts_correlation(traces[1::2], side, even[pix]) < SPLIT_MAX_CORR
            ):
                continue
            pieces = [np.zeros(fragments[k].shape, bool) for _ in range(2)]
            pieces[0].flat[pix[~side]] = True
            pieces[1].flat[pix[side]] = True
            split[k] = pieces[0]
            split.append(pieces[1])
    return split


def _traces_and_reliability(
    bins: Any, fragments: list[np.ndarray], pixel_stats: _PixelStats, *, batch_bins: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Each fragment's mean z-scored trace (fragment, bin) and its :func:`_reliability`
    (1 where a half is empty), from one read of ``bins``: the traces of its two
    checkerboard halves, whose pixel-weighted mean is the fragment's trace."""
    if not fragments:
        return np.zeros((0, len(bins))), np.ones(0)
    even = _checkerboard(fragments[0].shape)
    halves = []
    for f in fragments:
        pix = np.flatnonzero(f)
        halves += [pix[even[pix]], pix[~even[pix]]]
    half_traces = _index_traces(bins, halves, pixel_stats, batch_bins=batch_bins)
    sizes = np.array([len(h) for h in halves], np.float64).reshape(-1, 2)
    traces = (half_traces[0::2] * sizes[:, :1] + half_traces[1::2] * sizes[:, 1:]) / np.maximum(
        sizes.sum(axis=1, keepdims=True), 1.0
    )
    reliability = np.array(
        [
            _reliability(half_traces[2 * k], half_traces[2 * k + 1]) if sizes[k].all() else 1.0
            for k in range(len(fragments))
        ]
    )
    return traces, reliability


def _merge_fragments(
    fragments: list[np.ndarray],
    traces: np.ndarray,
    reliability: np.ndarray,
    settings: SegmentSettings,
) -> tuple[list[np.ndarray], np.ndarray, list[int], list[int]]:
    """Tuft ROIs from the skewed fragments merged by trace correlation (corrected for
    each fragment's ``reliability``), their mean z-scored traces (roi, bin), the number
    of fragments in each and its skeleton length (px); ROIs too short or too small are
    dropped. The fragments are disjoint, so a ROI's trace is its fragments' traces
    weighted by their pixel counts."""
    from skimage.morphology import skeletonize

    keep = [
        i
        for i, f in enumerate(fragments)
        if f.sum() >= 3 and stats.skew(traces[i]) >= settings.min_fragment_skewness
    ]
    rois, roi_traces, n_fragments, lengths = [], [], [], []
    groups = _merge_groups(traces[keep], settings.merge_corr_threshold, reliability[keep])
    for group in groups:
        members = [keep[i] for i in group]
        pix = np.any([fragments[i] for i in members], axis=0)
        length = int(skeletonize(pix).sum())
        if length >= settings.min_length_px and pix.sum() >= settings.min_dendrite_area_px:
            rois.append(pix)
            sizes = [np.count_nonzero(fragments[i]) for i in members]
            roi_traces.append(np.average(traces[members], axis=0, weights=sizes))
            n_fragments.append(len(group))
            lengths.append(length)
    roi_traces = np.array(roi_traces).reshape(len(rois), traces.shape[1])
    return rois, roi_traces, n_fragments, lengths


def _grow_by_correlation(
    bins: Any,
    rois: list[np.ndarray],
    traces: np.ndarray,
    pixel_stats: _PixelStats,
    *,
    reach_px: int,
    min_corr: float,
    batch_bins: int = 64,
) -> list[np.ndarray]:
    """Each ROI grown by the pixels within ``reach_px`` whose binned trace correlates at
    least ``min_corr`` with the ROI's mean z-scored trace (``traces``, roi x bin), where
    they connect to it.

    Tufts cross and overlap, but the watershed gives each pixel one fragment, so a tuft
    crossing another loses its share of the crossing and can break into pieces; here a
    pixel may join every ROI it follows. ``bins`` are the binned frames ``pixel_stats``
    was accumulated from, read in batches.
    """
    if not rois:
        return []
    spread = traces.std(axis=1, keepdims=True)
    unit = (traces - traces.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
    rings = [ndimage.binary_dilation(r, iterations=reach_px) & ~r for r in rois]
    owner = np.concatenate([np.full(np.count_nonzero(r), k) for k, r in enumerate(rings)])
    pixels = np.concatenate([np.flatnonzero(r) for r in rings])
    mean, sd = (a.ravel()[pixels] for a in pixel_stats.mean_sd())
    corr = np.zeros(len(pixels))
    for start in range(0, len(bins), batch_bins):
        chunk = np.asarray(bins[start : start + batch_bins], np.float64)
        z = (chunk.reshape(len(chunk), -1)[:, pixels] - mean) / sd
        corr += np.einsum("tp,pt->p", z, unit[owner, start : start + len(chunk)])
    corr /= len(bins)
    grown = []
    for k, roi in enumerate(rois):
        joins = np.zeros(roi.shape, bool)
        joins.flat[pixels[(owner == k) & (corr >= min_corr)]] = True
        parts, _ = ndimage.label(roi | joins, structure=np.ones((3, 3)))
        grown.append(np.isin(parts, np.unique(parts[roi])))
    return grown


def _merge_groups(
    traces: np.ndarray, threshold: float, reliability: np.ndarray | None = None
) -> list[list[int]]:
    """Average-linkage clusters of traces (fragment, time) whose mean correlation >= threshold.

    Average rather than single linkage, so a chain of weak correlations does not merge
    unrelated tufts. With ``reliability`` (per trace, in (0, 1]) each correlation is
    divided by the geometric mean of the two reliabilities: two small fragments of one
    dim tuft carry so much pixel noise that their raw correlation stays near 0.5.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if len(traces) < 2:
        return [[i] for i in range(len(traces))]
    corr = np.corrcoef(traces)
    if reliability is not None:
        corr = np.clip(corr / np.sqrt(np.outer(reliability, reliability)), -1.0, 1.0)
    dist = np.clip(1.0 - corr, 0.0, 2.0)
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
) -> xr.Dataset:
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
    a fragment whose pixels follow two traces is cut in two (:func:`_split_crossings`:
    crossing tufts); fragments are merged by average-linkage clustering of their binned
    traces (mean correlation, corrected for each fragment's split-half reliability, >=
    ``merge_corr_threshold``, one tuft); merged ROIs whose skeleton is
    shorter than ``min_length_px`` or with fewer than ``min_dendrite_area_px`` pixels are
    dropped; each ROI left takes in the nearby pixels that follow its trace
    (:func:`_grow_by_correlation`, ``dendrite_grow_px``), so overlapping tufts share
    pixels.

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
    xr.Dataset
        Sparse mask set (:mod:`analysis.masks`), uniform weights summing to 1 per ROI.
        Coordinates on ``roi``: ``area_px``,
        ``length_px`` (skeleton pixels, before the growth), ``n_fragments`` (merged fragments),
        ``mean_brightness``, ``centroid_row``, ``centroid_col`` (px).
    """
    from skimage.feature import peak_local_max
    from skimage.filters import sato
    from skimage.segmentation import watershed

    n_frames, n_rows, n_cols = check_inputs(movie, mean_image, fs_hz)
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
        fragments = _split_crossings(spill, fragments, pixel_stats)
        traces, reliability = _traces_and_reliability(spill, fragments, pixel_stats)
        rois, roi_traces, n_fragments, length_px = _merge_fragments(
            fragments, traces, reliability, settings
        )
        if settings.dendrite_grow_px > 0:
            rois = _grow_by_correlation(
                spill,
                rois,
                roi_traces,
                pixel_stats,
                reach_px=settings.dendrite_grow_px,
                min_corr=settings.dendrite_grow_min_corr,
            )
        spill.close()

    weights = [pix.astype(np.float64) for pix in rois]
    bright = [float(mean_image[pix].mean()) for pix in rois]
    centroid_row, centroid_col = mask_centroids(weights)
    logger.info("detect_dendrites: %d fragments, %d tuft ROIs", len(fragments), len(weights))
    return masks_dataset(
        weights,
        (n_rows, n_cols),
        {
            "area_px": np.asarray([int(w.sum()) for w in weights], np.int64),
            "length_px": np.asarray(length_px, np.int64),
            "n_fragments": np.asarray(n_fragments, np.int64),
            "mean_brightness": np.asarray(bright, np.float32),
            "centroid_row": centroid_row,
            "centroid_col": centroid_col,
        },
    )
