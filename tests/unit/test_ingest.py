import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import tifffile
import yaml

from analysis import cloose, ingest, io, readers, session_format, simulate
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
        readers.plan_tiff_files([tmp_path / "plane0.tif"], n_planes=2, session_dir=tmp_path)
    with pytest.raises(IngestError, match=r"no imaging files"):
        readers.find_imaging(tmp_path)
    plan = readers.plan_tiff_files([tmp_path / "stack.tif"], n_planes=2, session_dir=tmp_path)
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


def test_target_vertices_just_past_the_edge_are_clipped(caplog):
    # drawn at the edge of a 128 px live image: 0.2 px past the last pixel's outer edge
    edge = [
        {"id": "t3", "group": "P+", "plane": 0, "polygon": [[120, 120], [120, 127.7], [-1.4, 127]]}
    ]
    with caplog.at_level("WARNING", logger="analysis.ingest"):
        (checked,) = ingest.check_targets(edge, shape=(128, 128), n_planes=1, path=PATH)
    assert checked["polygon"] == [[120, 120], [120, 127.5], [-0.5, 127]]
    assert "id 't3'" in caplog.text and "0.90 px outside" in caplog.text


@pytest.mark.parametrize("vertex", [[120, 128.6], [-1.6, 5], [float("nan"), 5]])
def test_target_vertices_further_out_stop_ingest(vertex):
    far = [{"id": "t4", "group": "P-", "plane": 0, "polygon": [[120, 120], vertex, [110, 110]]}]
    with pytest.raises(IngestError, match=r"id 't4'.*(outside the 128 x 128|non-finite)"):
        ingest.check_targets(far, shape=(128, 128), n_planes=1, path=PATH)


def test_bci_meta_threshold_order():
    meta = {"threshold": 0.1, "failure_bound": 0.5, "target_angle_deg": 90, "max_trial_frames": 435}
    with pytest.raises(IngestError, match="threshold .* must exceed failure_bound"):
        ingest.check_bci_meta(meta, path=PATH / "bci_meta.yaml")


def test_interleaved_planes_across_files_in_name_order(tmp_path):
    # 2 planes interleaved over files of 5 and 7 frames; frame value = global index.
    # Name order is numeric: stack_2 comes before stack_10.
    frames = (np.arange(12)[:, None, None] * np.ones((1, 6, 7))).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack_2.tif", frames[:5])
    tifffile.imwrite(tmp_path / "stack_10.tif", frames[5:])
    meta = readers.read_imaging_meta(tmp_path, settings=IngestSettings())
    plan = readers.plan_imaging(meta, n_planes=2)
    assert (plan.format, plan.n_frames, plan.shape) == ("tiff", 6, (6, 7))
    for plane in (0, 1):
        batches = list(readers.iter_plane(plan.planes[plane], batch_frames=2))
        values = np.concatenate(batches)[:, 0, 0]
        np.testing.assert_array_equal(values, np.arange(plane, 12, 2))


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


def test_fill_plane_converts_batches():
    frames = np.arange(6)[:, None, None] * np.ones((1, 3, 3), dtype=np.uint16)
    out = np.zeros((6, 3, 3), dtype=np.int16)
    flags = ingest.fill_plane([frames[:4], frames[4:]], out, settings=IngestSettings())
    np.testing.assert_array_equal(out[:, 0, 0], np.arange(6))
    assert not flags["dropped"][1:].any() and flags["dropped"][0]  # frame 0 is all zero


@pytest.mark.parametrize(("n_frames", "match"), [(3, "yielded 3 frames"), (5, "more than 5")])
def test_fill_plane_reports_missing_or_extra_frames(n_frames, match):
    with pytest.raises(IngestError, match=match + r".*expected 4.*rerun from ingest"):
        ingest.fill_plane(
            [np.ones((n_frames, 2, 2))], np.zeros((4, 2, 2), np.int16), settings=IngestSettings()
        )


# --- CLOOSE StimData .mat -----------------------------------------------------------------

SIM = {
    "n_rows": 48,
    "n_cols": 48,
    "n_frames": 400,
    "n_days": 1,
    "n_neurons": 8,
    "n_pos_targets": 2,
    "n_neg_targets": 2,
    "n_distractor_dendrites": 1,
    "max_day_shift_px": 2.0,
    "max_motion_px": 2.0,
    "max_nonrigid_px": 1.0,
    "nonrigid_wavelength_px": 40.0,
    "baseline_frames": 3000,
    "burst_rate_hz": 0.6,
    "max_trial_frames": 60,
    "calibration_trial_frames": 60,
}


def stimdata_from_table(table, *, x, f0, threshold, failure_bound, target_angle_deg, n_planes):
    """StimData as CLOOSE's Run_GUI.m saves it, for a plain BCI table (1-based, 1 x N rows).

    ``x`` is the unsmoothed readout CLOOSE logs as ``z_score``; Angle codes grey trial
    frames -5 and inter-trial frames -1; Licks is the rig's lick counter; ImTranslateXY
    is the correction [col; row] applied, i.e. minus the frame displacement.
    """
    n = len(table)
    trial = table["trial"].to_numpy()
    angle = table["angle_deg"].to_numpy(dtype=float)
    starts = np.flatnonzero(table["new_trial"].to_numpy()) + 1.0
    new_trial = np.full((1, max(250, starts.size)), np.nan)  # Run_GUI preallocates 250
    new_trial[0, : starts.size] = starts
    threshold_used = np.empty((2, 1), dtype=object)  # the cell {range; thresh}
    threshold_used[0, 0] = np.array([[failure_bound]])
    threshold_used[1, 0] = np.array([[threshold]])
    row = lambda values: np.asarray(values, dtype=float)[None]  # noqa: E731
    return {
        "subpop1": np.array([[1.0, 2.0]]),
        "multiple_subpops": True,
        "TStampGlobal": row(np.arange(n * n_planes) / 30.0),
        "Angle": row(np.where(trial < 0, -1.0, np.where(np.isnan(angle), -5.0, angle))),
        "targetAngle": float(target_angle_deg),
        "z_score": row(x),
        "Licks": row(1 + np.cumsum(table["licks"].to_numpy())),
        "Reward_frames": row(table["reward"]),
        "Opto": np.zeros((1, n * n_planes)),  # Run_GUI sizes Opto by imaging frames
        "Aversive_frames": row(table["aversive"]),
        "bline_loaded": "D:\\Experiments\\m01\\Baseline\\baseline.mat",
        "ImTranslateXY": np.vstack([-table["shift_col"], -table["shift_row"]]).astype(float),
        "NewTrial": new_trial,
        "F0": f0,
        "threshold_used": threshold_used,
        "plane_tot": float(n_planes),
    }


def write_mat73(path, stim):
    """A MATLAB v7.3 file laid out as MATLAB writes it: HDF5 after a 512-byte header,
    dims reversed, cells as references into /#refs#, chars as uint16."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as mat:
        group = mat.create_group("StimData")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        refs = mat.create_group("#refs#")
        for name, value in stim.items():
            if isinstance(value, str):
                data, kind = np.array([[ord(c) for c in value]], dtype=np.uint16), "char"
            elif isinstance(value, np.ndarray) and value.dtype == object:
                data, kind = np.empty(value.shape, dtype=h5py.ref_dtype), "cell"
                for index, item in np.ndenumerate(value):
                    cell = refs.create_dataset(f"{name}{index}", data=np.asarray(item).T)
                    cell.attrs["MATLAB_class"] = np.bytes_("double")
                    data[index] = cell.ref
            else:
                data, kind = np.atleast_2d(np.asarray(value, dtype=float)), "double"
            dataset = group.create_dataset(name, data=data.T)
            dataset.attrs["MATLAB_class"] = np.bytes_(kind)
    text = b"MATLAB 7.3 MAT-file, Platform: PCWIN64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    with open(path, "r+b") as handle:
        handle.write(text.ljust(116) + bytes(8) + b"\x00\x02IM")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A simulated session in the plain format (blank imaging of the right length), with
    the StimData CLOOSE would have saved for it."""
    settings = simulate.SimulateSettings.from_mapping(SIM)
    result = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(0))
    day = result["days"][0]
    n = len(day["bci"])
    rng = np.random.default_rng(1)  # nonzero online shifts, to pin the sign convention
    day["bci"]["shift_row"] = rng.integers(-3, 4, n)
    day["bci"]["shift_col"] = rng.integers(-3, 4, n)
    out = tmp_path_factory.mktemp("sim")
    session_format.write_simulation(out, result, settings=settings)
    folder = session_format.session_dir(out, "m01", day["session"])
    blank = np.zeros((n, settings.n_rows, settings.n_cols), dtype=np.uint16)
    for plane in (0, 1):
        tifffile.imwrite(folder / f"plane{plane}.tif", blank)
    params = settings.task_params
    groups = np.array([t["group"] for t in day["targets"]])
    dff = cloose.compute_online_dff(
        day["online_f"], window_frames=params.f0_window, percentile=params.f0_percentile
    )
    x = dff[groups == "P+"].mean(axis=0) - dff[groups == "P-"].mean(axis=0)
    stim = stimdata_from_table(
        day["bci"],
        x=x,
        f0=day["online_f"] / (1 + dff),
        threshold=result["threshold"],
        failure_bound=result["failure_bound"],
        target_angle_deg=params.target_angle_deg,
        n_planes=2,
    )
    return {"folder": folder, "stim": stim, "x": x, "plain": ingest.inspect_session(folder)}


def mat_session(simulated, folder, *, stim=None, version="5", meta=None):
    """The simulated session with its BCI log as BCI_Trials/1.mat instead of the TSV."""
    shutil.copytree(simulated["folder"], folder)
    (folder / "bci_frames.tsv").unlink()
    path = folder / "BCI_Trials" / "1.mat"
    stim = simulated["stim"] if stim is None else stim
    if version == "7.3":
        write_mat73(path, stim)
    else:
        path.parent.mkdir()
        scipy.io.savemat(path, {"StimData": stim}, format=version)
    meta = {"max_trial_frames": SIM["max_trial_frames"]} if meta is None else meta
    (folder / "bci_meta.yaml").write_text(yaml.safe_dump(meta))
    return folder


def test_stimdata_reads_as_the_plain_table(simulated, tmp_path):
    plain = simulated["plain"]
    checked = ingest.inspect_session(mat_session(simulated, tmp_path / "s"))
    table, expected = checked["bci_frames"], plain["bci_frames"]
    assert checked["bci_log"].endswith("BCI_Trials/1.mat")
    assert list(table.columns) == [
        *ingest.BCI_REQUIRED_COLUMNS,
        "licks",
        "opto",
        "shift_row",
        "shift_col",
    ]
    assert expected["trial"].max() >= 2 and expected["reward"].sum() >= 1
    assert (expected["shift_row"] != 0).any() and (expected["licks"] == 1).any()
    for column in ("frame", "trial", "new_trial", "angle_deg", "reward", "aversive", "licks"):
        np.testing.assert_array_equal(table[column], expected[column], err_msg=column)
    for column in ("shift_row", "shift_col"):
        np.testing.assert_array_equal(table[column], expected[column].astype(float))
    assert (table["opto"] == 0).all()
    # CLOOSE smooths from its 3rd frame on; before that it uses x(n) alone
    np.testing.assert_allclose(table["readout"][2:], expected["readout"][2:], rtol=1e-7)
    np.testing.assert_allclose(table["readout"][:2], simulated["x"][:2])
    assert checked["bci_meta"].keys() == plain["bci_meta"].keys()
    for key, value in plain["bci_meta"].items():
        assert checked["bci_meta"][key] == pytest.approx(value, rel=1e-12), key


def test_stimdata_v73_reads_like_v5(simulated, tmp_path):
    v5 = ingest.inspect_session(mat_session(simulated, tmp_path / "v5"))
    v73 = ingest.inspect_session(mat_session(simulated, tmp_path / "v73", version="7.3"))
    pd.testing.assert_frame_equal(v73["bci_frames"], v5["bci_frames"])
    assert v73["bci_meta"] == v5["bci_meta"]
    fields = io.read_stimdata(tmp_path / "v73/BCI_Trials/1.mat", fields=["NewTrial", "F0"])
    assert (
        fields["NewTrial"].shape == (1, 250) and fields["F0"].shape == simulated["stim"]["F0"].shape
    )


def test_stimdata_frame_count_mismatch_is_the_tsv_error(simulated, tmp_path):
    per_volume = ("Angle", "z_score", "Licks", "Reward_frames", "Aversive_frames")
    stim = {k: (v[:, :-1] if k in per_volume else v) for k, v in simulated["stim"].items()}
    stim["ImTranslateXY"] = stim["ImTranslateXY"][:, :-1]
    folder = mat_session(simulated, tmp_path / "s", stim=stim)
    with pytest.raises(
        IngestError,
        match=r"BCI_Trials/1\.mat: 399 rows but the imaging has 400 volumes.*same session",
    ):
        ingest.inspect_session(folder)


@pytest.mark.parametrize("field", ["NewTrial", "threshold_used", "z_score"])
def test_stimdata_missing_field_is_named(simulated, tmp_path, field):
    stim = {k: v for k, v in simulated["stim"].items() if k != field}
    folder = mat_session(simulated, tmp_path / "s", stim=stim)
    with pytest.raises(IngestError, match=rf"1\.mat: StimData has no field '{field}'.*bci_frames"):
        ingest.inspect_session(folder)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("Licks", np.ones((1, 5)), r"StimData\.Licks has 5 values but StimData\.Angle has 400"),
        ("NewTrial", np.array([[1.0, 500.0]]), r"StimData\.NewTrial must list increasing 1-based"),
        ("ImTranslateXY", np.zeros((3, 400)), r"ImTranslateXY has shape \(3, 400\)"),
        ("Angle", np.zeros((2, 400)), r"StimData\.Angle must be a vector"),
    ],
)
def test_stimdata_malformed_field_is_named(simulated, field, value, match):
    stim = {**simulated["stim"], field: value}
    with pytest.raises(IngestError, match=match):
        ingest.convert_stimdata(stim, meta={"max_trial_frames": 60}, path=PATH, meta_path=PATH)


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        (None, r"bci_meta\.yaml: not found; the CLOOSE log .* maximum trial length"),
        ({"notes": "rig 2"}, r"bci_meta\.yaml: has no field 'max_trial_frames'"),
        (
            {"max_trial_frames": 60, "target_angle_deg": 45},
            r"bci_meta\.yaml: field 'target_angle_deg' is 45 but .*says 90\.0; remove",
        ),
        ({"max_trial_frames": "long"}, r"'max_trial_frames' must be a number, got 'long'"),
    ],
)
def test_stimdata_meta_from_bci_meta_yaml(simulated, tmp_path, meta, match):
    folder = mat_session(simulated, tmp_path / "s", meta=meta or {})
    if meta is None:
        (folder / "bci_meta.yaml").unlink()
    with pytest.raises(IngestError, match=match):
        ingest.inspect_session(folder)


def test_find_bci_log_picks(tmp_path):
    (tmp_path / "BCI_Trials").mkdir()
    with pytest.raises(io.RawInputError, match=r"no BCI log; add bci_frames\.tsv or"):
        ingest.find_bci_log(tmp_path)
    (tmp_path / "BCI_Trials" / "1.mat").touch()
    assert ingest.find_bci_log(tmp_path) == tmp_path / "BCI_Trials" / "1.mat"
    (tmp_path / "other.mat").touch()
    with pytest.raises(
        IngestError, match=r"several CLOOSE logs \['BCI_Trials/1\.mat', 'other\.mat'\]"
    ):
        ingest.find_bci_log(tmp_path)
    (tmp_path / "bci_frames.tsv").touch()  # the plain table wins
    assert ingest.find_bci_log(tmp_path) == tmp_path / "bci_frames.tsv"
