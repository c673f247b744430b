from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import ingest
from analysis.ingest import IngestError, IngestSettings

PATH = Path("raw/m01/day01")


def bci_table(n):
    return pd.DataFrame(
        {
            "frame": np.arange(n),
            "trial": np.zeros(n, dtype=int),
            "new_trial": np.eye(1, n, dtype=int)[0],
            "readout": np.linspace(0, 1, n),
            "angle_deg": np.full(n, 45.0),
            "reward": np.zeros(n, dtype=int),
            "aversive": np.zeros(n, dtype=int),
        }
    )


def test_session_meta_valid_and_default_bci_plane():
    meta = ingest.check_session_meta(
        {"fs_hz": 15, "n_planes": 2, "plane_roles": {0: "soma", 1: "dendrite"}}, path=PATH
    )
    assert (
        meta.fs_hz == 15.0
        and meta.bci_plane == 0
        and meta.plane_roles == {0: "soma", 1: "dendrite"}
    )


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"fs_hz": 15, "n_planes": 2}, "missing field 'plane_roles'"),
        ({"fs_hz": -1, "n_planes": 1, "plane_roles": {0: "soma"}}, "'fs_hz' must be a positive"),
        (
            {"fs_hz": 15, "n_planes": 1, "plane_roles": {1: "soma"}},
            "names plane 1 but n_planes is 1",
        ),
        ({"fs_hz": 15, "n_planes": 1, "plane_roles": {0: "axon"}}, "use one of"),
        ({"fs_hz": 15, "n_planes": 1, "plane_roles": {0: "soma"}, "fps": 3}, "unknown field 'fps'"),
    ],
)
def test_session_meta_errors(meta, match):
    with pytest.raises(IngestError, match=match):
        ingest.check_session_meta(meta, path=PATH / "session.yaml")


def test_bci_frames_count_mismatch_names_file_and_counts():
    with pytest.raises(
        IngestError, match=r"bci_frames\.tsv: 10 rows but the imaging has 12 volumes"
    ):
        ingest.check_bci_frames(bci_table(10), n_frames=12, path=PATH / "bci_frames.tsv")


def test_bci_frames_missing_column_and_non_numeric():
    with pytest.raises(IngestError, match=r"missing column\(s\) \['reward'\]"):
        ingest.check_bci_frames(bci_table(5).drop(columns="reward"), n_frames=5, path=PATH)
    table = bci_table(5).astype({"readout": object})
    table.loc[3, "readout"] = "oops"
    with pytest.raises(
        IngestError, match=r"column 'readout' has a non-numeric value 'oops' at row 3"
    ):
        ingest.check_bci_frames(table, n_frames=5, path=PATH)


def test_bci_frames_types():
    out = ingest.check_bci_frames(bci_table(5), n_frames=5, path=PATH)
    assert out["trial"].dtype == np.int64 and out["readout"].dtype == float


def test_interleaved_count_must_divide():
    assert ingest.check_interleaved_count(10, n_planes=2, source="s") == 5
    with pytest.raises(IngestError, match="11 frames is not a multiple of n_planes=2"):
        ingest.check_interleaved_count(11, n_planes=2, source="s")


def test_plane_files_missing_plane(tmp_path):
    with pytest.raises(IngestError, match="no plane1.tif"):
        ingest.plan_imaging_files([tmp_path / "plane0.tif"], n_planes=2, session_dir=tmp_path)
    with pytest.raises(IngestError, match=r"no imaging files"):
        ingest.plan_imaging_files([], n_planes=2, session_dir=tmp_path)
    plan = ingest.plan_imaging_files([tmp_path / "stack.tif"], n_planes=2, session_dir=tmp_path)
    assert plan["layout"] == "interleaved"


def test_targets_checks():
    good = [{"id": 1, "group": "P+", "plane": 0, "polygon": [[1, 1], [1, 5], [5, 5]]}]
    assert ingest.check_targets(good, shape=(10, 10), n_planes=2, path=PATH)[0]["id"] == 1
    outside = [{"id": 7, "group": "P-", "plane": 0, "polygon": [[1, 1], [1, 50], [5, 5]]}]
    with pytest.raises(IngestError, match=r"id 7.*outside the 10 x 10 field of view"):
        ingest.check_targets(outside, shape=(10, 10), n_planes=2, path=PATH)
    with pytest.raises(IngestError, match="group must be 'P\\+' or 'P-'"):
        ingest.check_targets([{**good[0], "group": "P"}], shape=(10, 10), n_planes=2, path=PATH)
    with pytest.raises(IngestError, match="non-empty JSON list"):
        ingest.check_targets([], shape=(10, 10), n_planes=2, path=PATH)


def test_bci_meta_threshold_order():
    meta = {"threshold": 0.1, "failure_bound": 0.5, "target_angle_deg": 90, "max_trial_frames": 435}
    with pytest.raises(IngestError, match="threshold .* must exceed failure_bound"):
        ingest.check_bci_meta(meta, path=PATH / "bci_meta.yaml")


def test_split_planes_interleaved_across_files():
    frames = np.arange(10)[:, None, None] * np.ones((1, 2, 2))
    first = list(ingest.split_planes([frames[:3]], n_planes=2, first_frame=0))
    second = list(ingest.split_planes([frames[3:]], n_planes=2, first_frame=3))
    plane0 = np.concatenate([f for p, f in first + second if p == 0])[:, 0, 0]
    plane1 = np.concatenate([f for p, f in first + second if p == 1])[:, 0, 0]
    np.testing.assert_array_equal(plane0, [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(plane1, [1, 3, 5, 7, 9])


def test_convert_frames_flags_dropped_and_saturated():
    frames = np.full((4, 4, 4), 100.0)
    frames[1] = np.nan
    frames[2] = 0
    frames[3, :2] = 40000
    out = ingest.convert_frames(frames, settings=IngestSettings())
    assert out["frames"].dtype == np.int16
    np.testing.assert_array_equal(out["dropped"], [False, True, True, False])
    np.testing.assert_array_equal(out["saturated"], [False, False, False, True])
    assert out["frames"][3].max() == 32767


def test_fill_plane_from_interleaved_files():
    # 2 planes interleaved over two files of 5 and 7 frames; frame value = global index
    frames = np.arange(12)[:, None, None] * np.ones((1, 3, 3), dtype=np.uint16)
    sources = [([frames[:5]], 0), ([frames[5:9], frames[9:]], 5)]
    out = np.zeros((6, 3, 3), dtype=np.int16)
    flags = ingest.fill_plane(sources, out, plane=1, n_planes=2, settings=IngestSettings())
    np.testing.assert_array_equal(out[:, 0, 0], [1, 3, 5, 7, 9, 11])
    assert not flags["dropped"].any()


def test_fill_plane_reports_missing_frames():
    sources = [([np.ones((3, 2, 2))], 0)]
    with pytest.raises(IngestError, match="yielded 3 frames, expected 4"):
        ingest.fill_plane(
            sources, np.zeros((4, 2, 2), np.int16), plane=0, n_planes=1, settings=IngestSettings()
        )
