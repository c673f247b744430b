"""analysis.io.NetcdfWriter (NetCDF written block by block, atomically) and scratch_array."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from analysis import io

FS_HZ = 15.0
REPO = Path(__file__).resolve().parents[2]


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(0)
    n_roi, n_time = 7, 30
    return xr.Dataset(
        {
            "dff": (
                ("roi", "time"),
                rng.normal(size=(n_roi, n_time)).astype(np.float32),
                {"units": "fraction", "ok": True, "meta": {"a": 1}},
            ),  # fmt: skip
            "count": (("time", "roi"), rng.integers(0, 9, (n_time, n_roi)).astype(np.int16)),
            "tau": ("roi", np.r_[np.nan, rng.random(n_roi - 1)]),
        },
        coords={
            "roi": np.arange(10, 10 + n_roi),
            "n_pixels": ("roi", np.arange(n_roi, dtype=np.int32)),
            "time": np.arange(n_time) / FS_HZ,
            "frame": ("time", np.arange(n_time)),
            "plane_z": ("plane", [0.0, 25.0]),  # on no data variable: a global coordinate
        },
        attrs={"fs_hz": FS_HZ, "flag": False},
    )


def _write_blocks(path: Path, ds: xr.Dataset, block: int, *, stop: int | None = None) -> None:
    layout = xr.Dataset(coords=ds.coords, attrs=ds.attrs)
    with io.NetcdfWriter(path, layout, dim="roi", stage="test", settings={"b": 2}) as nc:
        for rois in _blocks(ds.sizes["roi"], block)[:stop]:
            nc.write(ds.isel(roi=rois))


def test_writer_reads_back_as_write_netcdf(tmp_path):
    ds = _dataset()
    io.write_netcdf(ds, tmp_path / "whole.nc", stage="test", settings={"b": 2})
    _write_blocks(tmp_path / "blocks.nc", ds, 3)
    whole, blocks = io.read_netcdf(tmp_path / "whole.nc"), io.read_netcdf(tmp_path / "blocks.nc")
    assert blocks.identical(whole)
    assert list(blocks.variables) == list(whole.variables)
    with xr.open_dataset(tmp_path / "blocks.nc", engine="h5netcdf") as lazy:
        assert lazy["dff"].encoding["complevel"] == 4 and lazy["dff"].encoding["zlib"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.nc", "whole.nc"]


def test_interrupted_write_leaves_no_output(tmp_path):
    ds, path = _dataset(), tmp_path / "traces.nc"
    with pytest.raises(RuntimeError, match="killed"):
        with io.NetcdfWriter(path, xr.Dataset(coords=ds.coords), dim="roi", stage="t") as nc:
            nc.write(ds.isel(roi=slice(0, 3)))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="only 3 of 7 roi were written"):
        _write_blocks(path, ds, 3, stop=1)
    with pytest.raises(ValueError, match="not the next 3"):
        with io.NetcdfWriter(path, xr.Dataset(coords=ds.coords), dim="roi", stage="t") as nc:
            nc.write(ds.isel(roi=slice(3, 6)))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_raises_and_hdf5_exits_cleanly(tmp_path):
    # HDF5 crashes the process at exit after a failed write unless it never sees one: run
    # in a child, with every file write failing (ENOSPC) after the first 20 kB
    code = f"""
import errno, os, sys
import numpy as np, xarray as xr
from analysis import io
from analysis.io import netcdf
written = [0]
real = os.pwrite
def pwrite(fd, data, offset):
    written[0] += len(data)
    if written[0] > 20_000:
        raise OSError(errno.ENOSPC, "No space left on device")
    return real(fd, data, offset)
netcdf.os.pwrite = pwrite
ds = xr.Dataset({{"x": (("roi", "time"), np.random.default_rng(0).random((40, 500)))}},
                coords={{"roi": np.arange(40)}})
path = {str(tmp_path / "out" / "x.nc")!r}
try:
    with io.NetcdfWriter(path, xr.Dataset(coords=ds.coords), dim="roi", stage="t") as nc:
        for a in range(0, 40, 8):
            nc.write(ds.isel(roi=slice(a, a + 8)))
except io.OutputWriteError as err:
    print("raised:", err)
    sys.exit(3)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)  # fmt: skip
    assert result.returncode == 3, result.stderr  # not a crash (-11) nor success
    assert f"raised: {tmp_path / 'out' / 'x.nc'}: cannot write output, the disk is full" in (
        result.stdout
    )
    assert list((tmp_path / "out").iterdir()) == []


def test_scratch_array_writes_pieces_reads_rows_and_cleans_up(tmp_path):
    out = tmp_path / "traces.nc"
    (tmp_path / ".traces.nc.old123.scratch").write_bytes(b"left by a killed run")
    expected = np.arange(24, dtype=np.float32).reshape(4, 6)
    with io.scratch_array(out, (4, 6)) as scratch:
        assert [p.suffix for p in tmp_path.iterdir()] == [".scratch"]  # the stale one went
        scratch[:, 0:4] = expected[:, 0:4]
        scratch[np.array([1, 3]), 4:6] = expected[[1, 3], 4:6]
        scratch[np.array([0, 2]), 4:6] = expected[[0, 2], 4:6]
        np.testing.assert_array_equal(scratch[1:3], expected[1:3])
        scratch[np.array([2]), :] = np.nan
        assert np.isnan(scratch[2:3]).all() and scratch[0:4].shape == (4, 6)
    assert list(tmp_path.iterdir()) == []
