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

Each format is one module here (``tiff``, ``scanimage``, ``sbx``, ``hdf5``, ``nwb``) that
ends in an :class:`~analysis.readers.base.ImagingFormat`; :data:`FORMATS` lists them. A new
format is one module and one line in :data:`FORMATS`.

A file that cannot be read raises :class:`analysis.io.RawInputError` naming it; files
that disagree with the format or the settings raise :class:`analysis.ingest.IngestError`
(defined in :mod:`analysis.readers.base`) naming the file, the field and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.readers import hdf5, nwb, sbx, scanimage, tiff
from analysis.readers.base import (
    ImagingFormat,
    ImagingMeta,
    ImagingPlan,
    IngestError,
    IngestSettings,
    glob_files,
    natural_key,
)
from analysis.readers.nwb import read_nwb_bci_log
from analysis.readers.scanimage import scanimage_layout
from analysis.readers.tiff import plan_tiff_files

__all__ = [
    "FORMATS",
    "ImagingFormat",
    "ImagingMeta",
    "ImagingPlan",
    "find_imaging",
    "imaging_bci_log",
    "iter_plane",
    "natural_key",
    "plan_imaging",
    "plan_tiff_files",
    "read_imaging_meta",
    "read_nwb_bci_log",
    "scanimage_layout",
]

#: The registry: every imaging format, by name. Formats of one file kind are tried in
#: this order (ScanImage before plain TIFF).
FORMATS: dict[str, ImagingFormat] = {
    f.name: f for f in (scanimage.FORMAT, tiff.FORMAT, sbx.FORMAT, hdf5.FORMAT, nwb.FORMAT)
}


def _kinds() -> dict[str, ImagingFormat]:
    """The first registered format of each file kind (its globs, count and companions)."""
    kinds: dict[str, ImagingFormat] = {}
    for fmt in FORMATS.values():
        kinds.setdefault(fmt.kind, fmt)
    return kinds


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
    kinds = _kinds()
    found = {kind: glob_files(folder, fmt.globs) for kind, fmt in kinds.items()}
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
    if kinds[kind].single_file and len(files) > 1:
        raise IngestError(
            f"{folder}: several {kind} files {[p.name for p in files]}; a session has one. "
            "Move the files of other recordings out of the session folder."
        )
    return kind, kinds[kind].companions(files)


def read_imaging_meta(folder: str | Path, *, settings: IngestSettings) -> ImagingMeta:
    """Step 1: the session's imaging format, files and metadata (no frame is read).

    Parameters
    ----------
    folder : session folder.
    settings : ingest settings (``functional_channel``, ``hdf5_dataset``, ``nwb_series``).
    """
    folder = Path(folder)
    kind, files = find_imaging(folder)
    for fmt in FORMATS.values():
        if fmt.kind == kind and (meta := fmt.read_meta(folder, files, settings)) is not None:
            return meta
    raise IngestError(f"{folder}: no reader recognises {[p.name for p in files]}.")


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
    return FORMATS[meta.format].plan(meta, n_planes)


def iter_plane(source: Mapping[str, Any], *, batch_frames: int) -> Iterator[np.ndarray]:
    """Step 3: yield one plane's frames as batches ``(frames, row, col)`` in time order.

    ``source`` is ``ImagingPlan.planes[plane]`` (or its JSON form). Raises RawInputError
    naming the file when a read fails.
    """
    return FORMATS[source["reader"]].iter_frames(source, batch_frames)


def imaging_bci_log(folder: str | Path) -> Path | None:
    """The session's imaging file when its format may record the BCI log (NWB), else None.

    Raises IngestError as :func:`find_imaging` does when such a file is not the folder's
    one imaging file.
    """
    folder = Path(folder)
    kinds = [f for f in FORMATS.values() if f.records_bci_log]
    if any(next(folder.glob(g), None) for f in kinds for g in f.globs):
        _, files = find_imaging(folder)  # refuses several such files or other formats beside
        return files[0]
    return None
