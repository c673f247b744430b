"""Scratch arrays: a 2-D array in a temporary file beside an output, deleted afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from analysis.io.movies import read_exactly, reserve_space, write_exactly
from analysis.io.results import output_write_errors


class DiskArray:
    """A C-order 2-D array in a file, through plain reads and writes (no memory map).

    Written in pieces ``array[rows, start:stop] = values`` (``rows`` an int, a slice or
    an index array) and read in row ranges ``array[start:stop]`` (one read). Like
    :class:`~analysis.io.MovieFile` it uses ``os.pread``/``os.pwrite`` rather than a
    memory map, whose touched pages would count towards the process's resident memory
    until it exits: only the piece being read or written is in memory.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int], dtype: Any) -> None:
        self._fd = -1
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 2
        self._fd = os.open(self.path, os.O_RDWR)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DiskArray({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise IndexError("DiskArray reads row ranges: array[start:stop]")
        start, stop, _ = rows.indices(self.shape[0])
        out = np.empty((max(stop - start, 0), self.shape[1]), self.dtype)
        read_exactly(
            self._fd,
            out,
            start * self.shape[1] * self.dtype.itemsize,
            truncated=f"{self.path}: scratch file ends early; it was truncated",
        )
        return out

    def __setitem__(self, index: tuple[Any, slice], values: Any) -> None:
        if not (isinstance(index, tuple) and len(index) == 2 and isinstance(index[1], slice)):
            raise IndexError("DiskArray takes array[rows, start:stop] = values")
        rows = np.arange(self.shape[0])[index[0]].reshape(-1)
        start, stop, step = index[1].indices(self.shape[1])
        if step != 1:
            raise IndexError("DiskArray writes contiguous column ranges")
        stop = max(start, stop)
        values = np.broadcast_to(np.asarray(values, self.dtype), (rows.size, stop - start))
        with output_write_errors(self.path):
            for row, piece in zip(rows, values, strict=True):
                offset = (int(row) * self.shape[1] + start) * self.dtype.itemsize
                write_exactly(self._fd, np.ascontiguousarray(piece), offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


@contextlib.contextmanager
def scratch_array(
    beside: str | os.PathLike, shape: tuple[int, int], dtype: Any = np.float32
) -> Iterator[DiskArray]:
    """A :class:`DiskArray` in a hidden temporary file beside the output ``beside``.

    The file (``.<name>.<random>.scratch``) is preallocated, so a full disk raises
    :class:`OutputWriteError` naming ``beside`` here rather than halfway through; it is
    deleted on exit, and scratch files of ``beside`` left by a killed process are
    deleted first.
    """
    beside = Path(beside)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with output_write_errors(beside):
        beside.parent.mkdir(parents=True, exist_ok=True)
        for stale in beside.parent.glob(f".{glob.escape(beside.name)}.*.scratch"):
            stale.unlink()
        fd, name = tempfile.mkstemp(prefix=f".{beside.name}.", suffix=".scratch", dir=beside.parent)
        path = Path(name)
        try:
            reserve_space(fd, size, path)
        finally:
            os.close(fd)
    array = DiskArray(path, shape, dtype)
    try:
        yield array
    finally:
        array.close()
        path.unlink(missing_ok=True)
