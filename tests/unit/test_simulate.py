"""Simulator: determinism, truth consistency, null mode, settings checks (tiny presets)."""

import numpy as np
import pandas as pd
import pytest

from analysis import cloose, session_format, simulate
from analysis.settings import ConfigError

TINY = {
    "n_rows": 64,
    "n_cols": 64,
    "n_frames": 400,
    "n_days": 2,
    "n_neurons": 10,
    "n_pos_targets": 2,
    "n_neg_targets": 2,
    "n_distractor_dendrites": 2,
    "max_day_shift_px": 3.0,
    "max_motion_px": 3.0,
    "max_nonrigid_px": 1.0,
    "nonrigid_wavelength_px": 48.0,
    "baseline_frames": 3000,
    "burst_rate_hz": 0.6,
    "max_trial_frames": 60,
    "calibration_trial_frames": 60,
}


def _run(seed=0, **kw):
    settings = simulate.SimulateSettings.from_mapping({**TINY, **kw})
    return settings, simulate.simulate_subject(
        settings, subject="m01", rng=np.random.default_rng(seed)
    )


@pytest.fixture(scope="module")
def tiny():
    return _run()[1]


def test_deterministic(tiny):
    again = _run()[1]
    for a, b in zip(tiny["days"], again["days"], strict=True):
        pd.testing.assert_frame_equal(a["bci"], b["bci"])
        pd.testing.assert_frame_equal(a["events"], b["events"])
        np.testing.assert_array_equal(a["dendrite_calcium"], b["dendrite_calcium"])
    settings = simulate.SimulateSettings.from_mapping(TINY)
    day = tiny["days"][0]
    c1 = np.concatenate(list(simulate.render_plane(day, plane=1, settings=settings)))
    c2 = np.concatenate(
        list(simulate.render_plane(day, plane=1, settings=settings, chunk_frames=77))
    )
    np.testing.assert_array_equal(c1, c2)
    assert c1.dtype == np.uint16 and c1.shape == (400, 64, 64)


def test_planted_residual_sign_by_group_and_epoch(tiny):
    ev = pd.concat([d["events"] for d in tiny["days"]])
    c = ev[ev.kind == "coincident"]
    planted = c.groupby(["group", "epoch"]).planted_residual.mean()
    assert planted[("P+", "reduction")] > 0 > planted[("P-", "reduction")]
    assert planted[("P+", "increase")] < 0 < planted[("P-", "increase")]
    assert (c[c.group == "none"].planted_residual == 0).all()
    assert (c[c.epoch == "none"].planted_residual == 0).all()
    np.testing.assert_allclose(c.dendrite_magnitude - c.predicted, c.residual)
    assert (ev.kind == "dendrite_only").any()


def test_truth_geometry_and_motion_bounds(tiny):
    settings = simulate.SimulateSettings.from_mapping(TINY)
    geom = tiny["geometry"]
    assert (geom["neurons"].group == "P+").sum() == 2 and (geom["neurons"].group == "P-").sum() == 2
    for day in tiny["days"]:
        t = day["transform"]
        assert abs(t["shift_row"]) <= 3 and abs(t["shift_col"]) <= 3
        assert abs(t["rotation_deg"]) <= settings.max_day_rotation_deg
        m = day["motion"]
        for k in range(0, 400, 37):
            field = simulate.displacement_field(m, k, (64, 64))
            assert np.abs(field).max() <= settings.max_motion_px + 1e-6
        assert day["sgeom"]["soma_mask"].shape == (10, 64, 64)
        assert day["sgeom"]["dendrite_mask"].shape == (12, 64, 64)
        assert all((mask > 0).sum() >= 4 for mask in day["sgeom"]["dendrite_mask"])
        assert len(day["targets"]) == 4
    assert tiny["days"][0]["transform"]["rotation_deg"] == 0


def test_bci_log_matches_cloose(tiny):
    params = simulate.SimulateSettings.from_mapping(TINY).task_params
    for day in tiny["days"]:
        bci = day["bci"]
        rerun = cloose.run_task(
            bci.readout.to_numpy(),
            threshold=tiny["threshold"],
            failure_bound=tiny["failure_bound"],
            params=params,
        )
        pd.testing.assert_frame_equal(bci[list(cloose.LOG_COLUMNS)], rerun)


def test_calibration_half_hits():
    settings = simulate.SimulateSettings.from_mapping(TINY)
    rng = np.random.default_rng(3)
    readout = np.cumsum(rng.normal(size=3000)) * 0.01
    thr, _ = cloose.calibrate_threshold(readout, trial_frames=60, rng=rng)
    windows = np.lib.stride_tricks.sliding_window_view(readout, 60).max(axis=1)
    assert 0.35 <= np.mean(windows >= thr) <= 0.6
    assert settings.task_params.max_trial_frames == 60


def test_null_mode_has_no_group_difference():
    _, res = _run(null=True)
    ev = pd.concat([d["events"] for d in res["days"]])
    c = ev[ev.kind == "coincident"]
    assert (c.planted_residual == 0).all()


def test_truth_roundtrip(tmp_path, tiny):
    settings = simulate.SimulateSettings.from_mapping(TINY)
    session_format.write_simulation(tmp_path, tiny, settings=settings)
    ds, ev = session_format.read_truth_session(tmp_path, "m01", "day02")
    assert ds.soma_mask.dims == ("neuron", "row", "col")
    assert ds.spikes.shape == (10, 400) and len(ev) == len(tiny["days"][1]["events"])
    tables = session_format.read_truth_subject(tmp_path, "m01")
    assert list(tables["transforms"].session) == ["day01", "day02"]
    bci = pd.read_csv(tmp_path / "raw/m01/day01/bci_frames.tsv", sep="\t")
    assert {"licks", "shift_row", "shift_col"} <= set(bci.columns)


@pytest.mark.parametrize(
    ("compression", "stored"),
    [("none", "NONE"), ("zlib", "ADOBE_DEFLATE"), ("zlib-fast", "ADOBE_DEFLATE")],
)
def test_plane_writer_compressions(tmp_path, compression, stored):
    import tifffile

    frames = np.random.default_rng(0).integers(0, 1000, (3, 8, 8), dtype=np.uint16)
    with session_format.PlaneWriter(tmp_path / "p.tif", compression=compression) as writer:
        writer.write(frames)
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION[stored]
        np.testing.assert_array_equal(tif.asarray(), frames)
    with pytest.raises(ValueError, match="compression"):
        session_format.PlaneWriter(tmp_path / "q.tif", compression="lzw")


def test_plane_writer_picks_bigtiff_past_four_gib(tmp_path):
    """A 796 x 512 plane of 20,000 frames (16 GB) overflows a classic TIFF's offsets."""
    import tifffile

    frames = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8)
    for max_bytes, big in [(frames.nbytes, False), (20_000 * 796 * 512 * 2, True)]:
        path = tmp_path / f"{max_bytes}.tif"
        with session_format.PlaneWriter(path, compression="none", max_bytes=max_bytes) as writer:
            writer.write(frames)
        with tifffile.TiffFile(path) as tif:
            assert tif.is_bigtiff == big
            np.testing.assert_array_equal(tif.asarray(), frames)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("n_pos_targets", 0, "n_pos_targets"),
        ("max_nonrigid_px", 9.0, "max_nonrigid_px"),
        ("n_rows", 20, "too small"),
        ("bogus", 1, "unknown key"),
        ("inhibited_subjects", ["m02"], "not simulated subjects"),
        ("inhibition_condition", "control", "other than 'control'"),
        ("opto_trial_fraction", 0.0, "opto_trial_fraction"),
    ],
)
def test_bad_settings_rejected(key, value, match):
    with pytest.raises(ConfigError, match=match):
        simulate.SimulateSettings.from_mapping({**TINY, key: value})


def test_planted_epoch_is_the_error_trend_before_each_burst(tiny):
    for day in tiny["days"]:
        coupled = day["events"][day["events"].kind == "coincident"]
        trend = day["error"].set_index("frame")["trend_epoch"]
        np.testing.assert_array_equal(coupled.epoch, trend.loc[coupled.frame].to_numpy())
    centred = simulate.SimulateSettings.from_mapping({**TINY, "planted_epoch": "centred"})
    day = simulate.simulate_subject(centred, subject="m01", rng=np.random.default_rng(0))["days"][0]
    coupled = day["events"][day["events"].kind == "coincident"]
    epoch = day["error"].set_index("frame")["epoch"]
    np.testing.assert_array_equal(coupled.epoch, epoch.loc[coupled.frame].to_numpy())


def test_inhibition_removes_the_residual_on_lit_frames_only():
    long = {"n_frames": 2000, "n_days": 1}
    settings, inhibited = _run(inhibited_subjects=["m01"], opto_trial_fraction=0.5, **long)
    assert inhibited["condition"] == "ndnf_opto" and settings.condition_of("m02") == "control"
    day, plain = inhibited["days"][0], _run(**long)[1]["days"][0]
    bci, events = day["bci"], day["events"]
    # the light covers whole trials, some of them, never the inter-trial frames
    lit_trials = bci.loc[bci.opto > 0, "trial"].unique()
    assert (lit_trials >= 0).all() and 0 < lit_trials.size < bci.trial.max() + 1
    per_trial = bci[bci.trial >= 0].groupby("trial").opto.agg(["min", "max"])
    assert (per_trial["min"] == per_trial["max"]).all()
    coupled = events[events.kind == "coincident"]
    lit = coupled.opto > 0
    np.testing.assert_array_equal(coupled.planted_residual[lit], 0.0)
    np.testing.assert_array_equal(
        coupled.planted_residual[~lit], coupled.instructive_residual[~lit]
    )
    assert (coupled.instructive_residual[lit] != 0).any()
    # the light changes dendrites only: the same bursts and closed loop as without it
    plain_coupled = plain["events"][plain["events"].kind == "coincident"]
    np.testing.assert_array_equal(coupled.frame, plain_coupled.frame)
    pd.testing.assert_frame_equal(bci.drop(columns="opto"), plain["bci"])


def test_inhibition_slows_learning():
    def target_rates(**kw):
        _, result = _run(n_days=3, **kw)
        return result["days"][-1]["rates_hz"]

    control = target_rates()
    slowed = target_rates(
        inhibited_subjects=["m01"], inhibition_residual_removed=0.0, inhibition_learning_factor=0.0
    )
    base = _run(n_days=1)[1]["days"][0]["rates_hz"]
    assert not np.allclose(control, base)  # learning moved the targets' rates
    np.testing.assert_allclose(slowed, base)  # no learning drive under the light


def test_sessions_table_names_conditions(tmp_path):
    settings = simulate.SimulateSettings.from_mapping(
        {**TINY, "n_subjects": 2, "inhibited_subjects": ["m02"]}
    )
    path = session_format.write_sessions_table(tmp_path, settings=settings)
    table = pd.read_csv(path, sep="\t")
    assert table.columns.tolist() == ["subject", "session", "path", "condition"]
    assert table.condition.tolist() == ["control", "control", "ndnf_opto", "ndnf_opto"]
    assert table.path.tolist()[0] == "m01/day01"
