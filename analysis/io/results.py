"""Result files: atomic writes with provenance (NetCDF, TSV, JSON, text, figures), reads,
and clear errors when the results folder cannot be written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis import __version__


class OutputWriteError(OSError):
    """An output cannot be written: the disk is full or the folder is not writable."""

    __module__ = "analysis.io"  # its public home, as tracebacks and logs name it


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
