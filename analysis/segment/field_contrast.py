"""Which contrast rule a field gets: whether its somata rest brighter than the neuropil
they displace, told from its own most active soma-sized functional ROIs (no labels)."""

from __future__ import annotations

import logging

import numpy as np

from analysis.segment.settings import SegmentSettings

logger = logging.getLogger(__name__)

#: The most skewed functional ROIs per 256 x 256 px whose resting contrast is checked ...
ACTIVE_ROIS_PER_FIELD = 30
#: ... and the share of them below which the field's somata are said to rest dark.
MIN_ACTIVE_SHARE_PASSING = 0.5


def most_active(
    skewness: np.ndarray,
    centroid_row: np.ndarray,
    centroid_col: np.ndarray,
    shape: tuple[int, int],
    margin_px: float,
) -> np.ndarray:
    """Indices of the :data:`ACTIVE_ROIS_PER_FIELD` (per 256 x 256 px) most skewed ROIs
    whose centroid is at least ``margin_px`` inside the frame: at the edge, registration
    moves pixels in and out of view, which makes skewed traces there (on one simulated
    day 26 of the 30 most skewed ROIs lay within 10 px of the edge)."""
    n = max(1, round(ACTIVE_ROIS_PER_FIELD * shape[0] * shape[1] / 256**2))
    rows, cols = np.asarray(centroid_row), np.asarray(centroid_col)
    edge = np.minimum.reduce([rows, cols, shape[0] - 1 - rows, shape[1] - 1 - cols])
    inside = np.flatnonzero(edge >= margin_px)
    return inside[np.argsort(-np.asarray(skewness)[inside], kind="stable")][:n]


def field_min_contrast(
    feats: dict[str, np.ndarray],
    soma_sized: np.ndarray,
    shape: tuple[int, int],
    settings: SegmentSettings,
) -> float:
    """The contrast rule for this field: ``min_contrast_dark`` where fewer than half of
    its most active soma-sized functional ROIs (``soma_sized``: those passing the shape
    rules) rest ``bright_soma_contrast`` times as bright as their surround (its somata
    rest as dim as the neuropil they displace, as in the neurofinder movie and the
    simulator's ``realistic_dark`` preset), else ``min_contrast``. The switch is logged as
    a warning.

    Only soma-sized ROIs count: the neurofinder movie's most skewed ROIs are mostly
    specks (median 11 px, 8 of 30 soma-sized) whose events fade within 2 px, not somata.
    """
    candidates = np.flatnonzero(soma_sized)
    top = candidates[
        most_active(
            feats["skewness"][candidates],
            feats["centroid_row"][candidates],
            feats["centroid_col"][candidates],
            shape,
            settings.diameter_px,
        )
    ]
    if not len(top):
        return settings.min_contrast
    share = float(np.mean(feats["contrast"][top] >= settings.bright_soma_contrast))
    if share >= MIN_ACTIVE_SHARE_PASSING or settings.min_contrast_dark >= settings.min_contrast:
        return settings.min_contrast
    logger.warning(
        "detect_somata: only %.0f%% of the %d most active soma-sized ROIs are brighter than their "
        "surround by segment.bright_soma_contrast %.2f (median %.2f): this field's somata rest "
        "dark, so its contrast rule is segment.min_contrast_dark %.2f (README: 'Dark somata')",
        100 * share,
        len(top),
        settings.bright_soma_contrast,
        float(np.median(feats["contrast"][top])),
        settings.min_contrast_dark,
    )
    return settings.min_contrast_dark
