"""Somata in the mean image: soma-sized bright and dark blobs at fitted sizes, and
sparsery ROIs grown to the soma they sit on (used by :mod:`analysis.segment.somata`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def mean_image_noise(binned: np.ndarray) -> float:
    """Standard error of a mean-image pixel: the median pixel's frame-to-frame noise of the
    binned movie (differences, so slow drifts do not count) over sqrt(number of bins)."""
    if len(binned) < 2:
        return 0.0
    sd = np.diff(binned, axis=0).std(axis=0) / np.sqrt(2.0)
    return float(np.median(sd) / np.sqrt(len(binned)))


def blob_images(
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
    snr = plain / np.maximum(noise_sd * laplace_noise_gain(mean_image.shape, sigma), 1e-12)
    return z, snr


def laplace_noise_gain(shape: tuple[int, int], sigma: float) -> np.ndarray:
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


#: soma sizes the mean-image blobs are fitted to, as multiples of ``diameter_px``
#: (steps of 2 ** (1 / 6))
BLOB_SCALES = (0.8, 0.9, 1.0, 1.12, 1.26, 1.41, 1.59, 1.78)

#: a mean-image blob's mask: the pixels whose contrast (against the median of a ring just
#: outside it) is at least this share of the blob's (its 90th percentile inside the
#: fitted diameter, so a dim nucleus does not lower it) ...
BLOB_EDGE_FRACTION = 0.2
#: ... within this multiple of half the fitted diameter: the Laplacian fits a soft-edged
#: soma smaller than its visible extent, a sharp-edged one at its size. At each in-focus
#: simulated soma (realistic preset, fields of seeds 3 and 5) the median IoU with the true
#: mask was 0.82 for 0.2 / 1.3, 0.80 for 0.3 / 1.3, 0.70 for 0.5 / 1.3, 0.78 for 0.2 / 1.5
#: and 0.70 for the z-sign region within the fitted diameter (the rule before).
BLOB_MASK_REACH = 1.3


def scale_images(
    mean_image: np.ndarray, diameter_px: float, noise_sd: float
) -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per soma diameter of :data:`BLOB_SCALES`: :func:`blob_images` (z, SNR) and the
    scale-normalised response (sigma^2 times the negative Laplacian of Gaussian of the
    mean image less one wide background), whose largest value over the diameters picks
    a blob's size: for a disk it peaks at the disk's diameter."""
    widest = max(BLOB_SCALES) * diameter_px
    high = mean_image - ndimage.gaussian_filter(mean_image, widest)
    out = {}
    for factor in BLOB_SCALES:
        diameter = factor * diameter_px
        sigma = diameter / (2.0 * np.sqrt(2.0))
        z, snr = blob_images(mean_image, diameter, noise_sd)
        out[diameter] = (z, snr, -(sigma**2) * ndimage.gaussian_laplace(high, sigma))
    return out


#: A ROI grows to a mean-image disk only where the disk is this much brighter than the
#: 3 px ring around it. Around a soma that rests as dim as the neuropil, a brighter
#: neighbour can make the response rise up to the largest size, and the disk held the
#: soma and its surround (simulated ROIs 2-3.5 times their soma, half outside somata).
#: Soma F1 on four 1500-frame simulated fields (``realistic`` seeds 3 / 5,
#: ``realistic_dark`` seeds 3 / 5; min_contrast 0.8): no rule 0.52 / 0.51 / 0.65 / 0.68,
#: 1.1: 0.51 / 0.53 / 0.76 / 0.76, 1.2: 0.51 / 0.53 / 0.79 / 0.77.
GROW_MIN_DISK_CONTRAST = 1.2


def grow_to_somata(
    weights: list[np.ndarray],
    scales: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]],
    mean_image: np.ndarray,
) -> list[np.ndarray]:
    """Each sparsery ROI grown to the bright soma it sits on: the disk of the smallest
    diameter at which the scale-normalised response (:func:`scale_images`) at its
    centroid peaks, added with the ROI's smallest weight, where the disk is
    :data:`GROW_MIN_DISK_CONTRAST` times as bright in ``mean_image`` as the ring around
    it. sparsery keeps a soma's most active pixels, often a fraction of a large soma; a
    ROI on no bright blob is kept as it is.

    Larger ROIs grow first and keep what they reach: a smaller ROI does not grow over
    their pixels, and not at all when they hold its centroid or most of its disk. A
    second, smaller ROI on a soma would otherwise become a copy of the first (or a
    crescent around it), and a fragment between two touching somata, whose strongest
    response can be the disk over both, would take in both.
    """
    if not weights:
        return []
    sizes = np.array(list(scales))
    out: list[np.ndarray] = list(weights)
    claimed = np.zeros(weights[0].shape, bool)
    rr, cc = np.ogrid[: claimed.shape[0], : claimed.shape[1]]
    for k in sorted(range(len(weights)), key=lambda k: -np.count_nonzero(weights[k])):
        weight = weights[k]
        own = weight > 0
        r, c = np.round(ndimage.center_of_mass(weight)).astype(int)
        response = np.array([scales[d][2][r, c] for d in sizes])
        peak = _first_peak(response)
        if response[peak] > 0:
            distance = np.hypot(rr - r, cc - c)
            radius = 0.5 * sizes[peak]
            disk = distance <= radius
            ring = (distance > radius) & (distance <= radius + 3.0)
            bright = ring.any() and (
                mean_image[disk].mean()
                >= GROW_MIN_DISK_CONTRAST * max(mean_image[ring].mean(), 1e-6)
            )
            mostly_free = np.count_nonzero(disk & claimed) <= 0.5 * np.count_nonzero(disk)
            if bright and mostly_free and not claimed[r, c]:
                grown = weight.copy()
                grown[disk & ~own & ~claimed] = weight[own].min()
                out[k] = grown
        claimed |= out[k] > 0
    return out


def _first_peak(response: np.ndarray) -> int:
    """Index of the smallest size at which the response over sizes peaks: the soma's own
    size, not that of a brighter blob it touches (whose response, seen from the soma,
    keeps rising with size)."""
    rising = np.diff(response) > 0
    return int(np.argmin(rising)) if not rising.all() else len(response) - 1


def blob_mask(
    mean_image: np.ndarray, centre: tuple[int, int], diameter_px: float, sign: float
) -> np.ndarray:
    """The soma of a mean-image blob: the part connected to ``centre`` of the pixels
    within :data:`BLOB_MASK_REACH` times half ``diameter_px`` whose contrast of ``sign``
    reaches :data:`BLOB_EDGE_FRACTION` of the blob's; the disk of ``diameter_px`` when the
    centre itself falls short."""
    r, c = centre
    reach = 0.5 * BLOB_MASK_REACH * diameter_px
    distance = np.hypot(*np.ogrid[-r : mean_image.shape[0] - r, -c : mean_image.shape[1] - c])
    ring = (distance >= reach) & (distance <= reach + 3.0)
    contrast = sign * (mean_image - np.median(mean_image[ring]))
    inner = distance <= 0.5 * diameter_px
    edge = BLOB_EDGE_FRACTION * np.percentile(contrast[inner], 90)
    labels, _ = ndimage.label((contrast >= edge) & (distance <= reach))
    if labels[r, c] == 0:
        return inner
    return labels == labels[r, c]


def anatomical_rois(
    mean_image: np.ndarray,
    scales: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]],
    functional: list[np.ndarray],
    *,
    diameter_px: float,
    min_z: float,
    min_snr: float,
    max_distance_px: float,
) -> list[np.ndarray]:
    """Bright and dark blobs of the mean image, of any soma size, that no functional cell
    covers.

    ``scales`` holds the blob z, SNR and scale-normalised response images per diameter
    (:func:`scale_images`). Blob centres are local extrema (half the smallest diameter
    apart) of the strongest z over the diameters, passing ``min_z``; the blob's diameter
    is the one with the strongest scale-normalised response there, at which its SNR must
    pass ``min_snr`` with the same sign; the blob's core is the connected part of the
    pixels within half that diameter of the centre whose z at that diameter has the
    centre's sign, and its ROI is :func:`blob_mask` less the functional cells' pixels.
    Blobs whose core's centroid lies within ``max_distance_px`` of a functional cell's, or
    with over half their core inside one, are left to it. Blobs weaker than the strongest
    response of the other sign within half a diameter (the surround of a stronger blob)
    are dropped, and so are dark blobs whose surround (half a diameter wide) lies mostly
    on functional cells: the gap between bright somata.

    Returns
    -------
    list of ndarray (row, col)
        Uniform weights (1 inside), one per added ROI.
    """
    from skimage.feature import peak_local_max

    taken = np.any([w > 0 for w in functional], axis=0) if functional else None
    centres = np.array([ndimage.center_of_mass(w) for w in functional]).reshape(-1, 2)
    sizes = np.array(list(scales))
    z = np.stack([scales[d][0] for d in sizes])
    response = np.stack([scales[d][2] for d in sizes])
    rr, cc = np.indices(z.shape[1:])
    out = []
    for sign in (1.0, -1.0):
        signed = sign * z
        best = signed.max(axis=0)
        peaks = peak_local_max(
            best, min_distance=max(1, int(round(sizes.min() / 2))), threshold_abs=min_z
        )
        for r, c in peaks:
            k = int((sign * response[:, r, c]).argmax())
            if signed[k, r, c] <= 0:
                continue
            if sign * scales[sizes[k]][1][r, c] < min_snr:
                continue
            # the rules below look at the blob's core; its mask reaches further
            near = (signed[k] > 0) & (np.hypot(rr - r, cc - c) <= 0.5 * sizes[k])
            labels, _ = ndimage.label(near)
            pix = labels == labels[r, c]
            centre = np.array(ndimage.center_of_mass(pix))
            if len(centres) and np.hypot(*(centres - centre).T).min() <= max_distance_px:
                continue
            if taken is not None and taken[pix].sum() > 0.5 * pix.sum():
                continue
            # the Laplacian's surround of a blob is an extremum of the other sign: a blob
            # must be stronger than any opposite response within half a diameter
            ring_px = max(1, int(round(sizes[k] / 2)))
            surround = ndimage.binary_dilation(pix, iterations=ring_px)
            if -signed[k][surround].min() >= signed[k][r, c]:
                continue
            # a dark blob ringed mostly by functional cells is the gap between them
            if sign < 0 and taken is not None and taken[surround & ~pix].mean() > 0.5:
                continue
            mask = blob_mask(mean_image, (r, c), sizes[k], sign)
            if taken is not None:
                mask &= ~taken
            if mask.any():
                out.append(mask.astype(np.float64))
    return out
