"""NetCDF written block by block along one dimension: atomic, with bounded memory."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analysis.io.movies import write_exactly
from analysis.io.results import _attr_value, atomic_path, output_write_errors, provenance

# Compression of every data variable, as write_netcdf applies it.
_COMPRESSION = {"compression": "gzip", "compression_opts": 4}


class NetcdfWriter:
    """Write a NetCDF file one block of ``dim`` at a time (e.g. blocks of ROIs), atomically.

    ``layout`` holds the full coordinates and the dataset attrs, no data variable. Each
    :meth:`write` takes a Dataset of the data variables for the next slice of ``dim``
    (its ``dim`` coordinate must be that slice of the layout's); the first block defines
    the variables (names, dims, dtypes, attrs). Every data variable must have ``dim``;
    data and coordinates must be numeric (int, uint, float).

    The file reads back (:func:`read_netcdf`) as the Dataset that :func:`write_netcdf`
    writes from the blocks concatenated along ``dim`` with the layout's coordinates:
    same data, coordinates, dtypes and attrs (provenance included), data variables
    gzip-compressed (level 4), ``_FillValue`` NaN on floats, and the ``coordinates``
    attrs xarray writes. Only one block is in memory at a time.

    Atomic: the file is written to a temporary ``.part`` file beside ``path`` and renamed
    onto it when the ``with`` block ends after every slice was written; an exception (or
    a missing slice) removes it. HDF5 cannot recover from a failed write (a full disk
    crashes the process when the file is closed), so the file is written through
    :class:`_SpillFile`: the first failed write is kept and every later write stays in
    memory; :meth:`write` raises it (:class:`OutputWriteError` for a full disk, naming
    ``path``) at once, and HDF5 still closes its file normally.

    Examples
    --------
    >>> with NetcdfWriter(path, layout, dim="roi", stage="extract") as nc:  # doctest: +SKIP
    ...     for block in blocks:
    ...         nc.write(block)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        layout: xr.Dataset,
        *,
        dim: str,
        stage: str,
        settings: Any = None,
        inputs: Sequence[str | os.PathLike] = (),
    ) -> None:
        if layout.data_vars:
            raise ValueError(f"NetcdfWriter: layout must hold coordinates only, not "
                             f"{list(layout.data_vars)}")  # fmt: skip
        if dim not in layout.dims:
            raise ValueError(f"NetcdfWriter: layout has no dim {dim!r}")
        for name, coord in layout.coords.items():
            _check_numeric(name, coord)
        self.path = Path(path)
        self.layout = layout
        self.dim = dim
        attrs = {**layout.attrs, **provenance(stage=stage, settings=settings, inputs=inputs)}
        self._attrs = {k: _attr_value(v) for k, v in attrs.items()}
        self._written = 0
        self._created = False
        self._variables: dict[str, tuple[tuple, np.dtype]] = {}
        self._stack = contextlib.ExitStack()
        self._file: _SpillFile | None = None
        self._nc: Any = None

    def __enter__(self) -> NetcdfWriter:
        import h5netcdf

        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            stack.callback(self._raise_write_error)
            self._file = _SpillFile(tmp)
            stack.callback(self._file.close)
            self._nc = h5netcdf.File(self._file, "w", invalid_netcdf=True)
            stack.callback(self._nc.close)
            stack.push(self._check_complete)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: Any) -> bool:
        return self._stack.__exit__(*exc)

    def write(self, block: xr.Dataset) -> None:
        """Write the data variables of ``block``, the next slice of ``dim``."""
        if self._nc is None:
            raise RuntimeError("NetcdfWriter.write outside its `with` block")
        n = block.sizes.get(self.dim, 0)
        index = slice(self._written, self._written + n)
        expected = self.layout[self.dim].values[index]
        if not np.array_equal(block[self.dim].values, expected):
            raise ValueError(f"NetcdfWriter: block's {self.dim} {block[self.dim].values[:5]}"
                             f"... are not the next {n} of the layout's")  # fmt: skip
        if not self._created:
            self._create(block)
        if set(block.data_vars) != set(self._variables):
            raise ValueError(f"NetcdfWriter: block holds {sorted(block.data_vars)}, the "
                             f"first held {sorted(self._variables)}")  # fmt: skip
        with output_write_errors(self.path):
            for name, (dims, dtype) in self._variables.items():
                var = block[name].variable.transpose(*dims)
                key = tuple(index if d == self.dim else slice(None) for d in dims)
                self._nc.variables[name][key] = np.asarray(var.values, dtype=dtype)
                self._raise_write_error()
        self._written += n

    def _create(self, block: xr.Dataset) -> None:
        """Dims, then the data variables (from the first block), then the coordinates."""
        sizes = dict(self.layout.sizes)
        variables = {}
        for name, var in block.data_vars.items():
            if self.dim not in var.dims:
                raise ValueError(f"NetcdfWriter: data variable {name!r} lacks dim {self.dim!r}")
            _check_numeric(name, var)
            sizes.update({d: s for d, s in var.sizes.items() if d != self.dim})
            variables[name] = var.variable
        order = [*variables, *self.layout.variables]
        for d in dict.fromkeys(d for name in order for d in self._dims_of(name, variables)):
            self._nc.dimensions[d] = sizes[d]
        coords = _coordinate_attrs(variables, self.layout)
        for name, var in variables.items():
            attrs = {k: _attr_value(v) for k, v in var.attrs.items()}
            if coords.get(name):
                attrs["coordinates"] = coords[name]
            self._new_variable(name, var.dims, var.dtype, attrs, compress=True)
            self._variables[name] = (var.dims, var.dtype)
        for name, var in self.layout.variables.items():
            nc_var = self._new_variable(name, var.dims, var.dtype, dict(var.attrs), compress=False)
            nc_var[...] = var.values
        if coords.get(None):
            self._attrs["coordinates"] = coords[None]
        for key, value in self._attrs.items():
            self._nc.attrs[key] = value
        self._created = True

    def _dims_of(self, name: str, variables: dict[str, xr.Variable]) -> tuple:
        return variables[name].dims if name in variables else self.layout.variables[name].dims

    def _new_variable(
        self, name: str, dims: tuple, dtype: np.dtype, attrs: dict, *, compress: bool
    ) -> Any:
        fill = dtype.type(np.nan) if dtype.kind == "f" else None
        kwargs = _COMPRESSION if compress and dims else {}
        nc_var = self._nc.create_variable(name, dims, dtype, fillvalue=fill, **kwargs)
        for key, value in attrs.items():
            nc_var.attrs[key] = value
        return nc_var

    def _raise_write_error(self) -> None:
        if self._file is not None and self._file.error is not None:
            with output_write_errors(self.path):
                raise self._file.error

    def _check_complete(self, exc_type: Any, *_: Any) -> bool:
        size = self.layout.sizes[self.dim]
        if exc_type is None and (self._written != size or not self._created):
            raise ValueError(f"NetcdfWriter: {self.path}: only {self._written} of {size} "
                             f"{self.dim} were written; the file is discarded")  # fmt: skip
        return False


def _check_numeric(name: Any, var: xr.DataArray | xr.Variable) -> None:
    if var.dtype.kind not in "iuf":
        raise TypeError(f"NetcdfWriter: {name!r} is {var.dtype}; only int, uint and float "
                        "variables can be written block by block (use write_netcdf)")  # fmt: skip


def _coordinate_attrs(variables: dict[str, xr.Variable], layout: xr.Dataset) -> dict:
    """The ``coordinates`` attr of each data variable, as xarray writes it: the non-dim
    coordinates whose dims it has, sorted; key ``None``: those of no variable (global)."""
    non_dim = [name for name in layout.coords if name not in layout.dims]
    out: dict[Any, str] = {}
    used: set[str] = set()
    for name, var in variables.items():
        names = sorted(c for c in non_dim if set(layout[c].dims) <= set(var.dims))
        out[name] = " ".join(names)
        used.update(names)
    out[None] = " ".join(sorted(set(non_dim) - used))
    return out


class _SpillFile(io.RawIOBase):
    """A binary file for h5py on which a failed write never reaches HDF5.

    The first ``OSError`` of a write (a full disk) is kept in ``error``; that write and
    every later one go to memory pages instead of the file, and reads see them, so HDF5
    keeps a consistent view and closes its file normally. Callers stop writing once
    ``error`` is set, so memory holds only what HDF5 flushes after that.
    """

    PAGE = 1 << 16

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDWR | os.O_TRUNC)
        self._pos = 0
        self._size = 0
        self._pages: dict[int, bytearray] = {}
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        self._read_at(self._pos, view[:n])
        self._pos += n
        return n

    def _read_at(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` from the file at ``offset`` (zeros past its end), then lay the
        spilled pages over it."""
        done = 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got == 0:
                view[done:] = bytes(len(view) - done)
                break
            done += got
        end = offset + len(view)
        for page in range(offset // self.PAGE, -(-end // self.PAGE)) if self._pages else ():
            data = self._pages.get(page)
            if data is not None:
                lo, hi = max(offset, page * self.PAGE), min(end, (page + 1) * self.PAGE)
                view[lo - offset : hi - offset] = data[
                    lo - page * self.PAGE : hi - page * self.PAGE
                ]

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                write_exactly(self._fd, view, self._pos)
            except OSError as err:
                self.error = err
        if self.error is not None:
            self._spill(self._pos, view)
        self._pos += len(view)
        self._size = max(self._size, self._pos)
        return len(view)

    def _spill(self, offset: int, view: memoryview) -> None:
        """Keep ``view`` (bytes at ``offset``) in memory pages, over the file's bytes."""
        done = 0
        while done < len(view):
            page, start = divmod(offset + done, self.PAGE)
            if page not in self._pages:
                data = bytearray(self.PAGE)
                self._read_at(page * self.PAGE, memoryview(data))
                self._pages[page] = data
            k = min(self.PAGE - start, len(view) - done)
            self._pages[page][start : start + k] = view[done : done + k]
            done += k

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as err:
                self.error = err
        self._size = size
        return size

    def flush(self) -> None:
        """Nothing to do: writes go straight to the file descriptor."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()
