"""Imaging readers: what a rig wrote, as the plain session format's per-plane frames.

The reader is chosen by the imaging files in a session folder (:func:`find_imaging`);
``fs_hz`` (volume rate) and ``n_planes`` come from the metadata named here, else from
session.yaml:

- ``tiff``: ``plane<k>.tif`` per plane, or interleaved TIFF stacks (frame k -> plane
  k mod n_planes), the plain session format; no metadata.
- ``scanimage``: ScanImage TIFFs ``file_00001.tif``, ... (one recording, in name order;
  planes and channels interleaved, flyback frames skipped); ``SI.hRoiManager.scanVolumeRate``,
  ``SI.hStackManager.numSlices`` and more (:func:`scanimage_layout`).
- ``sbx``: Scanbox ``<name>.sbx`` with its info file ``<name>.mat`` (read by sbxreader);
  ``info.resfreq``, ``info.config.lines``, ``info.scanmode``, ``info.otwave`` /
  ``info.etl_table``.
- ``hdf5``: one ``*.h5`` / ``*.hdf5`` file with a (time, row, col) dataset, planes
  interleaved; the dataset's attributes ``fs_hz`` and ``n_planes`` when present.
- ``nwb``: one ``*.nwb`` file with TwoPhotonSeries in acquisition, one per plane or one
  (frame, x, y, z) series (read by pynwb); the series' ``rate`` (or timestamps), the
  number of series or z planes. Without another BCI log, the file's trials table and BCI
  time series are the log (:func:`read_nwb_bci_log`).

Three steps, each reading as little as it can:

1. :func:`read_imaging_meta` reads metadata only: the files, and ``fs_hz`` (volume rate)
   and ``n_planes`` where the files record them (with where they were read, for errors).
2. :func:`plan_imaging`, given the session's ``n_planes``, reads headers: frames per
   plane, frame shape, and per plane a JSON-able *source* for step 3.
3. :func:`iter_plane` streams one plane's frames ``(frames, row, col)`` in batches
   from its source (memory-mapped or chunked; never a whole movie), as
   :func:`analysis.ingest.fill_plane` consumes them.

A file that cannot be read raises :class:`analysis.io.RawInputError` naming it; files
that disagree with the format or the settings raise
:class:`analysis.ingest.IngestError` naming the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import io
from analysis.ingest import (
    IngestError,
    IngestSettings,
    check_interleaved_count,
    check_plane_frames,
)
from analysis.vocabulary import (
    NWB_BCI_CONTAINER,
    NWB_BCI_OPTIONAL_SERIES,
    NWB_BCI_PARAMETERS,
    NWB_BCI_SERIES,
    NWB_SHIFT_SERIES,
)

log = logging.getLogger(__name__)

TIFF_GLOBS = ("*.tif", "*.tiff")
HDF5_GLOBS = ("*.h5", "*.hdf5")


@dataclasses.dataclass(frozen=True)
class ImagingMeta:
    """A session's imaging files and what their metadata say (step 1).

    Attributes
    ----------
    format : 'tiff', 'scanimage', 'sbx', 'hdf5' or 'nwb'.
    folder : the session folder.
    files : every file the reader reads (rule inputs, checksummed), in reading order.
    fs_hz : volume rate (Hz) from the metadata, or None when the files do not record it.
    n_planes : planes from the metadata, or None.
    origin : where ``fs_hz`` / ``n_planes`` were read, e.g.
        ``{"fs_hz": "<s>/file_00001.tif (SI.hRoiManager.scanVolumeRate)"}``.
    details : what the format's planning step needs (JSON-able).
    """

    format: str
    folder: Path
    files: tuple[Path, ...]
    fs_hz: float | None = None
    n_planes: int | None = None
    origin: Mapping[str, str] = dataclasses.field(default_factory=dict)
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ImagingPlan:
    """Frames per plane, frame shape and per-plane sources of a session (step 2).

    Attributes
    ----------
    format : as in :class:`ImagingMeta`.
    files : every raw imaging file read.
    n_frames : frames per plane (volumes).
    shape : (rows, cols) of a frame, pixels.
    planes : {plane: source}; a source is a JSON-able mapping for :func:`iter_plane`.
    incomplete_frames : frames of an unfinished last volume that are not ingested
        (ScanImage and Scanbox acquisitions stopped mid-volume); 0 otherwise.
    """

    format: str
    files: tuple[Path, ...]
    n_frames: int
    shape: tuple[int, int]
    planes: Mapping[int, Mapping[str, Any]]
    incomplete_frames: int = 0

    def to_record(self) -> dict[str, Any]:
        """JSON-able form (plane keys as strings), as the ingest record stores it."""
        return {
            "format": self.format,
            "files": [str(f) for f in self.files],
            "n_frames": self.n_frames,
            "shape": list(self.shape),
            "planes": {str(p): dict(source) for p, source in self.planes.items()},
            "incomplete_frames": self.incomplete_frames,
        }


def natural_key(path: Path) -> list:
    """Sort key putting ``file_2.tif`` before ``file_10.tif``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _glob(folder: Path, patterns: Sequence[str]) -> list[Path]:
    return sorted({p for pattern in patterns for p in folder.glob(pattern)}, key=natural_key)


def find_imaging(folder: str | Path) -> tuple[str, list[Path]]:
    """The imaging format of a session folder and its files, from file names only.

    Returns ``(kind, files)`` with kind 'tiff' (plain or ScanImage, told apart by
    :func:`read_imaging_meta`), 'sbx' (files: the .sbx and its info .mat), 'hdf5' or 'nwb'.

    Raises
    ------
    IngestError
        No imaging files, files of several formats, or several .sbx / HDF5 / NWB files.
    """
    folder = Path(folder)
    found = {
        "tiff": _glob(folder, TIFF_GLOBS),
        "sbx": _glob(folder, ("*.sbx",)),
        "hdf5": _glob(folder, HDF5_GLOBS),
        "nwb": _glob(folder, ("*.nwb",)),
    }
    present = {kind: files for kind, files in found.items() if files}
    if not present:
        raise IngestError(
            f"{folder}: no imaging files; expected plane<k>.tif per plane, interleaved or "
            "ScanImage TIFF stacks (*.tif), a Scanbox .sbx with its .mat, one HDF5 (*.h5) "
            "or one NWB (*.nwb) file (README, 'Imaging formats')."
        )
    if len(present) > 1:
        names = sorted(p.name for files in present.values() for p in files)
        raise IngestError(
            f"{folder}: imaging files of several formats {names}; a session folder holds one "
            "recording in one format. Move the other files out of the session folder."
        )
    kind, files = next(iter(present.items()))
    if kind != "tiff" and len(files) > 1:
        raise IngestError(
            f"{folder}: several {kind} files {[p.name for p in files]}; a session has one. "
            "Move the files of other recordings out of the session folder."
        )
    if kind == "sbx":
        files = [files[0], files[0].with_suffix(".mat")]
    return kind, files


def read_imaging_meta(folder: str | Path, *, settings: IngestSettings) -> ImagingMeta:
    """Step 1: the session's imaging format, files and metadata (no frame is read).

    Parameters
    ----------
    folder : session folder.
    settings : ingest settings (``functional_channel``, ``hdf5_dataset``, ``nwb_series``).
    """
    folder = Path(folder)
    kind, files = find_imaging(folder)
    if kind == "tiff":
        if any(re.fullmatch(r"plane\d+\.tiff?", p.name) for p in files):
            return ImagingMeta("tiff", folder, tuple(files))
        frame_data = io.tiff_scanimage_metadata(files[0])
        if frame_data is None:
            return ImagingMeta("tiff", folder, tuple(files))
        return _scanimage_meta(folder, files, frame_data, settings=settings)
    if kind == "sbx":
        return _sbx_meta(folder, files, settings=settings)
    if kind == "hdf5":
        return _hdf5_meta(folder, files[0], settings=settings)
    return _nwb_meta(folder, files[0], settings=settings)


def plan_imaging(meta: ImagingMeta, *, n_planes: int) -> ImagingPlan:
    """Step 2: frames per plane, frame shape and per-plane sources, from file headers.

    Parameters
    ----------
    meta : from :func:`read_imaging_meta`.
    n_planes : the session's plane count (session.yaml, or ``meta.n_planes``).

    Raises
    ------
    IngestError
        Planes with different frame counts or shapes, a stack that does not divide into
        volumes, no complete volume.
    analysis.io.RawInputError
        A file is unreadable, corrupt or truncated.
    """
    planners = {
        "tiff": _plan_tiff,
        "scanimage": _plan_scanimage,
        "sbx": _plan_sbx,
        "hdf5": _plan_hdf5,
        "nwb": _plan_nwb,
    }
    return planners[meta.format](meta, n_planes)


def iter_plane(source: Mapping[str, Any], *, batch_frames: int) -> Iterator[np.ndarray]:
    """Step 3: yield one plane's frames as batches ``(frames, row, col)`` in time order.

    ``source`` is ``ImagingPlan.planes[plane]`` (or its JSON form). Raises RawInputError
    naming the file when a read fails.
    """
    readers = {
        "tiff": _iter_tiff,
        "sbx": _iter_sbx,
        "hdf5": _iter_hdf5,
        "nwb": _iter_nwb,
    }
    return readers[source["reader"]](source, batch_frames)


def _interleaved_sources(
    base: Mapping[str, Any], *, n_planes: int, n_frames: int, period: int, offsets: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Per-plane sources of a stream where plane p's frame t is item offsets[p] + t*period."""
    return {
        plane: {**base, "period": period, "offset": int(offsets[plane]), "n_frames": n_frames}
        for plane in range(n_planes)
    }


# --- plain TIFF ----------------------------------------------------------------------------


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
    pages, shape = _tiff_pages(files, folder=meta.folder)
    n_frames = check_interleaved_count(sum(pages), n_planes=n_planes, source=str(meta.folder))
    base = {"reader": "tiff", "files": [str(f) for f in files], "pages": pages}
    planes = _interleaved_sources(
        base, n_planes=n_planes, n_frames=n_frames, period=n_planes, offsets=range(n_planes)
    )
    return ImagingPlan("tiff", files, n_frames, shape, planes)


def _tiff_pages(files: Sequence[Path], *, folder: Path) -> tuple[list[int], tuple[int, int]]:
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


def _iter_tiff(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    wanted = source["offset"] + source["period"] * np.arange(source["n_frames"], dtype=np.int64)
    bounds = np.cumsum([0, *source["pages"]])
    for index, path in enumerate(source["files"]):
        inside = (wanted >= bounds[index]) & (wanted < bounds[index + 1])
        if inside.any():
            local = wanted[inside] - bounds[index]
            yield from io.iter_tiff_frames(path, batch_frames=batch_frames, pages=local)


# --- ScanImage TIFF ------------------------------------------------------------------------

SI_VOLUME_RATE = "SI.hRoiManager.scanVolumeRate"
SI_FRAME_RATE = "SI.hRoiManager.scanFrameRate"
SI_CHANNELS = "SI.hChannels.channelSave"


def _si_value(frame_data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = frame_data.get(key, default)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def scanimage_layout(
    frame_data: Mapping[str, Any], *, path: Path, settings: IngestSettings
) -> dict[str, Any]:
    """How a ScanImage file interleaves planes, channels and flyback frames.

    ScanImage logs, per volume, for each slice each saved channel (channel fastest),
    then the flyback frames of fast-z stacks (as many per channel). Read from
    ``SI.hChannels.channelSave``, ``SI.hStackManager.actualNumSlices`` (or ``numSlices``
    when the stack or fast z is enabled), ``SI.hStackManager.framesPerSlice``, the
    flyback count (``numFramesPerVolumeWithFlyback - numFramesPerVolume``, or
    ``SI.hFastZ.numDiscardFlybackFrames``), the volume rate
    (``SI.hRoiManager.scanVolumeRate``, else ``scanFrameRate`` / frames per volume) and
    ``SI.hScan2D.logAverageFactor``.

    Returns
    -------
    dict with ``n_planes``, ``fs_hz`` (None when no rate is recorded), ``fs_key``,
    ``planes_key``, ``channels`` (saved channel numbers), ``channel`` (the one read),
    ``pages_per_volume``, ``imaged_pages`` (pages before the flyback frames) and
    ``offsets`` (page of plane p within a volume).
    """
    if _si_value(frame_data, "SI.hRoiManager.mroiEnable", False):
        raise IngestError(
            f"{path}: SI.hRoiManager.mroiEnable is true; multi-ROI ScanImage files (several "
            "scan fields per page) are not read. Export one field of view per plane as "
            "plane<k>.tif (README, 'The plain session format')."
        )
    channels = [int(c) for c in np.ravel(frame_data.get(SI_CHANNELS, 1))]
    if settings.functional_channel == 0:
        channel = channels[0]
    elif settings.functional_channel in channels:
        channel = settings.functional_channel
    else:
        raise IngestError(
            f"{path}: ingest.functional_channel is {settings.functional_channel} but this "
            f"recording saved channels {channels} ({SI_CHANNELS}); set "
            "ingest.functional_channel in config/config.yaml to one of them (0: the first)."
        )
    if "SI.hStackManager.actualNumSlices" in frame_data:
        planes_key = "SI.hStackManager.actualNumSlices"
        n_slices = int(_si_value(frame_data, planes_key))
    else:
        planes_key = "SI.hStackManager.numSlices"
        enabled = _si_value(
            frame_data, "SI.hStackManager.enable", _si_value(frame_data, "SI.hFastZ.enable", True)
        )
        n_slices = int(_si_value(frame_data, planes_key, 1)) if enabled else 1
    flyback = 0
    if n_slices > 1:
        per_slice = _si_value(frame_data, "SI.hStackManager.framesPerSlice", 1)
        if per_slice != 1:
            raise IngestError(
                f"{path}: SI.hStackManager.framesPerSlice is {per_slice} in a {n_slices}-slice "
                "recording; only one frame per slice and volume (fast z) is read. Average "
                "or pick the frames per slice and save them as plane<k>.tif."
            )
        with_flyback = _si_value(frame_data, "SI.hStackManager.numFramesPerVolumeWithFlyback")
        without = _si_value(frame_data, "SI.hStackManager.numFramesPerVolume")
        if with_flyback is not None and without is not None:
            flyback = int(with_flyback) - int(without)
        elif _si_value(frame_data, "SI.hFastZ.discardFlybackFrames", True):
            flyback = int(_si_value(frame_data, "SI.hFastZ.numDiscardFlybackFrames", 0))
    average = float(_si_value(frame_data, "SI.hScan2D.logAverageFactor", 1) or 1)
    fs_hz, fs_key = None, None
    if _si_value(frame_data, SI_VOLUME_RATE) is not None:
        fs_hz, fs_key = float(_si_value(frame_data, SI_VOLUME_RATE)) / average, SI_VOLUME_RATE
    elif _si_value(frame_data, SI_FRAME_RATE) is not None:
        fs_hz = float(_si_value(frame_data, SI_FRAME_RATE)) / (n_slices + flyback) / average
        fs_key = SI_FRAME_RATE
    n_channels = len(channels)
    return {
        "n_planes": n_slices,
        "fs_hz": fs_hz,
        "fs_key": fs_key,
        "planes_key": planes_key,
        "channels": channels,
        "channel": channel,
        "pages_per_volume": (n_slices + flyback) * n_channels,
        "imaged_pages": n_slices * n_channels,
        "offsets": [p * n_channels + channels.index(channel) for p in range(n_slices)],
    }


def _scanimage_meta(
    folder: Path, files: Sequence[Path], frame_data: Mapping[str, Any], *, settings: IngestSettings
) -> ImagingMeta:
    first = scanimage_layout(frame_data, path=files[0], settings=settings)
    for path in files[1:]:
        other_data = io.tiff_scanimage_metadata(path)
        if other_data is None:
            raise IngestError(
                f"{path}: not a ScanImage TIFF but {files[0].name} is; the TIFF files of a "
                "session are one recording. Move the other files out of the session folder."
            )
        other = scanimage_layout(other_data, path=path, settings=settings)
        differ = [key for key in first if first[key] != other[key]]
        if differ:
            key = differ[0]
            raise IngestError(
                f"{path}: ScanImage settings differ from {files[0].name} ({key}: {other[key]} "
                f"vs {first[key]}); the files of a session must be one recording. Move the "
                "files of other recordings out of the session folder."
            )
    origin = {"n_planes": f"{files[0]} ({first['planes_key']})"}
    if first["fs_hz"] is not None:
        origin["fs_hz"] = f"{files[0]} ({first['fs_key']})"
    return ImagingMeta(
        "scanimage",
        folder,
        tuple(files),
        fs_hz=first["fs_hz"],
        n_planes=first["n_planes"],
        origin=origin,
        details={k: first[k] for k in ("pages_per_volume", "imaged_pages", "offsets", "channel")},
    )


def _plan_scanimage(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    pages, shape = _tiff_pages(meta.files, folder=meta.folder)
    period = meta.details["pages_per_volume"]
    offsets = meta.details["offsets"]
    n_frames, incomplete = _complete_volumes(
        sum(pages), period=period, imaged=meta.details["imaged_pages"]
    )
    if n_frames == 0:
        raise IngestError(
            f"{meta.folder}: the ScanImage files hold {sum(pages)} frames, less than one "
            f"volume ({period} frames: planes x channels + flyback); nothing to ingest."
        )
    if incomplete:
        log.warning(
            "%s: %d frames of an unfinished last volume are not ingested", meta.folder, incomplete
        )
    base = {"reader": "tiff", "files": [str(f) for f in meta.files], "pages": pages}
    planes = _interleaved_sources(
        base, n_planes=n_planes, n_frames=n_frames, period=period, offsets=offsets
    )
    return ImagingPlan("scanimage", meta.files, n_frames, shape, planes, incomplete)


def _complete_volumes(total: int, *, period: int, imaged: int) -> tuple[int, int]:
    """(volumes whose ``imaged`` first pages are all present, pages of an unfinished one).

    A last volume missing only flyback frames counts as complete.
    """
    n_volumes = (total - imaged) // period + 1 if total >= imaged else 0
    return n_volumes, max(total - n_volumes * period, 0)


# --- Scanbox -------------------------------------------------------------------------------


def _sbx_info(path: Path) -> dict[str, Any]:
    """sbxreader's metadata of a .sbx (from its info .mat), with integer sizes."""
    import sbxreader

    info_path = path.with_suffix(".mat")
    if not info_path.exists():
        raise io.RawInputError(
            f"{info_path}: file not found; Scanbox saves the recording's info file beside "
            f"{path.name} with the same name. Copy it from the acquisition machine."
        )
    with io._raw_read_errors(info_path, "a MATLAB .mat file", corrupt_format="Scanbox info .mat"):
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
    with io._raw_read_errors(path, "a Scanbox .sbx file", corrupt_format="Scanbox .sbx file"):
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


# --- HDF5 ----------------------------------------------------------------------------------


def _hdf5_stacks(path: Path) -> dict[str, tuple[tuple[int, ...], Mapping[str, Any]]]:
    """{dataset name: (shape, attrs)} of every numeric 3-D dataset in an HDF5 file."""
    import h5py

    stacks = {}

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset) and node.ndim == 3 and node.dtype.kind in "uif":
            stacks["/" + name] = (node.shape, dict(node.attrs))

    with io._raw_read_errors(path, "an HDF5 file", corrupt_format="HDF5 file"):
        with h5py.File(path, "r") as handle:
            handle.visititems(visit)
    return stacks


def _attr_number(attrs: Mapping[str, Any], key: str) -> float | None:
    if key not in attrs:
        return None
    value = np.asarray(attrs[key])
    return float(value.ravel()[0]) if value.size == 1 and value.dtype.kind in "uif" else None


def _hdf5_meta(folder: Path, path: Path, *, settings: IngestSettings) -> ImagingMeta:
    stacks = _hdf5_stacks(path)
    if settings.hdf5_dataset:
        name = "/" + settings.hdf5_dataset.lstrip("/")
        if name not in stacks:
            raise IngestError(
                f"{path}: no 3-D (time, row, col) dataset '{name}' (ingest.hdf5_dataset); the "
                f"file has {sorted(stacks) or 'none'}. Fix ingest.hdf5_dataset in "
                "config/config.yaml."
            )
    elif len(stacks) == 1:
        name = next(iter(stacks))
    else:
        raise IngestError(
            f"{path}: {len(stacks)} 3-D datasets {sorted(stacks)}; the movie must be the only "
            "one, or set ingest.hdf5_dataset in config/config.yaml to its path."
        )
    _, attrs = stacks[name]
    fs_hz, n_planes = _attr_number(attrs, "fs_hz"), _attr_number(attrs, "n_planes")
    origin = {
        key: f"{path} ({name} attribute '{key}')"
        for key, value in (("fs_hz", fs_hz), ("n_planes", n_planes))
        if value is not None
    }
    return ImagingMeta(
        "hdf5",
        folder,
        (path,),
        fs_hz=fs_hz,
        n_planes=None if n_planes is None else int(n_planes),
        origin=origin,
        details={"dataset": name},
    )


def _plan_hdf5(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    path = meta.files[0]
    name = meta.details["dataset"]
    shape, _ = _hdf5_stacks(path)[name]
    n_frames = check_interleaved_count(shape[0], n_planes=n_planes, source=f"{path}:{name}")
    base = {"reader": "hdf5", "file": str(path), "dataset": name}
    planes = _interleaved_sources(
        base, n_planes=n_planes, n_frames=n_frames, period=n_planes, offsets=range(n_planes)
    )
    return ImagingPlan("hdf5", meta.files, n_frames, (int(shape[1]), int(shape[2])), planes)


def _iter_hdf5(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    import h5py

    path = Path(source["file"])
    period, offset = source["period"], source["offset"]
    with io._raw_read_errors(path, "an HDF5 file", corrupt_format="HDF5 file"):
        with h5py.File(path, "r") as handle:
            data = handle[source["dataset"]]
            for start in range(0, source["n_frames"], batch_frames):
                stop = min(start + batch_frames, source["n_frames"])
                yield data[offset + start * period : offset + stop * period : period]


# --- NWB -----------------------------------------------------------------------------------


def _nwb_series(path: Path, *, settings: IngestSettings) -> list[dict[str, Any]]:
    """Name, data shape and rate of the TwoPhotonSeries read, in plane order."""
    from pynwb import NWBHDF5IO
    from pynwb.ophys import TwoPhotonSeries

    available = {}
    with io._raw_read_errors(path, "an NWB file", corrupt_format="NWB file"):
        with NWBHDF5IO(str(path), "r") as nwb_io:
            for name, series in nwb_io.read().acquisition.items():
                if not isinstance(series, TwoPhotonSeries):
                    continue
                rate, rate_field = _nwb_rate(series)
                shape = tuple(int(n) for n in series.data.shape)
                available[name] = {
                    "name": name,
                    "shape": shape,
                    "rate": rate,
                    "rate_field": rate_field,
                }
    names = list(settings.nwb_series) or sorted(available)
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise IngestError(
            f"{path}: no TwoPhotonSeries{f' {missing}' if missing else ''} in acquisition "
            "(ingest.nwb_series); "
            f"the file has {sorted(available) or 'none'}. Set ingest.nwb_series in "
            "config/config.yaml to the raw series, one per plane."
        )
    for name in names:
        shape = available[name]["shape"]
        if len(shape) not in (3, 4) or shape[0] == 0:
            raise IngestError(
                f"{path}: TwoPhotonSeries '{name}' data has shape {shape}; expected (frame, x, "
                "y) or (frame, x, y, z) frames stored in the file (frames in external files "
                "are not read: point the session at those files instead)."
            )
    return [available[name] for name in names]


def _nwb_rate(series: Any) -> tuple[float | None, str | None]:
    """A TimeSeries' sampling rate (Hz) and the field it came from ('rate' or
    'timestamps', their median interval); (None, None) when it records neither."""
    if series.rate is not None:
        return float(series.rate), "rate"
    if series.timestamps is not None and len(series.timestamps) > 1:
        return 1.0 / float(np.median(np.diff(series.timestamps[:]))), "timestamps"
    return None, None


def _nwb_times(series: Any) -> np.ndarray:
    """Sample times (s) of a TimeSeries: its timestamps, else starting_time + k / rate."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    start = 0.0 if series.starting_time is None else float(series.starting_time)
    return start + np.arange(len(series.data)) / float(series.rate)


def read_nwb_bci_log(path: str | Path, *, imaging_series: str) -> dict[str, Any]:
    """The BCI log objects of an NWB file as arrays, for
    :func:`analysis.ingest.convert_nwb_bci_log` (which names what is missing).

    Parameters
    ----------
    path : the NWB file.
    imaging_series : the TwoPhotonSeries (in acquisition) whose volumes the log counts.

    Returns
    -------
    dict with ``imaging_series`` (its name), ``volume_times`` (s, one per volume) and
    ``volume_period`` (s); ``trials`` (DataFrame ``id, start_time, stop_time``, None
    without a trials table); ``series`` ({name: {"where", "times", "data"}} for each BCI
    TimeSeries found in ``processing/behavior/BCI``, else in ``acquisition``); and
    ``parameters`` ({parameter: value} of ``processing/behavior/BCITaskParameters``, None
    without that table).
    """
    from pynwb import NWBHDF5IO, TimeSeries

    path = Path(path)
    names = (*NWB_BCI_SERIES.values(), *NWB_BCI_OPTIONAL_SERIES.values(), NWB_SHIFT_SERIES)
    with io._raw_read_errors(path, "an NWB file", corrupt_format="NWB file"):
        with NWBHDF5IO(str(path), "r") as nwb_io:
            nwb = nwb_io.read()
            imaging = nwb.acquisition[imaging_series]
            volume_times = _nwb_times(imaging)
            rate, _ = _nwb_rate(imaging)
            behavior = nwb.processing.get("behavior")
            interfaces = {} if behavior is None else behavior.data_interfaces
            found = {}
            if NWB_BCI_CONTAINER in interfaces:
                container = interfaces[NWB_BCI_CONTAINER].time_series
                where = f"processing/behavior/{NWB_BCI_CONTAINER}"
                found = {n: (f"{where}/{n}", container[n]) for n in names if n in container}
            for name in names:
                if name not in found and isinstance(nwb.acquisition.get(name), TimeSeries):
                    found[name] = (f"acquisition/{name}", nwb.acquisition[name])
            series = {
                name: {
                    "where": where,
                    "times": _nwb_times(timeseries),
                    "data": np.asarray(timeseries.data[:], dtype=np.float64),
                }
                for name, (where, timeseries) in found.items()
            }
            trials = None
            if nwb.trials is not None:
                trials = pd.DataFrame(
                    {
                        "id": np.asarray(nwb.trials.id[:], dtype=np.int64),
                        "start_time": nwb.trials["start_time"].data[:],
                        "stop_time": nwb.trials["stop_time"].data[:],
                    }
                )
            parameters = None
            if NWB_BCI_PARAMETERS in interfaces:
                table = interfaces[NWB_BCI_PARAMETERS]
                if not {"parameter", "value"} <= set(table.colnames):
                    raise IngestError(
                        f"{path}: table processing/behavior/{NWB_BCI_PARAMETERS} has columns "
                        f"{list(table.colnames)}; it needs 'parameter' (name) and 'value', "
                        "one row per BCI task parameter (as analysis.export writes it)."
                    )
                parameters = dict(
                    zip(
                        (str(name) for name in table["parameter"].data[:]),
                        table["value"].data[:],
                        strict=True,
                    )
                )
    return {
        "imaging_series": imaging_series,
        "volume_times": volume_times,
        "volume_period": 1.0 / rate if rate else np.inf,
        "trials": trials,
        "series": series,
        "parameters": parameters,
    }


def _nwb_meta(folder: Path, path: Path, *, settings: IngestSettings) -> ImagingMeta:
    series = _nwb_series(path, settings=settings)
    volumetric = len(series[0]["shape"]) == 4
    if volumetric and len(series) > 1:
        raise IngestError(
            f"{path}: several TwoPhotonSeries {[s['name'] for s in series]} and "
            f"'{series[0]['name']}' is a (frame, x, y, z) volume; set ingest.nwb_series to "
            "the one volume series or to one 3-D series per plane."
        )
    rates = {s["name"]: s["rate"] for s in series}
    if any(r is None for r in rates.values()):
        fs_hz = None
    elif not np.allclose(list(rates.values()), series[0]["rate"], rtol=1e-3):
        raise IngestError(
            f"{path}: TwoPhotonSeries rates differ {rates} (Hz); the planes of a session are "
            "sampled once per volume. Set ingest.nwb_series to the series of one recording."
        )
    else:
        fs_hz = series[0]["rate"]
    n_planes = series[0]["shape"][3] if volumetric else len(series)
    names = [s["name"] for s in series]
    origin = {
        "n_planes": f"{path} (z of TwoPhotonSeries '{names[0]}')"
        if volumetric
        else f"{path} (TwoPhotonSeries {names})"
    }
    if fs_hz is not None:
        origin["fs_hz"] = f"{path} (TwoPhotonSeries '{names[0]}' {series[0]['rate_field']})"
    return ImagingMeta(
        "nwb",
        folder,
        (path,),
        fs_hz=fs_hz,
        n_planes=int(n_planes),
        origin=origin,
        details={"series": names, "shapes": [list(s["shape"]) for s in series]},
    )


def _plan_nwb(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    path = meta.files[0]
    names, shapes = meta.details["series"], meta.details["shapes"]
    if len(shapes[0]) == 4:
        planes = {
            plane: {"reader": "nwb", "file": str(path), "series": names[0], "z": plane}
            for plane in range(n_planes)
        }
        counts = dict.fromkeys(range(n_planes), shapes[0][0])
        frame_shapes = dict.fromkeys(range(n_planes), (shapes[0][2], shapes[0][1]))
    else:
        planes = {
            plane: {"reader": "nwb", "file": str(path), "series": name, "z": None}
            for plane, name in enumerate(names)
        }
        counts = {plane: shape[0] for plane, shape in enumerate(shapes)}
        frame_shapes = {plane: (shape[2], shape[1]) for plane, shape in enumerate(shapes)}
    n_frames, shape = check_plane_frames(counts, frame_shapes, source=str(path))
    planes = {p: {**source, "n_frames": n_frames} for p, source in planes.items()}
    return ImagingPlan("nwb", meta.files, n_frames, shape, planes)


def _iter_nwb(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    from pynwb import NWBHDF5IO

    path = Path(source["file"])
    with io._raw_read_errors(path, "an NWB file", corrupt_format="NWB file"):
        with NWBHDF5IO(str(path), "r") as nwb_io:
            data = nwb_io.read().acquisition[source["series"]].data
            for start in range(0, source["n_frames"], batch_frames):
                stop = min(start + batch_frames, source["n_frames"])
                frames = (
                    data[start:stop] if source["z"] is None else data[start:stop, ..., source["z"]]
                )
                # NWB stores (frame, x, y): x runs along a row (columns), y down (rows)
                yield np.asarray(frames).transpose(0, 2, 1)
