"""Scanbox ``<name>.sbx`` with its info file ``<name>.mat`` (read by sbxreader)."""

from __future__ import annotations

import logging
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
)

log = logging.getLogger(__name__)


def _sbx_info(path: Path) -> dict[str, Any]:
    """sbxreader's metadata of a .sbx (from its info .mat), with integer sizes."""
    import sbxreader

    info_path = path.with_suffix(".mat")
    if not info_path.exists():
        raise io.RawInputError(
            f"{info_path}: file not found; Scanbox saves the recording's info file beside "
            f"{path.name} with the same name. Copy it from the acquisition machine."
        )
    with io.raw_read_errors(info_path, "a MATLAB .mat file", corrupt_format="Scanbox info .mat"):
        try:
            meta = sbxreader.sbx_get_metadata(str(path))
        except KeyError:
            raise io.RawInputError(
                f"{info_path}: no variable 'info'; Scanbox saves the recording's info struct "
                f"there. Copy the info file of {path.name} from the acquisition machine."
            ) from None
        except AttributeError as err:
            raise io.RawInputError(
                f"{info_path}: Scanbox info has no field '{err.name}'; the info file is "
                "incomplete or from another program: copy it again from the acquisition "
                "machine."
            ) from None
    rows, cols = (int(v) for v in np.ravel(meta["frame_size"]))
    return {
        **meta,
        "frame_size": (rows, cols),
        "num_channels": int(meta["num_channels"]),
        "num_planes": int(meta["num_planes"]),
        "num_frames": int(meta["num_frames"]),
    }


def _sbx_meta(folder: Path, files: Sequence[Path], *, settings: IngestSettings) -> ImagingMeta:
    path, info_path = files
    meta = _sbx_info(path)
    n_channels = meta["num_channels"]
    if settings.functional_channel > n_channels:
        raise IngestError(
            f"{info_path}: ingest.functional_channel is {settings.functional_channel} but the "
            f"recording has {n_channels} channel(s) (info.chan.nchan); set "
            f"ingest.functional_channel to 1..{n_channels} (0: the first)."
        )
    return ImagingMeta(
        "sbx",
        folder,
        tuple(files),
        fs_hz=float(meta["frame_rate"]),
        n_planes=meta["num_planes"],
        origin={
            "fs_hz": f"{info_path} (info.resfreq, info.config.lines, info.scanmode)",
            "n_planes": f"{info_path} (info.volscan, info.otwave / info.etl_table)",
        },
        details={"channel": max(settings.functional_channel - 1, 0)},
    )


def _plan_sbx(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    path = meta.files[0]
    info = _sbx_info(path)
    rows, cols = info["frame_size"]
    frame_bytes = rows * cols * info["num_channels"] * 2
    size = path.stat().st_size
    if size % frame_bytes:
        raise io.RawInputError(
            f"{path}: {size} bytes is not a whole number of {rows} x {cols} x "
            f"{info['num_channels']}-channel frames ({frame_bytes} bytes each); the file is "
            "truncated: copy it again from the acquisition machine."
        )
    stored = size // frame_bytes
    n_frames = stored // n_planes
    if n_frames == 0:
        raise IngestError(f"{path}: {stored} frames, less than one volume of {n_planes} planes.")
    incomplete = stored - n_frames * n_planes
    if incomplete:
        log.warning("%s: %d frames of an unfinished last volume are not ingested", path, incomplete)
    planes = {
        plane: {
            "reader": "sbx",
            "file": str(path),
            "plane": plane,
            "channel": meta.details["channel"],
            "n_frames": n_frames,
        }
        for plane in range(n_planes)
    }
    return ImagingPlan("sbx", meta.files, n_frames, (rows, cols), planes, incomplete)


def _iter_sbx(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    import sbxreader

    path = Path(source["file"])
    info = _sbx_info(path)
    with io.raw_read_errors(path, "a Scanbox .sbx file", corrupt_format="Scanbox .sbx file"):
        movie = sbxreader.sbx_memmap(str(path), sbx_metadata=info)
        n_frames = source["n_frames"]
        if movie.shape[0] < n_frames:
            raise io.RawInputError(
                f"{path}: {movie.shape[0]} volumes, expected {n_frames}; the file changed "
                "since the ingest rule checked it: rerun from ingest."
            )
        for start in range(0, n_frames, batch_frames):
            stop = min(start + batch_frames, n_frames)
            yield np.asarray(movie[start:stop, source["plane"], source["channel"]])


def _read_meta(folder: Path, files: list[Path], settings: IngestSettings) -> ImagingMeta:
    return _sbx_meta(folder, files, settings=settings)


FORMAT = ImagingFormat(
    "sbx",
    "sbx",
    ("*.sbx",),
    _read_meta,
    _plan_sbx,
    _iter_sbx,
    companions=lambda files: [files[0], files[0].with_suffix(".mat")],
)
