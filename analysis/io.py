"""All reading and writing of pipeline artifacts.

Contracts between stages are self-describing files (DESIGN.md section 3): NetCDF via
xarray (h5netcdf engine) with named dims and provenance attrs, tidy TSV tables, and
registered movies as raw binary with a JSON header. Every write goes to a temporary
file first and is renamed into place, so an interrupted run never leaves a partial file
under a finished name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis import __version__
from analysis.dims import MOVIE_DIMS


class OutputWriteError(OSError):
    """An output cannot be written: the disk is full or the folder is not writable."""


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_RESULTS_ADVICE = (
    "or set 'results' in config/config.yaml to a folder on another disk, then rerun the "
    "same command (finished outputs are kept)."
)


@contextlib.contextmanager
def output_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk or an unwritable folder into OutputWriteError naming ``path``."""
    path = Path(path)
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as err:
        if err.errno in _DISK_FULL:
            raise OutputWriteError(
                f"{path}: cannot write output, the disk is full ({err}); free space on that "
                f"disk {_RESULTS_ADVICE}"
            ) from err
        if err.errno in _NOT_WRITABLE:
            raise OutputWriteError(
                f"{path}: cannot write output, {path.parent} is not writable ({err}); make it "
                f"writable (chmod u+w) {_RESULTS_ADVICE}"
            ) from err
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A full disk or an unwritable folder raises :class:`OutputWriteError`; the temporary
    file is removed, so a failed write never leaves a file under the finished name.
    Temporary files of this output left by a killed process are removed first.
    """
    path = Path(path)
    with output_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
            stale.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        # mkstemp creates 0600; give the mode open() would, so collaborators can read results
        os.fchmod(fd, 0o666 & ~_current_umask())
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            os.replace(tmp_path, path)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def _current_umask() -> int:
    """The process umask; reading it means setting it, so it is put straight back."""
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def provenance(
    *, stage: str, settings: Any = None, inputs: Sequence[str | os.PathLike] = ()
) -> dict:
    """Attrs every artifact carries: package version, stage settings, input names."""
    if dataclasses.is_dataclass(settings):
        settings = dataclasses.asdict(settings)
    return {
        "analysis_version": __version__,
        "stage": stage,
        "settings": json.dumps(settings or {}, sort_keys=True, default=str),
        "inputs": json.dumps([str(p) for p in inputs]),
    }


def write_netcdf(
    data: xr.Dataset | xr.DataArray,
    path: str | os.PathLike,
    *,
    stage: str,
    settings: Any = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> None:
    """Write ``data`` as compressed NetCDF4 with provenance attrs, atomically."""
    ds = data.to_dataset(name=data.name or "data") if isinstance(data, xr.DataArray) else data
    ds = ds.copy()
    ds.attrs.update(provenance(stage=stage, settings=settings, inputs=inputs))
    ds.attrs = {k: _attr_value(v) for k, v in ds.attrs.items()}
    for var in ds.data_vars.values():
        var.attrs = {k: _attr_value(v) for k, v in var.attrs.items()}
    encoding = {
        name: {"compression": "gzip", "compression_opts": 4}
        for name, var in ds.data_vars.items()
        if var.ndim > 0 and var.dtype.kind in "fiub"
    }
    # Encoded in memory, then written as plain bytes: HDF5 cannot recover from a write
    # failing on a full disk (it crashes the process), a plain file write raises cleanly.
    encoded = ds.to_netcdf(engine="h5netcdf", encoding=encoding, invalid_netcdf=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded)


def _attr_value(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (dict, list, tuple)) and not _is_numeric_sequence(value):
        return json.dumps(value, sort_keys=True, default=str)
    if value is None:
        return ""
    return value


def _is_numeric_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value
    )


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a NetCDF artifact fully into memory (the file is closed on return)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def write_tsv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a tidy table as TSV (no index), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def read_tsv(path: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
    """Read a TSV table written by :func:`write_tsv` (an empty table reads back empty)."""
    try:
        return pd.read_csv(path, sep="\t", **kwargs)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def write_json(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write a JSON document atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a UTF-8 text document (e.g. an HTML page) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


# --- binary movies -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MovieHeader:
    """Header of a raw binary movie: C-order ``(time, row, col)`` array of ``dtype``."""

    n_frames: int
    n_rows: int
    n_cols: int
    dtype: str
    fs_hz: float
    dims: tuple[str, ...] = MOVIE_DIMS

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_frames, self.n_rows, self.n_cols)


def movie_header_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".json")


class MovieFile:
    """A binary movie ``(time, row, col)`` on disk, read and written in frame batches.

    Array-like (``shape``, ``dtype``, ``ndim``, ``len``) over plain file reads and writes
    (``os.preadv``/``os.pwrite``) rather than a memory map: frames a memmap has touched
    stay mapped and count towards the process's resident memory until it exits, so
    streaming a long movie through one would hold the whole file; here only the batch
    being read or written is in memory.

    Indexing reads frames: ``movie[t]``, ``movie[start:stop]`` (one read), a sequence of
    frame indices, each optionally followed by row/col indices applied to what was read;
    ``np.asarray(movie)`` reads every frame. Writable movies take whole frames:
    ``movie[start:stop] = frames`` (``movie[:] = frames`` for all of them).
    """

    def __init__(
        self, path: str | os.PathLike, header: MovieHeader, *, writable: bool, offset: int = 0
    ) -> None:
        self._fd = -1
        self.path = Path(path)
        self.header = header
        self.offset = offset  # bytes before the first frame
        self.shape = header.shape
        self.dtype = np.dtype(header.dtype)
        self.ndim = 3
        self.writable = writable
        self._frame_bytes = header.n_rows * header.n_cols * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDWR if writable else os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        mode = "r+" if self.writable else "r"
        return f"MovieFile({str(self.path)!r}, shape={self.shape}, dtype={self.dtype}, {mode})"

    def _read(self, start: int, stop: int) -> np.ndarray:
        frames = np.empty((max(stop - start, 0), *self.shape[1:]), self.dtype)
        view = memoryview(frames.reshape(-1)).cast("B")
        offset = self.offset + start * self._frame_bytes
        while len(view):
            n = os.preadv(self._fd, [view], offset)
            if n == 0:
                raise OSError(f"{self.path}: file ends before frame {stop}; it is truncated")
            view, offset = view[n:], offset + n
        return frames

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        time, rest = index[0], index[1:]
        n_frames = self.shape[0]
        if isinstance(time, slice) and time.step in (None, 1):
            start, stop, _ = time.indices(n_frames)
            frames = self._read(start, max(start, stop))
        elif isinstance(time, (int, np.integer)):
            t = int(time) + (n_frames if time < 0 else 0)
            if not 0 <= t < n_frames:
                raise IndexError(f"frame {time} out of range for {n_frames} frames")
            frames = self._read(t, t + 1)[0]
        else:
            order = np.arange(n_frames)[time]
            if len(order) > 1 and np.all(np.diff(order) == 1):
                frames = self._read(int(order[0]), int(order[-1]) + 1)
            else:
                frames = np.empty((len(order), *self.shape[1:]), self.dtype)
                for i, t in enumerate(order):
                    frames[i] = self._read(int(t), int(t) + 1)[0]
        return frames[(slice(None), *rest)] if rest and frames.ndim == 3 else frames[rest]

    def __setitem__(self, index: Any, frames: Any) -> None:
        if not self.writable:
            raise ValueError(f"{self.path}: movie is open read-only")
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise IndexError("MovieFile takes whole frames: movie[start:stop] = frames")
        start, stop, _ = index.indices(self.shape[0])
        stop = max(start, stop)
        data = np.broadcast_to(np.asarray(frames, self.dtype), (stop - start, *self.shape[1:]))
        view = memoryview(np.ascontiguousarray(data).reshape(-1)).cast("B")
        offset = self.offset + start * self._frame_bytes
        with output_write_errors(self.path):
            while len(view):
                n = os.pwrite(self._fd, view, offset)
                view, offset = view[n:], offset + n

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        frames = self._read(0, self.shape[0])
        return frames if dtype is None else frames.astype(dtype)

    def flush(self) -> None:
        """Nothing to do: every assignment is written to the file at once (np.memmap API)."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> MovieFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def create_movie(path: str | os.PathLike, header: MovieHeader) -> MovieFile:
    """Create a binary movie for writing (returns a writable :class:`MovieFile`).

    The header is written beside it (``<path>.json``). Callers write frames in chunks;
    Snakemake marks the output incomplete until the rule ends.
    """
    path = Path(path)
    with output_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        size = int(np.prod(header.shape)) * np.dtype(header.dtype).itemsize
        with open(path, "wb") as file:
            # Reserve the blocks now, so a full disk fails here rather than halfway.
            try:
                if size:
                    os.posix_fallocate(file.fileno(), 0, size)
            except OSError:
                path.unlink()
                raise
        mov = MovieFile(path, header, writable=True)
    write_json(dataclasses.asdict(header), movie_header_path(path))
    return mov


def open_movie(path: str | os.PathLike, *, mode: str = "r") -> tuple[MovieFile, MovieHeader]:
    """Open a binary movie (``mode`` "r" read-only, "r+" writable) plus its header.

    Returns a :class:`MovieFile` ``(time, row, col)``, read in batches by the stages.
    """
    if mode not in ("r", "r+"):
        raise ValueError(f"open_movie: mode must be 'r' or 'r+', got {mode!r}")
    meta = read_json(movie_header_path(path))
    header = MovieHeader(**{**meta, "dims": tuple(meta.get("dims", MOVIE_DIMS))})
    size = Path(path).stat().st_size
    expected = int(np.prod(header.shape)) * np.dtype(header.dtype).itemsize
    if size != expected:
        raise OSError(
            f"{path}: binary movie is {size} bytes but its header {movie_header_path(path)} "
            f"describes {header.shape} {header.dtype} ({expected} bytes); the file is "
            "truncated or stale: delete it and rerun the stage that writes it."
        )
    return MovieFile(path, header, writable=mode == "r+"), header


# --- raw session input (read-only) -----------------------------------------------------


class RawInputError(ValueError):
    """A raw input file is missing, unreadable or malformed; the message names file and fix."""


@contextlib.contextmanager
def _raw_read_errors(path: Path, what: str, *, corrupt_format: str | None = None) -> Iterator[None]:
    """Turn the ways a raw file can fail to read into RawInputError naming the file.

    With ``corrupt_format`` (binary readers such as tifffile, scipy.io and h5py, which
    raise many exception types on a damaged file) any other exception is reported as a
    corrupt or truncated file of that format.
    """
    try:
        yield
    except RawInputError:
        raise
    except FileNotFoundError:
        raise RawInputError(
            f"{path}: file not found; add it or fix the session's path in the sessions table "
            "(README, 'The plain session format', lists the files a session needs)."
        ) from None
    except PermissionError:
        raise RawInputError(
            f"{path}: no read permission (on the file or a folder above it); grant read "
            "access to the raw data, e.g. chmod -R a+rX on the raw folder."
        ) from None
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        json.JSONDecodeError,
    ) as err:
        raise RawInputError(f"{path}: not {what} ({err}).") from None
    except Exception as err:
        if corrupt_format is None:
            raise
        raise RawInputError(
            f"{path}: cannot read {corrupt_format} ({type(err).__name__}: {err}); the file is "
            "corrupt or truncated: copy it again from the acquisition machine."
        ) from None


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping, naming the file on any parse error."""
    import yaml

    path = Path(path)
    try:
        with _raw_read_errors(path, "valid YAML"):
            data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RawInputError(f"{path}: not valid YAML ({err}); fix the file's syntax.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RawInputError(f"{path}: expected a YAML mapping of keys to values.")
    return data


def read_raw_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a raw per-frame TSV (e.g. ``bci_frames.tsv``), naming the file on failure."""
    path = Path(path)
    with _raw_read_errors(path, "a readable tab-separated table"):
        return pd.read_csv(path, sep="\t")


def read_raw_json(path: str | os.PathLike) -> Any:
    """Read a raw JSON file (e.g. ``targets.json``), naming the file on failure."""
    path = Path(path)
    with _raw_read_errors(path, "valid JSON"):
        return json.loads(path.read_text())


def read_stimdata(path: str | os.PathLike, *, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Fields of the CLOOSE ``StimData`` struct in a MATLAB .mat file, in MATLAB's shapes.

    Reads v5/v6/v7 files (CLOOSE's Run_GUI saves with ``-v6``) with
    :func:`scipy.io.loadmat` and v7.3 files (HDF5) with h5py. Both give the same arrays:
    a 1 x n row vector is ``(1, n)``, a scalar ``(1, 1)``, a cell array an object array
    of such arrays.

    Parameters
    ----------
    path : the .mat file.
    fields : StimData fields to read; those the struct lacks are left out of the result
        (the caller decides which it needs).

    Raises
    ------
    RawInputError
        The file is missing, unreadable, not a .mat file, corrupt or truncated, or holds
        no ``StimData`` struct; the message names the file.
    """
    import h5py

    path = Path(path)
    with _raw_read_errors(path, "a MATLAB .mat file", corrupt_format="MATLAB .mat file"):
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as mat:
                return _stimdata_hdf5(mat, path, fields)
        return _stimdata_v5(path, fields)


def _no_stimdata(path: Path, found: Sequence[str]) -> RawInputError:
    return RawInputError(
        f"{path}: no struct 'StimData' (variables: {sorted(found)}); a CLOOSE BCI log "
        "(BCI_Trials/<n>.mat, saved by Run_GUI) holds it. Put the right file in the session "
        "folder or write bci_frames.tsv instead (README, 'BCI logs')."
    )


def _stimdata_v5(path: Path, fields: Sequence[str]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat, whosmat
    from scipy.io.matlab import mat_struct

    data = loadmat(path, variable_names=["StimData"], struct_as_record=False, squeeze_me=False)
    stim = data.get("StimData")
    if stim is None or stim.size != 1 or not isinstance(stim.flat[0], mat_struct):
        raise _no_stimdata(path, [name for name, _, _ in whosmat(path)])
    struct = stim.flat[0]
    return {
        name: np.asarray(getattr(struct, name)) for name in fields if name in struct._fieldnames
    }


def _stimdata_hdf5(mat: Any, path: Path, fields: Sequence[str]) -> dict[str, np.ndarray]:
    import h5py

    group = mat.get("StimData")
    if not isinstance(group, h5py.Group):
        raise _no_stimdata(path, [name for name in mat if name != "#refs#"])
    return {name: _hdf5_value(group[name], mat, path) for name in fields if name in group}


def _hdf5_value(node: Any, mat: Any, path: Path) -> np.ndarray:
    """A MATLAB v7.3 array as loadmat gives it: HDF5 stores MATLAB's dims reversed."""
    import h5py

    if not isinstance(node, h5py.Dataset):
        raise RawInputError(f"{path}: {node.name} is a struct, expected an array.")
    if node.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = node[()]
    matlab_class = node.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    if matlab_class == "cell":  # object references into /#refs#
        cells = np.empty(data.shape, dtype=object)
        for index, ref in np.ndenumerate(data):
            cells[index] = _hdf5_value(mat[ref], mat, path)
        return cells.T
    return np.asarray(data).T


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 22) -> str:
    """Checksum of a raw file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


# what tifffile logs (TiffPages._seek) when the chain of pages breaks off
_TIFF_CHAIN_ERRORS = (
    "corrupted tag list of page",
    "invalid offset to page",
    "invalid page offset",
    "invalid circular reference",
)


class _TiffChainErrors(logging.Handler):
    """Collects the page-chain errors tifffile logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(marker in message for marker in _TIFF_CHAIN_ERRORS):
            self.messages.append(message)


@contextlib.contextmanager
def _tiff_chain_errors(path: Path) -> Iterator[None]:
    """Raise RawInputError when tifffile logs a broken page chain while parsing pages.

    tifffile stops at an IFD cut short or pointing past the end of the file and only
    logs it, which would silently drop the frames after it.
    """
    handler = _TiffChainErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.messages:
        raise RawInputError(
            f"{path}: TIFF page chain is broken ({handler.messages[0][:160]}); the file is "
            "truncated or corrupt: copy it again from the acquisition machine."
        )


def _tiff_layout(tif: Any, path: Path) -> tuple[int, tuple[int, int], int | None]:
    """(frames, (rows, cols), contiguous data offset or None) of an open TIFF.

    ImageJ and tifffile-shaped files state their frame count in the description; fewer
    parsed pages than that means either one contiguous block (ImageJ > 4 GB style) or a
    file cut short, which is told apart by the file size. Other files (ScanImage, most
    rigs) have one IFD per frame: a page chain that breaks off, or a last frame whose
    pixels lie past the end of the file, means a truncated file.
    """
    with _tiff_chain_errors(path):
        pages = tif.pages
        n_pages = len(pages)
    if n_pages == 0:
        raise RawInputError(f"{path}: TIFF has no image pages; re-export the stack.")
    first = pages.first.shape
    if len(first) != 2:
        raise RawInputError(f"{path}: TIFF pages must be single 2-D frames, got shape {first}.")
    size = path.stat().st_size
    if tif.is_imagej or tif.is_shaped:
        series = tif.series[0]
        n_series = int(np.prod(series.shape[:-2])) if len(series.shape) > 2 else 1
        if n_series > n_pages:
            offset = series.dataoffset
            if offset is None or offset + series.nbytes > size:
                raise RawInputError(
                    f"{path}: TIFF describes {n_series} frames but only {n_pages} are "
                    "readable; the file is truncated: copy it again from the acquisition "
                    "machine."
                )
            return n_series, (int(first[0]), int(first[1])), int(offset)
    with _tiff_chain_errors(path):
        last = pages[n_pages - 1]  # parses the page chain to the end
    if tuple(last.shape) != tuple(first):
        raise RawInputError(
            f"{path}: TIFF pages must all have one shape; first page {first}, last {last.shape}."
        )
    data_end = max(
        (o + n for o, n in zip(last.dataoffsets, last.databytecounts, strict=True)), default=0
    )
    if data_end > size:
        raise RawInputError(
            f"{path}: the last of {n_pages} TIFF frames ends at byte {data_end} but the file "
            f"has {size} bytes; the file is truncated: copy it again from the acquisition "
            "machine."
        )
    return n_pages, (int(first[0]), int(first[1])), None


def tiff_page_shapes(path: str | os.PathLike) -> tuple[int, tuple[int, int]]:
    """Number of frames in a TIFF and their (row, col) shape.

    Raises RawInputError naming the file when it is unreadable, truncated, or its
    pages disagree in shape.
    """
    import tifffile

    path = Path(path)
    with _raw_read_errors(path, "a TIFF", corrupt_format="TIFF"):
        with tifffile.TiffFile(path) as tif:
            n_frames, shape, _ = _tiff_layout(tif, path)
    return n_frames, shape


def tiff_scanimage_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """ScanImage's non-varying frame data (``{"SI.hRoiManager.scanVolumeRate": ...}``).

    Read from the ScanImage 2016+ BigTIFF header (magic 117637889 at byte 16) or, in
    files without it, from the first page's Software tag. None for a TIFF that ScanImage
    did not write. Values are parsed as MATLAB literals (``[1;2]`` -> ``[[1], [2]]``).
    """
    import tifffile

    path = Path(path)
    with _raw_read_errors(path, "a TIFF", corrupt_format="TIFF"):
        with tifffile.TiffFile(path) as tif:
            if not tif.is_scanimage:
                return None
            frame_data = (tif.scanimage_metadata or {}).get("FrameData")
            if not frame_data:
                frame_data = tifffile.matlabstr2py(tif.pages.first.software)
    if not isinstance(frame_data, dict):
        raise RawInputError(
            f"{path}: ScanImage metadata is not a list of 'SI.<key> = <value>' lines; the "
            "file is corrupt: copy it again from the acquisition machine."
        )
    return frame_data


def iter_tiff_frames(
    path: str | os.PathLike, *, batch_frames: int = 256, pages: Sequence[int] | None = None
) -> Iterator[np.ndarray]:
    """Yield consecutive batches ``(frames, row, col)`` of a TIFF, never the whole file.

    ``pages`` (increasing 0-based page indices) reads only those frames, e.g. one plane
    of an interleaved stack; default every page.
    """
    import tifffile

    path = Path(path)
    with _raw_read_errors(path, "a TIFF", corrupt_format="TIFF"):
        with tifffile.TiffFile(path) as tif:
            n_frames, shape, offset = _tiff_layout(tif, path)
            index = np.arange(n_frames) if pages is None else np.asarray(pages, dtype=np.int64)
            if offset is not None:
                # plain reads from the data offset: a memmap's pages would stay resident
                dtype = tif.series[0].dtype.newbyteorder(tif.byteorder)  # the file's order
                header = MovieHeader(n_frames, *shape, dtype=dtype.str, fs_hz=0.0)
                with MovieFile(path, header, writable=False, offset=offset) as frames:
                    for start in range(0, len(index), batch_frames):
                        yield frames[index[start : start + batch_frames]]
                return
            for start in range(0, len(index), batch_frames):
                key = index[start : start + batch_frames]
                yield tif.asarray(key=key.tolist()).reshape(len(key), *shape)


# --- figures -------------------------------------------------------------------------------


def save_figure(fig: Any, path_without_suffix: str | os.PathLike, *, dpi: int = 150) -> list[Path]:
    """Save a matplotlib figure as SVG and PNG (``<path>.svg``, ``<path>.png``), atomically.

    SVG metadata dates are stripped so reruns write identical files.
    """
    base = Path(path_without_suffix)
    written = []
    for suffix, kwargs in (
        (".svg", {"metadata": {"Date": None}}),
        (".png", {"dpi": dpi, "metadata": {"Software": None}}),
    ):
        target = base.with_name(base.name + suffix)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", **kwargs)
        written.append(target)
    return written
