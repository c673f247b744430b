"""Ingest: check a raw session in the plain session format and split it into planes.

Input contract (DESIGN.md section 3, read-only): a session folder with ``session.yaml``
(``fs_hz``, ``n_planes``, ``plane_roles``, optional ``bci_plane``), imaging as
``plane<k>.tif`` per plane or one interleaved TIFF stack (frame k belongs to plane
k mod n_planes), ``bci_frames.tsv`` (one row per imaging volume), ``bci_meta.yaml`` and
``targets.json``.

Output contract: per plane a ``(time, row, col)`` int16 binary movie; a session record
with metadata, frame counts, dropped/saturated frames and raw sha256 checksums; the
validated BCI table, BCI metadata and targets.

Every problem raises :class:`IngestError` naming the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.settings import StageSettings, require

log = logging.getLogger(__name__)

PLANE_ROLES = ("soma", "dendrite")
BCI_REQUIRED_COLUMNS = ("frame", "trial", "new_trial", "readout", "angle_deg", "reward", "aversive")
BCI_OPTIONAL_COLUMNS = ("licks", "opto", "shift_row", "shift_col")
BCI_META_REQUIRED = ("threshold", "failure_bound", "target_angle_deg", "max_trial_frames")
INT16_MAX = np.iinfo(np.int16).max


class IngestError(ValueError):
    """A raw session cannot be ingested; the message names the file, field and fix."""


@dataclasses.dataclass(frozen=True)
class IngestSettings(StageSettings):
    """Settings of the ingest stage.

    Attributes
    ----------
    batch_frames : frames read and converted at a time (bounds memory).
    saturation_value : raw values at or above this are counted as saturated pixels
        (int16 is the registration dtype; larger values are clipped to 32767).
    max_saturated_fraction : a frame with more saturated pixels than this fraction is
        listed among ``saturated_frames`` in the session record.
    """

    section = "ingest"
    batch_frames: int = 256
    saturation_value: int = 32767
    max_saturated_fraction: float = 0.01

    def __post_init__(self) -> None:
        require(self.batch_frames >= 1, "ingest.batch_frames must be >= 1")
        require(
            1 <= self.saturation_value <= INT16_MAX,
            f"ingest.saturation_value must be in [1, {INT16_MAX}]",
        )
        require(
            0 < self.max_saturated_fraction <= 1,
            "ingest.max_saturated_fraction must be in (0, 1]",
        )


@dataclasses.dataclass(frozen=True)
class SessionMeta:
    """What ``session.yaml`` (plus sessions-table overrides) says about a session."""

    fs_hz: float
    n_planes: int
    plane_roles: dict[int, str]
    bci_plane: int


def check_session_meta(meta: Mapping[str, Any], *, path: str | Path) -> SessionMeta:
    """Validate the ``session.yaml`` mapping (overrides already merged in).

    Parameters
    ----------
    meta : mapping with ``fs_hz`` (volume rate, Hz), ``n_planes``, ``plane_roles``
        ({plane index: 'soma' | 'dendrite'}), optional ``bci_plane`` (default: the soma plane).
    path : the file the mapping came from, named in errors.
    """
    known = {"fs_hz", "n_planes", "plane_roles", "bci_plane", "notes"}
    for key in meta:
        if key not in known:
            raise IngestError(
                f"{path}: unknown field '{key}'; valid fields are {', '.join(sorted(known))}."
            )
    for key in ("fs_hz", "n_planes", "plane_roles"):
        if key not in meta:
            raise IngestError(
                f"{path}: missing field '{key}'; add it (or set it as a column of the "
                "sessions table)."
            )
    fs_hz = meta["fs_hz"]
    if isinstance(fs_hz, bool) or not isinstance(fs_hz, (int, float)) or not fs_hz > 0:
        raise IngestError(f"{path}: field 'fs_hz' must be a positive number (Hz), got {fs_hz!r}.")
    n_planes = meta["n_planes"]
    if isinstance(n_planes, bool) or not isinstance(n_planes, int) or n_planes < 1:
        raise IngestError(f"{path}: field 'n_planes' must be an integer >= 1, got {n_planes!r}.")
    roles_in = meta["plane_roles"]
    if not isinstance(roles_in, Mapping):
        raise IngestError(
            f"{path}: field 'plane_roles' must map plane index to role, e.g. "
            "{0: soma, 1: dendrite}."
        )
    roles: dict[int, str] = {}
    for plane, role in roles_in.items():
        try:
            plane_index = int(plane)
        except (TypeError, ValueError):
            raise IngestError(f"{path}: plane_roles key {plane!r} is not a plane index.") from None
        if not 0 <= plane_index < n_planes:
            raise IngestError(
                f"{path}: plane_roles names plane {plane_index} but n_planes is {n_planes}."
            )
        if role not in PLANE_ROLES:
            raise IngestError(
                f"{path}: plane_roles[{plane_index}] is {role!r}; use one of {PLANE_ROLES}."
            )
        roles[plane_index] = role
    if "soma" not in roles.values():
        raise IngestError(f"{path}: plane_roles must name a 'soma' plane (the BCI plane).")
    bci_plane = meta.get("bci_plane", next(p for p, r in roles.items() if r == "soma"))
    if bci_plane not in roles:
        raise IngestError(f"{path}: bci_plane {bci_plane!r} is not among plane_roles.")
    return SessionMeta(float(fs_hz), n_planes, dict(sorted(roles.items())), int(bci_plane))


def plan_imaging_files(files: Sequence[Path], *, n_planes: int, session_dir: Path) -> dict:
    """Decide how TIFF files map to planes.

    Returns ``{"layout": "per_plane", "files": {plane: path}}`` when every plane has a
    ``plane<k>.tif``, or ``{"layout": "interleaved", "files": [paths in order]}`` otherwise.
    """
    per_plane = {}
    for path in files:
        match = re.fullmatch(r"plane(\d+)\.tiff?", path.name)
        if match:
            per_plane[int(match.group(1))] = path
    if per_plane:
        missing = sorted(set(range(n_planes)) - set(per_plane))
        if missing:
            raise IngestError(
                f"{session_dir}: found {sorted(p.name for p in per_plane.values())} but no "
                f"plane{missing[0]}.tif; session.yaml says n_planes={n_planes}. Add the "
                "missing plane file or correct n_planes."
            )
        return {"layout": "per_plane", "files": {p: per_plane[p] for p in range(n_planes)}}
    if not files:
        raise IngestError(
            f"{session_dir}: no imaging files (*.tif); expected plane<k>.tif per plane or "
            "one interleaved TIFF stack."
        )
    return {"layout": "interleaved", "files": sorted(files)}


def check_plane_frames(
    counts: Mapping[int, int], shapes: Mapping[int, tuple[int, int]], *, source: str
) -> tuple[int, tuple[int, int]]:
    """All planes must have the same number of frames and frame shape."""
    if len(set(counts.values())) != 1:
        raise IngestError(
            f"{source}: planes have different frame counts {dict(counts)}; an interleaved "
            "recording must have the same number of frames per plane (check for a dropped "
            "or extra frame)."
        )
    if len(set(shapes.values())) != 1:
        raise IngestError(
            f"{source}: planes have different frame shapes (rows, cols) {dict(shapes)}; all "
            "planes of a session must have one frame size. Check that every plane<k>.tif "
            "belongs to this session, or re-export the odd one."
        )
    return next(iter(counts.values())), next(iter(shapes.values()))


def check_interleaved_count(n_frames_total: int, *, n_planes: int, source: str) -> int:
    """Frames per plane of an interleaved stack; the total must divide by ``n_planes``."""
    if n_frames_total % n_planes:
        raise IngestError(
            f"{source}: {n_frames_total} frames is not a multiple of n_planes={n_planes}; "
            "the stack is truncated or n_planes in session.yaml is wrong. Trim the "
            "incomplete last volume or fix n_planes."
        )
    return n_frames_total // n_planes


def check_bci_frames(table: pd.DataFrame, *, n_frames: int, path: str | Path) -> pd.DataFrame:
    """Validate the per-volume BCI log against the imaging.

    Parameters
    ----------
    table : bci_frames.tsv as read.
    n_frames : imaging volumes (frames per plane); the log must have one row per volume.
    path : named in errors.

    Returns
    -------
    A copy with required columns typed (ints for indices/flags, float for readout/angle).
    """
    missing = [c for c in BCI_REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise IngestError(
            f"{path}: missing column(s) {missing}; the BCI log needs columns "
            f"{list(BCI_REQUIRED_COLUMNS)} (see README, 'BCI logs')."
        )
    if len(table) != n_frames:
        raise IngestError(
            f"{path}: {len(table)} rows but the imaging has {n_frames} volumes; the BCI log "
            "must have one row per imaging volume. Check that the log and the imaging "
            "belong to the same session and that no frames were dropped."
        )
    out = table.copy()
    for column in (*BCI_REQUIRED_COLUMNS, *[c for c in BCI_OPTIONAL_COLUMNS if c in table]):
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() & out[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise IngestError(
                f"{path}: column '{column}' has a non-numeric value {out[column].iloc[row]!r} "
                f"at row {row}; fix or remove it."
            )
        out[column] = values
    integral = ("frame", "trial", "new_trial", "reward", "aversive")
    for column in integral:
        if out[column].isna().any():
            row = int(np.flatnonzero(out[column].isna().to_numpy())[0])
            raise IngestError(f"{path}: column '{column}' is empty at row {row}.")
        out[column] = out[column].astype(np.int64)
    if not np.array_equal(out["frame"].to_numpy(), np.arange(n_frames)):
        raise IngestError(f"{path}: column 'frame' must count volumes 0..{n_frames - 1} in order.")
    return out


def check_bci_meta(meta: Mapping[str, Any], *, path: str | Path) -> dict:
    """Validate ``bci_meta.yaml``: threshold, failure bound, target angle, max trial length."""
    out = {}
    for key in BCI_META_REQUIRED:
        if key not in meta:
            raise IngestError(
                f"{path}: missing field '{key}'; bci_meta.yaml needs "
                f"{', '.join(BCI_META_REQUIRED)} (see README, 'BCI logs')."
            )
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IngestError(
                f"{path}: field '{key}' must be a number, got {value!r}; fix the value."
            )
        out[key] = value
    if not out["threshold"] > out["failure_bound"]:
        raise IngestError(
            f"{path}: threshold ({out['threshold']}) must exceed failure_bound "
            f"({out['failure_bound']})."
        )
    out["max_trial_frames"] = int(out["max_trial_frames"])
    return {**dict(meta), **out}


def check_targets(
    targets: Any, *, shape: tuple[int, int], n_planes: int, path: str | Path
) -> list[dict]:
    """Validate online targets: id, group P+/P-, plane, polygon of (row, col) inside the FOV."""
    if not isinstance(targets, list) or not targets:
        raise IngestError(f"{path}: expected a non-empty JSON list of target objects.")
    seen = set()
    out = []
    for index, target in enumerate(targets):
        where = f"{path}: target {index}"
        if not isinstance(target, dict):
            raise IngestError(f"{where} is not an object.")
        for key in ("id", "group", "plane", "polygon"):
            if key not in target:
                raise IngestError(f"{where} lacks field '{key}'.")
        if target["id"] in seen:
            raise IngestError(f"{where}: duplicate id {target['id']!r}.")
        seen.add(target["id"])
        if target["group"] not in ("P+", "P-"):
            raise IngestError(f"{where}: group must be 'P+' or 'P-', got {target['group']!r}.")
        if not (isinstance(target["plane"], int) and 0 <= target["plane"] < n_planes):
            raise IngestError(f"{where}: plane {target['plane']!r} is not a plane index.")
        polygon = np.asarray(target["polygon"], dtype=float)
        if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
            raise IngestError(f"{where}: polygon must be >= 3 [row, col] vertices.")
        inside = (
            (polygon[:, 0] >= -0.5)
            & (polygon[:, 0] <= shape[0] - 0.5)
            & (polygon[:, 1] >= -0.5)
            & (polygon[:, 1] <= shape[1] - 0.5)
        )
        if not inside.all():
            raise IngestError(
                f"{where} (id {target['id']!r}): polygon vertex {polygon[~inside][0].tolist()} "
                f"lies outside the {shape[0]} x {shape[1]} field of view; targets must be in "
                "that day's raw imaging coordinates (row, col)."
            )
        out.append({**target, "polygon": polygon.tolist()})
    return out


def inspect_session(folder: str | Path, *, overrides: Mapping[str, Any] | None = None) -> dict:
    """Read and check every raw file of one session folder (what the ingest rule runs).

    Reads only headers of the imaging (never the pixels), the BCI log, its metadata and
    the targets, through :mod:`analysis.io`, and checks them against each other.

    Parameters
    ----------
    folder : session folder in the plain session format (see module docstring).
    overrides : session.yaml fields set in the sessions table; they win over the file.

    Returns
    -------
    dict with ``meta`` (:class:`SessionMeta`), ``layout`` ('per_plane' | 'interleaved'),
    ``files`` ({plane (str): path (str)} per plane, or [paths (str)] interleaved, in frame
    order), ``n_frames`` (volumes = frames per plane), ``shape`` ((rows, cols), pixels),
    ``bci_frames`` (checked table), ``bci_meta`` (dict) and ``targets`` (list of dict).

    Raises
    ------
    IngestError
        A file disagrees with the format or with another file; names file, field and fix.
    analysis.io.RawInputError
        A file is missing, unreadable, corrupt or truncated; names the file.
    """
    from analysis import io

    folder = Path(folder)
    meta = check_session_meta(
        {**io.read_yaml(folder / "session.yaml"), **(overrides or {})},
        path=folder / "session.yaml",
    )
    tiffs = sorted(folder.glob("*.tif")) + sorted(folder.glob("*.tiff"))
    plan = plan_imaging_files(tiffs, n_planes=meta.n_planes, session_dir=folder)
    if plan["layout"] == "per_plane":
        pages = {plane: io.tiff_page_shapes(path) for plane, path in plan["files"].items()}
        n_frames, shape = check_plane_frames(
            {p: n for p, (n, _) in pages.items()},
            {p: s for p, (_, s) in pages.items()},
            source=str(folder),
        )
        files: dict[str, str] | list[str] = {str(p): str(path) for p, path in plan["files"].items()}
    else:
        pages = {path.name: io.tiff_page_shapes(path) for path in plan["files"]}
        shapes = {name: s for name, (_, s) in pages.items()}
        if len(set(shapes.values())) != 1:
            raise IngestError(
                f"{folder}: TIFF files have different frame shapes (rows, cols) {shapes}; "
                "the files of an interleaved recording must have one frame size. Move "
                "files of other recordings out of the session folder."
            )
        n_frames = check_interleaved_count(
            sum(n for n, _ in pages.values()), n_planes=meta.n_planes, source=str(folder)
        )
        shape = next(iter(shapes.values()))
        files = [str(p) for p in plan["files"]]
    return {
        "meta": meta,
        "layout": plan["layout"],
        "files": files,
        "n_frames": n_frames,
        "shape": shape,
        "bci_frames": check_bci_frames(
            io.read_raw_table(folder / "bci_frames.tsv"),
            n_frames=n_frames,
            path=folder / "bci_frames.tsv",
        ),
        "bci_meta": check_bci_meta(
            io.read_yaml(folder / "bci_meta.yaml"), path=folder / "bci_meta.yaml"
        ),
        "targets": check_targets(
            io.read_raw_json(folder / "targets.json"),
            shape=shape,
            n_planes=meta.n_planes,
            path=folder / "targets.json",
        ),
    }


def split_planes(
    batches: Iterable[np.ndarray], *, n_planes: int, first_frame: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """Route interleaved frames to planes: frame k belongs to plane k mod n_planes.

    Yields ``(plane, frames)`` pairs in acquisition order; ``first_frame`` is the global
    index of the first frame (files of a multi-file session continue the count).
    """
    index = first_frame
    for batch in batches:
        planes = (index + np.arange(len(batch))) % n_planes
        for plane in range(n_planes):
            selected = batch[planes == plane]
            if len(selected):
                yield plane, selected
        index += len(batch)


def convert_frames(frames: np.ndarray, *, settings: IngestSettings) -> dict[str, np.ndarray]:
    """Convert raw frames to the int16 registration dtype and flag problem frames.

    Returns
    -------
    dict with ``frames`` (int16), ``dropped`` (bool per frame: any NaN or all zero; NaN
    pixels are set to 0, documented as a dropped frame), ``saturated`` (bool per frame:
    more than ``max_saturated_fraction`` of pixels at or above ``saturation_value``).
    """
    data = np.asarray(frames)
    n_pixels = data.shape[1] * data.shape[2]
    if data.dtype.kind == "f":
        nan_pixels = np.isnan(data).reshape(len(data), -1).any(axis=1)
        data = np.nan_to_num(data, nan=0.0)
    else:
        nan_pixels = np.zeros(len(data), dtype=bool)
    flat = data.reshape(len(data), -1)
    all_zero = ~flat.any(axis=1)
    saturated = (flat >= settings.saturation_value).sum(axis=1) > (
        settings.max_saturated_fraction * n_pixels
    )
    converted = np.clip(data, np.iinfo(np.int16).min, INT16_MAX).astype(np.int16)
    return {"frames": converted, "dropped": nan_pixels | all_zero, "saturated": saturated}


def fill_plane(
    sources: Iterable[tuple[Iterable[np.ndarray], int]],
    out: np.ndarray,
    *,
    plane: int,
    n_planes: int,
    settings: IngestSettings,
    source: str = "the raw files",
) -> dict[str, np.ndarray]:
    """Copy one plane's frames from raw frame batches into ``out``, converting to int16.

    Parameters
    ----------
    sources : iterable of (batches, first_frame)
        Per raw file, its frame batches ``(frames, row, col)`` and the global index of its
        first frame (an interleaved session may span several files).
    out : writable array ``(time, row, col)`` int16
        Receives the plane's frames (e.g. a memmap from ``analysis.io.create_movie``).
    plane : int
        Plane to keep: global frame k belongs to plane ``k mod n_planes``.
    n_planes : int
        1 for a per-plane file, the plane count for an interleaved stack.
    settings : IngestSettings
    source : str
        What the frames come from (file or folder), named in errors.

    Returns
    -------
    dict with per-frame ``dropped`` and ``saturated`` flags (see :func:`convert_frames`).

    Raises
    ------
    IngestError
        If the sources hold fewer frames of this plane than ``out`` has.
    """
    n_frames = len(out)
    dropped = np.zeros(n_frames, dtype=bool)
    saturated = np.zeros(n_frames, dtype=bool)
    written = 0
    for batches, first_frame in sources:
        for batch_plane, frames in split_planes(
            batches, n_planes=n_planes, first_frame=first_frame
        ):
            if batch_plane != plane or written >= n_frames:
                continue
            frames = frames[: n_frames - written]
            converted = convert_frames(frames, settings=settings)
            stop = written + len(frames)
            out[written:stop] = converted["frames"]
            dropped[written:stop] = converted["dropped"]
            saturated[written:stop] = converted["saturated"]
            written = stop
    if written != n_frames:
        raise IngestError(
            f"{source}: plane {plane} yielded {written} frames, expected {n_frames}; the raw "
            "files changed since the ingest rule checked them: rerun from ingest."
        )
    return {"dropped": dropped, "saturated": saturated}
