"""What every imaging reader shares: the ingest settings and error, the three steps'
records, the format record of the registry, and small helpers.

The ingest stage's settings and error live here, below both :mod:`analysis.readers` and
:mod:`analysis.ingest` (which re-exports them), so that no reader imports ingest.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.settings import StageSettings, require

INT16_MAX = np.iinfo(np.int16).max


class IngestError(ValueError):
    """A raw session cannot be ingested; the message names the file, field and fix."""

    __module__ = "analysis.ingest"  # its public home, as tracebacks and logs name it


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
    functional_channel : channel read from multi-channel ScanImage or Scanbox files:
        0 = the first saved channel; k >= 1 = ScanImage channel k (one of
        ``SI.hChannels.channelSave``) or the k-th Scanbox channel.
    hdf5_dataset : path of the (time, row, col) movie in an HDF5 session file; empty =
        the file's only 3-D dataset.
    nwb_series : names of the NWB TwoPhotonSeries to read, one per plane in plane order
        (or one (frame, x, y, z) series); empty = every TwoPhotonSeries in acquisition,
        sorted by name.
    """

    section = "ingest"
    batch_frames: int = 256
    saturation_value: int = 32767
    max_saturated_fraction: float = 0.01
    functional_channel: int = 0
    hdf5_dataset: str = ""
    nwb_series: tuple[str, ...] = ()

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
        require(
            self.functional_channel >= 0,
            "ingest.functional_channel must be >= 0 (0: the first saved channel)",
        )


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


@dataclasses.dataclass(frozen=True)
class ImagingFormat:
    """One imaging format in the registry (:data:`analysis.readers.FORMATS`).

    Attributes
    ----------
    name : the format's name in ``ImagingMeta.format`` and ``ImagingPlan.format``, and a
        source's ``reader`` when its frames are read by this format.
    kind : the kind of file it reads, as :func:`analysis.readers.find_imaging` names it
        ('tiff', 'sbx', 'hdf5', 'nwb'); formats of one kind (plain and ScanImage TIFF)
        are told apart by ``read_meta``, in registry order.
    globs : file-name patterns of that kind.
    read_meta : step 1, ``(folder, files, settings) -> ImagingMeta``, or None when the
        files are not this format.
    plan : step 2, ``(meta, n_planes) -> ImagingPlan``.
    iter_frames : step 3, ``(source, batch_frames) -> batches (frames, row, col)``.
    single_file : a session holds one file of this kind.
    companions : ``files -> files`` with the ones read beside them (Scanbox's info .mat).
    records_bci_log : the file may also hold the session's BCI log (NWB).
    """

    name: str
    kind: str
    globs: tuple[str, ...]
    read_meta: Callable[[Path, list[Path], IngestSettings], ImagingMeta | None]
    plan: Callable[[ImagingMeta, int], ImagingPlan]
    iter_frames: Callable[[Mapping[str, Any], int], Iterator[np.ndarray]]
    single_file: bool = True
    companions: Callable[[list[Path]], list[Path]] = list
    records_bci_log: bool = False


def natural_key(path: Path) -> list:
    """Sort key putting ``file_2.tif`` before ``file_10.tif``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def glob_files(folder: Path, patterns: Sequence[str]) -> list[Path]:
    """Files of ``folder`` matching any of ``patterns``, in natural name order."""
    return sorted({p for pattern in patterns for p in folder.glob(pattern)}, key=natural_key)


def interleaved_sources(
    base: Mapping[str, Any], *, n_planes: int, n_frames: int, period: int, offsets: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Per-plane sources of a stream where plane p's frame t is item offsets[p] + t*period."""
    return {
        plane: {**base, "period": period, "offset": int(offsets[plane]), "n_frames": n_frames}
        for plane in range(n_planes)
    }


def complete_volumes(total: int, *, period: int, imaged: int) -> tuple[int, int]:
    """(volumes whose ``imaged`` first pages are all present, pages of an unfinished one).

    A last volume missing only flyback frames counts as complete.
    """
    n_volumes = (total - imaged) // period + 1 if total >= imaged else 0
    return n_volumes, max(total - n_volumes * period, 0)
