"""Input checks and the sparse mask set shared by soma and dendrite detection."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage

from analysis import masks


def check_inputs(movie: Any, mean_image: np.ndarray, fs_hz: float) -> tuple[int, int, int]:
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


def masks_dataset(
    weights: list[np.ndarray], shape: tuple[int, int], coords: dict[str, np.ndarray]
) -> xr.Dataset:
    """Sparse mask set (:mod:`analysis.masks`) of full-field weights, each summing to 1."""
    pixels = []
    for w in weights:
        r, c = np.nonzero(w)
        pixels.append((r, c, (w[r, c] / w.sum()).astype(np.float32)))
    return masks.sparse_masks(pixels, shape=shape, coords=coords)


def mask_centroids(weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = [], []
    for w in weights:
        r, c = ndimage.center_of_mass(w)
        rows.append(r)
        cols.append(c)
    return np.asarray(rows, np.float32), np.asarray(cols, np.float32)
