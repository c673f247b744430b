"""Fluorescence and neuropil traces from the registered movie and the ROI masks."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage, sparse

from analysis import masks as sparse_masks
from analysis.dims import ROI, TIME, TRACE_DIMS
from analysis.extract.common import trace_coords
from analysis.extract.settings import ExtractSettings
from analysis.masks import check_masks
from analysis.runlog import Progress
from analysis.settings import require

log = logging.getLogger(__name__)


def compute_neuropil_masks(masks: xr.Dataset, *, settings: ExtractSettings) -> xr.Dataset:
    """Neuropil annulus of each ROI, excluding the pixels of every ROI.

    Each annulus is found on the ROI's bounding box grown by the outer radius: every ROI
    pixel lies inside it, so distances there equal those over the whole field.

    Parameters
    ----------
    masks : xarray.Dataset
        Sparse ROI masks (:mod:`analysis.masks`).
    settings : ExtractSettings

    Returns
    -------
    xarray.Dataset
        Sparse masks of the annulus pixels (weight 1): distance to the ROI in
        ``(inner, outer]`` px and in no ROI. The outer radius is grown by 1.5x (up to
        the FOV diagonal) until the annulus holds ``min_neuropil_pixels``; coordinate
        ``neuropil_outer_radius_px`` records the radius used.

    Raises
    ------
    ValueError
        If an ROI has no neuropil pixel at all (the ROIs cover the whole FOV).
    """
    check_masks(masks)
    shape = sparse_masks.field_shape(masks)
    any_roi = np.zeros(shape, bool)
    any_roi[masks["pixel_row"].values, masks["pixel_col"].values] = True
    max_radius = float(np.hypot(*shape))
    rings, radii = [], np.zeros(masks.sizes[ROI], dtype=np.float32)
    for k, roi_id in enumerate(masks[ROI].values):
        outer = settings.neuropil_outer_radius_px
        while True:
            rows, cols = _annulus(masks, k, any_roi, settings.neuropil_inner_radius_px, outer)
            if rows.size >= settings.min_neuropil_pixels or outer >= max_radius:
                break
            outer *= 1.5
        if not rows.size:
            raise ValueError(
                f"ROI {roi_id}: no neuropil pixel outside all ROIs; the masks cover the FOV"
            )
        if rows.size < settings.min_neuropil_pixels:
            log.warning(
                "ROI %s: neuropil annulus has only %d pixels (< min_neuropil_pixels %d)",
                roi_id,
                rows.size,
                settings.min_neuropil_pixels,
            )
        rings.append((rows, cols, np.ones(rows.size, np.float32)))
        radii[k] = outer
    out = sparse_masks.sparse_masks(rings, shape=shape, roi=masks[ROI].values)
    return out.assign_coords(neuropil_outer_radius_px=(ROI, radii))


def _annulus(
    masks: xr.Dataset, index: int, any_roi: np.ndarray, inner: float, outer: float
) -> tuple[np.ndarray, np.ndarray]:
    """Field (rows, cols) of ROI ``index``'s annulus ``(inner, outer]`` outside all ROIs."""
    weights, (r0, c0) = sparse_masks.crop(masks, index, margin=int(np.ceil(outer)) + 1)
    dist = ndimage.distance_transform_edt(~(weights > 0))
    box = any_roi[r0 : r0 + weights.shape[0], c0 : c0 + weights.shape[1]]
    rows, cols = np.nonzero((dist > inner) & (dist <= outer) & ~box)
    return rows + r0, cols + c0


def extract_traces(
    movie: np.ndarray,
    masks: xr.DataArray,
    *,
    fs_hz: float,
    settings: ExtractSettings,
    batch_frames: int = 128,
    out: Any = None,
) -> xr.Dataset:
    """ROI and neuropil fluorescence, streamed over the movie in batches of frames.

    Parameters
    ----------
    movie : array-like (time, row, col)
        Registered movie (e.g. a read-only ``np.memmap``); only ``batch_frames`` frames
        are in memory at once, converted to float32.
    masks : xarray.Dataset
        Sparse ROI masks (:mod:`analysis.masks`) with integer ``roi`` ids, on the movie's
        (row, col) field.
    fs_hz : float
        Frame (volume) rate, Hz.
    settings : ExtractSettings
    batch_frames : int
        Frames read per batch.
    out : array-like (2 * roi, time), optional
        Where to write the traces instead of memory (e.g. an
        :func:`analysis.io.scratch_array`, float32): rows ``0..n_roi-1`` get ``F``, rows
        ``n_roi..2 n_roi-1`` ``Fneu``, ROIs in the order of ``masks``. It takes
        ``out[rows, start:stop] = values`` for batches of frames.

    Returns
    -------
    xarray.Dataset
        ``F(roi, time)``: weighted mean of the ROI pixels; ``Fneu(roi, time)``: mean of
        the neuropil annulus (both float32, movie units). Coordinates ``time`` (s),
        ``frame`` (int), ``roi``, ``n_pixels(roi)``, ``n_neuropil_pixels(roi)``,
        ``neuropil_outer_radius_px(roi)``; attr ``fs_hz``. An ROI whose mask is empty
        (a tracked neuron outside this day's field of view) gets NaN traces. With
        ``out``, the coordinates and attrs only: the traces are in ``out``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> movie = rng.normal(100, 1, (20, 32, 32)).astype(np.float32)
    >>> from analysis.masks import sparse_masks
    >>> rows, cols = np.mgrid[10:14, 10:14]
    >>> masks = sparse_masks([(rows, cols, np.ones(16))], shape=(32, 32))
    >>> extract_traces(movie, masks, fs_hz=10.0, settings=ExtractSettings()).F.shape
    (1, 20)
    """
    if getattr(movie, "ndim", None) != 3:
        raise ValueError(
            f"extract_traces: movie must be (time, row, col), got shape {np.shape(movie)}"
        )
    check_masks(masks, allow_empty=True)
    n_time, n_rows, n_cols = movie.shape
    if sparse_masks.field_shape(masks) != (n_rows, n_cols):
        raise ValueError(
            f"extract_traces: masks are {masks.sizes['row']}x{masks.sizes['col']} px but the "
            f"movie is {n_rows}x{n_cols} px; masks must be in the movie's coordinates"
        )
    require(fs_hz > 0, "extract_traces: fs_hz must be > 0")
    require(batch_frames >= 1, "extract_traces: batch_frames must be >= 1")
    n_all = masks.sizes[ROI]
    if out is not None and tuple(np.shape(out)) != (2 * n_all, n_time):
        raise ValueError(f"extract_traces: out must be (2 x {n_all} ROIs, {n_time} frames), "
                         f"got {np.shape(out)}")  # fmt: skip
    traces = np.empty((2 * n_all, n_time), dtype=np.float32) if out is None else out

    all_rois = masks[ROI].values
    in_view = sparse_masks.n_pixels(masks) > 0
    if not in_view.all():
        log.warning("ROIs %s have empty masks (outside the field of view): NaN traces",
                    all_rois[~in_view].tolist())  # fmt: skip
        traces[np.flatnonzero(np.tile(~in_view, 2)), :] = np.nan
    masks = sparse_masks.select_rois(masks, in_view)
    weights = sparse_masks.mask_matrix(masks)
    neuropil = compute_neuropil_masks(masks, settings=settings)
    ring = sparse_masks.mask_matrix(neuropil)
    # One sparse (2 * roi, pixel) matrix of row-normalised weights: each batch is one product.
    projector = sparse.vstack(
        [_normalise_rows(weights), _normalise_rows(ring)], format="csr", dtype=np.float32
    )
    rows = slice(None) if in_view.all() else np.flatnonzero(np.tile(in_view, 2))
    progress = Progress(log, "extraction", n_time)
    for start in range(0, n_time, batch_frames):
        stop = min(start + batch_frames, n_time)
        block = np.asarray(movie[start:stop], dtype=np.float32).reshape(stop - start, -1)
        traces[rows, start:stop] = projector @ block.T
        progress.update(stop - start)
    log.info("extracted %d ROIs over %d frames", masks.sizes[ROI], n_time)

    coords = trace_coords(n_time, fs_hz)
    coords[ROI] = masks[ROI].values
    layout = xr.Dataset(coords=coords).assign_coords(
        n_pixels=(ROI, weights.getnnz(axis=1)),
        n_neuropil_pixels=(ROI, ring.getnnz(axis=1)),
        neuropil_outer_radius_px=(ROI, neuropil["neuropil_outer_radius_px"].values),
    )
    layout = layout.reindex(
        {ROI: all_rois},
        fill_value={"n_pixels": 0, "n_neuropil_pixels": 0, "neuropil_outer_radius_px": np.nan},
    ).assign_attrs(fs_hz=float(fs_hz))
    if out is not None:
        return layout
    return xr.Dataset(
        {"F": (TRACE_DIMS, traces[:n_all]), "Fneu": (TRACE_DIMS, traces[n_all:])},
        coords=layout.coords,
        attrs=layout.attrs,
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
