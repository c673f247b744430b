"""ScanImage TIFFs ``file_00001.tif``, ... (one recording, in name order; planes and
channels interleaved, flyback frames skipped), told from plain TIFF by their metadata.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
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
    complete_volumes,
    interleaved_sources,
)
from analysis.readers.tiff import TIFF_GLOBS, iter_tiff, tiff_pages

log = logging.getLogger(__name__)


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
    pages, shape = tiff_pages(meta.files, folder=meta.folder)
    period = meta.details["pages_per_volume"]
    offsets = meta.details["offsets"]
    n_frames, incomplete = complete_volumes(
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
    planes = interleaved_sources(
        base, n_planes=n_planes, n_frames=n_frames, period=period, offsets=offsets
    )
    return ImagingPlan("scanimage", meta.files, n_frames, shape, planes, incomplete)


def _read_meta(folder: Path, files: list[Path], settings: IngestSettings) -> ImagingMeta | None:
    """ScanImage metadata, or None for plain TIFF (``plane<k>.tif`` or no ScanImage tags)."""
    if any(re.fullmatch(r"plane\d+\.tiff?", p.name) for p in files):
        return None
    frame_data = io.tiff_scanimage_metadata(files[0])
    if frame_data is None:
        return None
    return _scanimage_meta(folder, files, frame_data, settings=settings)


FORMAT = ImagingFormat(
    "scanimage", "tiff", TIFF_GLOBS, _read_meta, _plan_scanimage, iter_tiff, single_file=False
)
