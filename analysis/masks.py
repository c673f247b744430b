"""Sparse ROI masks: the form in which masks travel between stages.

A dense ``(roi, row, col)`` stack grows with roi x field (200 ROIs of a 796 x 512 field
are 326 MB of float32, times the sessions of a subject), while an ROI covers a few hundred
pixels. Masks are therefore pixel lists with weights, as suite2p's ``stat`` holds them
(``ypix``, ``xpix``, ``lam``), in an :class:`xarray.Dataset`:

- ``pixel_roi (pixel)`` int64 ROI id, ``pixel_row``, ``pixel_col (pixel)`` int32,
  ``pixel_weight (pixel)`` float32 (> 0); the pixels of one ROI are contiguous, ROIs in
  the order of ``roi``, row-major within an ROI;
- dim ``roi`` with the ROI ids and every per-ROI coordinate (``is_cell``, centroids, ...);
- dims ``row``, ``col`` with coordinates ``0..n-1``: the field the pixels index.

A subject's tracked masks (``track``) hold several such sets in one Dataset, told apart by
``pixel_session (pixel)``: an index into the ``session`` coordinate, or -1 for the
consensus masks in reference coordinates (:func:`stack_sessions`, :func:`select_session`).

Computations use :func:`mask_matrix` (a ``(roi, row * col)`` scipy CSR matrix); a single
ROI is densified on its bounding box only (:func:`crop`); :func:`to_dense` is for small
fields (tests, truth comparison).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage, sparse

from analysis.dims import COL, MASK_DIMS, ROI, ROW, SESSION

PIXEL = "pixel"
PIXEL_VARS = ("pixel_roi", "pixel_row", "pixel_col", "pixel_weight")
REFERENCE = -1  # pixel_session of consensus masks in reference coordinates


def is_sparse(masks: Any) -> bool:
    return isinstance(masks, xr.Dataset) and all(v in masks for v in PIXEL_VARS)


def field_shape(masks: xr.Dataset) -> tuple[int, int]:
    """(n_rows, n_cols) of the field the pixels index."""
    return int(masks.sizes[ROW]), int(masks.sizes[COL])


def sparse_masks(
    pixels: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    shape: tuple[int, int],
    roi: np.ndarray | None = None,
    coords: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Mask set from per-ROI ``(rows, cols, weights)``; zero weights are dropped.

    Parameters
    ----------
    pixels : sequence of (rows, cols, weights) arrays, one per ROI
    shape : (n_rows, n_cols) of the field
    roi : int array, optional
        ROI ids (default ``0..n-1``).
    coords : mapping of name -> array (roi,), optional
        Per-ROI coordinates.

    Examples
    --------
    >>> m = sparse_masks([(np.array([1, 1]), np.array([2, 3]), np.array([0.5, 0.5]))],
    ...                  shape=(4, 5))
    >>> int(m.sizes["pixel"]), field_shape(m)
    (2, (4, 5))
    """
    roi = np.arange(len(pixels), dtype=np.int64) if roi is None else np.asarray(roi, np.int64)
    if len(roi) != len(pixels):
        raise ValueError(f"{len(roi)} ROI ids for {len(pixels)} pixel lists")
    ids, rows, cols, weights = [], [], [], []
    for roi_id, (r, c, w) in zip(roi, pixels, strict=True):
        r, c, w = (np.asarray(a).ravel() for a in (r, c, w))
        keep = w > 0
        order = np.argsort(r[keep] * shape[1] + c[keep], kind="stable")
        ids.append(np.full(order.size, roi_id, np.int64))
        rows.append(r[keep][order])
        cols.append(c[keep][order])
        weights.append(w[keep][order])
    flat = [np.concatenate(a) if a else np.zeros(0) for a in (ids, rows, cols, weights)]
    rr, cc = flat[1].astype(np.int32), flat[2].astype(np.int32)
    if rr.size and (rr.min() < 0 or cc.min() < 0 or rr.max() >= shape[0] or cc.max() >= shape[1]):
        raise ValueError(f"mask pixels outside the {shape[0]} x {shape[1]} field")
    return xr.Dataset(
        {
            "pixel_roi": (PIXEL, flat[0].astype(np.int64)),
            "pixel_row": (PIXEL, rr),
            "pixel_col": (PIXEL, cc),
            "pixel_weight": (PIXEL, flat[3].astype(np.float32)),
        },
        coords={
            ROI: roi,
            ROW: np.arange(shape[0], dtype=np.int64),
            COL: np.arange(shape[1], dtype=np.int64),
            **{name: (ROI, np.asarray(v)) for name, v in (coords or {}).items()},
        },
    )


def from_dense(weights: Any, **kwargs: Any) -> xr.Dataset:
    """Mask set from a dense ``(roi, row, col)`` array or DataArray (its ``roi`` coords kept)."""
    if isinstance(weights, xr.DataArray):
        per_roi = {k: v.values for k, v in weights.coords.items() if v.dims == (ROI,)}
        kwargs = {"roi": per_roi.pop(ROI, None), "coords": per_roi, **kwargs}
        weights = weights.transpose(*MASK_DIMS).values
    weights = np.asarray(weights)
    pixels = []
    for w in weights:
        r, c = np.nonzero(w)
        pixels.append((r, c, w[r, c]))
    return sparse_masks(pixels, shape=weights.shape[1:], **kwargs)


def roi_pixels(masks: xr.Dataset) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per ROI (in ``roi`` order) its ``(rows, cols, weights)``; empty arrays if none."""
    ids = masks["pixel_roi"].values
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], masks[ROI].values)
    ends = np.searchsorted(ids[order], masks[ROI].values, side="right")
    r, c, w = (masks[v].values[order] for v in PIXEL_VARS[1:])
    return [(r[a:b], c[a:b], w[a:b]) for a, b in zip(bounds, ends, strict=True)]


def mask_matrix(masks: xr.Dataset, *, binary: bool = False) -> sparse.csr_matrix:
    """``(roi, row * col)`` CSR matrix of the weights (1 where ``binary``), float32.

    Pixels of ROIs missing from ``roi`` are left out, so ``masks.isel(roi=...)`` selects
    ROIs as it does on a dense stack (:func:`select_rois` also drops their pixels).
    """
    n_rows, n_cols = field_shape(masks)
    roi = masks[ROI].values
    ids = masks["pixel_roi"].values
    order = np.argsort(roi, kind="stable")
    at = np.clip(np.searchsorted(roi[order], ids), 0, max(len(roi) - 1, 0))
    known = (roi[order][at] == ids) if len(roi) else np.zeros(ids.size, bool)
    row_of = order[at][known] if len(roi) else np.zeros(0, np.int64)
    col_of = (masks["pixel_row"].values.astype(np.int64) * n_cols + masks["pixel_col"].values)[
        known
    ]
    data = np.ones(row_of.size, np.float32) if binary else masks["pixel_weight"].values[known]
    out = sparse.csr_matrix(
        (data.astype(np.float32), (row_of, col_of)), shape=(len(roi), n_rows * n_cols)
    )
    out.sum_duplicates()
    return out


def from_matrix(
    matrix: sparse.spmatrix,
    *,
    shape: tuple[int, int],
    roi: np.ndarray | None = None,
    coords: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Inverse of :func:`mask_matrix`."""
    matrix = sparse.csr_matrix(matrix)
    pixels = []
    for k in range(matrix.shape[0]):
        row = matrix.getrow(k)
        pixels.append((row.indices // shape[1], row.indices % shape[1], row.data))
    return sparse_masks(pixels, shape=shape, roi=roi, coords=coords)


def select_rois(masks: xr.Dataset, keep: np.ndarray) -> xr.Dataset:
    """The ROIs at positions (int) or where (bool) ``keep``, with their pixels."""
    sub = masks.isel({ROI: np.asarray(keep)})
    on = np.isin(masks["pixel_roi"].values, sub[ROI].values)
    return sub.isel({PIXEL: np.flatnonzero(on)})


def at_least(masks: xr.Dataset, min_weight: float) -> xr.Dataset:
    """The pixels with weight >= ``min_weight`` (e.g. 0.5 after warping a binary mask)."""
    keep = masks["pixel_weight"].values >= min_weight
    return masks.isel({PIXEL: np.flatnonzero(keep)})


def n_pixels(masks: xr.Dataset) -> np.ndarray:
    """Pixels with weight > 0 per ROI (``roi`` order)."""
    return np.asarray(mask_matrix(masks).getnnz(axis=1), np.int64)


def centroids(masks: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Weighted centroid (row, col) per ROI, px, float32; NaN for an empty ROI."""
    out = np.full((masks.sizes[ROI], 2), np.nan, np.float32)
    for k, (r, c, w) in enumerate(roi_pixels(masks)):
        if w.sum() > 0:
            out[k] = (np.average(r, weights=w), np.average(c, weights=w))
    return out[:, 0], out[:, 1]


def crop(masks: xr.Dataset, index: int, *, margin: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """One ROI (position ``index``) dense on its bounding box plus ``margin`` px, clipped to
    the field: ``(weights (rows, cols), (row0, col0))``; a 0 x 0 array for an empty ROI."""
    r, c, w = roi_pixels(select_rois(masks, [index]))[0]
    if not r.size:
        return np.zeros((0, 0), np.float32), (0, 0)
    n_rows, n_cols = field_shape(masks)
    r0, c0 = max(int(r.min()) - margin, 0), max(int(c.min()) - margin, 0)
    r1, c1 = min(int(r.max()) + margin + 1, n_rows), min(int(c.max()) + margin + 1, n_cols)
    out = np.zeros((r1 - r0, c1 - c0), np.float32)
    out[r - r0, c - c0] = w
    return out, (r0, c0)


def to_dense(masks: xr.Dataset) -> xr.DataArray:
    """Dense ``(roi, row, col)`` float32 DataArray with the per-ROI coords; small fields only."""
    n_rows, n_cols = field_shape(masks)
    dense = mask_matrix(masks).toarray().reshape(-1, n_rows, n_cols)
    per_roi = {k: v for k, v in masks.coords.items() if v.dims == (ROI,)}
    return xr.DataArray(
        dense,
        dims=MASK_DIMS,
        coords={**per_roi, ROW: masks[ROW].values, COL: masks[COL].values},
        name="masks",
    )


def warp(masks: xr.Dataset, matrix: np.ndarray, offset: np.ndarray) -> xr.Dataset:
    """``out[p] = masks[matrix @ p + offset]``, bilinear, 0 outside the field; ROI by ROI.

    Each ROI is resampled on the output box its support (plus 1 px) maps to, with
    :func:`scipy.ndimage.affine_transform` on the ROI's crop: the same values as
    resampling the whole field, at the cost of the ROI's size.
    """
    shape = field_shape(masks)
    inverse = np.linalg.inv(matrix)
    pixels = []
    for k in range(masks.sizes[ROI]):
        data, (r0, c0) = crop(masks, k, margin=1)
        if not data.size:
            pixels.append((np.zeros(0), np.zeros(0), np.zeros(0)))
            continue
        corners = np.array(
            [[r0 - 1, c0 - 1], [r0 - 1, c0 + data.shape[1]],
             [r0 + data.shape[0], c0 - 1], [r0 + data.shape[0], c0 + data.shape[1]]],
            float,
        )  # fmt: skip
        out_pts = (corners - offset) @ inverse.T
        lo = np.maximum(np.floor(out_pts.min(0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(out_pts.max(0)).astype(int) + 2, shape)
        if np.any(hi <= lo):
            pixels.append((np.zeros(0), np.zeros(0), np.zeros(0)))
            continue
        box = ndimage.affine_transform(
            data,
            matrix,
            offset=matrix @ lo + offset - np.array([r0, c0]),
            output_shape=tuple(hi - lo),
            order=1,
            mode="constant",
            cval=0.0,
        )
        r, c = np.nonzero(box > 0)
        pixels.append((r + lo[0], c + lo[1], box[r, c]))
    per_roi = {k: v.values for k, v in masks.coords.items() if v.dims == (ROI,) and k != ROI}
    return sparse_masks(pixels, shape=shape, roi=masks[ROI].values, coords=per_roi)


def stack_sessions(reference: xr.Dataset, by_session: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """One Dataset of the consensus masks and each session's masks (same ROI ids)."""
    sessions = list(by_session)
    parts = [reference.assign(pixel_session=(PIXEL, np.full(reference.sizes[PIXEL], REFERENCE)))]
    for i, s in enumerate(sessions):
        m = by_session[s]
        parts.append(m.assign(pixel_session=(PIXEL, np.full(m.sizes[PIXEL], i))))
    pixel_vars = [*PIXEL_VARS, "pixel_session"]
    out = reference.drop_vars(PIXEL_VARS).drop_dims(PIXEL, errors="ignore")
    stacked = {v: (PIXEL, np.concatenate([p[v].values for p in parts])) for v in pixel_vars}
    return out.assign(stacked).assign_coords({SESSION: sessions})


def select_session(tracked: xr.Dataset, session: str | None) -> xr.Dataset:
    """One mask set from :func:`stack_sessions`' output; ``None`` for the reference."""
    if session is None:
        index = REFERENCE
    else:
        sessions = [str(s) for s in tracked[SESSION].values]
        if session not in sessions:
            raise ValueError(f"tracked masks have no session '{session}' (sessions: {sessions})")
        index = sessions.index(session)
    on = np.flatnonzero(tracked["pixel_session"].values == index)
    return tracked.isel({PIXEL: on}).drop_vars(["pixel_session", SESSION])


def check_masks(masks: Any, *, allow_empty: bool = False) -> None:
    """Raise unless ``masks`` is a sparse mask set with finite weights > 0."""
    if not is_sparse(masks):
        raise ValueError(f"masks must be a sparse mask set (xarray.Dataset with {PIXEL_VARS})")
    w = masks["pixel_weight"].values
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("masks must hold finite weights > 0")
    empty = masks[ROI].values[n_pixels(masks) == 0]
    if empty.size and not allow_empty:
        raise ValueError(f"masks: ROIs {empty.tolist()} have no pixel with weight > 0")
