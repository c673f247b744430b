"""Fluorescence and neuropil traces from the registered movie and the ROI masks."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr
from scipy import ndimage, sparse

from analysis.dims import MASK_DIMS, ROI, TIME, TRACE_DIMS
from analysis.extract.common import check_masks, trace_coords
from analysis.extract.settings import ExtractSettings
from analysis.runlog import Progress
from analysis.settings import require

log = logging.getLogger(__name__)


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
    check_masks(masks)
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
    check_masks(masks, allow_empty=True)
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

    coords = trace_coords(n_time, fs_hz)
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
