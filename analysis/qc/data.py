"""What a subject's QC page shows, as one JSON-ready dict built from saved results.

Everything here only reshapes saved results for display: traces are min/max binned and
quantized to bytes, images become JPEG data URIs, masks become outline paths. Nothing is
recomputed that a stage saves.
"""

from __future__ import annotations

import base64
import dataclasses
import io as stdio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis.dims import ROI, SESSION
from analysis.masks import crop, select_session
from analysis.register import compute_raw_to_registered_offset

NAN_CODE = 255  # the byte that stands for NaN in a quantized series


@dataclasses.dataclass(frozen=True)
class SubjectResults:
    """One subject's saved results, as read by the qc rule's script.

    Per-session mappings are keyed by session name, per-plane ones by plane index and
    ``(session, plane)`` ones by that pair.
    """

    subject: str
    sessions: Sequence[str]
    soma_plane: int
    dendrite_plane: int
    bci_plane: Mapping[str, int]
    registrations: Mapping[tuple[str, int], xr.Dataset]  # register: registration.nc
    transforms: Mapping[int, xr.Dataset]  # align_days: transforms.nc
    rois: Mapping[int, xr.Dataset]  # track: rois.nc
    traces: Mapping[tuple[str, int], xr.Dataset]  # extract: traces.nc
    events: Mapping[tuple[str, int], pd.DataFrame]  # extract: events.tsv
    targets: Mapping[str, Sequence[Mapping[str, Any]]]  # ingest: targets.json entries
    bci_frames: Mapping[str, pd.DataFrame]  # ingest: bci_frames.tsv
    target_rois: Mapping[str, pd.DataFrame]  # track: <session>/targets.tsv
    pairs: pd.DataFrame  # track: pairs.tsv
    trials: Mapping[str, pd.DataFrame]  # bci: trials.tsv
    aligned: Mapping[tuple[str, str], xr.Dataset]  # bci: aligned_<event>.nc by (session, event)
    replays: Mapping[str, pd.DataFrame]  # bci: replay.tsv
    replay_agreement: Mapping[str, pd.DataFrame]  # bci: replay_agreement.tsv
    behaviour: pd.DataFrame  # stats: behaviour.tsv rows of this subject


def quantize(values: np.ndarray) -> dict:
    """Bytes 0..254 spanning [lo, hi] (255 = NaN), base64: 1 byte a sample for display."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    lo = float(values[finite].min()) if finite.any() else 0.0
    hi = float(values[finite].max()) if finite.any() else 0.0
    span = hi - lo if hi > lo else 1.0
    codes = np.full(values.shape, NAN_CODE, np.uint8)
    codes[finite] = np.round((values[finite] - lo) / span * (NAN_CODE - 1)).astype(np.uint8)
    return {"lo": round(lo, 5), "hi": round(hi, 5), "q": base64.b64encode(codes).decode()}


def bin_edges(n_frames: int, n_bins: int) -> np.ndarray:
    """Start frames of at most ``n_bins`` equal bins over ``n_frames`` frames."""
    return np.unique(np.linspace(0, n_frames, min(n_bins, n_frames) + 1).astype(int)[:-1])


def downsample_minmax(values: np.ndarray, *, max_points: int) -> dict:
    """A trace as each bin's min then max (events stay visible), quantized.

    Returns ``{"lo", "hi", "q", "step"}``: point ``i`` lies at frame ``i * step``.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) <= max_points:
        return {**quantize(values), "step": 1.0}
    edges = bin_edges(len(values), max_points // 2)
    with np.errstate(invalid="ignore"):
        pairs = np.stack([np.fmin.reduceat(values, edges), np.fmax.reduceat(values, edges)], 1)
    return {**quantize(pairs.reshape(-1)), "step": len(values) / (2 * len(edges))}


def downsample_sum(values: np.ndarray, *, max_points: int) -> dict:
    """A count-like trace (OASIS spikes) as at most ``max_points`` bin sums, quantized;
    ``step`` as above."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    edges = bin_edges(len(values), max_points)
    return {**quantize(np.add.reduceat(values, edges)), "step": len(values) / len(edges)}


def frame_runs(flags: np.ndarray) -> list[list[int]]:
    """``[start, stop)`` frame runs where ``flags`` is true (bad frames)."""
    padded = np.concatenate([[False], np.asarray(flags, bool), [False]])
    changes = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return changes.reshape(-1, 2).tolist()


def image_data_uri(image: np.ndarray | xr.DataArray, *, quality: int) -> str:
    """A grey image (1st..99.5th percentile to 0..255) as a JPEG data URI; NaN is black."""
    from PIL import Image

    image = np.asarray(image, dtype=np.float64)
    finite = image[np.isfinite(image)]
    lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(image, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    return _jpeg_uri(Image.fromarray(np.round(scaled * 255).astype(np.uint8)), quality)


def overlay_data_uri(reference: np.ndarray, aligned: np.ndarray, *, quality: int) -> str:
    """Reference day magenta, aligned day green (white where they agree), as a JPEG."""
    from PIL import Image

    def scaled(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float64)
        finite = image[np.isfinite(image)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        return np.clip((np.nan_to_num(image, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)

    ref, day = scaled(reference), scaled(aligned)
    rgb = np.round(np.stack([ref, day, ref], axis=-1) * 255).astype(np.uint8)
    return _jpeg_uri(Image.fromarray(rgb), quality)


def _jpeg_uri(image: Any, quality: int) -> str:
    buffer = stdio.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def outline_path(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> str:
    """SVG path ``d`` (x = col, y = row, pixel centres) around a mask's pixels; ``origin``
    is the field (row, col) of ``mask[0, 0]`` when it is a crop."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(np.asarray(mask) > 0, 1).astype(np.float32)  # closes edge contours
    parts = []
    for contour in find_contours(padded, 0.5):
        vertices = approximate_polygon(contour - 1 + np.asarray(origin), tolerance=0.3)
        points = " L".join(f"{c:.1f} {r:.1f}" for r, c in vertices[:-1])
        parts.append(f"M{points} Z")
    return " ".join(parts)


def _finite(value: Any, digits: int = 3) -> float | None:
    """A number for JSON: rounded, None for NaN or inf."""
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


def _centroid(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> list[float]:
    weights = np.asarray(mask, dtype=np.float64)
    rows, cols = np.indices(weights.shape)
    total = weights.sum()
    return [
        round(float((rows * weights).sum() / total + origin[0]), 1),
        round(float((cols * weights).sum() / total + origin[1]), 1),
    ]


def _binned_lags(values: np.ndarray, *, max_points: int) -> np.ndarray:
    """Mean over equal groups of the last axis (lags), NaN-aware, at most ``max_points``."""
    edges = bin_edges(values.shape[-1], max_points)
    finite = np.isfinite(values)
    sums = np.add.reduceat(np.where(finite, values, 0.0), edges, axis=-1)
    counts = np.add.reduceat(finite, edges, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _aligned_view(aligned: xr.Dataset, *, max_lag_points: int) -> dict | None:
    """Per-ROI rasters ``(trial, lag bin)`` of one event's trial-aligned dF/F."""
    dff = aligned["dff"].transpose("trial", ROI, "lag")
    if dff.sizes["trial"] == 0:
        return None
    lag = np.asarray(dff["lag"], dtype=np.float64)
    binned = _binned_lags(dff.values.astype(np.float64), max_points=max_lag_points)
    lag_bins = _binned_lags(lag[None], max_points=max_lag_points)[0]
    return {
        "lag_s": np.round(lag_bins, 3).tolist(),
        "n_trials": int(dff.sizes["trial"]),
        "rois": {
            str(int(roi)): quantize(binned[:, k].reshape(-1))
            for k, roi in enumerate(dff[ROI].values)
        },
    }


def _events_by_roi(events: pd.DataFrame) -> dict[str, list[list[float]]]:
    if events.empty:
        return {}
    return {
        str(int(roi)): [
            [int(f), _finite(a)] for f, a in zip(g["frame"], g["amplitude"], strict=True)
        ]
        for roi, g in events.groupby("roi")
    }


def _plane_view(results: SubjectResults, session: str, plane: int, settings: Any) -> dict:
    """Images, ROI outlines, traces and registration QC of one session's plane."""
    registration = results.registrations[(session, plane)]
    masks = select_session(results.rois[plane], session)
    traces = results.traces[(session, plane)]
    rois, dff, spikes = [], {}, {}
    for index, roi in enumerate(masks[ROI].values):
        mask, origin = crop(masks, index)
        if not (mask > 0).any():
            continue  # outside this session's field of view: no outline, NaN traces
        key = str(int(roi))
        rois.append({"id": int(roi), "d": outline_path(mask, origin), "c": _centroid(mask, origin)})
        trace = traces.sel({ROI: roi})
        dff[key] = downsample_minmax(trace["dff"].values, max_points=settings.max_trace_points)
        # a strip under the trace: a quarter of its points is enough
        spikes[key] = downsample_sum(
            trace["spikes"].values, max_points=settings.max_trace_points // 4
        )
    points = settings.max_trace_points
    return {
        "plane": plane,
        "shape": [int(masks.sizes["row"]), int(masks.sizes["col"])],
        "images": {
            "mean": image_data_uri(registration["mean_image"], quality=settings.jpeg_quality),
            "enhanced": image_data_uri(
                registration["mean_image_enhanced"], quality=settings.jpeg_quality
            ),
        },
        "rois": rois,
        "dff": dff,
        "spikes": spikes,
        "events": _events_by_roi(results.events[(session, plane)]),
        "registration": {
            name: downsample_minmax(registration[name].values, max_points=points)
            for name in ("shift_row", "shift_col", "corr_ref")
        }
        | {"bad_frames": frame_runs(registration["bad_frame"].values)},
    }


def _target_view(results: SubjectResults, session: str) -> list[dict]:
    """Online targets of a session moved into registered coordinates, with their somata."""
    plane = results.bci_plane[session]
    offset = compute_raw_to_registered_offset(
        results.registrations[(session, plane)], bci_frames=results.bci_frames[session]
    )
    mapped = results.target_rois[session].set_index("target_id")["roi"]
    by_id = {str(k): v for k, v in mapped.items()}
    out = []
    for target in results.targets[session]:
        if target["plane"] != plane:
            continue
        polygon = np.asarray(target["polygon"], dtype=np.float64) + offset
        roi = by_id.get(str(target["id"]))
        out.append(
            {
                "id": str(target["id"]),
                "group": target["group"],
                "plane": plane,
                "roi": None if roi is None or pd.isna(roi) else int(roi),
                "d": "M" + " L".join(f"{c:.1f} {r:.1f}" for r, c in polygon) + " Z",
                "label": np.round(polygon.min(axis=0), 1).tolist(),
            }
        )
    return out


def _overlay_view(results: SubjectResults, session: str, plane: int, settings: Any) -> dict:
    transforms = results.transforms[plane]
    reference = transforms.attrs.get("reference_session", results.sessions[0])
    row = transforms.sel({SESSION: session})
    return {
        "image": overlay_data_uri(
            transforms["aligned"].sel({SESSION: reference}).values,
            row["aligned"].values,
            quality=settings.jpeg_quality,
        ),
        "reference": str(reference),
        **{name: _finite(row[name]) for name in ("shift_row", "shift_col", "rotation_deg", "corr")},
        "aligned_ok": bool(row["aligned_ok"]),
    }


def _session_view(results: SubjectResults, session: str, settings: Any) -> dict:
    planes = {"soma": results.soma_plane, "dendrite": results.dendrite_plane}
    soma_traces = results.traces[(session, results.soma_plane)]
    trials = results.trials[session]
    replay = results.replays[session]
    agreement = results.replay_agreement[session]
    aligned = {
        event: _aligned_view(
            results.aligned[(session, event)], max_lag_points=settings.max_lag_points
        )
        for event in ("reward", "failure")
    }
    return {
        "name": session,
        "n_frames": int(soma_traces.sizes["time"]),
        "fs_hz": float(soma_traces.attrs["fs_hz"]),
        "planes": {role: _plane_view(results, session, p, settings) for role, p in planes.items()},
        "overlays": {
            role: _overlay_view(results, session, p, settings) for role, p in planes.items()
        },
        "targets": _target_view(results, session),
        "trials": [
            [int(t.start_frame), int(t.end_frame), str(t.outcome)] for t in trials.itertuples()
        ],
        "aligned": {event: view for event, view in aligned.items() if view is not None},
        "replay": {
            name: downsample_minmax(replay[name].values, max_points=settings.max_trace_points)
            for name in ("logged", "replayed")
        }
        | {"corr": None if agreement.empty else _finite(agreement["corr"].iloc[0])},
    }


def compute_subject_view(results: SubjectResults, *, settings: Any) -> dict:
    """The JSON-ready view of one subject that its QC page draws.

    Parameters
    ----------
    results : SubjectResults
        The subject's saved results.
    settings : analysis.qc.QcSettings
        ``max_trace_points`` (per ROI and session), ``max_lag_points``, ``jpeg_quality``.

    Returns
    -------
    dict
        ``subject``, ``roles`` (role -> plane), ``sessions`` (one dict per session:
        images, outlines, traces, targets, trials, aligned rasters, replay), ``pairs``
        (accepted ``[soma, dendrite, corr]``) and ``behaviour`` (rows of behaviour.tsv).
    """
    pairs = results.pairs
    accepted = pairs[pairs["paired"].astype(bool)] if not pairs.empty else pairs
    behaviour = results.behaviour.replace({np.nan: None})
    return {
        "subject": results.subject,
        "roles": {"soma": results.soma_plane, "dendrite": results.dendrite_plane},
        "sessions": [_session_view(results, s, settings) for s in results.sessions],
        "pairs": [
            [int(p.soma_roi), int(p.dendrite_roi), _finite(p.corr)] for p in accepted.itertuples()
        ],
        "behaviour": behaviour.to_dict(orient="records"),
    }


def count_outlines(view: Mapping[str, Any]) -> dict[str, int]:
    """Outlines a page of ``view`` draws, by kind (what the browser test compares)."""
    sessions = view["sessions"]
    return {
        "soma": sum(len(s["planes"]["soma"]["rois"]) for s in sessions),
        "dendrite": sum(len(s["planes"]["dendrite"]["rois"]) for s in sessions),
        "target": sum(len(s["targets"]) for s in sessions),
    }
