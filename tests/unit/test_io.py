import json

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
