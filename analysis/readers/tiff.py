"""Plain TIFF: ``plane<k>.tif`` per plane, or interleaved TIFF stacks (frame k -> plane
k mod n_planes), the plain session format; no metadata.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis import io
from analysis.readers.base import (
    ImagingFormat,
    ImagingMeta,
    ImagingPlan,
    IngestError,
    IngestSettings,
    check_interleaved_count,
    check_plane_frames,
    interleaved_sources,
    natural_key,
)

log = logging.getLogger(__name__)

TIFF_GLOBS = ("*.tif", "*.tiff")


def plan_tiff_files(files: Sequence[Path], *, n_planes: int, session_dir: Path) -> dict:
    """Decide how plain TIFF files map to planes.

    Returns ``{"layout": "per_plane", "files": {plane: path}}`` when every plane has a
    ``plane<k>.tif``, or ``{"layout": "interleaved", "files": [paths in name order]}``.
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
    return {"layout": "interleaved", "files": sorted(files, key=natural_key)}


def _plan_tiff(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    layout = plan_tiff_files(meta.files, n_planes=n_planes, session_dir=meta.folder)
    if layout["layout"] == "per_plane":
        pages = {plane: io.tiff_page_shapes(path) for plane, path in layout["files"].items()}
        n_frames, shape = check_plane_frames(
            {p: n for p, (n, _) in pages.items()},
            {p: s for p, (_, s) in pages.items()},
            source=str(meta.folder),
        )
        planes = {
            plane: {
                "reader": "tiff",
                "files": [str(path)],
                "pages": [n_frames],
                "period": 1,
                "offset": 0,
                "n_frames": n_frames,
            }
            for plane, path in layout["files"].items()
        }
        files = tuple(layout["files"][p] for p in range(n_planes))
        return ImagingPlan("tiff", files, n_frames, shape, planes)
    files = tuple(layout["files"])
    pages, shape = tiff_pages(files, folder=meta.folder)
    n_frames = check_interleaved_count(sum(pages), n_planes=n_planes, source=str(meta.folder))
    base = {"reader": "tiff", "files": [str(f) for f in files], "pages": pages}
    planes = interleaved_sources(
        base, n_planes=n_planes, n_frames=n_frames, period=n_planes, offsets=range(n_planes)
    )
    return ImagingPlan("tiff", files, n_frames, shape, planes)


def tiff_pages(files: Sequence[Path], *, folder: Path) -> tuple[list[int], tuple[int, int]]:
    """Pages per file and the one frame shape of the TIFF files of a recording."""
    headers = {path.name: io.tiff_page_shapes(path) for path in files}
    shapes = {name: s for name, (_, s) in headers.items()}
    if len(set(shapes.values())) != 1:
        raise IngestError(
            f"{folder}: TIFF files have different frame shapes (rows, cols) {shapes}; "
            "the files of an interleaved recording must have one frame size. Move "
            "files of other recordings out of the session folder."
        )
    return [n for n, _ in headers.values()], next(iter(shapes.values()))


def iter_tiff(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    wanted = source["offset"] + source["period"] * np.arange(source["n_frames"], dtype=np.int64)
    bounds = np.cumsum([0, *source["pages"]])
    for index, path in enumerate(source["files"]):
        inside = (wanted >= bounds[index]) & (wanted < bounds[index + 1])
        if inside.any():
            local = wanted[inside] - bounds[index]
            yield from io.iter_tiff_frames(path, batch_frames=batch_frames, pages=local)


def _read_meta(folder: Path, files: list[Path], settings: IngestSettings) -> ImagingMeta:
    return ImagingMeta("tiff", folder, tuple(files))


FORMAT = ImagingFormat(
    "tiff", "tiff", TIFF_GLOBS, _read_meta, _plan_tiff, iter_tiff, single_file=False
)
