"""A soma ROI's extent (used by :mod:`analysis.segment.somata`): how much of the field its
own events light (a soma's events light its whole cytosol, a bouton's or a thin process's
fade within a couple of pixels), and the lit rim a cell's weights miss."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: the bins at or above this percentile of a ROI's trace are its events ...
EVENT_PERCENTILE = 95.0
#: ... and those at or below this one its rest
REST_PERCENTILE = 50.0
#: the lit area is looked for within this multiple of ``diameter_px`` of the centroid
EVENT_REACH = 1.5
#: a pixel is lit where the event image reaches this share of the ROI's own level
EVENT_EDGE_FRACTION = 0.5


def event_image(frames: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """The image a trace's events light: the mean of ``frames`` (time, ...) over the bins
    where ``trace`` is at or above :data:`EVENT_PERCENTILE`, less their mean where it is at
    or below :data:`REST_PERCENTILE`."""
    events = trace >= np.percentile(trace, EVENT_PERCENTILE)
    rest = trace <= np.percentile(trace, REST_PERCENTILE)
    return frames[events].mean(0) - frames[rest].mean(0)


def event_areas(weights: list[np.ndarray], binned: np.ndarray, *, diameter_px: float) -> np.ndarray:
    """Per ROI, the area (px) its own events light.

    The event image (:func:`event_image`) is that of the ROI's weighted trace; the lit
    area is the part connected to the ROI, on it or within :data:`EVENT_REACH` diameters
    of its centroid, where the event image reaches :data:`EVENT_EDGE_FRACTION` of its
    90th percentile inside the ROI, holes filled (the nucleus brightens less). 0 where
    that level is not positive, and for an empty ROI.

    Parameters
    ----------
    weights : list of ndarray (row, col)
        Full-frame ROI weights.
    binned : ndarray, shape (bins, row, col)
        The binned movie.
    diameter_px : float
        Expected soma diameter.
    """
    flat = binned.reshape(len(binned), -1)
    reach = int(np.ceil(EVENT_REACH * diameter_px))
    areas = np.zeros(len(weights), np.int64)
    for k, weight in enumerate(weights):
        if not np.any(weight > 0):
            continue
        # the ROI's bounding box widened by the reach: a long ROI stays inside its window
        own, (rows, cols), image, level = _own_event_image(weight, binned, flat, margin=reach)
        if not level > 0:
            continue
        own_here = own[rows, cols]
        r, c = np.round(np.argwhere(own).mean(0))
        near = np.hypot(*np.ogrid[rows.start - r : rows.stop - r, cols.start - c : cols.stop - c])
        eligible = (near <= reach) | own_here
        labels, _ = ndimage.label((image >= EVENT_EDGE_FRACTION * level) & eligible)
        touched = np.unique(labels[own_here])
        lit = np.isin(labels, touched[touched > 0])
        areas[k] = int(ndimage.binary_fill_holes(lit).sum())
    return areas


#: a rim pixel joins a cell where the cell's event image reaches this share of its
#: level inside (its 90th percentile there): a soft soma's rim carries its events, the
#: background outside a sharp one does not
RIM_EVENT_FRACTION = 0.2


def add_rims(
    weights: list[np.ndarray], is_cell: np.ndarray, binned: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each cell with the pixels just outside it (1 px, no cell's) that its own events
    light to :data:`RIM_EVENT_FRACTION` of their level inside it (:func:`event_image` of
    its weighted trace in ``binned``), at its smallest weight; other ROIs as they are.
    Returns the weights and the pixels each ROI gained.

    Cells of the simulated fields were found inside their somata at too small a size for
    IoU 0.5: trimmed sparsery weights keep a soma's brighter interior, and a blob's mask
    its brighter part, both missing the rim where the soma's light falls off. Larger
    cells take their rims first, so two touching cells do not both claim the pixels
    between them.
    """
    out = list(weights)
    gained = np.zeros(len(weights), np.int64)
    if not out:
        return out, gained
    flat = binned.reshape(len(binned), -1)
    held = np.zeros(weights[0].shape, bool)
    for weight, cell in zip(weights, is_cell, strict=True):
        held |= cell & (weight > 0)
    areas = np.array([np.count_nonzero(w > 0) for w in weights])
    for k in np.argsort(-areas, kind="stable"):
        if not is_cell[k] or areas[k] == 0:
            continue
        own, window, image, level = _own_event_image(weights[k], binned, flat, margin=1)
        if not level > 0:
            continue
        ring = ndimage.binary_dilation(own) & ~own & ~held
        rim = np.zeros_like(own)
        rim[window] = ring[window] & (image >= RIM_EVENT_FRACTION * level)
        out[k] = np.where(rim, weights[k][own].min(), weights[k])
        held |= rim
        gained[k] = np.count_nonzero(rim)
    return out, gained


def _own_event_image(
    weight: np.ndarray, binned: np.ndarray, flat: np.ndarray, *, margin: int
) -> tuple[np.ndarray, tuple[slice, slice], np.ndarray, float]:
    """A non-empty ROI's pixels, its bounding box widened by ``margin`` px (within the
    field), its own :func:`event_image` there (of its weighted trace; ``flat`` is
    ``binned`` with the pixels on one axis) and that image's level inside it: its 90th
    percentile there."""
    own = weight > 0
    own_rows, own_cols = np.nonzero(own)
    n_rows, n_cols = own.shape
    rows = slice(max(0, own_rows.min() - margin), min(n_rows, own_rows.max() + margin + 1))
    cols = slice(max(0, own_cols.min() - margin), min(n_cols, own_cols.max() + margin + 1))
    image = event_image(binned[:, rows, cols], flat[:, own.ravel()] @ weight[own])
    return own, (rows, cols), image, float(np.percentile(image[own[rows, cols]], 90))
