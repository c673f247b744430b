"""Imaging readers: ScanImage TIFF, Scanbox .sbx, HDF5 and NWB sessions ingest to the
plain session format's per-plane frames, with fs_hz and n_planes from their metadata.

Each fixture is written the way the format's own tools write it (rig_files.py: ScanImage
and Scanbox byte by byte, HDF5 with h5py, NWB with pynwb); every ingested plane is
compared value by value with the frames that went in.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from rig_files import (
    scanimage_frame_data,
    write_hdf5,
    write_nwb,
    write_sbx,
    write_scanimage_tiff,
)

from analysis import ingest, readers
from analysis.ingest import IngestError, IngestSettings

SHAPE = (12, 10)  # rows != cols: a swapped axis cannot pass
ROLES = {0: "soma", 1: "dendrite"}


def frames_of(shape, seed):
    return np.random.default_rng(seed).integers(0, 30000, shape).astype(np.int16)


def write_session_files(folder, *, n_frames, session=None):
    """session.yaml (plane roles only, unless ``session``), BCI log, meta and targets."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "session.yaml").write_text(yaml.safe_dump(session or {"plane_roles": ROLES}))
    pd.DataFrame(
        {
            "frame": np.arange(n_frames),
            "trial": np.zeros(n_frames, dtype=int),
            "new_trial": np.eye(1, n_frames, dtype=int)[0],
            "readout": np.zeros(n_frames),
            "angle_deg": np.full(n_frames, 45.0),
            "reward": np.zeros(n_frames, dtype=int),
            "aversive": np.zeros(n_frames, dtype=int),
        }
    ).to_csv(folder / "bci_frames.tsv", sep="\t", index=False)
    (folder / "bci_meta.yaml").write_text(
        yaml.safe_dump(
            {"threshold": 1, "failure_bound": -1, "target_angle_deg": 90, "max_trial_frames": 9}
        )
    )
    target = {"id": "t0", "group": "P+", "plane": 0, "polygon": [[1, 1], [1, 4], [4, 4]]}
    (folder / "targets.json").write_text(json.dumps([target]))
    return folder


def ingest_planes(checked, settings=None):
    """Every plane as the ingest_plane rule writes it: int16 (time, row, col)."""
    settings = settings or IngestSettings()
    out = {}
    for plane, source in checked["imaging"].planes.items():
        movie = np.zeros((checked["n_frames"], *checked["shape"]), dtype=np.int16)
        ingest.fill_plane(readers.iter_plane(source, batch_frames=3), movie, settings=settings)
        out[plane] = movie
    return out


# --- ScanImage -----------------------------------------------------------------------------

SI_RATE = 14.9822  # volume rate, Hz


def scanimage_pages(n_volumes, *, n_slices=2, channels=(1, 2), flyback=1, extra_pages=0, seed=0):
    """Pages in ScanImage's order: per volume, per slice each channel, then flyback frames.

    Returns (pages, {(plane, channel): frames (volume, row, col)}).
    """
    n_ch = len(channels)
    source = {
        (p, c): frames_of((n_volumes, *SHAPE), seed=seed + 10 * p + c)
        for p in range(n_slices)
        for c in channels
    }
    pages = []
    for v in range(n_volumes):
        pages += [source[(p, c)][v] for p in range(n_slices) for c in channels]
        pages += [np.full(SHAPE, -7, np.int16)] * (flyback * n_ch)  # flyback: never ingested
    pages += [np.full(SHAPE, 99, np.int16)] * extra_pages  # an unfinished last volume
    return np.stack(pages), source


@pytest.fixture
def scanimage_session(tmp_path):
    """Two files (split mid-volume), 2 planes x 2 channels + 1 flyback, 7 volumes + 3 pages."""
    n_volumes = 7
    pages, source = scanimage_pages(n_volumes, extra_pages=3)
    data = scanimage_frame_data(volume_rate_hz=SI_RATE, n_slices=2, channels=(1, 2), flyback=1)
    folder = write_session_files(tmp_path / "si", n_frames=n_volumes)
    write_scanimage_tiff(folder / "file_00001.tif", pages[:17], data)
    write_scanimage_tiff(folder / "file_00002.tif", pages[17:], data, first_frame=18)
    return folder, source


def test_scanimage_fixture_is_what_tifffile_recognises(scanimage_session):
    folder, _ = scanimage_session
    with tifffile.TiffFile(folder / "file_00001.tif") as tif:
        assert tif.is_scanimage and tif.is_bigtiff
        meta = tif.scanimage_metadata
        assert meta["version"] == 3
        assert meta["FrameData"]["SI.hRoiManager.scanVolumeRate"] == SI_RATE
        assert tif.pages[3].description.startswith("frameNumbers = 4")


@pytest.mark.parametrize(("channel", "read"), [(0, 1), (1, 1), (2, 2)])
def test_scanimage_session_ingests_each_plane_of_the_chosen_channel(
    scanimage_session, channel, read
):
    folder, source = scanimage_session
    settings = IngestSettings(functional_channel=channel)
    checked = ingest.inspect_session(folder, settings=settings)
    assert checked["imaging"].format == "scanimage"
    assert (checked["meta"].fs_hz, checked["meta"].n_planes) == (SI_RATE, 2)
    assert (checked["n_frames"], checked["shape"]) == (7, SHAPE)
    assert checked["imaging"].incomplete_frames == 3
    planes = ingest_planes(checked, settings)
    for plane in (0, 1):
        np.testing.assert_array_equal(planes[plane], source[(plane, read)])


def test_scanimage_planar_single_file_rate_from_frame_rate(tmp_path):
    frames = frames_of((9, *SHAPE), seed=3)
    data = scanimage_frame_data(volume_rate_hz=30.0, n_slices=1)
    del data["SI.hRoiManager.scanVolumeRate"]
    folder = write_session_files(tmp_path / "si", n_frames=9, session={"plane_roles": {0: "soma"}})
    write_scanimage_tiff(folder / "file_00001.tif", frames, data)
    checked = ingest.inspect_session(folder)
    assert (checked["meta"].fs_hz, checked["meta"].n_planes) == (30.0, 1)
    np.testing.assert_array_equal(ingest_planes(checked)[0], frames)


def test_scanimage_newer_keys_and_log_averaging(tmp_path):
    # ScanImage 2020+: actualNumSlices and frames per volume with flyback; 2x log averaging
    pages, source = scanimage_pages(4, channels=(2,), flyback=2)
    extra = {
        "SI.hStackManager.actualNumSlices": "2",
        "SI.hStackManager.numFramesPerVolume": "2",
        "SI.hStackManager.numFramesPerVolumeWithFlyback": "4",
        "SI.hFastZ.numDiscardFlybackFrames": "0",  # superseded by the two keys above
        "SI.hScan2D.logAverageFactor": "2",
    }
    data = scanimage_frame_data(volume_rate_hz=20.0, n_slices=2, channels=(2,), extra=extra)
    folder = write_session_files(tmp_path / "si", n_frames=4)
    write_scanimage_tiff(folder / "file_00001.tif", pages, data)
    checked = ingest.inspect_session(folder)
    assert (checked["meta"].fs_hz, checked["meta"].n_planes) == (10.0, 2)
    planes = ingest_planes(checked)
    for plane in (0, 1):
        np.testing.assert_array_equal(planes[plane], source[(plane, 2)])


@pytest.mark.parametrize(
    ("session", "match"),
    [
        (
            {"n_planes": 3, "plane_roles": ROLES},
            r"si/session\.yaml: 'n_planes' is 3 but .*file_00001\.tif "
            r"\(SI\.hStackManager\.numSlices\) says 2; remove 'n_planes'",
        ),
        (
            {"fs_hz": 30.0, "plane_roles": ROLES},
            r"si/session\.yaml: 'fs_hz' is 30\.0 but .*file_00001\.tif "
            r"\(SI\.hRoiManager\.scanVolumeRate\) says 14\.98",
        ),
    ],
)
def test_session_yaml_disagreeing_with_scanimage_metadata(scanimage_session, session, match):
    folder, _ = scanimage_session
    (folder / "session.yaml").write_text(yaml.safe_dump(session))
    with pytest.raises(IngestError, match=match):
        ingest.inspect_session(folder)


def test_session_yaml_agreeing_with_the_metadata_is_kept(scanimage_session):
    folder, _ = scanimage_session
    (folder / "session.yaml").write_text(
        yaml.safe_dump({"fs_hz": 15.0, "n_planes": 2, "plane_roles": ROLES})
    )
    assert ingest.inspect_session(folder)["meta"].fs_hz == 15.0  # within 1%


def test_sessions_table_override_disagreeing_is_named(scanimage_session):
    folder, _ = scanimage_session
    with pytest.raises(IngestError, match=r"si: the sessions table: 'n_planes' is 1 but"):
        ingest.inspect_session(folder, overrides={"n_planes": 1})


def test_scanimage_channel_not_saved(scanimage_session):
    folder, _ = scanimage_session
    with pytest.raises(
        IngestError, match=r"functional_channel is 3 but .* saved channels \[1, 2\]"
    ):
        ingest.inspect_session(folder, settings=IngestSettings(functional_channel=3))


def test_scanimage_files_from_different_setups(scanimage_session):
    folder, _ = scanimage_session
    pages, _ = scanimage_pages(2, channels=(1,))
    data = scanimage_frame_data(volume_rate_hz=SI_RATE, n_slices=2, channels=(1,), flyback=1)
    write_scanimage_tiff(folder / "file_00003.tif", pages, data)
    with pytest.raises(IngestError, match=r"file_00003\.tif: ScanImage settings differ from"):
        ingest.inspect_session(folder)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"SI.hRoiManager.mroiEnable": "true"}, r"mroiEnable is true; multi-ROI"),
        ({"SI.hStackManager.framesPerSlice": "3"}, r"framesPerSlice is 3 in a 2-slice"),
    ],
)
def test_scanimage_recordings_that_are_not_read(tmp_path, extra, match):
    pages, _ = scanimage_pages(2, channels=(1,), flyback=0)
    data = scanimage_frame_data(volume_rate_hz=SI_RATE, n_slices=2, extra=extra)
    folder = write_session_files(tmp_path / "si", n_frames=2)
    write_scanimage_tiff(folder / "file_00001.tif", pages, data)
    with pytest.raises(IngestError, match=r"file_00001\.tif: SI\..*" + match):
        ingest.inspect_session(folder)


# --- Scanbox -------------------------------------------------------------------------------


@pytest.fixture
def sbx_session(tmp_path):
    """2 planes (optotune), 2 channels, 6 volumes and one frame of an unfinished volume."""
    source = np.random.default_rng(5).integers(0, 30000, (6, 2, 2, *SHAPE)).astype(np.uint16)
    folder = write_session_files(tmp_path / "sbx", n_frames=6)
    write_sbx(folder / "m01_000_001", source, resfreq=7930.0)
    sbx = folder / "m01_000_001.sbx"
    sbx.write_bytes(sbx.read_bytes() + np.full(2 * SHAPE[0] * SHAPE[1], 7, "<u2").tobytes())
    return folder, source


def test_scanbox_session_ingests_each_plane(sbx_session):
    folder, source = sbx_session
    checked = ingest.inspect_session(folder)
    assert checked["imaging"].format == "sbx"
    # bidirectional: 2 lines per mirror period, volume = 2 planes
    assert checked["meta"].fs_hz == pytest.approx(2 * 7930.0 / 512 / 2)
    assert (checked["meta"].n_planes, checked["n_frames"], checked["shape"]) == (2, 6, SHAPE)
    assert checked["imaging"].incomplete_frames == 1
    assert [p.name for p in checked["imaging"].files] == ["m01_000_001.sbx", "m01_000_001.mat"]
    for channel, settings in ((0, IngestSettings()), (1, IngestSettings(functional_channel=2))):
        planes = ingest_planes(ingest.inspect_session(folder, settings=settings), settings)
        for plane in (0, 1):
            np.testing.assert_array_equal(planes[plane], source[:, plane, channel])


def test_scanbox_info_is_not_taken_for_a_cloose_log(sbx_session):
    folder, _ = sbx_session
    (folder / "bci_frames.tsv").unlink()
    from analysis.io import RawInputError

    with pytest.raises(RawInputError, match="no BCI log"):
        ingest.find_bci_log(folder)
    (folder / "BCI_Trials").mkdir()
    (folder / "BCI_Trials" / "1.mat").write_bytes(b"")
    assert ingest.find_bci_log(folder) == folder / "BCI_Trials" / "1.mat"


def test_scanbox_channel_beyond_the_recording(sbx_session):
    folder, _ = sbx_session
    with pytest.raises(IngestError, match=r"m01_000_001\.mat: ingest\.functional_channel is 3"):
        ingest.inspect_session(folder, settings=IngestSettings(functional_channel=3))


# --- HDF5 ----------------------------------------------------------------------------------


def test_hdf5_session_ingests_interleaved_planes_with_metadata(tmp_path):
    stack = frames_of((16, *SHAPE), seed=7)
    folder = write_session_files(tmp_path / "h5", n_frames=8)
    write_hdf5(
        folder / "movie.h5",
        stack,
        dataset="/acquisition/mov",
        attrs={"fs_hz": 29.5, "n_planes": 2},
        extra={"/acquisition/timestamps": np.arange(16.0)},
    )
    checked = ingest.inspect_session(folder)
    assert checked["imaging"].format == "hdf5"
    assert (checked["meta"].fs_hz, checked["meta"].n_planes) == (29.5, 2)
    planes = ingest_planes(checked)
    np.testing.assert_array_equal(planes[0], stack[0::2])
    np.testing.assert_array_equal(planes[1], stack[1::2])


def test_hdf5_without_metadata_uses_session_yaml_and_the_dataset_setting(tmp_path):
    stack = frames_of((5, *SHAPE), seed=8)
    folder = write_session_files(
        tmp_path / "h5",
        n_frames=5,
        session={"fs_hz": 7.5, "n_planes": 1, "plane_roles": {0: "soma"}},
    )
    write_hdf5(folder / "movie.hdf5", stack, dataset="/raw", extra={"/mean_stack": stack[:2]})
    with pytest.raises(IngestError, match=r"2 3-D datasets \['/mean_stack', '/raw'\]"):
        ingest.inspect_session(folder)
    settings = IngestSettings(hdf5_dataset="raw")
    checked = ingest.inspect_session(folder, settings=settings)
    assert (checked["meta"].fs_hz, checked["meta"].n_planes) == (7.5, 1)
    np.testing.assert_array_equal(ingest_planes(checked, settings)[0], stack)
    with pytest.raises(IngestError, match=r"no 3-D .* dataset '/mov' \(ingest\.hdf5_dataset\)"):
        ingest.inspect_session(folder, settings=IngestSettings(hdf5_dataset="/mov"))


# --- NWB -----------------------------------------------------------------------------------


def test_nwb_session_one_series_per_plane(tmp_path):
    soma, dendrite = frames_of((6, *SHAPE), seed=1), frames_of((6, *SHAPE), seed=2)
    folder = write_session_files(tmp_path / "nwb", n_frames=6)
    write_nwb(folder / "session.nwb", {"TwoPhotonSeries_a": soma, "TwoPhotonSeries_b": dendrite},
              rate_hz=31.25)  # fmt: skip
    checked = ingest.inspect_session(folder)
    assert checked["imaging"].format == "nwb"
    assert (checked["meta"].fs_hz, checked["meta"].n_planes, checked["shape"]) == (31.25, 2, SHAPE)
    planes = ingest_planes(checked)
    np.testing.assert_array_equal(planes[0], soma)
    np.testing.assert_array_equal(planes[1], dendrite)
    # the nwb_series setting picks and orders the series
    settings = IngestSettings(nwb_series=("TwoPhotonSeries_b", "TwoPhotonSeries_a"))
    np.testing.assert_array_equal(
        ingest_planes(ingest.inspect_session(folder, settings=settings), settings)[0], dendrite
    )
    with pytest.raises(IngestError, match=r"no TwoPhotonSeries \['raw'\] .*ingest\.nwb_series"):
        ingest.inspect_session(folder, settings=IngestSettings(nwb_series=("raw",)))


def test_nwb_volume_series_and_timestamps(tmp_path):
    volume = frames_of((5, *SHAPE, 2), seed=4)  # (time, row, col, z)
    folder = write_session_files(tmp_path / "nwb", n_frames=5)
    write_nwb(folder / "s.nwb", {"volume": volume}, rate_hz=None, timestamps=np.arange(5) * 0.1,
              trials=False)  # fmt: skip
    checked = ingest.inspect_session(folder)
    assert checked["meta"].fs_hz == pytest.approx(10.0)
    assert checked["meta"].n_planes == 2
    planes = ingest_planes(checked)
    for plane in (0, 1):
        np.testing.assert_array_equal(planes[plane], volume[..., plane])


def test_nwb_series_with_different_rates(tmp_path):
    folder = write_session_files(tmp_path / "nwb", n_frames=4)
    series = {"a": frames_of((4, *SHAPE), 0), "b": frames_of((4, *SHAPE), 1)}
    write_nwb(folder / "s.nwb", series, rate_hz={"a": 10.0, "b": 20.0})
    with pytest.raises(IngestError, match=r"s\.nwb: TwoPhotonSeries rates differ"):
        readers.read_imaging_meta(folder, settings=IngestSettings())
    meta = readers.read_imaging_meta(folder, settings=IngestSettings(nwb_series=("b",)))
    assert (meta.fs_hz, meta.n_planes) == (20.0, 1)


def add_rig_bci_log(path, series, *, trials):
    """Append a rig's BCI log to an NWB file: ``trials`` [(start, stop)] and TimeSeries
    ``{name: (data, timestamps)}`` in acquisition."""
    from pynwb import NWBHDF5IO, TimeSeries

    with NWBHDF5IO(str(path), "a") as handle:
        nwb = handle.read()
        for start, stop in trials:
            nwb.add_trial(start_time=start, stop_time=stop)
        for name, (data, timestamps) in series.items():
            nwb.add_acquisition(
                TimeSeries(name=name, data=data, unit="n.a.", timestamps=timestamps)
            )
        handle.write(nwb)


@pytest.fixture
def rig_nwb_session(tmp_path):
    """A volume TwoPhotonSeries on the rig's clock (timestamps from 100 s, jittered), no
    bci_frames.tsv; bci_meta.yaml gives the task parameters. Returns (folder, times)."""
    n = 20
    folder = write_session_files(tmp_path / "rig", n_frames=n)
    (folder / "bci_frames.tsv").unlink()
    rng = np.random.default_rng(5)
    times = 100.0 + 0.1 * np.arange(n) + rng.uniform(-0.01, 0.01, n)
    write_nwb(folder / "rig.nwb", {"volume": frames_of((n, *SHAPE, 2), seed=6)}, rate_hz=None,
              timestamps=times, trials=False)  # fmt: skip
    return folder, times


def test_nwb_rig_bci_log_in_acquisition_with_timestamps(rig_nwb_session):
    folder, times = rig_nwb_session
    n = times.size
    trial = np.full(n, -1)
    trial[2:9], trial[12:19] = 0, 1
    readout = np.linspace(-1, 1, n)
    angle = np.where(trial >= 0, 45.0, np.nan)
    ttl = {"reward_ttl": 7, "aversive_ttl": 17}
    volts = {name: np.where(np.arange(n) == k, 5.0, 0.0) for name, k in ttl.items()}
    sampled = times + 0.02  # the behaviour clock lags the imaging by under half a volume
    add_rig_bci_log(
        folder / "rig.nwb",
        {"readout": (readout, sampled), "grating_angle": (angle, sampled)}
        | {name: (v, sampled) for name, v in volts.items()},
        trials=[(100.2, 100.9), (101.2, 101.9)],
    )
    checked = ingest.inspect_session(folder)
    assert checked["bci_log"] == str(folder / "rig.nwb")
    expected = pd.DataFrame(
        {
            "frame": np.arange(n),
            "trial": trial,
            "new_trial": np.isin(np.arange(n), [2, 12]).astype(int),
            "readout": readout,
            "angle_deg": angle,
            "reward": (volts["reward_ttl"] > 0).astype(int),
            "aversive": (volts["aversive_ttl"] > 0).astype(int),
        }
    )
    pd.testing.assert_frame_equal(
        checked["bci_frames"], ingest.check_bci_frames(expected, n_frames=n, path="expected")
    )
    assert checked["bci_meta"]["max_trial_frames"] == 9  # from bci_meta.yaml


@pytest.mark.parametrize(
    ("step", "trials", "match"),
    [
        (
            2,
            [(100.2, 100.9)],
            r"rig\.nwb: TimeSeries acquisition/readout has 10 samples at 100.*s but the "
            r"imaging TwoPhotonSeries 'volume' has 20 volumes .*one sample per imaging volume",
        ),
        (
            1,
            [(100.2, 100.9), (100.8, 101.5)],
            r"rig\.nwb: trial 1 overlaps trial 0 in the trials table; trials must not overlap",
        ),
        (
            1,
            [(100.2, 100.9), (200.0, 201.0)],
            r"rig\.nwb: trial 1 \(200\.\.201 s\) holds no volume of the imaging "
            r"TwoPhotonSeries 'volume' \(100.*s\); trial times must be seconds on the imaging",
        ),
    ],
)
def test_nwb_rig_bci_log_that_does_not_fit_the_imaging(rig_nwb_session, step, trials, match):
    folder, times = rig_nwb_session
    series = {
        name: (np.zeros(times[::step].size), times[::step])
        for name in ("readout", "grating_angle", "reward_ttl", "aversive_ttl")
    }
    add_rig_bci_log(folder / "rig.nwb", series, trials=trials)
    with pytest.raises(IngestError, match=match):
        ingest.inspect_session(folder)


# --- choosing the reader -------------------------------------------------------------------


def test_find_imaging_lists_the_files_the_rule_needs(tmp_path, sbx_session):
    folder, _ = sbx_session
    kind, files = readers.find_imaging(folder)
    assert (kind, [f.name for f in files]) == ("sbx", ["m01_000_001.sbx", "m01_000_001.mat"])
    tifffile.imwrite(folder / "extra.tif", np.zeros((2, *SHAPE), np.uint16))
    with pytest.raises(IngestError, match=r"imaging files of several formats .*Move the other"):
        readers.find_imaging(folder)
