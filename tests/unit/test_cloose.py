"""Known-answer tests of the CLOOSE closed loop."""

import numpy as np
import pytest

from analysis import cloose
from analysis.cloose import TaskParams


def test_angles_and_positions():
    params = TaskParams()
    np.testing.assert_allclose(params.angles_deg, [0, 15, 30, 45, 60, 75, 90])
    # edges linspace(0, 5, 6) = 0, 1, 2, 3, 4, 5
    readout = np.array([-0.1, 0.0, 0.5, 1.0, 2.5, 4.99, 5.0, 7.0])
    angle = cloose.angle_for_readout(readout, threshold=5.0, failure_bound=0.0, params=params)
    np.testing.assert_allclose(angle, [0, 15, 15, 30, 45, 75, 90, 90])
    assert params.f0_window == 4 * params.max_trial_frames


def test_online_dff_running_percentile():
    F = np.array([[10.0, 20.0, 30.0, 40.0, 50.0]])
    dff = cloose.compute_online_dff(F, window_frames=2, percentile=0)
    # F0 = min of the last 2 frames: 10, 10, 20, 30, 40
    np.testing.assert_allclose(dff[0], [0, 1, 0.5, 1 / 3, 0.25])
    rng = np.random.default_rng(0)
    F = 100 + rng.normal(size=(3, 50))
    dff = cloose.compute_online_dff(F, window_frames=10, percentile=10, chunk_frames=7)
    n = 30
    f0 = np.percentile(F[:, n - 9 : n + 1], 10, axis=1)
    np.testing.assert_allclose(dff[:, n], (F[:, n] - f0) / f0)


def test_online_dff_rejects_bad_input():
    with pytest.raises(ValueError, match="target, time"):
        cloose.compute_online_dff(np.ones(5), window_frames=2)
    with pytest.raises(ValueError, match="F0 <= 0"):
        cloose.compute_online_dff(np.zeros((1, 5)), window_frames=2)


def test_readout_smoothing():
    pos = np.array([[0.0, 3.0, 6.0, 9.0], [0.0, 3.0, 6.0, 9.0]])
    neg = np.zeros((1, 4))
    np.testing.assert_allclose(cloose.compute_readout(pos, neg, smooth_frames=3), [0, 1.5, 3, 6])
    with pytest.raises(ValueError, match="frames"):
        cloose.compute_readout(pos, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least one"):
        cloose.compute_readout(pos, np.zeros((0, 4)))


def test_calibrate_threshold_half_hits():
    rng = np.random.default_rng(1)
    baseline = np.cumsum(rng.normal(size=5000)) * 0.01 + rng.normal(size=5000)
    thr, fb = cloose.calibrate_threshold(
        baseline, n_trials=200, trial_frames=300, rng=np.random.default_rng(2)
    )
    assert fb == baseline.min()
    starts = np.random.default_rng(2).integers(0, 5000 - 300 + 1, size=200)
    maxima = np.array([baseline[s : s + 300].max() for s in starts])
    assert np.mean(maxima >= thr) <= 0.5
    # lowest such value: the next representable value below would allow > 50% hits
    assert np.mean(maxima >= np.nextafter(thr, -np.inf)) > 0.5
    with pytest.raises(ValueError, match="trial_frames"):
        cloose.calibrate_threshold(baseline[:100], trial_frames=300, rng=rng)


def test_run_task_hit_on_ramp():
    params = TaskParams(max_trial_frames=100)
    readout = 0.125 * np.arange(400)  # exact in binary: reaches threshold 5 on frame 40
    log = cloose.run_task(readout, threshold=5.0, failure_bound=-1.0, params=params)
    assert list(log.columns) == list(cloose.LOG_COLUMNS)
    hit = 40
    # edges linspace(-1, 5, 6) = -1, 0.2, 1.4, 2.6, 3.8, 5
    np.testing.assert_allclose(log.angle_deg.iloc[15:40], [45] * 6 + [60] * 10 + [75] * 9)
    assert log.new_trial.iloc[0] == 1 and log.trial.iloc[0] == 0
    assert log.angle_deg.iloc[:15].isna().all()
    assert (log.angle_deg.iloc[hit : hit + 60] == 90).all()
    assert log.reward.sum() >= 1 and log.reward.iloc[hit + 2] == 1
    assert (log.trial.iloc[hit + 60 : hit + 75] == -1).all()
    assert log.angle_deg.iloc[hit + 60 : hit + 75].isna().all()
    second = hit + 75
    assert log.new_trial.iloc[second] == 1 and log.trial.iloc[second] == 1
    assert log.aversive.sum() == 0


def test_run_task_failure_and_timeout():
    params = TaskParams(max_trial_frames=50)
    readout = np.full(300, 2.0)
    readout[30] = -1.0  # below the failure bound on active frame 15
    log = cloose.run_task(readout, threshold=5.0, failure_bound=0.0, params=params)
    assert log.aversive.iloc[30] == 1 and log.aversive.sum() == 1
    assert (log.angle_deg.iloc[30:90] == 0).all()
    assert (log.trial.iloc[90:105] == -1).all()
    # second trial: 15 grey + 50 active frames then 90 black ITI frames
    assert log.new_trial.iloc[105] == 1
    assert (log.angle_deg.iloc[120:170] == 45).all()  # 2.0 lies in bin [2, 3) -> 45 deg
    assert (log.trial.iloc[170:260] == -1).all()
    assert log.new_trial.iloc[260] == 1 and log.trial.iloc[260] == 2
    assert log.reward.sum() == 0


def test_bad_params_rejected():
    with pytest.raises(ValueError, match="reward_hold_frame"):
        TaskParams(reward_hold_frame=0)
    with pytest.raises(ValueError, match="greater than failure_bound"):
        cloose.run_task(np.zeros(5), threshold=0.0, failure_bound=1.0, params=TaskParams())
