"""Somata: suite2p sparsery ROIs, split and merged, plus mean-image blobs; cells told
from neuropil fragments and specks by area, compactness, skewness, contrast and the
area their events light.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage, stats

from analysis import suite2p_kernels
from analysis.segment import anatomy, classifier, field_contrast, footprint
from analysis.segment.common import check_inputs, mask_centroids, masks_dataset
from analysis.segment.settings import RULES, SegmentSettings
from analysis.settings import torch_device

logger = logging.getLogger(__name__)


def detect_somata(
    movie: Any,
    *,
    mean_image: np.ndarray,
    fs_hz: float,
    settings: SegmentSettings,
    threads: int | None = None,
) -> xr.Dataset:
    """Find somata with suite2p's sparsery functional detection and classify them.

    Steps: sparsery on the binned movie (spatial scale from ``diameter_px``); every ROI
    whose smoothed weights hold several peaks at least half a diameter apart is cut by a
    watershed (:func:`_split_blobs`); ROIs whose centroids lie within
    ``merge_distance_fraction * diameter_px`` are merged while the union fits
    ``merge_max_area_fraction`` (:func:`_merge_split_somata`), and pixels below
    ``trim_fraction`` of each ROI's peak are dropped; with ``fit_soma_size`` each ROI
    is grown to the mean-image soma it sits on where that soma is brighter than its
    surround, not over other ROIs (:func:`anatomy.grow_to_somata`). With
    ``anatomical``, mean-image blobs of fitted size away from the functional cells are
    added (:func:`anatomy.anatomical_rois`).
    Cells are told by ``classifier`` (:func:`_classify`): the rules (area, compactness,
    skewness, contrast and the area the ROI's events light; blobs on area and compactness
    alone) or a trained model. The contrast rule is ``min_contrast_dark`` on a field whose
    most active soma-sized ROIs mostly rest dark
    (:func:`field_contrast.field_min_contrast`). With
    ``cell_rims`` cells then gain the pixels just outside them that their events light
    (:func:`footprint.add_rims`).

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
    xr.Dataset
        Sparse mask set (:mod:`analysis.masks`): suite2p ``lam`` weights (merged,
        trimmed) normalised to sum 1 per ROI.
        Coordinates on ``roi``: ``is_cell`` (bool), ``area_px`` (int), ``compactness``
        (mean pixel distance from the centroid over a disk's, ~1 = disk), ``skewness`` (of
        the binned ROI trace), ``mean_brightness`` (mean-image units), ``contrast`` (ROI
        over surrounding-ring mean brightness), ``blob_z``, ``blob_snr`` (mean-image blob
        response at the centroid, see :func:`analysis.segment.anatomy.blob_images`;
        negative = dark), ``correlation_contrast`` (local correlation image inside minus
        around), ``event_area_px`` (the area its own events light,
        :func:`analysis.segment.footprint.event_areas`), ``cell_probability`` (the
        model's; NaN with the rules), ``rim_px`` (pixels a cell gained after
        classification, :func:`analysis.segment.footprint.add_rims`; every feature here,
        centroids included, describes the ROI as classified: its mask holds ``area_px +
        rim_px`` pixels),
        ``anatomical`` (True: added from the mean image, uniform weights, a cell on area
        and compactness alone), ``centroid_row``, ``centroid_col`` (px, weighted). No ROIs
        gives a length-0 ``roi``. Attribute ``min_contrast_applied``: the contrast rule
        this field was classified with (NaN with a trained model).

    Examples
    --------
    >>> masks = detect_somata(movie, mean_image=movie.mean(0), fs_hz=15.0,
    ...                       settings=SegmentSettings())  # doctest: +SKIP
    >>> masks.is_cell.sum()  # doctest: +SKIP
    """
    import torch
    from suite2p.detection import detect

    if threads is not None:
        # after importing suite2p: its numba import resets torch's OpenMP thread count
        torch.set_num_threads(threads)
    suite2p_kernels.install()
    n_frames, n_rows, n_cols = check_inputs(movie, mean_image, fs_hz)
    det = _sparsery_settings(settings, n_frames=n_frames, fs_hz=fs_hz, shape=(n_rows, n_cols))
    logger.info("sparsery on binned frames of %d frames", det["bin_size"])
    stat = _run_sparsery(movie, det, settings=settings, fs_hz=fs_hz)
    # the same binned movie again, for the ROI traces (skewness)
    binned = detect.bin_movie(
        movie,
        det["bin_size"],
        yrange=[0, n_rows],
        xrange=[0, n_cols],
        nbins=det["nbins"],
    )

    stat = [s for s in stat if s["lam"].sum() > 0]
    weights = _functional_rois(stat, (n_rows, n_cols), settings)
    noise_sd = anatomy.mean_image_noise(binned)
    mean64 = np.asarray(mean_image, np.float64)
    scales = {}
    if settings.fit_soma_size or settings.anatomical:
        scales = anatomy.scale_images(mean64, settings.diameter_px, noise_sd)
    # the expected diameter is one of the fitted sizes: its blob images are already there
    blob_z, blob_snr = (
        scales[settings.diameter_px][:2]
        if scales
        else anatomy.blob_images(mean64, settings.diameter_px, noise_sd)
    )
    if settings.fit_soma_size:
        weights = anatomy.grow_to_somata(weights, scales, mean64)
    weights = [_one_piece(w) for w in weights]
    images = (binned.reshape(binned.shape[0], -1), mean_image, _correlation_image(binned))
    model = None if settings.classifier == RULES else classifier.load(settings.classifier)
    feats = _candidate_features(weights, images, blob_z, blob_snr, settings, anatomical=False)
    settings = _with_field_contrast(feats, settings, (n_rows, n_cols), model)
    is_cell, probability = _classify(feats, settings, model)
    is_cell &= ~_second_on_a_soma(weights, is_cell, settings.max_cell_overlap)
    added = []
    if settings.anatomical:
        # blobs are candidates of their own, added where no functional cell sits
        added = anatomy.anatomical_rois(
            mean64,
            scales,
            [w for w, c in zip(weights, is_cell, strict=True) if c],
            diameter_px=settings.diameter_px,
            min_z=settings.anatomical_min_z,
            min_snr=settings.anatomical_min_snr,
            max_distance_px=settings.merge_distance_fraction * settings.diameter_px,
        )
        extra = _candidate_features(added, images, blob_z, blob_snr, settings, anatomical=True)
        extra_cell, extra_probability = _classify(extra, settings, model)
        feats = {k: np.concatenate([feats[k], extra[k]]) for k in feats}
        is_cell = np.concatenate([is_cell, extra_cell])
        probability = np.concatenate([probability, extra_probability])
    logger.info(
        "detect_somata: %d sparsery ROIs, %d after merging, %d mean-image blobs added, "
        "%d classified as cells",
        len(stat),
        len(weights),
        len(added),
        is_cell.sum(),
    )
    weights = weights + added
    rim_px = np.zeros(len(weights), np.int64)
    if settings.cell_rims:
        weights, rim_px = footprint.add_rims(weights, is_cell, binned)
    return masks_dataset(
        weights,
        (n_rows, n_cols),
        {"is_cell": is_cell, "cell_probability": probability, "rim_px": rim_px, **feats},
    ).assign_attrs(min_contrast_applied=settings.min_contrast if model is None else np.nan)


def _sparsery_settings(
    settings: SegmentSettings, *, n_frames: int, fs_hz: float, shape: tuple[int, int]
) -> dict:
    """suite2p's detection settings for sparsery: its defaults with our threshold, high-pass,
    overlap, ROI cap, spatial scale (from ``diameter_px``) and bin size (``tau_s``)."""
    from suite2p.parameters import default_settings

    det = default_settings()["detection"]
    det["algorithm"] = "sparsery"
    det["threshold_scaling"] = settings.threshold_scaling
    det["highpass_time"] = settings.highpass_time_bins
    det["max_overlap"] = settings.max_overlap
    det["nbins"] = settings.n_bins(shape)
    det["sparsery_settings"] = dict(
        det["sparsery_settings"],
        highpass_neuropil=settings.highpass_neuropil_px,
        max_ROIs=settings.max_rois,
        spatial_scale=int(np.clip(np.round(np.log2(settings.diameter_px / 3.0)), 1, 4)),
    )
    det["bin_size"] = int(max(1, n_frames // det["nbins"], round(settings.tau_s * fs_hz)))
    return det


def _run_sparsery(movie: Any, det: dict, *, settings: SegmentSettings, fs_hz: float) -> list:
    """suite2p's ``stat`` of the movie (empty when it finds no ROI)."""
    from suite2p.detection import detect

    try:
        # suite2p bins the movie itself, so its binned copy is freed once high-pass
        # filtered: one binned movie fewer in memory while sparsery runs
        _, stat, _ = detect.detection_wrapper(
            movie,
            diameter=[settings.diameter_px, settings.diameter_px],
            tau=settings.tau_s,
            fs=fs_hz,
            settings=det,
            device=torch_device(settings.device, "segment.device"),
        )
    except ValueError as err:
        if "no ROIs" not in str(err):
            raise
        logger.warning("suite2p found no ROIs in this movie: %s", err)
        stat = []
    return stat


def _functional_rois(
    stat: list[dict], shape: tuple[int, int], settings: SegmentSettings
) -> list[np.ndarray]:
    """sparsery ROIs as full-frame weight images, cut at their peaks and merged per soma
    (:func:`_split_blobs`, :func:`_merge_split_somata`)."""
    # one full-frame image per ROI is built at a time and handed straight on, so the
    # sparsery images, their split parts and the merged ROIs are not all held at once
    return _merge_split_somata(
        [
            part
            for s in stat
            for part in _split_blobs(_weight_image(s, shape), settings.diameter_px)
        ],
        max_distance_px=settings.merge_distance_fraction * settings.diameter_px,
        max_area_px=settings.merge_max_area_fraction * _disk_area(settings.diameter_px),
        trim_fraction=settings.trim_fraction,
        min_core_iou=settings.merge_core_iou,
    )


def _candidate_features(
    weights: list[np.ndarray],
    images: tuple[np.ndarray, np.ndarray, np.ndarray],
    blob_z: np.ndarray,
    blob_snr: np.ndarray,
    settings: SegmentSettings,
    *,
    anatomical: bool,
) -> dict[str, np.ndarray]:
    """:func:`_roi_features` of the candidates plus their centroids, the blob response
    there and whether they came from the mean image; ``images`` are the binned frames x
    pixels, the mean image and the local correlation image."""
    ring_px = max(1, int(round(settings.diameter_px / 2)))
    feats = _roi_features(weights, *images, ring_px)
    rows, cols = mask_centroids(weights)
    at = (np.round(rows).astype(int), np.round(cols).astype(int))
    feats["blob_z"] = blob_z[at].astype(np.float32)
    feats["blob_snr"] = blob_snr[at].astype(np.float32)
    feats["anatomical"] = np.full(len(weights), anatomical)
    feats["centroid_row"], feats["centroid_col"] = rows, cols
    binned = images[0].reshape(len(images[0]), *images[1].shape)
    feats["event_area_px"] = footprint.event_areas(
        weights, binned, diameter_px=settings.diameter_px
    )
    return feats


def _with_field_contrast(
    feats: dict[str, np.ndarray],
    settings: SegmentSettings,
    shape: tuple[int, int],
    model: dict | None,
) -> SegmentSettings:
    """``settings`` with this field's contrast rule (the rules only; a model has none)."""
    if model is not None:
        return settings
    soma_sized = _passes_shape_rules(feats, settings)
    min_contrast = field_contrast.field_min_contrast(feats, soma_sized, shape, settings)
    return dataclasses.replace(settings, min_contrast=min_contrast)


def _classify(
    feats: dict[str, np.ndarray], settings: SegmentSettings, model: dict | None
) -> tuple[np.ndarray, np.ndarray]:
    """``is_cell`` and the cell probability of each candidate.

    With a trained ``model`` (``segment.classifier``; None with the rules), a cell has
    probability >= ``min_cell_probability`` (0: the model's threshold). With the rules:
    sparsery ROIs pass the area, compactness, skewness, contrast and event-area rules,
    mean-image blobs the area and compactness rules alone (they may be nearly silent); the
    probability is then NaN.
    """
    if model is None:
        shape_ok = _passes_shape_rules(feats, settings)
        active_ok = (
            (feats["skewness"] >= settings.min_skewness)
            & (feats["contrast"] >= settings.min_contrast)
            & (
                feats["event_area_px"]
                >= settings.min_event_area_fraction * _disk_area(settings.diameter_px)
            )
        )
        is_cell = shape_ok & (active_ok | feats["anatomical"])
        return is_cell.astype(bool), np.full(len(is_cell), np.nan, np.float32)
    probability = classifier.probability(
        model, classifier.feature_matrix(feats, settings.diameter_px)
    )
    threshold = settings.min_cell_probability or model["threshold"]
    return probability >= threshold, probability.astype(np.float32)


def _second_on_a_soma(
    weights: list[np.ndarray], is_cell: np.ndarray, max_overlap: float
) -> np.ndarray:
    """Cells sharing at least ``max_overlap`` of their pixels with larger cells: a piece
    of a soma sparsery split off that a larger ROI grew over (largest kept first)."""
    second = np.zeros(len(weights), bool)
    if not weights:
        return second
    claimed = np.zeros(weights[0].shape, bool)
    for k in sorted(np.flatnonzero(is_cell), key=lambda k: -np.count_nonzero(weights[k])):
        own = weights[k] > 0
        if np.count_nonzero(own & claimed) >= max_overlap * np.count_nonzero(own):
            second[k] = True
        else:
            claimed |= own
    return second


def _passes_shape_rules(feats: dict[str, np.ndarray], settings: SegmentSettings) -> np.ndarray:
    """Area within the expected disk's fractions and compactness at most the maximum."""
    disk = _disk_area(settings.diameter_px)
    return (
        (feats["area_px"] >= settings.min_area_fraction * disk)
        & (feats["area_px"] <= settings.max_area_fraction * disk)
        & (feats["compactness"] <= settings.max_compactness)
    )


def _roi_features(
    weights: list[np.ndarray],
    flat: np.ndarray,
    mean_image: np.ndarray,
    correlation: np.ndarray,
    ring_px: int,
) -> dict[str, np.ndarray]:
    """Classification features of each ROI: ``area_px``, ``compactness``, ``skewness``
    (of its weighted trace in ``flat``, binned frames x pixels), ``mean_brightness``,
    ``contrast`` (mean image inside over a ring ``ring_px`` wide around it) and
    ``correlation_contrast`` (local correlation image inside minus on that ring)."""
    area, compact, skew, bright, contrast, corr = [], [], [], [], [], []
    for w in weights:
        pix = w > 0
        ring = ndimage.binary_dilation(pix, iterations=ring_px) & ~pix
        if not ring.any():
            ring = pix
        contrast.append(float(mean_image[pix].mean() / max(mean_image[ring].mean(), 1e-6)))
        corr.append(float(correlation[pix].mean() - correlation[ring].mean()))
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
        "correlation_contrast": np.asarray(corr, np.float32),
    }


def _correlation_image(binned: np.ndarray) -> np.ndarray:
    """Each pixel's mean correlation with its 8 neighbours over the binned frames, after
    removing the pixel's mean and a linear drift (one frame at a time: no second copy of
    the binned movie)."""
    n = len(binned)
    if n < 3:
        return np.zeros(binned.shape[1:], np.float64)
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    mean = binned.mean(axis=0, dtype=np.float64)
    slope = np.tensordot(t, binned, axes=(0, 0)) / (t**2).sum()
    sq = np.zeros(binned.shape[1:])
    for k in range(n):
        sq += (binned[k] - mean - slope * t[k]) ** 2
    sd = np.sqrt(sq / n)
    sd[sd == 0] = np.inf
    kernel = np.ones((3, 3)) / 8.0
    kernel[1, 1] = 0.0
    corr = np.zeros(binned.shape[1:])
    for k in range(n):
        z = (binned[k] - mean - slope * t[k]) / sd
        corr += z * ndimage.convolve(z, kernel, mode="nearest")
    return corr / n


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


def _one_piece(weight: np.ndarray) -> np.ndarray:
    """A ROI's largest connected part, holes filled (at its smallest weight): a soma is
    one piece, while sparsery's weights keep stray pixels of correlated neuropil. On four
    simulated realistic fields soma F1 moved by -0.002 to +0.024 (mean +0.006)."""
    labels, n = ndimage.label(weight > 0)
    if n == 0:
        return weight
    largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    piece = ndimage.binary_fill_holes(labels == largest)
    return np.where(piece, np.where(weight > 0, weight, weight[weight > 0].min()), 0.0)


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
