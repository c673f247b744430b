"""Stable ROI ids across days: each session's masks in the reference frame, linked by IoU."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, sparse

from analysis import masks
from analysis.dims import ROI
from analysis.track.common import binary_rows, hungarian_matches, iou_matrix, session_transform
from analysis.track.settings import TrackSettings

logger = logging.getLogger(__name__)

# a kept track more than this share of whose pixels lie inside a target polygon is a
# part of that target (a soma split in two), not a neighbour that touches it
TARGET_PART_FRACTION = 0.5


def track_rois(
    masks_by_session: Mapping[str, xr.Dataset],
    transforms: xr.Dataset,
    *,
    settings: TrackSettings,
    protect: Any = None,
    to_reference: Any = None,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Match ROIs across sessions and build one consensus mask per tracked neuron.

    Every session's masks are binarised and mapped to reference coordinates (bilinear,
    thresholded at 0.5), as sparse masks: no ``(roi, row, col)`` array is built.
    Sessions are visited in the given order; each session's ROIs
    are matched to the current tracks by Hungarian assignment on IoU with the tracks'
    running consensus; matches with IoU >= ``iou_threshold`` join, the rest start new
    tracks. Tracks that overlap (consensus IoU >= ``merge_iou_threshold``) but never
    share a session are then joined, and tracks detected on fewer than ``min_sessions``
    sessions (at most the number of sessions) are dropped, except the track that covers
    a ``protect`` mask (an online BCI target) best: a target detected on one day only is
    still tracked, while a one-day fragment of a target tracked over days (a soma split
    in two) is not kept as a second neuron, and kept tracks that lie mostly inside one
    ``protect`` mask (a soma split in two on several days) are joined into one; a
    ``protect`` mask that no kept track
    covers becomes a track of its own (a target never detected, e.g. silent, is still
    extracted from its online polygon). The consensus mask is the set of pixels inside
    at least ``consensus_fraction`` of the track's masks (weights = that fraction,
    normalised).

    Parameters
    ----------
    masks_by_session : mapping of str to xr.Dataset
        Sparse masks (:mod:`analysis.masks`) from ``segment`` in each session's
        coordinates, same (row, col) field.
    transforms : xr.Dataset
        From ``align_days``: ``shift_row``, ``shift_col``, ``rotation_deg`` over
        ``session`` (reference -> session coordinates).
    settings : TrackSettings
        Tracking settings.
    protect : sparse masks, (n, pixel) CSR matrix or (n, row, col) bool array, optional
        Masks in reference coordinates (e.g. target polygons). "Covers" means the
        track's consensus holds at least ``target_min_score`` of the mask's pixels.
    to_reference : callable, optional
        ``(sparse masks, transform) -> sparse masks`` in reference coordinates; default
        ``analysis.align_days.to_reference``.

    Returns
    -------
    masks : xr.Dataset
        Sparse consensus masks in reference coordinates, ``roi`` ids 0..N-1 ordered by first
        appearance; coords ``n_sessions_detected``, ``area_px``, ``centroid_row``,
        ``centroid_col``.
    table : pd.DataFrame
        Columns ``session, session_roi, roi, iou, detected``; ``iou`` is the detected
        mask's IoU with the consensus (NaN and ``session_roi`` -1 when not detected).
    """
    if to_reference is None:
        from analysis.align_days import to_reference
    per_session, shape = _in_reference(masks_by_session, transforms, settings, to_reference)
    members, stacks = _link_sessions(per_session, settings)
    tracks = _kept_tracks(members, stacks, protect, shape, len(per_session), settings)
    logger.info("track_rois: %d tracks kept of %d", len(tracks), len(members))
    return _tracked_masks(tracks, per_session, shape)


def _in_reference(
    masks_by_session: Mapping[str, xr.Dataset],
    transforms: xr.Dataset,
    settings: TrackSettings,
    to_reference: Any,
) -> tuple[dict[str, tuple[np.ndarray, sparse.csr_matrix]], tuple[int, int]]:
    """Per session its ROI ids and binary ``(roi, pixel)`` masks in the reference day's
    frame; the shape."""
    if not masks_by_session:
        raise ValueError("masks_by_session is empty: track_rois needs at least one session")
    for session, m in masks_by_session.items():
        if not masks.is_sparse(m):
            raise ValueError(f"session '{session}': masks must be a sparse mask set")
    shapes = {s: masks.field_shape(m) for s, m in masks_by_session.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"all sessions' masks must share one (row, col) shape, got {shapes}")
    shape = next(iter(shapes.values()))

    per_session: dict[str, tuple[np.ndarray, sparse.csr_matrix]] = {}
    for session, m in masks_by_session.items():
        if settings.cells_only and "is_cell" in m.coords:
            m = masks.select_rois(m, m["is_cell"].values.astype(bool))
        binary = m.assign(pixel_weight=xr.ones_like(m["pixel_weight"]))
        ref = to_reference(binary, session_transform(transforms, session))
        binary_ref = masks.mask_matrix(masks.at_least(ref, 0.5), binary=True)
        per_session[session] = (np.asarray(m[ROI].values), binary_ref)

    return per_session, shape


def _link_sessions(
    per_session: Mapping[str, tuple[np.ndarray, sparse.csr_matrix]], settings: TrackSettings
) -> tuple[list[dict[str, int]], list[list[sparse.csr_matrix]]]:
    """Tracks across sessions: each session's ROIs matched (Hungarian, IoU) to the tracks'
    consensus masks so far, new tracks for the rest, then disjoint tracks merged."""
    members: list[dict[str, int]] = []  # track -> {session: session roi index}
    stacks: list[list[sparse.csr_matrix]] = []  # track -> detected masks (reference coords)
    for session, (_, ref) in per_session.items():
        if len(stacks):
            consensus = sparse.vstack([_consensus(s, settings.consensus_fraction) for s in stacks])
            iou = iou_matrix(ref, consensus)
        else:
            iou = np.zeros((ref.shape[0], 0))
        matched = hungarian_matches(iou, settings.iou_threshold)
        for i, k in matched:
            members[k][session] = i
            stacks[k].append(ref[i])
        for i in sorted(set(range(ref.shape[0])) - {i for i, _ in matched}):
            members.append({session: i})
            stacks.append([ref[i]])

    members, stacks = _merge_disjoint_tracks(
        members, stacks, fraction=settings.consensus_fraction, min_iou=settings.merge_iou_threshold
    )
    return members, stacks


def _kept_tracks(
    members: list[dict[str, int]],
    stacks: list[list[sparse.csr_matrix]],
    protect: Any,
    shape: tuple[int, int],
    n_sessions: int,
    settings: TrackSettings,
) -> list[tuple[dict[str, int], sparse.csr_matrix]]:
    """Tracks seen in enough sessions, plus the best track of each target and targets no
    detection covers: (members, fractional consensus (1, pixel))."""
    min_sessions = min(settings.min_sessions, n_sessions)
    n_pixels = shape[0] * shape[1]
    protect = sparse.csr_matrix((0, n_pixels)) if protect is None else binary_rows(protect)
    fractions = [_consensus(s, settings.consensus_fraction) for s in stacks]
    keep = np.array([len(m) >= min_sessions for m in members], bool)
    # each target keeps the one track that covers it best, however few its sessions;
    # other short tracks on it (e.g. a soma split in two on one day) would be duplicates
    for cover in _coverage(protect, fractions):
        if len(cover) and cover.max() >= settings.target_min_score:
            keep[np.argmax(cover)] = True
    tracks = _join_target_parts(
        [(members[k], fractions[k]) for k in range(len(members)) if keep[k]], protect
    )
    # a target no detection covers is tracked from its own polygon (never detected)
    for k in range(protect.shape[0]):
        mask = protect[k]
        if not (_coverage(mask, [f for _, f in tracks]) >= settings.target_min_score).any():
            logger.warning("a target polygon covers no detected ROI: tracked from its polygon")
            tracks.append(({}, mask))
    return tracks


def _join_target_parts(
    tracks: list[tuple[dict[str, int], sparse.csr_matrix]], protect: sparse.csr_matrix
) -> list[tuple[dict[str, int], sparse.csr_matrix]]:
    """Join kept tracks that lie mostly inside one target polygon into one track.

    A target soma split in two on several days leaves two tracks, each kept: the target
    would be mapped to one half (a different half on different days) and the other half
    would enter the analyses as a non-target neuron carrying the target's activity, the
    signal that drives the cursor. A track is a part of a target when more than
    :data:`TARGET_PART_FRACTION` of its consensus pixels lie inside the target's polygon.
    The joined track keeps the members of its largest part (summed consensus fractions)
    and takes the pixelwise maximum of the parts' consensus fractions.
    """
    if not protect.shape[0] or len(tracks) < 2:
        return tracks
    inside = _coverage(sparse.vstack([f for _, f in tracks]), [protect])  # (track, polygon)
    # protect holds each target once per session: parts inside any one polygon are joined
    group = np.arange(len(tracks))
    for polygon in np.flatnonzero((inside > TARGET_PART_FRACTION).sum(axis=0) > 1):
        parts = np.flatnonzero(inside[:, polygon] > TARGET_PART_FRACTION)
        group[np.isin(group, group[parts])] = group[parts].min()
    joined, dropped = list(tracks), set()
    for label in np.unique(group):
        parts = np.flatnonzero(group == label)
        if len(parts) < 2:
            continue
        main = int(parts[np.argmax([tracks[k][1].sum() for k in parts])])
        union = tracks[parts[0]][1]
        for k in parts[1:]:
            union = union.maximum(tracks[k][1])
        logger.info("%d tracks lie inside one target polygon (a split soma): joined", len(parts))
        joined[main] = (tracks[main][0], union)
        dropped.update(int(k) for k in parts if k != main)
    return [t for k, t in enumerate(joined) if k not in dropped]


def _tracked_masks(
    tracks: list[tuple[dict[str, int], sparse.csr_matrix]],
    per_session: Mapping[str, tuple[np.ndarray, sparse.csr_matrix]],
    shape: tuple[int, int],
) -> tuple[xr.Dataset, pd.DataFrame]:
    """The tracked masks (weights summing to 1) and the assignments table."""
    rows = []
    for new_id, (member, frac) in enumerate(tracks):
        for session, (ids, ref) in per_session.items():
            i = member.get(session)
            detected = i is not None
            rows.append(
                {
                    "session": session,
                    "session_roi": int(ids[i]) if detected else -1,
                    "roi": new_id,
                    "iou": float(iou_matrix(ref[i], frac)[0, 0]) if detected else np.nan,
                    "detected": detected,
                }
            )
    # one ROI at a time on the whole field: sums and centroids as numpy forms them on
    # a dense image (the same rounding as before masks were sparse)
    pixels, centres = [], []
    for _, frac in tracks:
        dense = frac.toarray().reshape(shape)
        weights = dense / dense.sum()
        r, c = np.nonzero(weights)
        pixels.append((r, c, weights[r, c]))
        centres.append(ndimage.center_of_mass(weights))
    centres_rc = np.array(centres, np.float32).reshape(-1, 2)
    out = masks.sparse_masks(
        pixels,
        shape=shape,
        coords={
            "n_sessions_detected": np.array([len(m) for m, _ in tracks], np.int64),
            "area_px": np.array([r.size for r, _, _ in pixels], np.int64),
            "centroid_row": centres_rc[:, 0],
            "centroid_col": centres_rc[:, 1],
        },
    )
    table = pd.DataFrame(rows, columns=["session", "session_roi", "roi", "iou", "detected"])
    return out, table


def _coverage(rows: Any, consensus: Sequence[sparse.csr_matrix]) -> np.ndarray:
    """Fraction of each binary mask (n rows) inside each consensus mask -> (n, m)."""
    a = binary_rows(rows)
    if not a.shape[0] or not len(consensus):
        return np.zeros((a.shape[0], len(consensus)))
    b = binary_rows(sparse.vstack(consensus))
    return (a @ b.T).toarray() / np.maximum(a.getnnz(axis=1).astype(np.float32), 1)[:, None]


def _merge_disjoint_tracks(
    members: list[dict[str, int]],
    stacks: list[list[sparse.csr_matrix]],
    *,
    fraction: float,
    min_iou: float,
) -> tuple[list[dict[str, int]], list[list[sparse.csr_matrix]]]:
    """Join tracks of one neuron that were started twice because one day's mask moved.

    Two tracks are one neuron when their consensus masks overlap with IoU >= ``min_iou``
    and they never hold an ROI of the same session (two ROIs of one day are two cells).
    Pairs are joined from the highest IoU down; the joined track keeps the earlier id.
    """
    members = [dict(m) for m in members]
    stacks = [list(s) for s in stacks]
    while len(stacks) > 1:
        consensus = sparse.vstack([_consensus(s, fraction) for s in stacks])
        iou = iou_matrix(consensus, consensus)
        np.fill_diagonal(iou, 0.0)
        disjoint = np.array([[not (a.keys() & b.keys()) for b in members] for a in members])
        iou = np.where(disjoint, iou, 0.0)
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[i, j] < min_iou:
            break
        i, j = min(i, j), max(i, j)
        members[i].update(members.pop(j))
        stacks[i].extend(stacks.pop(j))
    return members, stacks


def _consensus(stack: Sequence[sparse.csr_matrix], fraction: float) -> sparse.csr_matrix:
    """Fraction of masks covering each pixel where >= ``fraction`` (else 0); (1, pixel)."""
    frac = sparse.csr_matrix(stack[0], dtype=np.float32, copy=True)
    for other in stack[1:]:
        frac = frac + other
    frac.data /= np.float32(len(stack))
    if frac.nnz:
        frac.data[frac.data < min(fraction, frac.data.max())] = 0
        frac.eliminate_zeros()
    return frac


def masks_to_session(
    reference_masks: xr.Dataset, transform: Mapping[str, float], *, to_session: Any = None
) -> xr.Dataset:
    """Map consensus masks from reference to one session's coordinates (same ids).

    Parameters
    ----------
    reference_masks : xr.Dataset
        Sparse masks, output of :func:`track_rois`.
    transform : mapping
        ``shift_row``, ``shift_col``, ``rotation_deg`` of the session (reference ->
        session coordinates), e.g. ``transforms.sel(session=s)``.
    to_session : callable, optional
        ``(sparse masks, transform) -> sparse masks``; default
        ``analysis.align_days.to_session``.

    Returns
    -------
    xr.Dataset
        Sparse masks in session coordinates, weights normalised to sum 1 per ROI (no
        pixel for an ROI mapped entirely outside the field of view, with a warning);
        coords kept.
    """
    if to_session is None:
        from analysis.align_days import to_session
    if not masks.is_sparse(reference_masks):
        raise ValueError("reference_masks must be a sparse mask set (analysis.masks)")
    plain = {k: float(transform[k]) for k in ("shift_row", "shift_col", "rotation_deg")}
    moved = to_session(reference_masks, plain)
    matrix = masks.mask_matrix(moved)
    matrix.data = np.clip(matrix.data, 0, None)
    # summed on the dense field, one ROI at a time: numpy's rounding of the dense sum
    total = np.array([matrix[k].toarray().sum() for k in range(matrix.shape[0])], np.float32)
    lost = reference_masks[ROI].values[total <= 0]
    if len(lost):
        logger.warning("ROIs %s fall outside this session's field of view", list(lost))
    normalised = matrix.copy()
    normalised.data /= np.repeat(np.where(total > 0, total, 1), np.diff(matrix.indptr))
    per_roi = {
        k: v.values for k, v in reference_masks.coords.items() if v.dims == (ROI,) and k != ROI
    }
    return masks.from_matrix(
        normalised.astype(np.float32),
        shape=masks.field_shape(reference_masks),
        roi=reference_masks[ROI].values,
        coords=per_roi,
    )
