"""One session inspected (record, checksums, BCI log, targets) and its planes written as
binary movies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.ingest.bci_log import check_bci_frames, check_bci_meta, find_bci_log
from analysis.ingest.cloose_log import STIMDATA_FIELDS, STIMDATA_OPTIONAL, convert_stimdata
from analysis.ingest.nwb_log import convert_nwb_bci_log
from analysis.ingest.session import read_session_meta
from analysis.ingest.targets import check_targets
from analysis.readers.base import (
    INT16_MAX,
    IngestError,
    IngestSettings,
)


def inspect_session(
    folder: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    settings: IngestSettings | None = None,
) -> dict:
    """Read and check every raw file of one session folder (what the ingest rule runs).

    Reads the imaging files' metadata and headers (never the pixels, see
    :mod:`analysis.readers`), the BCI log (``bci_frames.tsv``, a CLOOSE .mat converted by
    :func:`convert_stimdata`, or the NWB imaging file's trials and BCI series converted by
    :func:`convert_nwb_bci_log`), its metadata and the targets, and checks them against
    each other.

    Parameters
    ----------
    folder : session folder (see module docstring).
    overrides : session.yaml fields set in the sessions table; they win over the file.
    settings : ingest settings (which channel, HDF5 dataset or NWB series to read).

    Returns
    -------
    dict with ``meta`` (:class:`SessionMeta`), ``imaging``
    (:class:`analysis.readers.ImagingPlan`: format, files, per-plane sources),
    ``n_frames`` (volumes = frames per plane), ``shape`` ((rows, cols), pixels),
    ``bci_log`` (path (str) of the log read, see :func:`find_bci_log`), ``bci_frames``
    (checked table), ``bci_meta`` (dict) and ``targets`` (list of dict).

    Raises
    ------
    IngestError
        A file disagrees with the format or with another file; names file, field and fix.
    analysis.io.RawInputError
        A file is missing, unreadable, corrupt or truncated; names the file.
    """
    from analysis import io, readers

    folder = Path(folder)
    meta, imaging_meta = read_session_meta(folder, overrides=overrides, settings=settings)
    imaging = readers.plan_imaging(imaging_meta, n_planes=meta.n_planes)
    n_frames, shape = imaging.n_frames, imaging.shape
    bci_log = find_bci_log(folder)
    meta_path = folder / "bci_meta.yaml"
    if bci_log.suffix == ".tsv":
        bci_table, bci_meta = io.read_raw_table(bci_log), io.read_yaml(meta_path)
        bci_meta_source = meta_path
    else:
        given = io.read_yaml(meta_path) if meta_path.exists() else None
        if bci_log.suffix == ".nwb":
            record = readers.read_nwb_bci_log(
                bci_log, imaging_series=imaging.planes[meta.bci_plane]["series"]
            )
            convert = convert_nwb_bci_log
        else:
            record = io.read_stimdata(bci_log, fields=(*STIMDATA_FIELDS, *STIMDATA_OPTIONAL))
            convert = convert_stimdata
        bci_table, bci_meta = convert(record, meta=given, path=bci_log, meta_path=meta_path)
        bci_meta_source = bci_log
    return {
        "meta": meta,
        "imaging": imaging,
        "n_frames": n_frames,
        "shape": shape,
        "bci_log": str(bci_log),
        "bci_frames": check_bci_frames(bci_table, n_frames=n_frames, path=bci_log),
        "bci_meta": check_bci_meta(bci_meta, path=bci_meta_source),
        "targets": check_targets(
            io.read_raw_json(folder / "targets.json"),
            shape=shape,
            n_planes=meta.n_planes,
            path=folder / "targets.json",
        ),
    }


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
    batches: Iterable[np.ndarray],
    out: np.ndarray,
    *,
    settings: IngestSettings,
    source: str = "the raw files",
) -> dict[str, np.ndarray]:
    """Copy one plane's frames from raw frame batches into ``out``, converting to int16.

    Parameters
    ----------
    batches : iterable of arrays ``(frames, row, col)``
        The plane's frames in time order, e.g. :func:`analysis.readers.iter_plane`.
    out : writable array ``(time, row, col)`` int16
        Receives the plane's frames (e.g. a memmap from ``analysis.io.create_movie``).
    settings : IngestSettings
    source : str
        What the frames come from (file or folder), named in errors.

    Returns
    -------
    dict with per-frame ``dropped`` and ``saturated`` flags (see :func:`convert_frames`).

    Raises
    ------
    IngestError
        If the batches hold fewer or more frames than ``out`` has.
    """
    n_frames = len(out)
    dropped = np.zeros(n_frames, dtype=bool)
    saturated = np.zeros(n_frames, dtype=bool)
    written = 0
    for frames in batches:
        if written + len(frames) > n_frames:
            written += len(frames)
            break
        converted = convert_frames(frames, settings=settings)
        stop = written + len(frames)
        out[written:stop] = converted["frames"]
        dropped[written:stop] = converted["dropped"]
        saturated[written:stop] = converted["saturated"]
        written = stop
    if written != n_frames:
        raise IngestError(
            f"{source}: the plane yielded {'more than ' if written > n_frames else ''}"
            f"{written} frames, expected {n_frames}; the raw files changed since the ingest "
            "rule checked them: rerun from ingest."
        )
    return {"dropped": dropped, "saturated": saturated}
