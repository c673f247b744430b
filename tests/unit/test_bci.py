"""Known-answer tests for analysis.bci (hand-made BCI logs, synthetic traces)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.bci import (
    BciSettings,
    align_trials,
    causal_error_trend,
    compare_readout,
    compute_task_error,
    compute_trials,
    replay_cursor,
    trend_epochs,
)
from analysis.cloose import TaskParams, run_task
from analysis.settings import ConfigError

FS_HZ = 10.0
META = {"threshold": 1.0, "failure_bound": -1.0, "target_angle_deg": 90.0, "max_trial_frames": 10}


def _hand_log() -> pd.DataFrame:
    """A hit, a failure, a timeout and a trial cut by the end of the recording.

    Task: 3 grey frames, up to 10 active frames, 4 hold frames (reward TTL on hold
    frame 3, white noise on hold frame 1), 2 grey ITI frames, 5 black after a timeout.
    """
    nan = np.nan
    blocks = [
        # (trial, angles); angle NaN = grey/black
        (0, [nan] * 3 + [45, 60, 60, 75, 75] + [90] * 4),  # hit: decision frame 8
        (-1, [nan] * 2),
        (1, [nan] * 3 + [45, 30, 30, 15] + [0] * 4),  # failure: decision frame 21
        (-1, [nan] * 2),
        (2, [nan] * 3 + [45, 60, 75, 75, 60, 45, 45, 30, 45, 60]),  # timeout (10 active)
        (-1, [nan] * 5),
        (3, [nan] * 3 + [45, 60, 60]),  # cut by the end of the recording
    ]
    trial = np.concatenate([[k] * len(a) for k, a in blocks])
    angle = np.concatenate([a for _, a in blocks]).astype(float)
    n = trial.size
    new_trial = np.zeros(n, dtype=int)
    for k in (0, 1, 2, 3):
        new_trial[np.flatnonzero(trial == k)[0]] = 1
    reward = np.zeros(n, dtype=int)
    reward[10] = 1
    aversive = np.zeros(n, dtype=int)
    aversive[21] = 1
    readout = np.where(np.isnan(angle), 0.0, (angle - 45) / 30)
    return pd.DataFrame(
        {
            "frame": np.arange(n),
            "trial": trial,
            "new_trial": new_trial,
            "readout": readout,
            "angle_deg": angle,
            "reward": reward,
            "aversive": aversive,
            "licks": np.zeros(n, dtype=int),
        }
    )


def test_settings():
    assert BciSettings().window_s == (-2.0, 4.0)
    with pytest.raises(ConfigError, match="error_smoothing"):
        BciSettings.from_mapping({"error_smothing_s": 1.0})
    with pytest.raises(ValueError, match="aligned_post_s"):
        BciSettings(aligned_post_s=0.0)


def test_trials_from_hand_made_log():
    frames = _hand_log()
    trials = compute_trials(frames, meta=META, fs_hz=FS_HZ)
    assert trials.trial.tolist() == [0, 1, 2]  # trial 3 was cut short: left out
    assert trials.outcome.tolist() == ["hit", "failure", "timeout"]
    assert trials.start_frame.tolist() == [0, 14, 27]
    assert trials.end_frame.tolist() == [11, 24, 39]
    assert trials.reward_frame.tolist() == [10, pd.NA, pd.NA]
    assert trials.aversive_frame.tolist() == [pd.NA, 21, pd.NA]
    assert trials.active_start_frame.tolist() == [3, 17, 30]
    assert trials.active_end_frame.tolist() == [7, 20, 39]
    np.testing.assert_allclose(trials.time_to_outcome_s, np.array([5, 4, 10]) / FS_HZ)
    assert frames.equals(_hand_log())  # input untouched


def test_trials_light_on_reads_the_active_frames_only():
    frames = _hand_log()
    assert compute_trials(frames, meta=META, fs_hz=FS_HZ)["opto_fraction"].isna().all()
    opto = np.zeros(len(frames), dtype=int)
    opto[[8, 9, 10]] = 1  # the hit's hold (light on reward): does not mark the trial
    opto[17:21] = 1  # the failure's whole active period
    opto[30:34] = 1  # 4 of the timeout's 10 active frames
    opto[25:27] = 1  # inter-trial interval
    trials = compute_trials(frames.assign(opto=opto), meta=META, fs_hz=FS_HZ)
    np.testing.assert_allclose(trials["opto_fraction"], [0.0, 1.0, 0.4])
    assert trials["light_on"].tolist() == [0, 1, 0]


def test_trials_agree_with_cloose_state_machine():
    params = TaskParams(max_trial_frames=60, grey_frames=5, hold_frames=20, iti_frames=5)
    rng = np.random.default_rng(0)
    readout = np.cumsum(rng.normal(0, 0.08, 4000))
    readout -= np.convolve(readout, np.ones(101) / 101, mode="same")  # keep it near zero
    log_table = run_task(readout, threshold=0.5, failure_bound=-0.5, params=params)
    meta = {**META, "threshold": 0.5, "failure_bound": -0.5, "max_trial_frames": 60}
    trials = compute_trials(log_table, meta=meta, fs_hz=FS_HZ)
    assert set(trials.outcome) == {"hit", "failure", "timeout"}
    hits = trials[trials.outcome == "hit"]
    fails = trials[trials.outcome == "failure"]
    assert len(hits) == int(log_table.reward.sum())  # every reward TTL belongs to a hit
    # decision frame = frame after the last active frame; it crossed the bound there
    assert (readout[hits.active_end_frame + 1] >= 0.5).all()
    assert (readout[fails.active_end_frame + 1] < -0.5).all()
    np.testing.assert_array_equal(hits.reward_frame - hits.active_end_frame, 3)
    np.testing.assert_array_equal(fails.aversive_frame - fails.active_end_frame, 1)
    np.testing.assert_array_equal(
        trials.decision_frame.dropna(),
        (hits_or_fails := trials[trials.outcome != "timeout"]).active_end_frame + 1,
    )
    assert trials[trials.outcome == "timeout"].decision_frame.isna().all()
    assert len(hits_or_fails) == len(hits) + len(fails)
    assert (trials[trials.outcome == "timeout"].n_active_frames == 60).all()
    active = log_table.angle_deg.notna() & (log_table.trial >= 0)
    assert trials.n_active_frames.sum() <= active.sum()


def test_trials_bad_input():
    frames = _hand_log()
    with pytest.raises(ValueError, match="lacks columns"):
        compute_trials(frames.drop(columns="reward"), meta=META, fs_hz=FS_HZ)
    with pytest.raises(ValueError, match="lacks keys"):
        compute_trials(frames, meta={"threshold": 1.0}, fs_hz=FS_HZ)
    with pytest.raises(ValueError, match="'frame' must be"):
        compute_trials(frames.iloc[::-1], meta=META, fs_hz=FS_HZ)
    split = frames.copy()
    split.loc[5, "trial"] = -1
    with pytest.raises(ValueError, match="contiguous"):
        compute_trials(split, meta=META, fs_hz=FS_HZ)
    with pytest.raises(ValueError, match="must exceed failure_bound"):
        compute_trials(frames, meta={**META, "threshold": -2.0}, fs_hz=FS_HZ)


def test_task_error_and_epochs():
    settings = BciSettings(error_smoothing_s=0.0, epoch_min_duration_s=0.0)
    err = compute_task_error(_hand_log(), meta=META, fs_hz=FS_HZ, settings=settings)
    assert list(err.columns) == ["frame", "trial", "error", "error_derivative", "epoch"]
    assert len(err) == len(_hand_log())
    np.testing.assert_array_equal(err.error.values[3:8], [3, 2, 2, 1, 1])
    assert err.error.iloc[:3].isna().all() and err.error.iloc[8:17].isna().all()  # grey, hold
    np.testing.assert_allclose(
        err.error_derivative.values[3:8], np.array([-1, -0.5, -0.5, -0.5, 0]) * FS_HZ
    )
    assert err.epoch.iloc[3:8].tolist() == ["reduction"] * 4 + ["none"]
    # failure trial: error grows 3, 4, 4, 5
    assert err.epoch.iloc[17:21].tolist() == ["increase"] * 4
    assert (err.epoch[err.error.isna()] == "none").all()
    assert (err.trial.iloc[3:8] == 0).all() and (err.trial.iloc[:3] == -1).all()


def test_epoch_min_duration_and_smoothing():
    # 3-frame epochs at 10 Hz are 0.3 s: dropped with a 0.5 s minimum
    err = compute_task_error(
        _hand_log(),
        meta=META,
        fs_hz=FS_HZ,
        settings=BciSettings(error_smoothing_s=0.0, epoch_min_duration_s=0.5),
    )
    assert (err.epoch.iloc[30:40] == "none").all()
    smooth = compute_task_error(
        _hand_log(), meta=META, fs_hz=FS_HZ, settings=BciSettings(error_smoothing_s=0.3)
    )
    # smoothing spreads but keeps the sign of a monotonic decrease
    assert (smooth.error_derivative.iloc[3:7] < 0).all()
    np.testing.assert_array_equal(
        smooth.error.values,
        compute_task_error(
            _hand_log(), meta=META, fs_hz=FS_HZ, settings=BciSettings()
        ).error.values,
    )


def _frame_traces(n_roi: int, n_time: int) -> xr.DataArray:
    values = np.arange(n_time, dtype=np.float32)[None] + 1000 * np.arange(n_roi)[:, None]
    return xr.DataArray(
        values,
        dims=("roi", "time"),
        coords={
            "roi": np.arange(n_roi) + 7,
            "time": np.arange(n_time) / FS_HZ,
            "frame": ("time", np.arange(n_time)),
        },
    )


def test_align_trials_shapes_and_nan_edges():
    traces = _frame_traces(2, 100)
    out = align_trials(traces, [1, 50, 98], fs_hz=FS_HZ, window_s=(-0.2, 0.3), trial_ids=[4, 5, 6])
    assert out.dims == ("trial", "roi", "lag")
    assert out.shape == (3, 2, 6)
    np.testing.assert_allclose(out.lag.values, [-0.2, -0.1, 0.0, 0.1, 0.2, 0.3])
    assert out.trial.values.tolist() == [4, 5, 6]
    assert out.roi.values.tolist() == [7, 8]
    np.testing.assert_array_equal(out.sel(trial=5, roi=7).values, [48, 49, 50, 51, 52, 53])
    np.testing.assert_array_equal(out.sel(trial=5, roi=8).values, 1000 + np.arange(48, 54))
    first = out.sel(trial=4, roi=7).values
    assert np.isnan(first[0]) and np.array_equal(first[1:], [0, 1, 2, 3, 4])
    last = out.sel(trial=6, roi=7).values
    assert np.array_equal(last[:4], [96, 97, 98, 99]) and np.isnan(last[4:]).all()
    # frame coordinates that do not start at 0 are honoured
    shifted = traces.isel(time=slice(10, None))
    again = align_trials(shifted, [50], fs_hz=FS_HZ, window_s=(-0.2, 0.3))
    np.testing.assert_array_equal(again.values[0, 0], [48, 49, 50, 51, 52, 53])


def test_align_trials_bad_input():
    traces = _frame_traces(1, 20)
    with pytest.raises(ValueError, match="whole frame numbers"):
        align_trials(traces, [3, np.nan], fs_hz=FS_HZ, window_s=(-0.1, 0.1))
    with pytest.raises(ValueError, match="start must be < stop"):
        align_trials(traces, [3], fs_hz=FS_HZ, window_s=(0.5, 0.1))
    with pytest.raises(ValueError, match="contiguous"):
        align_trials(traces.isel(time=[0, 2, 3]), [3], fs_hz=FS_HZ, window_s=(-0.1, 0.1))
    with pytest.raises(ValueError, match="trial_ids"):
        align_trials(traces, [3], fs_hz=FS_HZ, window_s=(-0.1, 0.1), trial_ids=[1, 2])


def _independent_readout(F: np.ndarray, pos: np.ndarray, *, window: int) -> np.ndarray:
    """Frame-by-frame loop, as the rig computes it (causal F0, 3-frame mean)."""
    n_time = F.shape[1]
    dff = np.empty_like(F)
    for n in range(n_time):
        f0 = np.percentile(F[:, max(0, n - window + 1) : n + 1], 10, axis=1)
        dff[:, n] = (F[:, n] - f0) / f0
    x = dff[pos].mean(axis=0) - dff[~pos].mean(axis=0)
    return np.array([x[max(0, n - 2) : n + 1].mean() for n in range(n_time)])


def test_replay_reproduces_independent_readout():
    rng = np.random.default_rng(1)
    n_time = 400
    F = 200 + 20 * rng.random((4, n_time)) + np.linspace(0, 30, n_time)
    groups = ["P+", "P-", "P+", "P-"]
    target_F = _frame_traces(4, n_time).copy(data=F.astype(np.float64))
    meta = {**META, "max_trial_frames": 25}  # F0 window = 4 x 25 = 100 frames
    replayed = replay_cursor(target_F, groups, meta=meta, params=TaskParams())
    expected = _independent_readout(F, np.array([g == "P+" for g in groups]), window=100)
    np.testing.assert_allclose(replayed, expected, rtol=1e-10, atol=1e-12)
    agreement = compare_readout(replayed, expected)
    assert agreement["corr"] > 0.999999 and agreement["rmse"] < 1e-10
    assert agreement["n_frames"] == n_time


def test_compare_readout_known_error_and_nan():
    rng = np.random.default_rng(2)
    logged = rng.normal(size=5000)
    replayed = logged + 0.1 * rng.normal(size=5000)
    replayed[:10] = np.nan
    out = compare_readout(replayed, logged)
    assert out["n_frames"] == 4990
    assert abs(out["rmse"] - 0.1) < 0.01 and out["corr"] > 0.99
    with pytest.raises(ValueError, match="frames vs"):
        compare_readout(replayed[:-1], logged)


def test_replay_bad_input():
    target_F = _frame_traces(2, 50).copy(data=np.full((2, 50), 100.0))
    with pytest.raises(ValueError, match="2 target traces"):
        replay_cursor(target_F, ["P+"], meta=META, params=TaskParams())
    with pytest.raises(ValueError, match="'P\\+' or 'P-'"):
        replay_cursor(target_F, ["P+", "X"], meta=META, params=TaskParams())
    bad = target_F.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        replay_cursor(bad, ["P+", "P-"], meta=META, params=TaskParams())


def test_causal_error_trend_reads_only_the_window_before_each_frame():
    error = np.array([np.nan, 5, 4, 3, 2, 2, 2, np.nan, 1, 2, 3, 4], dtype=float)
    trend = causal_error_trend(error, fs_hz=2.0, window_s=1.5, gap_s=0.5)
    # frame 5: window = frames 2..4 (3 frames ending 1 frame before): slope -1 step/frame
    assert trend[5] == pytest.approx(-2.0)
    # frame 7: window 4..6 flat; frame 8: window 5..7 holds the NaN between trials
    assert trend[7] == pytest.approx(0.0) and np.isnan(trend[8])
    assert trend[11] == pytest.approx(2.0) and np.isnan(trend[:4]).all()
    assert list(trend_epochs(trend[[5, 7, 8, 11]])) == ["reduction", "none", "none", "increase"]
