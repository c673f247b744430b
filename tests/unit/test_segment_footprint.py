"""The area a functional ROI's own events light (a soma's whole disk, a speck's few px),
and the rim a cell's events light."""

import numpy as np
from scipy import ndimage

from analysis.segment import footprint


def _movie(rng, shape=(64, 64), n_bins=200):
    """Noise, plus a soma disk (radius 4 px) and a speck (Gaussian SD 1.2 px), each with
    its own rare events; the ROIs are their brightest few pixels, as sparsery's cores."""
    rr, cc = np.indices(shape)
    disk = (np.hypot(rr - 20, cc - 20) <= 4).astype(float)
    speck = np.exp(-((rr - 44) ** 2 + (cc - 44) ** 2) / (2 * 1.2**2))
    movie = rng.normal(0, 0.3, (n_bins, *shape))
    for image in (disk, speck):
        events = (rng.random(n_bins) < 0.05) * rng.uniform(3, 6, n_bins)
        movie += events[:, None, None] * image
    cores = [np.hypot(rr - 20, cc - 20) <= 1.5, np.hypot(rr - 44, cc - 44) <= 1.5]
    return movie.astype(np.float32), [core.astype(float) for core in cores], disk


def test_a_somas_events_light_its_disk_and_a_specks_a_few_pixels():
    movie, (soma_core, speck_core), disk = _movie(np.random.default_rng(0))
    soma_area, speck_area = footprint.event_areas([soma_core, speck_core], movie, diameter_px=8)
    assert 0.8 * disk.sum() <= soma_area <= 1.3 * disk.sum()
    assert speck_area <= 15
    # the rule's cut (half a disk of diameter_px) falls between them
    assert speck_area < 0.5 * np.pi * 4**2 < soma_area


def test_a_roi_without_events_lights_nothing():
    rng = np.random.default_rng(1)
    flat = np.full((50, 32, 32), 5.0, np.float32)
    roi = np.zeros((32, 32))
    roi[10:13, 10:13] = 1.0
    assert footprint.event_areas([roi], flat, diameter_px=8)[0] == 0
    noisy = flat + rng.normal(0, 1, flat.shape).astype(np.float32)
    assert footprint.event_areas([roi], noisy, diameter_px=8)[0] < 0.5 * np.pi * 4**2


def test_an_empty_roi_and_a_long_bent_one_are_measured_without_error():
    """An empty ROI lights nothing; a thin L whose pixels all lie far from its centroid
    (a process) is measured on its own pixels, not on an empty window."""
    movie, _, _ = _movie(np.random.default_rng(2))
    bent = np.zeros(movie.shape[1:])
    bent[2:62, 2:4] = 1.0
    bent[60:62, 2:62] = 1.0
    areas = footprint.event_areas([np.zeros(movie.shape[1:]), bent], movie, diameter_px=4)
    assert areas[0] == 0 and areas[1] >= 0


def test_a_cell_gains_the_rim_its_events_light_and_no_other_cells():
    """A soft soma found as its interior gains the ring its events light; sharp disks found
    whole gain nothing (their events stop at their edge); a non-cell and an empty ROI are
    left as they are; added pixels carry the cell's smallest weight."""
    rng = np.random.default_rng(3)
    shape, n_bins = (48, 48), 300
    rr, cc = np.indices(shape)
    soft = 1 / (1 + np.exp((np.hypot(rr - 12, cc - 12) - 4.5) * 1.5))
    sharp = (np.hypot(rr - 12, cc - 34) <= 3.5).astype(float)
    near = (np.hypot(rr - 12, cc - 20) <= 2).astype(float)
    big = (np.hypot(rr - 34, cc - 34) <= 6).astype(float)
    movie = rng.normal(0, 0.2, (n_bins, *shape))
    for image in (soft, sharp, near, big):
        movie += ((rng.random(n_bins) < 0.05) * rng.uniform(3, 6, n_bins))[:, None, None] * image
    interior = np.where(np.hypot(rr - 12, cc - 12) <= 3.2, 1.0, 0.0)
    interior[12, 12] = 3.0
    other = (np.hypot(rr - 34, cc - 12) <= 2).astype(float)
    empty = np.zeros(shape)
    weights = [interior, sharp, near, big, other, empty]
    is_cell = np.array([True, True, True, True, False, True])
    out, gained = footprint.add_rims(weights, is_cell, movie.astype(np.float32))
    rim = (out[0] > 0) & ~(interior > 0)
    assert gained[0] == rim.sum() >= 0.8 * _outer_ring(interior > 0)
    assert np.all(out[0][rim] == 1.0)
    assert gained[1] == 0
    assert not np.any((out[0] > 0) & (out[2] > 0))
    for k in (3, 4, 5):
        assert gained[k] == 0 and np.array_equal(out[k], weights[k])


def test_the_larger_of_two_cells_takes_the_pixel_between_them():
    """Two soft somata found as their interiors, 1 px apart, the smaller listed first: the
    gap pixel goes to the larger, and neither rim lands on the other cell."""
    rng = np.random.default_rng(3)
    shape, n_bins = (32, 40), 300
    rr, cc = np.indices(shape)
    movie = rng.normal(0, 0.2, (n_bins, *shape))
    for col, radius in ((15, 5.5), (24, 4.5)):
        soft = 1 / (1 + np.exp((np.hypot(rr - 16, cc - col) - radius) * 1.5))
        events = (rng.random(n_bins) < 0.05) * rng.uniform(3, 6, n_bins)
        movie += events[:, None, None] * soft
    large = (np.hypot(rr - 16, cc - 15) <= 4.2).astype(float)  # columns 11..19
    small = (np.hypot(rr - 16, cc - 24) <= 3.2).astype(float)  # columns 21..27
    out, gained = footprint.add_rims(
        [small, large], np.array([True, True]), movie.astype(np.float32)
    )
    assert out[1][16, 20] > 0 and out[0][16, 20] == 0
    assert not np.any((out[0] > 0) & (out[1] > 0))
    assert gained[0] > 0 and gained[1] > 0


def _outer_ring(mask):
    """Pixels just outside ``mask`` (4-connected)."""
    return int((ndimage.binary_dilation(mask) & ~mask).sum())
