"""Export stage: NWB and suite2p folders from small in-memory results, read back and compared.

The NWB file is read back with pynwb and checked with nwbinspector; the suite2p folders
are read back with suite2p 1.1.0's own loader (``suite2p.io.combined``, which the GUI's
"load folder" uses) and its built-in cell classifier.
"""

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis import export, ingest, readers
from analysis.export import ExportSettings, PlaneResults, SessionResults
from analysis.ingest import IngestError, IngestSettings

FS_HZ = 10.0
N_FRAMES = 80
SHAPE = (24, 28)


def _masks(rng, n_rois, *, empty=()):
    masks = np.zeros((n_rois, *SHAPE), np.float32)
    for i in range(n_rois):
        if i in empty:
            continue
        r, c = 3 + 4 * i % 18, 2 + 5 * i % 22
        masks[i, r : r + 3, c : c + 4] = rng.uniform(0.2, 1.0, (3, 4))
    return masks


def _plane(rng, plane, role, ids, *, empty=()):
    n = len(ids)
    time = np.arange(N_FRAMES) / FS_HZ
    traces = xr.Dataset(
        {
            var: (("roi", "time"), rng.normal(base, 1.0, (n, N_FRAMES)).astype(np.float32))
            for var, base in (("F", 100.0), ("Fneu", 50.0), ("dff", 0.0), ("spikes", 0.5))
        },
        coords={"roi": ids, "time": time, "frame": ("time", np.arange(N_FRAMES))},
        attrs={"fs_hz": FS_HZ, "settings": json.dumps({"neuropil_coefficient": 0.7})},
    )
    traces["F"][:, 5] = np.nan  # a dropped frame
    masks = xr.DataArray(
        _masks(rng, n, empty=empty),
        dims=("roi", "row", "col"),
        coords={"roi": ids, "n_sessions_detected": ("roi", np.arange(n) % 3 + 1)},
    )
    image = ("row", "col")
    registration = xr.Dataset(
        {
            "ref_image": (image, rng.random(SHAPE, np.float32)),
            "mean_image": (image, rng.random(SHAPE, np.float32)),
            "max_image": (image, rng.random(SHAPE, np.float32) + 1),
            "mean_image_enhanced": (image, rng.random(SHAPE, np.float32)),
            "rigid_shift_row": ("time", rng.integers(-2, 3, N_FRAMES).astype(np.int32)),
            "rigid_shift_col": ("time", rng.integers(-2, 3, N_FRAMES).astype(np.int32)),
            "phase_corr": ("time", rng.random(N_FRAMES, np.float32)),
            "nonrigid_shift_row": (("time", "block"), rng.random((N_FRAMES, 4), np.float32)),
            "nonrigid_shift_col": (("time", "block"), rng.random((N_FRAMES, 4), np.float32)),
            "bad_frame": ("time", np.arange(N_FRAMES) == 7),
        },
        attrs={"valid_row_range": [1, 23], "valid_col_range": [2, 27]},
    )
    events = pd.DataFrame(
        {
            "roi": [ids[0], ids[0], ids[-1]],
            "frame": [10, 40, 22],
            "peak_frame": [12, 43, 25],
            "time_s": [1.0, 4.0, 2.2],
            "amplitude": [0.8, 1.5, 0.3],
            "peak_dff": [0.9, 1.6, 0.4],
            "noise_sd": [0.1, 0.1, 0.2],
        }
    )
    detected = np.arange(n) % 2 == 0
    return PlaneResults(plane, role, masks, traces, events, registration, detected)


def _session(rng):
    soma = _plane(rng, 0, "soma", np.array([0, 1, 2, 3, 5]), empty=(3,))
    dendrite = _plane(rng, 1, "dendrite", np.array([0, 1, 2, 4]))
    frames = pd.DataFrame(
        {
            "frame": np.arange(N_FRAMES),
            "trial": np.repeat([0, 1, -1, 2], 20),
            "new_trial": np.isin(np.arange(N_FRAMES), [0, 20, 60]).astype(int),
            "readout": rng.normal(0, 0.3, N_FRAMES),
            "angle_deg": np.where(np.arange(N_FRAMES) % 20 < 5, np.nan, 45.0),
            "reward": np.isin(np.arange(N_FRAMES), [15]).astype(int),
            "aversive": np.isin(np.arange(N_FRAMES), [33]).astype(int),
            "licks": np.isin(np.arange(N_FRAMES), [16, 17]).astype(int),
            "shift_row": np.zeros(N_FRAMES),
            "shift_col": np.ones(N_FRAMES),
        }
    )
    trials = pd.DataFrame(
        {
            "trial": [0, 1, 2],
            "start_frame": [0, 20, 60],
            "end_frame": [19, 39, 79],
            "outcome": ["hit", "failure", "timeout"],
            "reward_frame": [15.0, np.nan, np.nan],
            "aversive_frame": [np.nan, 33.0, np.nan],
            "time_to_outcome_s": [0.8, 0.8, 1.5],
            "active_start_frame": [5, 25, 65],
            "active_end_frame": [12, 32, 79],
            "n_active_frames": [8, 8, 15],
        }
    )
    epoch = np.array(["none"] * N_FRAMES, dtype=object)
    epoch[6:9], epoch[9:12], epoch[26:30] = "reduction", "increase", "reduction"
    task_error = pd.DataFrame(
        {
            "frame": np.arange(N_FRAMES),
            "trial": frames["trial"],
            "error": rng.integers(0, 6, N_FRAMES).astype(float),
            "error_derivative": rng.normal(0, 1, N_FRAMES),
            "epoch": epoch,
        }
    )
    targets = pd.DataFrame(
        {
            "target_id": [0, 1, 2],
            "group": ["P+", "P-", "P+"],
            "roi": [1, 2, 5],
            "iou": [0.8, 0.7, 0.6],
        }
    )
    pairs = pd.DataFrame(
        {
            "soma_roi": [1, 1, 2, 5, 0],
            "dendrite_roi": [0, 2, 1, 4, 4],
            "corr": [0.5, 0.4, 0.6, 0.3, 0.01],
            "p_value": [0.001, 0.004, 0.002, 0.009, 0.9],
            "paired": [True, True, True, True, False],
        }
    )
    return SessionResults(
        subject="m07",
        session="day02",
        fs_hz=FS_HZ,
        planes=(soma, dendrite),
        soma_plane=0,
        dendrite_plane=1,
        bci_frames=frames,
        bci_meta={
            "threshold": 0.3,
            "failure_bound": -0.7,
            "target_angle_deg": 90.0,
            "max_trial_frames": 15,
        },
        trials=trials,
        task_error=task_error,
        targets=targets,
        pairs=pairs,
        raw_sha256={"raw/m07/day02/plane0.tif": "ab" * 32, "raw/m07/day02/plane1.tif": "cd" * 32},
    )


@pytest.fixture(scope="module")
def session():
    return _session(np.random.default_rng(3))


def _build_nwb(session):
    settings = ExportSettings()
    start, source = export.compute_session_start_time(
        session.session, session_meta={}, path="session.yaml"
    )
    return export.build_nwb(
        session,
        start_time=start,
        start_time_source=source,
        subject_info=export.compute_subject(session.subject, settings=settings),
        settings=settings,
    )


@pytest.fixture(scope="module")
def nwb_path(session, tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    export.write_nwb(_build_nwb(session), path)
    return path


def test_nwb_round_trip(session, nwb_path):
    from pynwb import NWBHDF5IO

    soma, dendrite = session.planes
    with NWBHDF5IO(str(nwb_path), "r") as reader:
        nwb = reader.read()
        assert nwb.session_start_time == _utc(2000, 1, 2)
        assert "PLACEHOLDER" in nwb.notes
        assert nwb.subject.subject_id == "m07" and nwb.subject.species == "Mus musculus"
        assert nwb.identifier == export.nwb_identifier("m07", "day02", session.raw_sha256)
        ophys = nwb.processing["ophys"]
        for plane in session.planes:
            table = ophys["ImageSegmentation"][plane.name]
            assert list(table.id[:]) == plane.masks["roi"].to_numpy().tolist()
            np.testing.assert_array_equal(table["image_mask"].data[:], plane.masks.to_numpy())
            np.testing.assert_array_equal(table["detected"].data[:], plane.detected)
            for container, var in (
                ("Fluorescence", "F"),
                ("Neuropil", "Fneu"),
                ("DfOverF", "dff"),
                ("Deconvolved", "spikes"),
            ):
                series = ophys[container][plane.name]
                np.testing.assert_array_equal(series.data[:], plane.traces[var].to_numpy().T)
                assert series.rate == FS_HZ
            events = ophys[f"Events{plane.name}"]
            rows = events["roi"].data[:]
            np.testing.assert_array_equal(table.id[:][rows], plane.events["roi"])
            np.testing.assert_allclose(events["amplitude"].data[:], plane.events["amplitude"])
        somata = ophys["ImageSegmentation"][soma.name].to_dataframe()
        assert somata["target_group"].tolist() == ["non-target", "P+", "P-", "non-target", "P+"]
        assert somata["target_id"].tolist() == [-1, 0, 1, -1, 2]
        # roi 0's only pair is not significant: not listed
        assert [list(v) for v in somata["paired_dendrite_ids"]] == [[], [0, 2], [1], [], [4]]
        np.testing.assert_allclose(somata.loc[1, "pairing_p_values"], [0.001, 0.004])
        dendrites = ophys["ImageSegmentation"][dendrite.name].to_dataframe()
        assert dendrites["paired_soma_id"].tolist() == [1, 2, 1, 5]
        np.testing.assert_allclose(dendrites["pairing_p_value"], [0.001, 0.002, 0.004, 0.009])
        assert dendrites["target_group"].tolist() == ["P+", "P-", "P+", "P+"]

        trials = nwb.trials.to_dataframe()
        assert trials.index.tolist() == [0, 1, 2]
        np.testing.assert_allclose(trials["start_time"], [0.0, 2.0, 6.0])
        np.testing.assert_allclose(trials["stop_time"], [2.0, 4.0, 8.0])
        assert trials["outcome"].tolist() == ["hit", "failure", "timeout"]
        np.testing.assert_allclose(trials["reward_time"], [1.5, np.nan, np.nan])
        np.testing.assert_allclose(trials["aversive_time"], [np.nan, 3.3, np.nan])
        bci = nwb.processing["behavior"]["BCI"]
        np.testing.assert_allclose(bci["readout"].data[:], session.bci_frames["readout"])
        np.testing.assert_allclose(bci["grating_angle"].data[:], session.bci_frames["angle_deg"])
        np.testing.assert_array_equal(bci["reward_ttl"].data[:], session.bci_frames["reward"])
        assert bci["online_shift"].data.shape == (N_FRAMES, 2)
        np.testing.assert_allclose(nwb.events["reward"]["timestamp"].data[:], [1.5])
        np.testing.assert_allclose(nwb.events["aversive"]["timestamp"].data[:], [3.3])
        epochs = nwb.intervals["task_error_epochs"].to_dataframe()
        assert epochs["epoch"].tolist() == ["reduction", "increase", "reduction"]
        np.testing.assert_allclose(epochs["start_time"], [0.6, 0.9, 2.6])
        np.testing.assert_allclose(epochs["stop_time"], [0.9, 1.2, 3.0])


# --- an NWB session ingested back ---------------------------------------------------------


def _nwb_session(session, folder, *, movies, remove=(), bci_meta=None):
    """A raw session folder whose imaging and BCI log are one NWB file: the export of
    ``session`` plus one TwoPhotonSeries per plane, as a rig writes them; ``remove``
    deletes HDF5 objects from the written file, ``bci_meta`` writes bci_meta.yaml."""
    import h5py
    import yaml
    from pynwb.ophys import TwoPhotonSeries

    nwbfile = _build_nwb(session)
    for plane, movie in movies.items():
        nwbfile.add_acquisition(
            TwoPhotonSeries(
                name=f"TwoPhotonSeries{plane}",
                data=np.swapaxes(movie, 1, 2),  # NWB's (frame, x, y)
                imaging_plane=nwbfile.imaging_planes[f"ImagingPlane{plane}"],
                unit="a.u.",
                rate=FS_HZ,
            )
        )
    folder.mkdir()
    path = folder / "session.nwb"
    export.write_nwb(nwbfile, path)
    with h5py.File(path, "a") as file:
        for name in remove:
            del file[name]
    (folder / "session.yaml").write_text(
        yaml.safe_dump({"plane_roles": {0: "soma", 1: "dendrite"}})
    )
    target = {"id": 0, "group": "P+", "plane": 0, "polygon": [[1, 1], [1, 5], [5, 5]]}
    (folder / "targets.json").write_text(json.dumps([target]))
    if bci_meta is not None:
        (folder / "bci_meta.yaml").write_text(yaml.safe_dump(bci_meta))
    return folder


@pytest.fixture(scope="module")
def movies():
    rng = np.random.default_rng(8)
    return {plane: rng.integers(0, 4000, (N_FRAMES, *SHAPE)).astype(np.int16) for plane in (0, 1)}


def test_nwb_session_ingests_back_to_the_bci_log_and_frames(session, movies, tmp_path):
    folder = _nwb_session(session, tmp_path / "s", movies=movies)
    assert ingest.find_bci_log(folder) == folder / "session.nwb"
    checked = ingest.inspect_session(folder)
    assert checked["bci_log"] == str(folder / "session.nwb")
    assert (checked["meta"].fs_hz, checked["meta"].n_planes, checked["shape"]) == (FS_HZ, 2, SHAPE)
    original = ingest.check_bci_frames(session.bci_frames, n_frames=N_FRAMES, path="original")
    assert (original["trial"] == -1).any() and original["licks"].any()  # all paths exercised
    pd.testing.assert_frame_equal(checked["bci_frames"], original)
    assert checked["bci_meta"] == ingest.check_bci_meta(session.bci_meta, path="original")
    for plane, movie in movies.items():
        out = np.empty((checked["n_frames"], *checked["shape"]), np.int16)
        planes = checked["imaging"].planes
        ingest.fill_plane(
            readers.iter_plane(planes[plane], batch_frames=32), out, settings=IngestSettings()
        )
        np.testing.assert_array_equal(out, movie)


def test_nwb_session_bci_meta_yaml_fills_in_or_must_agree(session, movies, tmp_path):
    parameters = "processing/behavior/BCITaskParameters"
    folder = _nwb_session(
        session, tmp_path / "yaml", movies=movies, remove=[parameters], bci_meta=session.bci_meta
    )
    assert ingest.inspect_session(folder)["bci_meta"] == session.bci_meta
    folder = _nwb_session(
        session, tmp_path / "disagree", movies=movies, bci_meta={"threshold": 0.5}
    )
    with pytest.raises(
        IngestError,
        match=r"bci_meta\.yaml: field 'threshold' is 0\.5 but .*session\.nwb "
        r"\(processing/behavior/BCITaskParameters\) says 0\.3; remove 'threshold'",
    ):
        ingest.inspect_session(folder)


@pytest.mark.parametrize(
    ("remove", "match"),
    [
        (
            ["intervals/trials"],
            r"session\.nwb: no trials table \(intervals/trials\); .*Add the trials "
            r"\(start_time, stop_time\) or write bci_frames\.tsv beside the NWB file",
        ),
        (
            ["processing/behavior/BCI/readout"],
            r"session\.nwb: no TimeSeries \['readout'\] in processing/behavior/BCI or "
            r"acquisition; .*Add them or write bci_frames\.tsv",
        ),
        (
            ["processing/behavior/BCITaskParameters"],
            r"session\.nwb: no table processing/behavior/BCITaskParameters \(the BCI task "
            r"parameters\) and .*bci_meta\.yaml not found; add bci_meta\.yaml beside the NWB "
            r"file with threshold, failure_bound, target_angle_deg, max_trial_frames",
        ),
    ],
)
def test_nwb_session_missing_bci_objects_are_named(session, movies, tmp_path, remove, match):
    folder = _nwb_session(session, tmp_path / "s", movies=movies, remove=remove)
    with pytest.raises(IngestError, match=match):
        ingest.inspect_session(folder)


def test_nwb_passes_nwbinspector(nwb_path):
    report = export.inspect_nwb(nwb_path)
    export.check_inspection(report, path=nwb_path)
    assert set(report["importance"]) <= {"BEST_PRACTICE_SUGGESTION"}


def test_check_inspection_refuses_violations():
    report = pd.DataFrame(
        {
            "importance": ["BEST_PRACTICE_SUGGESTION", "CRITICAL"],
            "check": ["check_keywords", "check_subject_age"],
            "location": ["/", "/general/subject"],
            "message": ["keywords missing", "age missing"],
        }
    )
    with pytest.raises(ValueError, match="check_subject_age"):
        export.check_inspection(report, path="x.nwb")


def test_nwb_rejects_pairs_of_unknown_rois(session):
    bad = dataclasses.replace(
        session,
        pairs=pd.DataFrame(
            {
                "soma_roi": [9],
                "dendrite_roi": [0],
                "corr": [0.5],
                "p_value": [0.01],
                "paired": [True],
            }
        ),
    )
    with pytest.raises(ValueError, match=r"soma ROI\(s\) \[9\]"):
        export.build_nwb(
            bad,
            start_time=export.PLACEHOLDER_DATE,
            start_time_source="test",
            subject_info={"subject_id": "m07"},
            settings=ExportSettings(),
        )


def _utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("session", "meta", "expected", "source"),
    [
        ("day01", {"session_start_time": _utc(2024, 3, 5, 10, 30)}, _utc(2024, 3, 5, 10, 30),
         "session_start_time from"),
        ("day01", {"session_start_time": "2024-03-05T10:30:00+01:00"}, _utc(2024, 3, 5, 9, 30),
         "session_start_time from"),
        ("day01", {"session_start_time": dt.date(2024, 3, 5)}, _utc(2024, 3, 5), "date only"),
        ("2024-03-06", {}, _utc(2024, 3, 6), "date in the session name"),
        ("m1_20240307", {}, _utc(2024, 3, 7), "date in the session name"),
        ("day12", {}, _utc(2000, 1, 12), "PLACEHOLDER"),
        ("baseline", {}, _utc(2000, 1, 1), "PLACEHOLDER"),
        ("2024-13-45", {}, _utc(2000, 1, 1), "PLACEHOLDER"),
    ],
)  # fmt: skip
def test_session_start_time(session, meta, expected, source):
    when, text = export.compute_session_start_time(session, session_meta=meta, path="s.yaml")
    assert when == expected
    assert source in text


@pytest.mark.parametrize("value", ["2024-03-05T10:30:00", "yesterday", 5])
def test_session_start_time_bad_values_name_the_file(value):
    with pytest.raises(ValueError, match="s.yaml: field 'session_start_time'"):
        export.compute_session_start_time(
            "day01", session_meta={"session_start_time": value}, path="s.yaml"
        )


def test_subject_defaults_and_subject_yaml():
    settings = ExportSettings(subject_sex="F", subject_strain="C57BL/6J")
    info = export.compute_subject("m01", settings=settings)
    assert info["sex"] == "F" and info["age"] == "P0D/" and info["strain"] == "C57BL/6J"
    assert "no subject.yaml" in info["description"]
    info = export.compute_subject(
        "m01",
        settings=settings,
        subject_meta={"sex": "M", "date_of_birth": dt.date(2023, 9, 1), "weight": "25 g"},
        path="subject.yaml",
    )
    assert info["sex"] == "M" and info["weight"] == "25 g" and "age" not in info
    assert info["date_of_birth"] == _utc(2023, 9, 1)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"sexx": "M"}, "unknown field 'sexx'"),
        ({"sex": "male"}, "field 'sex'"),
        ({"age": "90 days"}, "field 'age'"),
        ({"weight": "25"}, "field 'weight'"),
    ],
)
def test_subject_yaml_errors_name_file_and_field(meta, message):
    with pytest.raises(ValueError, match=f"subject.yaml: {message}"):
        export.compute_subject(
            "m01", settings=ExportSettings(), subject_meta=meta, path="subject.yaml"
        )


def test_settings_check_age_and_wavelengths():
    assert ExportSettings(subject_age="P60D/P90D").subject_age == "P60D/P90D"
    with pytest.raises(ValueError, match="subject_age"):
        ExportSettings(subject_age="90d")
    with pytest.raises(ValueError, match="lambda"):
        ExportSettings(excitation_lambda_nm=0.0)


def test_correlation_image_known_answer():
    rng = np.random.default_rng(0)
    movie = np.zeros((300, 6, 6))
    movie[:, :3] = rng.normal(size=(300, 1, 1))  # rows 0-2 share one signal
    movie += 0.05 * rng.normal(size=movie.shape)
    movie[:, 5, 5] = 7.0  # a constant pixel
    image = export.compute_correlation_image(movie, batch_frames=64)
    assert image.dtype == np.float32 and image.shape == (6, 6)
    assert image[:2].min() > 0.95  # only shared-signal neighbours
    assert abs(image[4, :4]).max() < 0.2  # only independent-noise neighbours
    # batches change nothing; a bad frame is left out; a crop is the crop's own map
    np.testing.assert_allclose(
        export.compute_correlation_image(movie, batch_frames=300), image, atol=1e-6
    )
    spoiled = movie.copy()
    spoiled[10] = rng.normal(0, 50, (6, 6))
    bad = np.zeros(300, bool)
    bad[10] = True
    np.testing.assert_allclose(
        export.compute_correlation_image(spoiled, bad_frames=bad),
        export.compute_correlation_image(np.delete(movie, 10, axis=0)),
        atol=1e-6,
    )
    crop = export.compute_correlation_image(movie, rows=slice(1, 5), cols=slice(0, 3))
    np.testing.assert_allclose(crop, export.compute_correlation_image(movie[:, 1:5, 0:3]))


def test_correlation_image_matches_pairwise_corrcoef():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(200, 5, 6))
    movie = noise + np.roll(noise, 1, axis=1) + 0.5 * np.roll(noise, (1, -1), axis=(1, 2))
    expected = np.zeros((5, 6))
    for r in range(5):
        for c in range(6):
            corrs = [
                np.corrcoef(movie[:, r, c], movie[:, r + dr, c + dc])[0, 1]
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
                if (dr, dc) != (0, 0) and 0 <= r + dr < 5 and 0 <= c + dc < 6
            ]
            expected[r, c] = np.mean(corrs)
    got = export.compute_correlation_image(movie + 1000.0, batch_frames=70)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.fixture(scope="module")
def suite2p_folder(session, tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "suite2p"
    contents = {}
    for plane in session.planes:
        reg = plane.registration
        rows, cols = slice(*reg.attrs["valid_row_range"]), slice(*reg.attrs["valid_col_range"])
        movie = np.random.default_rng(plane.plane).normal(size=(N_FRAMES, *SHAPE))
        folder = root / f"plane{plane.plane}"
        contents[plane.plane] = export.compute_suite2p_plane(
            plane.masks,
            plane.traces,
            reg,
            correlation_image=export.compute_correlation_image(movie, rows=rows, cols=cols),
            fs_hz=FS_HZ,
            n_planes=2,
            plane=plane.plane,
            tau_s=0.7,
            neuropil_coefficient=0.7,
            diameter_px=8.0,
            reg_file="/data/movie.bin",
            save_path=str(folder),
            data_path="/raw/m07/day02",
        )
        export.write_suite2p_plane(contents[plane.plane], folder)
    return root, contents


def test_suite2p_folder_reads_with_suite2p_loader(session, suite2p_folder):
    from suite2p.io import combined

    root, _ = suite2p_folder
    stat, db, settings, F, Fneu, spks, iscell, probcell, *_ = combined(str(root), save=False)
    soma, dendrite = session.planes
    # soma ROI 3 has an empty mask in this session: suite2p cannot hold it
    kept = [(soma, [0, 1, 2, 5]), (dendrite, [0, 1, 2, 4])]
    assert [s["roi_id"] for s in stat] == [0, 1, 2, 5, 0, 1, 2, 4]
    assert [s["iplane"] for s in stat] == [0] * 4 + [1] * 4
    for name, got in (("F", F), ("Fneu", Fneu), ("spikes", spks)):
        expected = np.concatenate([p.traces[name].sel(roi=ids).to_numpy() for p, ids in kept])
        np.testing.assert_array_equal(got, expected)
    assert iscell.all() and probcell.tolist() == [1.0] * 8
    # combined() tiles planes side by side; dx shifts the second plane's columns
    offsets = [0] * 4 + [SHAPE[1]] * 4
    masks = [p.masks.sel(roi=roi).to_numpy() for p, ids in kept for roi in ids]
    for entry, mask, dx in zip(stat, masks, offsets, strict=True):
        rows, cols = np.nonzero(mask)
        np.testing.assert_array_equal(entry["ypix"], rows)
        np.testing.assert_array_equal(entry["xpix"] - dx, cols)
        np.testing.assert_allclose(entry["lam"], mask[rows, cols])
        assert entry["npix"] == len(rows)
    assert db["Ly"] == SHAPE[0] and db["Lx"] == 2 * SHAPE[1]
    assert settings["fs"] == FS_HZ and settings["tau"] == 0.7


def test_suite2p_folder_has_what_the_gui_uses(suite2p_folder):
    from suite2p.classification import builtin_classfile, classify

    root, contents = suite2p_folder
    folder = root / "plane0"
    stat = np.load(folder / "stat.npy", allow_pickle=True)
    ops = np.load(folder / "ops.npy", allow_pickle=True).item()
    # suite2p/gui/io.py load_files and make_masks_and_enable_buttons
    for entry in stat:
        assert {"ypix", "xpix", "lam", "med", "radius", "npix", "overlap", "snr"} <= set(entry)
        assert entry["radius"] > 0 and len(entry["med"]) == 2
    assert (ops["Ly"], ops["Lx"]) == SHAPE
    for key in ("meanImg", "meanImgE", "refImg"):
        assert ops[key].shape == SHAPE
    crop = (ops["yrange"][1] - ops["yrange"][0], ops["xrange"][1] - ops["xrange"][0])
    assert ops["Vcorr"].shape == crop and ops["max_proj"].shape == crop
    assert ops["tau"] > 0 and ops["fs"] == FS_HZ and ops["nframes"] == N_FRAMES
    assert np.load(folder / "iscell.npy").shape == (len(stat), 2)
    # the GUI's classifier features (skew, npix_norm, compact) are there
    assert classify(stat, builtin_classfile).shape == (len(stat), 2)
    assert np.array_equal(ops["badframes"], np.arange(N_FRAMES) == 7)
    assert contents[0]["db"]["reg_file"] == "/data/movie.bin"


def test_suite2p_rejects_mismatched_ids(session):
    plane = session.planes[0]
    with pytest.raises(ValueError, match="differ from the traces"):
        export.compute_suite2p_plane(
            plane.masks.assign_coords(roi=plane.masks["roi"] + 1),
            plane.traces,
            plane.registration,
            correlation_image=np.zeros((22, 25), np.float32),
            fs_hz=FS_HZ,
            n_planes=2,
            plane=0,
            tau_s=0.7,
            neuropil_coefficient=0.7,
            diameter_px=8.0,
            reg_file="",
            save_path="",
            data_path="",
        )


def test_find_subject_yaml(tmp_path):
    session_dir = tmp_path / "m01" / "day01"
    session_dir.mkdir(parents=True)
    assert export.find_subject_yaml(session_dir) == []
    (tmp_path / "m01" / "subject.yaml").write_text("sex: F\n")
    assert export.find_subject_yaml(session_dir) == [str(tmp_path / "m01" / "subject.yaml")]
