"""Track stage: ROIs across days, online targets onto somata, somata onto dendrites.

Inputs and outputs (all pure; I/O is in ``analysis.io``):

- :func:`track_rois`: per-session masks ``(roi, row, col)`` in session coordinates plus
  the ``align_days`` transforms -> consensus masks ``(roi, row, col)`` in reference
  coordinates with stable ids 0..N-1, and a table ``session, session_roi, roi, iou,
  detected`` (one row per tracked ROI and session; ``session_roi`` is -1 on days the
  neuron was not detected).
- :func:`masks_to_session`: consensus masks -> one session's coordinates (same ids), so
  silent days are still extracted.
- :func:`map_targets`: online target polygons (``targets.json`` entries, ``[row, col]``
  vertices in that day's imaging coordinates) -> table ``target_id, group, roi, iou,
  overlap``; raises :class:`TargetMatchError` naming the target when none matches.
- :func:`pair_dendrites`: soma and dendrite traces ``(roi, time)`` -> table ``soma_roi,
  dendrite_roi, corr, p_value, paired`` (bAP coupling, circular-shift shuffle test).

Transforms follow ``analysis.align_days``: a session's transform maps REFERENCE
coordinates to SESSION coordinates; ``to_reference`` / ``to_session`` apply it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from analysis.dims import COL, MASK_DIMS, ROI, ROW, SESSION, TIME
from analysis.settings import StageSettings, require

logger = logging.getLogger(__name__)


class TargetMatchError(ValueError):
    """An online target ROI matches no detected soma well enough."""


@dataclasses.dataclass(frozen=True)
class TrackSettings(StageSettings):
    """Settings of the track stage (config section ``track``).

    Tracking across days
        iou_threshold: minimum IoU (reference coords) for a session ROI to join a track.
        min_sessions: tracks detected on fewer sessions are dropped (capped at the number
        of sessions, so a single session keeps all its ROIs); a false positive of one day
        rarely recurs at the same place, a real soma does.
        merge_iou_threshold: two tracks whose consensus masks overlap with at least this
        IoU and that never hold ROIs of the same session are joined (one neuron whose
        mask moved on one day, which would otherwise start a duplicate track).
        consensus_fraction: a pixel belongs to the consensus mask when it lies in at least
        this fraction of the track's detected masks.
        cells_only: keep only ROIs whose ``is_cell`` coordinate is True (when present).
    Target mapping
        target_metric: "iou" or "overlap" (fraction of target pixels inside the soma).
        target_min_score: minimum score of an accepted target-soma match.
    Soma-dendrite pairing
        highpass_window_s: running-mean window removed from each trace (slow drift).
        event_threshold_sd: activity below this many robust SDs is set to 0 (events only).
        n_shuffles: circular-shift shuffles per dendrite.
        min_shift_s: smallest circular shift used by the shuffle (beyond the event time).
        alpha: pairs with p < alpha (and positive corr) are candidates.
        min_corr: candidates also need at least this correlation.
        seed: seed of the shuffle lags (results are reproducible run to run).
    """

    section: ClassVar[str] = "track"

    iou_threshold: float = 0.3
    min_sessions: int = 2
    merge_iou_threshold: float = 0.2
    consensus_fraction: float = 0.5
    cells_only: bool = True
    target_metric: Literal["iou", "overlap"] = "overlap"
    target_min_score: float = 0.3
    highpass_window_s: float = 10.0
    event_threshold_sd: float = 2.0
    n_shuffles: int = 1000
    min_shift_s: float = 5.0
    alpha: float = 0.01
    min_corr: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        require(0 < self.iou_threshold <= 1, "track.iou_threshold must be in (0, 1]")
        require(self.min_sessions >= 1, "track.min_sessions must be >= 1")
        require(0 < self.merge_iou_threshold <= 1, "track.merge_iou_threshold must be in (0, 1]")
        require(0 < self.consensus_fraction <= 1, "track.consensus_fraction must be in (0, 1]")
        require(0 < self.target_min_score <= 1, "track.target_min_score must be in (0, 1]")
        require(self.highpass_window_s > 0, "track.highpass_window_s must be > 0 s")
        require(self.event_threshold_sd >= 0, "track.event_threshold_sd must be >= 0")
        require(self.n_shuffles >= 10, "track.n_shuffles must be >= 10")
        require(self.min_shift_s >= 0, "track.min_shift_s must be >= 0 s")
        require(0 < self.alpha < 1, "track.alpha must be in (0, 1)")
        require(-1 <= self.min_corr <= 1, "track.min_corr must be in [-1, 1]")


def _transform(transforms: xr.Dataset, session: str) -> dict[str, float]:
    if SESSION not in transforms.dims or session not in transforms[SESSION].values:
        raise ValueError(
            f"transforms have no session '{session}' (sessions: "
            f"{list(transforms[SESSION].values) if SESSION in transforms.coords else []}); "
            "run align_days on the same sessions as segment"
        )
    t = transforms.sel({SESSION: session})
    return {k: float(t[k]) for k in ("shift_row", "shift_col", "rotation_deg")}


def _binary(masks: xr.DataArray) -> xr.DataArray:
    return (masks > 0).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boolean masks; a (n, row, col), b (m, row, col) -> (n, m)."""
    a2 = a.reshape(a.shape[0], a.shape[1] * a.shape[2]).astype(np.float32)
    b2 = b.reshape(b.shape[0], b.shape[1] * b.shape[2]).astype(np.float32)
    inter = a2 @ b2.T
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _match(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Optimal one-to-one assignment maximising score; pairs below threshold dropped."""
    if score.size == 0:
        return []
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if score[r, c] >= threshold]


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
        ref = to_reference(_binary(masks), _transform(transforms, session))
        per_session[session] = (np.asarray(masks[ROI].values), np.asarray(ref) >= 0.5)

    members: list[dict[str, int]] = []  # track -> {session: session roi index}
    stacks: list[list[np.ndarray]] = []  # track -> detected masks (reference coords)
    for session, (_, ref) in per_session.items():
        consensus = np.array([_consensus(s, settings.consensus_fraction) > 0 for s in stacks])
        iou = _iou(ref, consensus) if len(stacks) else np.zeros((len(ref), 0))
        matched = _match(iou, settings.iou_threshold)
        for i, k in matched:
            members[k][session] = i
            stacks[k].append(ref[i])
        for i in sorted(set(range(len(ref))) - {i for i, _ in matched}):
            members.append({session: i})
            stacks.append([ref[i]])

    members, stacks = _merge_disjoint_tracks(
        members, stacks, fraction=settings.consensus_fraction, min_iou=settings.merge_iou_threshold
    )
    min_sessions = min(settings.min_sessions, len(per_session))
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
                    "iou": float(_iou(ref[i : i + 1], frac[None] > 0)[0, 0])
                    if detected
                    else np.nan,
                    "detected": detected,
                }
            )
    logger.info("track_rois: %d tracks kept of %d", len(tracks), len(members))
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
        iou = _iou(consensus, consensus)
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


def shift_targets(targets: Sequence[Mapping[str, Any]], offset_px: Sequence[float]) -> list[dict]:
    """Copies of ``targets.json`` entries with polygons moved by ``offset_px`` (rows, cols)."""
    offset = np.asarray(offset_px, dtype=float)
    return [{**t, "polygon": (np.asarray(t["polygon"], float) + offset).tolist()} for t in targets]


def rasterize_targets(
    targets: Sequence[Mapping[str, Any]], *, shape: tuple[int, int]
) -> np.ndarray:
    """Boolean masks ``(target, row, col)`` of target polygons ``[[row, col], ...]``.

    Raises
    ------
    TargetMatchError
        A polygon has fewer than 3 vertices or lies outside the field of view.
    """
    from skimage.draw import polygon as draw_polygon

    rasters = np.zeros((len(targets), *shape), bool)
    for img, t in zip(rasters, targets, strict=True):
        for key in ("id", "group", "polygon"):
            if key not in t:
                raise ValueError(f"target {t.get('id', t)!r} lacks key '{key}' (targets.json)")
        vertices = np.asarray(t["polygon"], float)
        if vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
            raise TargetMatchError(
                f"target {t['id']!r}: polygon must be >= 3 [row, col] vertices, "
                f"got shape {vertices.shape}"
            )
        rr, cc = draw_polygon(vertices[:, 0], vertices[:, 1], shape=shape)
        img[rr, cc] = True
        if not img.any():
            raise TargetMatchError(
                f"target {t['id']!r}: polygon (rows {vertices[:, 0].min():.0f}.."
                f"{vertices[:, 0].max():.0f}, cols {vertices[:, 1].min():.0f}.."
                f"{vertices[:, 1].max():.0f}) lies outside the {shape[0]}x{shape[1]} field of "
                "view; check that targets.json vertices are [row, col] (not x, y) in this "
                "session's imaging coordinates and belong to this plane"
            )
    return rasters


def map_targets(
    targets: Sequence[Mapping[str, Any]],
    soma_masks: xr.DataArray,
    *,
    shape: tuple[int, int],
    settings: TrackSettings,
) -> pd.DataFrame:
    """Match online target polygons to soma ROIs (optimal, one soma per target).

    Parameters
    ----------
    targets : sequence of dict
        ``targets.json`` entries ``{"id", "group", "polygon": [[row, col], ...]}`` in the
        session's imaging coordinates (other keys, e.g. ``plane``, are ignored).
    soma_masks : xr.DataArray, dims (roi, row, col)
        Soma masks in the same session's coordinates.
    shape : (int, int)
        (row, col) size of the imaging plane; polygons are rasterised at this size.
    settings : TrackSettings
        ``target_metric`` and ``target_min_score``.

    Returns
    -------
    pd.DataFrame
        Columns ``target_id, group, roi, iou, overlap`` (overlap = fraction of target
        pixels inside the soma mask), one row per target.

    Raises
    ------
    TargetMatchError
        A polygon is empty or lies outside the field of view, or a target matches no
        soma with a score >= ``target_min_score``; the message names the target ids.
    """
    if tuple(soma_masks.shape[1:]) != tuple(shape):
        raise ValueError(f"soma_masks (row, col) {soma_masks.shape[1:]} != shape {tuple(shape)}")
    if not targets:
        return pd.DataFrame(columns=["target_id", "group", "roi", "iou", "overlap"])
    tgt = rasterize_targets(targets, shape=shape)
    soma = np.asarray(soma_masks.values > 0)
    iou = _iou(tgt, soma) if len(soma) else np.zeros((len(tgt), 0))
    inter = tgt.reshape(len(tgt), -1).astype(np.float32) @ soma.reshape(len(soma), -1).T
    overlap = inter / tgt.reshape(len(tgt), -1).sum(1)[:, None]
    score = iou if settings.target_metric == "iou" else overlap
    matched = dict(_match(score, settings.target_min_score))
    missing = [i for i in range(len(targets)) if i not in matched]
    if missing:
        owner = {j: i for i, j in matched.items()}
        shared = [
            f"target {targets[i]['id']!r}'s best ROI {int(soma_masks[ROI].values[j])} "
            f"({settings.target_metric} {score[i, j]:.3f}) went to target "
            f"{targets[owner[j]]['id']!r} ({score[owner[j], j]:.3f})"
            for i in missing
            if score.shape[1]
            and (j := int(score[i].argmax())) in owner
            and score[i, j] >= settings.target_min_score
        ]
        best = [round(float(score[i].max(initial=0.0)), 3) for i in missing]
        raise TargetMatchError(
            f"targets {[targets[i]['id'] for i in missing]} match no soma ROI of their own "
            f"with {settings.target_metric} >= {settings.target_min_score} (best scores "
            f"{best})"
            + (
                f"; {'; '.join(shared)}: one ROI covers two targets (somata merged by "
                "segmentation?)"
                if shared
                else ""
            )
            + "; check the target polygons' plane and coordinates, the segment stage's soma "
            "detection on this session, or lower track.target_min_score"
        )
    roi_ids = soma_masks[ROI].values
    return pd.DataFrame(
        {
            "target_id": [t["id"] for t in targets],
            "group": [t["group"] for t in targets],
            "roi": [int(roi_ids[matched[i]]) for i in range(len(targets))],
            "iou": [float(iou[i, matched[i]]) for i in range(len(targets))],
            "overlap": [float(overlap[i, matched[i]]) for i in range(len(targets))],
        }
    )


def _sample_rate(traces: xr.DataArray) -> float:
    steps = np.diff(np.asarray(traces[TIME].values, float))
    steps = steps[steps > 0]
    if not len(steps):
        raise ValueError("traces need an increasing 'time' coordinate (s) to infer fs_hz")
    return 1.0 / float(np.median(steps))


def _event_trace(x: np.ndarray, window: int, threshold_sd: float) -> np.ndarray:
    """High-pass (running mean removed), robust-z, keep only supra-threshold activity."""
    x = np.nan_to_num(x - np.nanmean(x, axis=1, keepdims=True))
    x = x - ndimage.uniform_filter1d(x, size=window, axis=1, mode="nearest")
    sd = 1.4826 * np.median(np.abs(x - np.median(x, axis=1, keepdims=True)), axis=1)
    z = x / np.where(sd > 0, sd, 1.0)[:, None]
    return np.where(z > threshold_sd, z, 0.0)


def pair_dendrites(
    soma_traces: xr.DataArray,
    dendrite_traces: xr.DataArray,
    *,
    settings: TrackSettings,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Pair dendrites with somata by back-propagating AP coupling, with a shuffle test.

    Each trace is high-passed (running mean over ``highpass_window_s`` removed),
    robust-z-scored (median absolute deviation) and thresholded at
    ``event_threshold_sd`` so only events remain. ``corr`` is the Pearson correlation
    of these event traces. Null: every dendrite is circularly shifted by
    ``n_shuffles`` random lags (>= ``min_shift_s`` from 0); for each lag the maximum
    correlation over all somata is taken, so ``p_value`` = (1 + #null max >= corr) /
    (1 + n_shuffles) is corrected for testing many somata per dendrite. A dendrite is
    paired with the soma of highest ``corr`` among those with p < ``alpha`` and
    ``corr >= min_corr``; a soma may have several dendrites.

    Parameters
    ----------
    soma_traces, dendrite_traces : xr.DataArray, dims (roi, time)
        dF/F (or F) on the same frames, ``time`` in s (may be sessions concatenated;
        the frame rate is the median positive time step). NaNs count as baseline.
    settings : TrackSettings
        Pairing settings.
    rng : np.random.Generator
        Source of the shuffle lags.

    Returns
    -------
    pd.DataFrame
        One row per (soma, dendrite): ``soma_roi, dendrite_roi, corr, p_value, paired``.
    """
    for name, tr in (("soma_traces", soma_traces), ("dendrite_traces", dendrite_traces)):
        if tuple(tr.dims) != (ROI, TIME):
            raise ValueError(f"{name} dims {tr.dims} != ('roi', 'time')")
    n_t = soma_traces.sizes[TIME]
    if dendrite_traces.sizes[TIME] != n_t:
        raise ValueError(
            f"soma ({n_t}) and dendrite ({dendrite_traces.sizes[TIME]}) traces must cover "
            "the same frames"
        )
    fs_hz = _sample_rate(soma_traces)
    window = max(3, int(round(settings.highpass_window_s * fs_hz)))
    min_shift = int(round(settings.min_shift_s * fs_hz))
    if n_t - 2 * min_shift < 1:
        raise ValueError(
            f"traces ({n_t} frames) too short for min_shift_s={settings.min_shift_s} s at "
            f"{fs_hz:.1f} Hz"
        )
    s = _event_trace(np.asarray(soma_traces.values, float), window, settings.event_threshold_sd)
    d = _event_trace(np.asarray(dendrite_traces.values, float), window, settings.event_threshold_sd)
    s = s - s.mean(axis=1, keepdims=True)
    d = d - d.mean(axis=1, keepdims=True)
    s_norm = np.linalg.norm(s, axis=1)
    s_fft = np.fft.rfft(s)
    lags = rng.integers(min_shift, n_t - min_shift + 1, size=(settings.n_shuffles, d.shape[0]))
    corr = np.zeros((s.shape[0], d.shape[0]))
    p = np.ones_like(corr)
    for j in range(d.shape[0]):
        norm = s_norm * np.linalg.norm(d[j])
        if not np.any(norm > 0):
            continue
        # circular cross-correlation at every lag at once: xc[i, k] = sum_t s_i(t) d_j(t - k)
        xc = np.fft.irfft(s_fft * np.conj(np.fft.rfft(d[j])), n=n_t)
        xc = np.where(norm[:, None] > 0, xc / np.where(norm > 0, norm, 1.0)[:, None], 0.0)
        corr[:, j] = xc[:, 0]
        null_max = xc.max(axis=0)[lags[:, j]]
        p[:, j] = (1 + (null_max[None, :] >= corr[:, j, None]).sum(axis=1)) / (
            1 + settings.n_shuffles
        )

    candidate = (p < settings.alpha) & (corr >= settings.min_corr)
    paired = np.zeros_like(candidate)
    for j in range(d.shape[0]):
        if candidate[:, j].any():
            paired[np.argmax(np.where(candidate[:, j], corr[:, j], -np.inf)), j] = True
    soma_ids = soma_traces[ROI].values
    dend_ids = dendrite_traces[ROI].values
    ii, jj = np.meshgrid(np.arange(len(soma_ids)), np.arange(len(dend_ids)), indexing="ij")
    logger.info("pair_dendrites: %d of %d dendrites paired", paired.any(0).sum(), len(dend_ids))
    return pd.DataFrame(
        {
            "soma_roi": soma_ids[ii.ravel()].astype(np.int64),
            "dendrite_roi": dend_ids[jj.ravel()].astype(np.int64),
            "corr": corr.ravel(),
            "p_value": p.ravel(),
            "paired": paired.ravel(),
        }
    )
