"""Bad-input matrix: each broken raw session must fail with a message naming the file,
the field and the fix, or be handled as documented (see docs/bad_inputs.md).

Sessions are built in ``tmp_path`` in the plain session format and checked with
:func:`analysis.ingest.inspect_session`, the code path of the ``ingest`` rule; plane
splitting uses :func:`analysis.ingest.fill_plane` on :func:`analysis.readers.iter_plane`
as the ``register`` rule does. Config-key and sessions-table cases live in
tests/unit/test_config.py and test_settings.py and are only referenced here.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import rig_files
import scipy.io
import tifffile
import xarray as xr
import yaml

from analysis import config as cfg
from analysis import ingest, io, readers
from analysis.extract import ExtractSettings, compute_dff, deconvolve, detect_events
from analysis.ingest import IngestError, IngestSettings
from analysis.io import RawInputError
from analysis.masks import from_dense
from analysis.track import TargetMatchError, TrackSettings, map_targets

N_FRAMES = 12
SHAPE = (16, 20)
ROLES = {0: "soma", 1: "dendrite"}
TARGET = {"id": "t0", "group": "P+", "plane": 0, "polygon": [[2, 2], [2, 6], [6, 6], [6, 2]]}


def movie(n_frames=N_FRAMES, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(100, 1000, (n_frames, *shape), dtype=np.uint16)


def bci_table(n_frames=N_FRAMES):
    return pd.DataFrame(
        {
            "frame": np.arange(n_frames),
            "trial": np.zeros(n_frames, dtype=int),
            "new_trial": np.eye(1, n_frames, dtype=int)[0],
            "readout": np.linspace(-0.5, 0.5, n_frames),
            "angle_deg": np.full(n_frames, 45.0),
            "reward": np.zeros(n_frames, dtype=int),
            "aversive": np.zeros(n_frames, dtype=int),
        }
    )


def write_session(folder, *, planes=None, meta=None):
    """A valid two-plane session; ``planes`` maps plane -> frames to write instead."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "session.yaml").write_text(
        yaml.safe_dump(meta or {"fs_hz": 10.0, "n_planes": 2, "plane_roles": ROLES})
    )
    for plane, frames in (planes or {0: movie(seed=0), 1: movie(seed=1)}).items():
        tifffile.imwrite(folder / f"plane{plane}.tif", frames)
    bci_table().to_csv(folder / "bci_frames.tsv", sep="\t", index=False)
    (folder / "bci_meta.yaml").write_text(
        yaml.safe_dump(
            {
                "threshold": 1.0,
                "failure_bound": -1.0,
                "target_angle_deg": 45.0,
                "max_trial_frames": 90,
            }
        )
    )
    (folder / "targets.json").write_text(json.dumps([TARGET]))
    return folder


@pytest.fixture
def session(tmp_path):
    return write_session(tmp_path / "m01" / "day01")


def test_session_start_time_is_accepted(session):
    meta = {"fs_hz": 10.0, "n_planes": 2, "plane_roles": ROLES}
    for start in ("2026-03-14T09:30:00-05:00", "2026-03-14"):
        (session / "session.yaml").write_text(yaml.safe_dump({**meta, "session_start_time": start}))
        assert ingest.inspect_session(session)["meta"].n_planes == 2


def test_valid_session_passes(session):
    checked = ingest.inspect_session(session)
    assert (checked["n_frames"], checked["shape"], checked["imaging"].format) == (
        N_FRAMES,
        SHAPE,
        "tiff",
    )
    assert [s["files"] for s in checked["imaging"].planes.values()] == [
        [str(session / "plane0.tif")],
        [str(session / "plane1.tif")],
    ]
    assert checked["meta"].plane_roles == ROLES and checked["targets"][0]["id"] == "t0"


# --- imaging -------------------------------------------------------------------------------


def test_truncated_tiff_names_file_and_says_copy_again(session):
    path = session / "plane1.tif"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RawInputError, match=r"plane1\.tif: .*truncated.*copy it again"):
        ingest.inspect_session(session)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not a TIFF at all", r"plane0\.tif: cannot read TIFF.*corrupt or truncated"),
        (b"II*\x00 header without pages", r"plane0\.tif: TIFF has no image pages; re-export"),
    ],
)
def test_corrupt_tiff_names_file(session, data, match):
    (session / "plane0.tif").write_bytes(data)
    with pytest.raises(RawInputError, match=match):
        ingest.inspect_session(session)


def test_one_plane_with_another_frame_size(tmp_path):
    folder = write_session(tmp_path / "s", planes={0: movie(), 1: movie(shape=(16, 18))})
    with pytest.raises(
        IngestError, match=r"different frame shapes .*\{0: \(16, 20\), 1: \(16, 18\)\}.*re-export"
    ):
        ingest.inspect_session(folder)


def test_interleaved_files_with_another_frame_size(session):
    for plane in (0, 1):
        (session / f"plane{plane}.tif").unlink()
    tifffile.imwrite(session / "a.tif", movie(n_frames=12))
    tifffile.imwrite(session / "b.tif", movie(n_frames=12, shape=(16, 18)))
    with pytest.raises(IngestError, match=r"'b\.tif': \(16, 18\).*Move files of other"):
        ingest.inspect_session(session)


def test_days_with_different_frame_sizes_are_each_accepted(tmp_path):
    # each session records its own shape; days are brought together later by align_days
    small = write_session(
        tmp_path / "day02", planes={0: movie(shape=(14, 20)), 1: movie(shape=(14, 20))}
    )
    shapes = [
        ingest.inspect_session(f)["shape"] for f in (write_session(tmp_path / "day01"), small)
    ]
    assert shapes == [SHAPE, (14, 20)]


def test_interleaved_stack_not_a_multiple_of_n_planes(session):
    for plane in (0, 1):
        (session / f"plane{plane}.tif").unlink()
    tifffile.imwrite(session / "stack.tif", movie(n_frames=2 * N_FRAMES + 1))
    with pytest.raises(
        IngestError, match=r"25 frames is not a multiple of n_planes=2.*Trim the incomplete"
    ):
        ingest.inspect_session(session)


def test_session_folder_without_imaging_files(session):
    for plane in (0, 1):
        (session / f"plane{plane}.tif").unlink()
    with pytest.raises(IngestError, match=r"day01: no imaging files; expected plane<k>\.tif"):
        ingest.inspect_session(session)


# --- rig imaging formats (fixtures as in test_readers.py) ---------------------------------


def rig_session(session, write):
    """The valid session with its plane TIFFs replaced by what ``write(folder)`` writes."""
    for plane in (0, 1):
        (session / f"plane{plane}.tif").unlink()
    write(session)
    return session


def write_scanimage(folder):
    # 2 planes at 10 Hz, as session.yaml says; N_FRAMES volumes, one channel, no flyback
    pages = np.stack([movie(seed=0), movie(seed=1)], axis=1).reshape(-1, *SHAPE)
    data = rig_files.scanimage_frame_data(volume_rate_hz=10.0, n_slices=2)
    rig_files.write_scanimage_tiff(folder / "file_00001.tif", pages.astype(np.int16), data)


def write_sbx(folder):
    # resfreq so that 2 x 5120 / 512 lines / 2 planes = 10 Hz, as session.yaml says
    frames = np.stack([movie(seed=0), movie(seed=1)], axis=1)[:, :, None]
    rig_files.write_sbx(folder / "m01_000_001", frames, resfreq=5120.0, lines=512)


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (0.5, r"file_00001\.tif: TIFF page chain is broken .*truncated or corrupt: copy it again"),
        (-10, r"file_00001\.tif: the last of 24 TIFF frames ends at byte \d+ but the file has"),
    ],
    ids=["inside-an-IFD", "inside-the-last-frame"],
)
def test_truncated_scanimage_tiff(session, cut, match):
    rig_session(session, write_scanimage)
    assert ingest.inspect_session(session)["imaging"].format == "scanimage"
    path = session / "file_00001.tif"
    data = path.read_bytes()
    size = int(len(data) * cut) if cut > 0 else len(data) + cut
    path.write_bytes(data[:size])
    with pytest.raises(RawInputError, match=match):
        ingest.inspect_session(session)


def test_truncated_sbx(session):
    rig_session(session, write_sbx)
    assert ingest.inspect_session(session)["meta"].fs_hz == 10.0
    path = session / "m01_000_001.sbx"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(
        RawInputError, match=r"m01_000_001\.sbx: \d+ bytes is not a whole number of 16 x 20 x 1-"
    ):
        ingest.inspect_session(session)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("missing", r"m01_000_001\.mat: file not found; Scanbox saves the recording's info"),
        ("garbage", r"m01_000_001\.mat: cannot read Scanbox info \.mat .*corrupt or truncated"),
        ("no-resfreq", r"m01_000_001\.mat: Scanbox info has no field 'resfreq'"),
    ],
)
def test_bad_scanbox_info_file(session, damage, match):
    rig_session(session, write_sbx)
    info = session / "m01_000_001.mat"
    if damage == "missing":
        info.unlink()
    elif damage == "garbage":
        info.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(range(256)) * 3)
    else:
        fields = scipy.io.loadmat(info, squeeze_me=True, struct_as_record=False)["info"]
        struct = {k: getattr(fields, k) for k in fields._fieldnames if k != "resfreq"}
        struct["config"] = {k: getattr(fields.config, k) for k in fields.config._fieldnames}
        struct["config"]["knobby"] = {"pos": {"x": 0.0, "y": 0.0, "z": 0.0, "a": 0.0}}
        struct["chan"] = {"nchan": np.uint8(1)}
        scipy.io.savemat(info, {"info": struct})
    with pytest.raises(RawInputError, match=match):
        ingest.inspect_session(session)


@pytest.mark.parametrize("kind", ["hdf5", "nwb"])
def test_truncated_hdf5_or_nwb(session, kind):
    def write(folder):
        if kind == "hdf5":
            stack = np.stack([movie(seed=0), movie(seed=1)], axis=1).reshape(-1, *SHAPE)
            rig_files.write_hdf5(folder / "movie.h5", stack)
        else:
            series = {"plane0": movie(seed=0), "plane1": movie(seed=1)}
            rig_files.write_nwb(folder / "movie.nwb", series, rate_hz=10.0)

    rig_session(session, write)
    assert ingest.inspect_session(session)["imaging"].format == kind
    path = next(session.glob("movie.*"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    label = {"hdf5": "HDF5 file", "nwb": "NWB file"}[kind]
    with pytest.raises(RawInputError, match=rf"{path.name}: cannot read {label} .*truncated"):
        ingest.inspect_session(session)


def test_nwb_without_two_photon_series(session):
    rig_session(session, lambda f: rig_files.write_nwb(f / "s.nwb", {}, rate_hz=10.0))
    with pytest.raises(IngestError, match=r"s\.nwb: no TwoPhotonSeries in acquisition .*none"):
        ingest.inspect_session(session)


def test_nan_zero_and_saturated_frames_are_flagged_not_fatal(tmp_path):
    frames = movie().astype(np.float32)
    frames[3, 4:6, 4:6] = np.nan  # dropped: NaN pixels become 0
    frames[5] = 0.0  # dropped: all-zero frame
    frames[7] = 40000.0  # saturated, clipped to int16
    folder = write_session(tmp_path / "s", planes={0: frames, 1: movie()})
    checked = ingest.inspect_session(folder)
    out = np.empty((checked["n_frames"], *checked["shape"]), dtype=np.int16)
    flags = ingest.fill_plane(
        readers.iter_plane(checked["imaging"].planes[0], batch_frames=5),
        out,
        settings=IngestSettings(),
    )
    assert np.flatnonzero(flags["dropped"]).tolist() == [3, 5]
    assert np.flatnonzero(flags["saturated"]).tolist() == [7]
    assert (out[3, 4:6, 4:6] == 0).all() and (out[7] == np.iinfo(np.int16).max).all()
    np.testing.assert_array_equal(out[0], frames[0].astype(np.int16))


# --- BCI log and metadata ------------------------------------------------------------------


@pytest.mark.parametrize("n_rows", [N_FRAMES - 1, N_FRAMES + 1])
def test_bci_log_with_more_or_fewer_rows_than_volumes(session, n_rows):
    bci_table(n_rows).to_csv(session / "bci_frames.tsv", sep="\t", index=False)
    with pytest.raises(
        IngestError,
        match=rf"bci_frames\.tsv: {n_rows} rows but the imaging has {N_FRAMES} volumes"
        r".*same session",
    ):
        ingest.inspect_session(session)


def test_bci_log_missing_column(session):
    bci_table().drop(columns="reward").to_csv(session / "bci_frames.tsv", sep="\t", index=False)
    with pytest.raises(
        IngestError, match=r"bci_frames\.tsv: missing column\(s\) \['reward'\].*README"
    ):
        ingest.inspect_session(session)


def test_bci_log_non_numeric_value(session):
    table = bci_table().astype({"readout": object})
    table.loc[3, "readout"] = "n/a?"
    table.to_csv(session / "bci_frames.tsv", sep="\t", index=False)
    with pytest.raises(
        IngestError,
        match=r"bci_frames\.tsv: column 'readout' has a non-numeric value 'n/a\?' at row 3; fix",
    ):
        ingest.inspect_session(session)


def test_bci_log_not_a_table(session):
    (session / "bci_frames.tsv").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(RawInputError, match=r"bci_frames\.tsv: not a readable tab-separated table"):
        ingest.inspect_session(session)


def cloose_log(session):
    """Swap the session's bci_frames.tsv for a CLOOSE StimData log BCI_Trials/1.mat (v5)."""
    table = bci_table()
    threshold_used = np.empty((2, 1), dtype=object)  # the cell {range; thresh}
    threshold_used[0, 0], threshold_used[1, 0] = np.array([[-1.0]]), np.array([[1.0]])
    stim = {
        "Angle": table["angle_deg"].to_numpy()[None],
        "z_score": table["readout"].to_numpy()[None],
        "NewTrial": np.array([[1.0, np.nan]]),
        "Reward_frames": np.zeros((1, N_FRAMES)),
        "Aversive_frames": np.zeros((1, N_FRAMES)),
        "threshold_used": threshold_used,
        "targetAngle": 45.0,
    }
    (session / "bci_frames.tsv").unlink()
    path = session / "BCI_Trials" / "1.mat"
    path.parent.mkdir()
    scipy.io.savemat(path, {"StimData": stim})
    return path


def test_cloose_log_is_read_in_place_of_the_tsv(session):
    cloose_log(session)
    checked = ingest.inspect_session(session)
    assert checked["bci_log"] == str(session / "BCI_Trials" / "1.mat")
    pd.testing.assert_frame_equal(
        checked["bci_frames"][["frame", "trial", "new_trial", "angle_deg"]],
        bci_table()[["frame", "trial", "new_trial", "angle_deg"]],
    )


def _truncated(path):
    return path.read_bytes()[: path.stat().st_size // 2]


def _hdf5_truncated(path):
    with h5py.File(path, "w") as mat:  # a v7.3 .mat is HDF5
        mat.create_group("StimData").create_dataset("Angle", data=np.zeros((N_FRAMES, 1)))
    return _truncated(path)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda path: b"MATLAB garbage" * 20, r"cannot read MATLAB \.mat file \(.*corrupt or"),
        (_truncated, r"cannot read MATLAB \.mat file \(.*\); the file is corrupt or truncated"),
        (_hdf5_truncated, r"cannot read MATLAB \.mat file \(OSError: .*truncated"),
        (
            lambda path: scipy.io.savemat(path, {"baseline": np.zeros(3)}) or path.read_bytes(),
            r"no struct 'StimData' \(variables: \['baseline'\]\); a CLOOSE BCI log",
        ),
    ],
)
def test_corrupt_cloose_log_names_file(session, damage, match):
    path = cloose_log(session)
    path.write_bytes(damage(path))
    with pytest.raises(RawInputError, match=r"BCI_Trials/1\.mat: " + match):
        ingest.inspect_session(session)


def test_several_cloose_logs(session):
    cloose_log(session)
    (session / "BCI_Trials" / "2.mat").write_bytes(b"")
    with pytest.raises(
        IngestError, match=r"several CLOOSE logs \['BCI_Trials/1\.mat', 'BCI_Trials/2\.mat'\]"
    ):
        ingest.inspect_session(session)


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (
            "threshold: [1.0,\n",
            RawInputError,
            r"(?s)bci_meta\.yaml: not valid YAML.*fix the file's syntax",
        ),
        ("- 1.0\n- 2.0\n", RawInputError, r"bci_meta\.yaml: expected a YAML mapping"),
        (
            "threshold: 1.0\nfailure_bound: -1.0\ntarget_angle_deg: 45\n",
            IngestError,
            r"bci_meta\.yaml: missing field 'max_trial_frames'; bci_meta\.yaml needs",
        ),
        (
            "threshold: high\nfailure_bound: -1.0\ntarget_angle_deg: 45\nmax_trial_frames: 90\n",
            IngestError,
            r"bci_meta\.yaml: field 'threshold' must be a number, got 'high'; fix",
        ),
    ],
)
def test_corrupt_bci_meta(session, text, error, match):
    (session / "bci_meta.yaml").write_text(text)
    with pytest.raises(error, match=match):
        ingest.inspect_session(session)


# --- targets -------------------------------------------------------------------------------


def test_missing_targets_json(session):
    (session / "targets.json").unlink()
    with pytest.raises(RawInputError, match=r"targets\.json: file not found; add it or fix"):
        ingest.inspect_session(session)


def test_target_polygon_outside_field_of_view(session):
    outside = {**TARGET, "polygon": [[2, 2], [2, 25], [6, 25]]}  # col 25 >= 20 columns
    (session / "targets.json").write_text(json.dumps([outside]))
    with pytest.raises(
        IngestError,
        match=r"targets\.json: target 0 \(id 't0'\): polygon vertex \[2\.0, 25\.0\] lies "
        r"outside the 16 x 20 field of view.*\(row, col\)",
    ):
        ingest.inspect_session(session)


def test_target_matching_no_soma_names_the_target():
    rr, cc = np.mgrid[:24, :24]
    soma = (np.hypot(rr - 6, cc - 6) <= 3)[None].astype(np.float32)
    masks = from_dense(xr.DataArray(soma, dims=("roi", "row", "col"), coords={"roi": [4]}))
    far = [
        {"id": "near", "group": "P+", "polygon": [[4, 4], [4, 8], [8, 8], [8, 4]]},
        {"id": "far", "group": "P-", "polygon": [[16, 16], [16, 20], [20, 20], [20, 16]]},
    ]
    with pytest.raises(TargetMatchError, match=r"targets \['far'\] match no soma ROI.*lower"):
        map_targets(far, masks, shape=(24, 24), settings=TrackSettings())


# --- session.yaml, sessions table and config -----------------------------------------------


@pytest.mark.parametrize(
    ("meta", "overrides", "match"),
    [
        (
            {"fs_hz": 10.0, "n_planes": 2, "plane_roles": {0: "soma", 2: "dendrite"}},
            {},
            r"session\.yaml: plane_roles names plane 2 but n_planes is 2",
        ),
        (  # the sessions table's n_planes wins over session.yaml
            {"fs_hz": 10.0, "n_planes": 2, "plane_roles": ROLES},
            {"n_planes": 1},
            r"session\.yaml: plane_roles names plane 1 but n_planes is 1",
        ),
        (
            {"fs_hz": 10.0, "n_plane": 2, "plane_roles": ROLES},
            {},
            r"session\.yaml: unknown field 'n_plane'; valid fields are .*n_planes",
        ),
        (
            {"fs_hz": 10.0, "n_planes": "2", "plane_roles": ROLES},
            {},
            r"session\.yaml: field 'n_planes' must be an integer >= 1, got '2'",
        ),
        (
            {"fs_hz": 10.0, "n_planes": 2, "plane_roles": ROLES, "session_start_time": "noon"},
            {},
            r"session\.yaml: field 'session_start_time' must be an ISO 8601 date or time",
        ),
    ],
)
def test_bad_session_yaml(session, meta, overrides, match):
    (session / "session.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(IngestError, match=match):
        ingest.inspect_session(session, overrides=overrides)


def test_config_section_of_the_wrong_type_is_stopped_by_the_schema():
    # unknown, misspelled and mistyped keys are tested in
    # test_config.test_bad_config_keys_fail_with_the_key_named and duplicated session
    # names in test_config.test_sessions_table_errors; not repeated here
    import jsonschema

    config = cfg.default_config()
    config["register"] = 5
    with pytest.raises(jsonschema.ValidationError, match="5 is not of type 'object'"):
        jsonschema.validate(config, cfg.config_schema())


# --- traces --------------------------------------------------------------------------------


def test_session_with_no_trials_is_handled(session):
    """A recording without trials (e.g. spontaneous activity): no error, empty results."""
    from analysis import bci, stats

    idle = bci_table().assign(trial=-1, new_trial=0, angle_deg=np.nan)
    idle.to_csv(session / "bci_frames.tsv", sep="\t", index=False)
    checked = ingest.inspect_session(session)
    frames, meta = checked["bci_frames"], checked["bci_meta"]
    trials = bci.compute_trials(frames, meta=meta, fs_hz=10.0)
    assert trials.empty and "outcome" in trials.columns
    epochs = bci.compute_task_error(frames, meta=meta, fs_hz=10.0, settings=bci.BciSettings())
    assert set(epochs["epoch"]) == {"none"} and epochs["error"].isna().all()
    dff = xr.DataArray(
        np.ones((2, N_FRAMES), np.float32),
        dims=("roi", "time"),
        coords={"roi": [0, 1], "frame": ("time", np.arange(N_FRAMES))},
    )
    aligned = bci.align_trials(dff, np.array([], np.int64), fs_hz=10.0, window_s=(-1.0, 1.0),
                               trial_ids=np.array([], int))  # fmt: skip
    assert aligned.sizes["trial"] == 0 and aligned.sizes["roi"] == 2
    behaviour = stats.compute_behaviour(
        trials.assign(subject="m01", session="day01"),
        sessions=pd.DataFrame(
            {"subject": ["m01"], "session": ["day01"], "fs_hz": [10.0], "duration_s": [1.2]}
        ),
    )
    row = behaviour.iloc[0]
    assert row["n_trials"] == 0 and row["rewards_per_min"] == 0 and np.isnan(row["hit_rate"])


@pytest.mark.parametrize("noise_sd", [0.0, 2.0])
def test_silent_neuron_has_finite_dff_and_no_events(noise_sd):
    n_time, fs_hz = 3000, 30.0
    rng = np.random.default_rng(7)
    coords = {"roi": [0], "time": np.arange(n_time) / fs_hz, "frame": ("time", np.arange(n_time))}
    traces = xr.Dataset(
        {
            name: xr.DataArray(
                (level + rng.normal(0, noise_sd, (1, n_time))).astype(np.float32),
                dims=("roi", "time"),
                coords=coords,
            )
            for name, level in (("F", 200.0), ("Fneu", 50.0))
        }
    )
    settings = ExtractSettings()
    dff = compute_dff(traces, fs_hz=fs_hz, settings=settings).dff
    assert np.isfinite(dff).all() and abs(float(dff.median())) < 0.02
    assert detect_events(dff, fs_hz=fs_hz, settings=settings).empty
    spikes = deconvolve(dff, fs_hz=fs_hz, settings=settings).spikes
    assert np.isfinite(spikes).all() and float(spikes.sum()) < 1.0


# --- permissions and a full disk ----------------------------------------------------------


def run_without_permission_override(code):
    """Run ``code`` in a Python subprocess that file permission bits apply to.

    Root bypasses permission bits, so as root the subprocess drops the two capabilities
    that do it (util-linux ``setpriv``); other users are already bound by them.
    """
    import os
    import shutil
    import subprocess
    import sys

    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permission bits cannot apply")
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], capture_output=True, text=True, check=False
    )


def inspect_unprivileged(folder):
    result = run_without_permission_override(
        f"from analysis import ingest\ningest.inspect_session({str(folder)!r})\n"
    )
    assert result.returncode != 0, "the session was read despite missing permission"
    return result.stderr.strip().splitlines()[-1]


def test_raw_file_without_read_permission(session):
    (session / "plane1.tif").chmod(0)
    error = inspect_unprivileged(session)
    assert error.startswith("analysis.io.RawInputError:")
    assert f"{session / 'plane1.tif'}: no read permission" in error
    assert "chmod" in error


def test_raw_folder_without_read_permission(session):
    session.chmod(0)
    try:
        error = inspect_unprivileged(session)
    finally:
        session.chmod(0o755)
    assert error.startswith("analysis.io.RawInputError:")
    assert f"{session / 'session.yaml'}: no read permission" in error


def test_output_folder_not_writable(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    out.chmod(0o555)
    result = run_without_permission_override(
        "import pandas as pd\nfrom analysis import io\n"
        f"io.write_tsv(pd.DataFrame({{'a': [1]}}), {str(out / 'stats' / 'tests.tsv')!r})\n"
    )
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("analysis.io.OutputWriteError:")
    assert f"{out / 'stats' / 'tests.tsv'}: cannot write output, {out / 'stats'} is not" in error
    assert "set 'results' in config/config.yaml" in error
    assert list(out.iterdir()) == []


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: the only way to fill a disk for real without filling the machine's."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _write_netcdf_blocks(path):
    x = np.random.default_rng(0).random((200, 200))
    ds = xr.Dataset({"x": (("a", "b"), x)}, coords={"a": np.arange(200)})
    with io.NetcdfWriter(path, xr.Dataset(coords=ds.coords), dim="a", stage="test") as nc:
        for start in range(0, 200, 50):
            nc.write(ds.isel(a=slice(start, start + 50)))


def _use_scratch_array(path):
    with io.scratch_array(path, (1000, 1000)):
        pass


@pytest.mark.parametrize(
    "write",
    [
        lambda path: io.write_tsv(pd.DataFrame({"a": np.arange(40_000.0)}), path),
        lambda path: io.write_netcdf(
            xr.DataArray(np.random.default_rng(0).random((200, 200)), dims=("a", "b"), name="x"),
            path,
            stage="test",
        ),
        lambda path: io.create_movie(path, io.MovieHeader(100, 64, 64, "int16", 10.0)),
        _write_netcdf_blocks,
        _use_scratch_array,
    ],
    ids=["tsv", "netcdf", "movie", "netcdf_blocks", "scratch"],
)
def test_disk_full_on_output(full_disk, write):
    path = full_disk / "stage" / "output"
    with pytest.raises(io.OutputWriteError, match="cannot write output, the disk is full") as err:
        write(path)
    assert str(err.value).startswith(f"{path}:")
    assert "free space on that disk" in str(err.value)
    assert list((full_disk / "stage").iterdir()) == [], "a failed write left a file behind"
