"""Stable ROI ids across days: each session's masks in the reference frame, linked by IoU."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from analysis.dims import COL, MASK_DIMS, ROI, ROW
from analysis.track.common import binary_masks, hungarian_matches, iou_matrix, session_transform
from analysis.track.settings import TrackSettings

logger = logging.getLogger(__name__)


def track_rois(
    masks_by_session: Mapping[str, xr.DataArray],
    transforms: xr.Dataset,
    *,
    settings: TrackSettings,
    protect: np.ndarray | None = None,
    to_reference: Any = None,
) -> tuple[xr.DataArray, pd.DataFrame]:
    """Match ROIs across sessions and build one consensus mask per tracked neuron.

    Every session's masks are binarised and mapped to reference coordinates (bilinear,
    thresholded at 0.5). Sessions are visited in the given order; each session's ROIs
    are matched to the current tracks by Hungarian assignment on IoU with the tracks'
    running consensus; matches with IoU >= ``iou_threshold`` join, the rest start new
    tracks. Tracks that overlap (consensus IoU >= ``merge_iou_threshold``) but never
    share a session are then joined, and tracks detected on fewer than ``min_sessions``
    sessions (at most the number of sessions) are dropped, except the track that covers
    a ``protect`` mask (an online BCI target) best: a target detected on one day only is
    still tracked, while a one-day fragment of a target tracked over days (a soma split
    in two) is not kept as a second neuron; a ``protect`` mask that no kept track
    covers becomes a track of its own (a target never detected, e.g. silent, is still
    extracted from its online polygon). The consensus mask is the set of pixels inside
    at least ``consensus_fraction`` of the track's masks (weights = that fraction,
    normalised).

    Parameters
    ----------
    masks_by_session : mapping of str to xr.DataArray (roi, row, col)
        Masks from ``segment`` in each session's coordinates, same (row, col) size.
    transforms : xr.Dataset
        From ``align_days``: ``shift_row``, ``shift_col``, ``rotation_deg`` over
        ``session`` (reference -> session coordinates).
    settings : TrackSettings
        Tracking settings.
    protect : array (n, row, col) of bool, optional
        Masks in reference coordinates (e.g. target polygons). "Covers" means the
        track's consensus holds at least ``target_min_score`` of the mask's pixels.
    to_reference : callable, optional
        ``(masks, transform) -> masks`` in reference coordinates; default
        ``analysis.align_days.to_reference``.

    Returns
    -------
    masks : xr.DataArray, dims (roi, row, col), float32
        Consensus masks in reference coordinates, ``roi`` ids 0..N-1 ordered by first
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
    masks_by_session: Mapping[str, xr.DataArray],
    transforms: xr.Dataset,
    settings: TrackSettings,
    to_reference: Any,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[int, int]]:
    """Per session its ROI ids and binary masks in the reference day's frame; the shape."""
    if not masks_by_session:
        raise ValueError("masks_by_session is empty: track_rois needs at least one session")
    shapes = {s: m.shape[1:] for s, m in masks_by_session.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"all sessions' masks must share one (row, col) shape, got {shapes}")
    shape = next(iter(shapes.values()))

    per_session: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for session, masks in masks_by_session.items():
        if tuple(masks.dims) != MASK_DIMS:
            raise ValueError(f"session '{session}': masks dims {masks.dims} != {MASK_DIMS}")
        if settings.cells_only and "is_cell" in masks.coords:
            masks = masks.isel({ROI: masks["is_cell"].values.astype(bool)})
        ref = to_reference(binary_masks(masks), session_transform(transforms, session))
        per_session[session] = (np.asarray(masks[ROI].values), np.asarray(ref) >= 0.5)

    return per_session, shape


def _link_sessions(
    per_session: Mapping[str, tuple[np.ndarray, np.ndarray]], settings: TrackSettings
) -> tuple[list[dict[str, int]], list[list[np.ndarray]]]:
    """Tracks across sessions: each session's ROIs matched (Hungarian, IoU) to the tracks'
    consensus masks so far, new tracks for the rest, then disjoint tracks merged."""
    members: list[dict[str, int]] = []  # track -> {session: session roi index}
    stacks: list[list[np.ndarray]] = []  # track -> detected masks (reference coords)
    for session, (_, ref) in per_session.items():
        consensus = np.array([_consensus(s, settings.consensus_fraction) > 0 for s in stacks])
        iou = iou_matrix(ref, consensus) if len(stacks) else np.zeros((len(ref), 0))
        matched = hungarian_matches(iou, settings.iou_threshold)
        for i, k in matched:
            members[k][session] = i
            stacks[k].append(ref[i])
        for i in sorted(set(range(len(ref))) - {i for i, _ in matched}):
            members.append({session: i})
            stacks.append([ref[i]])

    members, stacks = _merge_disjoint_tracks(
        members, stacks, fraction=settings.consensus_fraction, min_iou=settings.merge_iou_threshold
    )
    return members, stacks


def _kept_tracks(
    members: list[dict[str, int]],
    stacks: list[list[np.ndarray]],
    protect: np.ndarray | None,
    shape: tuple[int, int],
    n_sessions: int,
    settings: TrackSettings,
) -> list[tuple[dict[str, int], np.ndarray, np.ndarray]]:
    """Tracks seen in enough sessions, plus the best track of each target and targets no
    detection covers: (members, binary consensus, fractional consensus)."""
    min_sessions = min(settings.min_sessions, n_sessions)
    protect = np.zeros((0, *shape), bool) if protect is None else np.asarray(protect, bool)
    consensus = [_consensus(s, settings.consensus_fraction) > 0 for s in stacks]
    keep = np.array([len(m) >= min_sessions for m in members], bool)
    # each target keeps the one track that covers it best, however few its sessions;
    # other short tracks on it (e.g. a soma split in two on one day) would be duplicates
    for cover in _coverage(protect, consensus):
        if len(cover) and cover.max() >= settings.target_min_score:
            keep[np.argmax(cover)] = True
    tracks = [
        (members[k], consensus[k], _consensus(stacks[k], settings.consensus_fraction))
        for k in range(len(members))
        if keep[k]
    ]
    # a target no detection covers is tracked from its own polygon (never detected)
    for mask in protect:
        kept = [c for _, c, _ in tracks]
        if not (_coverage(mask[None], kept) >= settings.target_min_score).any():
            logger.warning("a target polygon covers no detected ROI: tracked from its polygon")
            tracks.append(({}, mask, mask.astype(np.float32)))
    return tracks


def _tracked_masks(
    tracks: list[tuple[dict[str, int], np.ndarray, np.ndarray]],
    per_session: Mapping[str, tuple[np.ndarray, np.ndarray]],
    shape: tuple[int, int],
) -> tuple[xr.DataArray, pd.DataFrame]:
    """The tracked masks (weights summing to 1) and the assignments table."""
    weights = np.zeros((len(tracks), *shape), np.float32)
    rows = []
    for new_id, (member, _, frac) in enumerate(tracks):
        weights[new_id] = frac / frac.sum()
        for session, (ids, ref) in per_session.items():
            i = member.get(session)
            detected = i is not None
            rows.append(
                {
                    "session": session,
                    "session_roi": int(ids[i]) if detected else -1,
                    "roi": new_id,
                    "iou": float(iou_matrix(ref[i : i + 1], frac[None] > 0)[0, 0])
                    if detected
                    else np.nan,
                    "detected": detected,
                }
            )
    com = [ndimage.center_of_mass(w) for w in weights]
    out = xr.DataArray(
        weights,
        dims=MASK_DIMS,
        coords={
            ROI: np.arange(len(tracks), dtype=np.int64),
            ROW: np.arange(shape[0], dtype=np.int64),
            COL: np.arange(shape[1], dtype=np.int64),
            "n_sessions_detected": (ROI, np.array([len(m) for m, _, _ in tracks], np.int64)),
            "area_px": (ROI, (weights > 0).sum(axis=(1, 2)).astype(np.int64)),
            "centroid_row": (ROI, np.array([c[0] for c in com], np.float32)),
            "centroid_col": (ROI, np.array([c[1] for c in com], np.float32)),
        },
        name="masks",
    )
    table = pd.DataFrame(rows, columns=["session", "session_roi", "roi", "iou", "detected"])
    return out, table


def _coverage(masks: np.ndarray, consensus: Sequence[np.ndarray]) -> np.ndarray:
    """Fraction of each mask (n, row, col) inside each consensus mask -> (n, m)."""
    if not len(masks) or not len(consensus):
        return np.zeros((len(masks), len(consensus)))
    a = np.asarray(masks, np.float32).reshape(len(masks), -1)
    b = np.asarray(consensus, np.float32).reshape(len(consensus), -1)
    return (a @ b.T) / np.maximum(a.sum(1, keepdims=True), 1)


def _merge_disjoint_tracks(
    members: list[dict[str, int]],
    stacks: list[list[np.ndarray]],
    *,
    fraction: float,
    min_iou: float,
) -> tuple[list[dict[str, int]], list[list[np.ndarray]]]:
    """Join tracks of one neuron that were started twice because one day's mask moved.

    Two tracks are one neuron when their consensus masks overlap with IoU >= ``min_iou``
    and they never hold an ROI of the same session (two ROIs of one day are two cells).
    Pairs are joined from the highest IoU down; the joined track keeps the earlier id.
    """
    members = [dict(m) for m in members]
    stacks = [list(s) for s in stacks]
    while len(stacks) > 1:
        consensus = np.array([_consensus(s, fraction) > 0 for s in stacks])
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


def _consensus(stack: Sequence[np.ndarray], fraction: float) -> np.ndarray:
    """Fraction of masks covering each pixel where >= ``fraction`` (else 0); (row, col)."""
    frac = np.mean(stack, axis=0, dtype=np.float32)
    keep = frac >= min(fraction, frac.max())
    return np.where(keep, frac, 0.0).astype(np.float32)


def masks_to_session(
    reference_masks: xr.DataArray, transform: Mapping[str, float], *, to_session: Any = None
) -> xr.DataArray:
    """Map consensus masks from reference to one session's coordinates (same ids).

    Parameters
    ----------
    reference_masks : xr.DataArray, dims (roi, row, col)
        Output of :func:`track_rois`.
    transform : mapping
        ``shift_row``, ``shift_col``, ``rotation_deg`` of the session (reference ->
        session coordinates), e.g. ``transforms.sel(session=s)``.
    to_session : callable, optional
        ``(masks, transform) -> masks``; default ``analysis.align_days.to_session``.

    Returns
    -------
    xr.DataArray, dims (roi, row, col), float32
        Weights in session coordinates, normalised to sum 1 per ROI (all 0 for an ROI
        mapped entirely outside the field of view, with a warning); coords kept.
    """
    if to_session is None:
        from analysis.align_days import to_session
    if tuple(reference_masks.dims) != MASK_DIMS:
        raise ValueError(f"reference_masks dims {reference_masks.dims} != {MASK_DIMS}")
    plain = {k: float(transform[k]) for k in ("shift_row", "shift_col", "rotation_deg")}
    moved = np.clip(np.asarray(to_session(reference_masks, plain), np.float32), 0, None)
    total = moved.sum(axis=(1, 2), keepdims=True)
    lost = reference_masks[ROI].values[total[:, 0, 0] <= 0]
    if len(lost):
        logger.warning("ROIs %s fall outside this session's field of view", list(lost))
    out = reference_masks.copy(data=np.where(total > 0, moved / np.maximum(total, 1e-12), 0))
    return out.astype(np.float32)
