import json
import os

import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr

from analysis import io


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_removes_temporary_files_of_a_killed_writer(tmp_path):
    target = tmp_path / "out.tsv"
    (tmp_path / ".out.tsv.abc123.part").write_text("left by SIGKILL")
    (tmp_path / ".other.tsv.abc123.part").write_text("another output's, being written")
    io.write_tsv(pd.DataFrame({"a": [1]}), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tsv.abc123.part", "out.tsv"]


def test_netcdf_roundtrip_with_provenance(tmp_path):
    data = xr.DataArray(
        np.arange(6, dtype=np.float32).reshape(2, 3),
        dims=("roi", "time"),
        coords={"roi": [3, 7], "time": [0.0, 0.1, 0.2], "frame": ("time", [0, 1, 2])},
        name="dff",
    )
    path = tmp_path / "traces.nc"
    io.write_netcdf(data, path, stage="extract", settings={"tau_s": 1.0}, inputs=["a.bin"])
    back = io.read_netcdf(path)
    np.testing.assert_array_equal(back["dff"].values, data.values)
    assert back["dff"].dims == ("roi", "time")
    assert back.attrs["stage"] == "extract"
    assert json.loads(back.attrs["settings"]) == {"tau_s": 1.0}
    assert json.loads(back.attrs["inputs"]) == ["a.bin"]


def test_tsv_roundtrip(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]})
    io.write_tsv(table, tmp_path / "t.tsv")
    pd.testing.assert_frame_equal(io.read_tsv(tmp_path / "t.tsv"), table)


def test_movie_roundtrip_and_truncation(tmp_path):
    header = io.MovieHeader(5, 4, 3, dtype="int16", fs_hz=15.0)
    mov = io.create_movie(tmp_path / "m.bin", header)
    mov[:] = np.arange(60, dtype=np.int16).reshape(5, 4, 3)
    mov.flush()
    back, back_header = io.open_movie(tmp_path / "m.bin")
    assert back_header.shape == (5, 4, 3)
    np.testing.assert_array_equal(back, np.arange(60).reshape(5, 4, 3))
    with open(tmp_path / "m.bin", "r+b") as handle:
        handle.truncate(50)
    with pytest.raises(OSError, match="truncated or stale"):
        io.open_movie(tmp_path / "m.bin")


def test_movie_file_indexing(tmp_path):
    data = np.arange(7 * 4 * 3, dtype=np.int16).reshape(7, 4, 3)
    out = io.create_movie(tmp_path / "m.bin", io.MovieHeader(7, 4, 3, "int16", 10.0))
    out[:] = data
    out[2:4] = data[2:4] * 2
    data[2:4] *= 2
    with pytest.raises(IndexError, match="whole frames"):
        out[1] = data[1]
    movie, _ = io.open_movie(tmp_path / "m.bin")
    for index in (slice(1, 5), 3, -1, [0, 5, 2], [3, 4, 5], slice(None, None, 2), (2, 1)):
        np.testing.assert_array_equal(movie[index], data[index])
    np.testing.assert_array_equal(movie[1:6, 1:3, ::2], data[1:6, 1:3, ::2])
    assert movie[5:2].shape == (0, 4, 3)
    assert (len(movie), movie.ndim, movie.dtype) == (7, 3, np.int16)
    with pytest.raises(ValueError, match="read-only"):
        movie[0:1] = data[:1]


def _rss_file_kb():
    status = open("/proc/self/status").read()
    return int(status.split("RssFile:")[1].split()[0])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_streaming_a_movie_keeps_no_file_pages_resident(tmp_path):
    # a memmap would keep every frame it touched mapped (resident) until closed
    n_frames = 256  # 64 MiB of 512 x 256 int16 frames
    out = io.create_movie(tmp_path / "m.bin", io.MovieHeader(n_frames, 512, 256, "int16", 1.0))
    before = _rss_file_kb()
    for start in range(0, n_frames, 16):
        out[start : start + 16] = np.full((16, 512, 256), start, np.int16)
    movie, _ = io.open_movie(tmp_path / "m.bin")
    total = sum(int(movie[start : start + 16][:, 0, 0].sum()) for start in range(0, n_frames, 16))
    assert total == sum(16 * start for start in range(0, n_frames, 16))
    assert _rss_file_kb() - before < 16 * 1024


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_contiguous_tiff_read_in_batches(tmp_path, byteorder):
    # one IFD for the whole stack (as ImageJ writes stacks > 4 GB): read from its offset
    frames = np.random.default_rng(0).integers(0, 4000, (23, 6, 5), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", frames, truncate=True, byteorder=byteorder)
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        assert len(tif.pages) == 1
    batches = list(io.iter_tiff_frames(tmp_path / "c.tif", batch_frames=4))
    np.testing.assert_array_equal(np.concatenate(batches), frames)
    pages = np.arange(1, 23, 2)  # one plane of an interleaved stack
    batches = list(io.iter_tiff_frames(tmp_path / "c.tif", batch_frames=4, pages=pages))
    np.testing.assert_array_equal(np.concatenate(batches), frames[pages])


def test_tiff_frames_streamed(tmp_path):
    frames = np.random.default_rng(0).integers(0, 1000, (7, 6, 5), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", frames, compression="zlib")
    assert io.tiff_page_shapes(tmp_path / "s.tif") == (7, (6, 5))
    batches = list(io.iter_tiff_frames(tmp_path / "s.tif", batch_frames=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(batches), frames)


def test_truncated_tiff_is_named(tmp_path):
    frames = np.random.default_rng(0).integers(0, 1000, (20, 32, 32), dtype=np.uint16)
    path = tmp_path / "plane0.tif"
    tifffile.imwrite(path, frames)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.RawInputError, match=r"plane0\.tif.*(corrupt|truncated)"):
        io.tiff_page_shapes(path)
        list(io.iter_tiff_frames(path))


def test_bad_yaml_and_json_are_named(tmp_path):
    (tmp_path / "s.yaml").write_text("fs_hz: [1,\n")
    with pytest.raises(io.RawInputError, match=r"s\.yaml: not valid YAML"):
        io.read_yaml(tmp_path / "s.yaml")
    (tmp_path / "t.json").write_text("[{")
    with pytest.raises(io.RawInputError, match=r"t\.json: not valid JSON"):
        io.read_raw_json(tmp_path / "t.json")
    with pytest.raises(io.RawInputError, match="file not found"):
        io.read_raw_table(tmp_path / "missing.tsv")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        io.write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "t.tsv")
        io.write_json({"a": 1}, tmp_path / "j.json")
        io.write_netcdf(xr.DataArray([1.0], dims="roi", name="x"), tmp_path / "x.nc", stage="s")
    finally:
        os.umask(previous)
    for name in ("t.tsv", "j.json", "x.nc"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
