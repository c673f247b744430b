"""Binary movies: a raw int16 (time, row, col) file with a JSON header, memory-mapped."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from analysis.dims import MOVIE_DIMS
from analysis.io.results import output_write_errors, read_json, write_json


def read_exactly(fd: int, out: np.ndarray, offset: int, *, truncated: str) -> None:
    """Fill the contiguous array ``out`` from file descriptor ``fd`` at byte ``offset``;
    a file that ends first raises OSError with the message ``truncated``."""
    view = memoryview(out.reshape(-1)).cast("B")
    while len(view):
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise OSError(truncated)
        view, offset = view[n:], offset + n


def write_exactly(fd: int, data: Any, offset: int) -> None:
    """Write all of ``data`` (bytes or a C-contiguous array) to file descriptor ``fd`` at
    byte ``offset`` (``os.pwrite`` may write less than asked)."""
    view = memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def reserve_space(fd: int, size: int, path: Path) -> None:
    """Reserve ``size`` bytes of the new file ``path`` now, so a full disk fails here
    rather than halfway; the file is removed when they cannot be reserved."""
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError:
        path.unlink()
        raise


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
        read_exactly(
            self._fd,
            frames,
            self.offset + start * self._frame_bytes,
            truncated=f"{self.path}: file ends before frame {stop}; it is truncated",
        )
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
        with output_write_errors(self.path):
            write_exactly(
                self._fd, np.ascontiguousarray(data), self.offset + start * self._frame_bytes
            )

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
            reserve_space(file.fileno(), size, path)
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
