"""Ground-truth comparisons: tiny known answers and bad inputs."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis import validate
from analysis.align_days import points_to_session
from analysis.settings import ConfigError


def _disk(shape, centre, radius):
    rr, cc = np.indices(shape)
    return ((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius**2).astype(np.float32)


# --- shifts -----------------------------------------------------------------------------------


def test_shifts_remove_constant_offset():
    rng = np.random.default_rng(0)
    true_r, true_c = rng.normal(0, 3, 200), rng.normal(0, 3, 200)
    out = validate.compare_shifts(true_r + 2.5, true_c - 1.0, true_r, true_c)
    assert out["median_abs_error_px"] == pytest.approx(0, abs=1e-12)
    assert out["offset_row_px"] == pytest.approx(2.5)
    assert out["offset_col_px"] == pytest.approx(-1.0)
    assert out["corr_row"] == pytest.approx(1.0)


def test_shifts_known_error_and_exclude():
    true = np.zeros(10)
    est_r = np.zeros(10)
    est_r[::2] = 1.0  # half the frames off by 1 px: median offset 0.5, error 0.5 each
    out = validate.compare_shifts(est_r, true, true, true)
    assert out["median_abs_error_px"] == pytest.approx(0.5)
    excluded = validate.compare_shifts(est_r, true, true, true, exclude=est_r > 0)
    assert excluded["median_abs_error_px"] == 0 and excluded["n_frames"] == 5


def test_shifts_bad_input():
    with pytest.raises(ValueError, match="one length"):
        validate.compare_shifts(np.zeros(3), np.zeros(4), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="fewer than 2"):
        validate.compare_shifts(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))


# --- ROIs -------------------------------------------------------------------------------------


def test_rois_hungarian_not_greedy():
    shape = (30, 30)
    true = np.stack([_disk(shape, (10, 10), 4), _disk(shape, (20, 20), 4)])
    # detected ROI 0 overlaps both truths; a greedy first-come match would steal unit 0
    det = np.stack([np.clip(true[0] + true[1], 0, 1), true[0]])
    det = xr.DataArray(det, dims=("roi", "row", "col"), coords={"roi": [7, 9]})
    matches, m = validate.compare_rois(det, true)
    pairs = dict(zip(matches.detected_roi, matches.true_roi, strict=True))
    assert pairs == {9: 0, 7: 1}
    assert m["n_hits_iou"] == 2 - (matches.iou < 0.5).sum()
    assert m["recall_centroid"] == pytest.approx(0.5)  # ROI 7's centroid sits between cells


def test_rois_precision_recall_f1():
    shape = (40, 40)
    true = np.stack([_disk(shape, (8, 8), 3), _disk(shape, (20, 20), 3), _disk(shape, (32, 30), 3)])
    det = np.stack([true[0], true[1], _disk(shape, (8, 32), 3), _disk(shape, (32, 8), 3)])
    _, m = validate.compare_rois(det, true)
    assert m["precision_iou"] == pytest.approx(2 / 4)
    assert m["recall_iou"] == pytest.approx(2 / 3)
    assert m["f1_iou"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["f1_centroid"] == pytest.approx(m["f1_iou"])


def test_rois_registration_offset():
    shape = (30, 30)
    true = _disk(shape, (15, 15), 4)[None]
    det = _disk(shape, (12, 16), 4)[None]  # registered content sits at true - (3, -1)
    _, off = validate.compare_rois(det, true)
    assert off["n_hits_iou"] == 0
    matches, on = validate.compare_rois(det, true, registration_offset_px=(3.0, -1.0))
    assert on["f1_iou"] == 1.0 and matches.centroid_distance_px[0] == pytest.approx(0)


def test_rois_bad_input():
    a = np.zeros((1, 8, 8))
    with pytest.raises(ValueError, match="3-D"):
        validate.compare_rois(a[0], a)
    with pytest.raises(ValueError, match="row, col"):
        validate.compare_rois(a, np.zeros((1, 9, 8)))
    with pytest.raises(ValueError, match="iou_threshold"):
        validate.compare_rois(a, a, iou_threshold=0)


# --- transforms -------------------------------------------------------------------------------


def test_transforms_exact_and_known_error():
    true = pd.DataFrame(
        {
            "session": ["day01", "day02"],
            "shift_row": [0.0, 4.0],
            "shift_col": [0.0, -2.0],
            "rotation_deg": [0.0, 1.5],
        }
    )
    est = true.copy()
    est.loc[1, "shift_row"] += 1.0
    out = validate.compare_transforms(est, true, shape=(64, 64))
    assert out.mean_error_px.tolist() == pytest.approx([0.0, 1.0])
    assert out.shift_error_row_px[1] == pytest.approx(1.0)


def test_transforms_registration_offsets():
    true = pd.DataFrame(
        {"session": ["a", "b"], "shift_row": [0.0, 3.0], "shift_col": [0.0, 1.0],
         "rotation_deg": [0.0, 2.0]}
    )  # fmt: skip
    o = {"a": np.array([1.0, -2.0]), "b": np.array([0.5, 0.5])}
    # a structure at motion-free p sits at p - o_s in registered coords
    shape = (50, 50)
    pts = np.array([[10.0, 12.0], [30.0, 40.0], [25.0, 5.0]])
    tb = true.set_index("session").loc["b"].to_dict()
    reg_b = points_to_session(pts + o["a"], tb, shape=shape) - o["b"]
    # the estimate that maps the registered reference to registered session b exactly
    a = np.deg2rad(2.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    shift = np.array([3.0, 1.0]) + rot @ o["a"] - o["b"]
    est = pd.DataFrame(
        {"session": ["a", "b"], "shift_row": [0.0, shift[0]], "shift_col": [0.0, shift[1]],
         "rotation_deg": [0.0, 2.0]}
    )  # fmt: skip
    np.testing.assert_allclose(
        points_to_session(pts, est.set_index("session").loc["b"].to_dict(), shape=shape), reg_b
    )
    out = validate.compare_transforms(
        est, true, shape=shape, points=pts, registration_offsets_px=o
    ).set_index("session")
    assert out.loc["b", "max_error_px"] == pytest.approx(0, abs=1e-9)
    assert out.loc["a", "max_error_px"] == pytest.approx(0, abs=1e-9)


def test_transforms_bad_input():
    t = pd.DataFrame({"session": ["a"], "shift_row": [0.0], "shift_col": [0.0]})
    with pytest.raises(ValueError, match="rotation_deg"):
        validate.compare_transforms(t, t, shape=(8, 8))
    good = t.assign(rotation_deg=0.0)
    with pytest.raises(ValueError, match="no common sessions"):
        validate.compare_transforms(good, good.assign(session="b"), shape=(8, 8))


# --- traces and spikes ------------------------------------------------------------------------


def test_traces_pick_rows_by_label():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(3, 100))
    est = xr.DataArray(
        np.stack([-true[2], 2 * true[0] + 1]), dims=("roi", "time"), coords={"roi": [5, 8]}
    )
    matches = pd.DataFrame({"detected_roi": [8, 5], "true_roi": [0, 2]})
    out = validate.compare_traces(est, true, matches=matches)
    assert out.r.tolist() == pytest.approx([1.0, -1.0])
    with pytest.raises(ValueError, match="no roi"):
        validate.compare_traces(est, true, matches=matches.assign(detected_roi=[1, 5]))
    with pytest.raises(ValueError, match="lacks columns"):
        validate.compare_traces(est, true, matches=matches.drop(columns="true_roi"))


def test_spikes_one_frame_lag():
    rng = np.random.default_rng(2)
    true = (rng.random((2, 300)) < 0.05).astype(float)
    est = np.roll(true, 1, axis=1) * 0.3  # deconvolution lands one frame late
    matches = pd.DataFrame({"detected_roi": [0, 1], "true_roi": [0, 1]})
    out = validate.compare_spikes(est, true, matches=matches, fs_hz=15.0)
    assert out.r.tolist() == pytest.approx([1.0, 1.0])
    assert out.lag_frames.tolist() == [1, 1]
    strict = validate.compare_spikes(est, true, matches=matches, fs_hz=15.0, max_lag_frames=0)
    assert (strict.r < 0.2).all()
    with pytest.raises(ValueError, match="max_lag_frames"):
        validate.compare_spikes(est, true, matches=matches, fs_hz=15.0, max_lag_frames=-1)


def test_spikes_binning_at_high_rate():
    true = np.zeros((1, 400))
    true[0, ::20] = 1
    est = np.roll(true, 1, axis=1)  # 1 frame late at 100 Hz: inside one 40 ms bin mostly
    out = validate.compare_spikes(
        est, true, matches=pd.DataFrame({"detected_roi": [0], "true_roi": [0]}),
        fs_hz=100.0, max_lag_frames=0,
    )  # fmt: skip
    assert out.r[0] > 0.7


# --- tracking, pairing, targets ---------------------------------------------------------------


def test_tracking_fraction_correct():
    matches = pd.DataFrame(
        {
            "session": ["d1", "d2", "d1", "d2", "d1", "d2", "d1"],
            "detected_roi": [0, 0, 1, 1, 2, 2, 3],
            "true_roi": [10, 10, 11, 12, 12, 12, 13],
        }
    )
    per_roi, m = validate.compare_tracking(matches)
    assert per_roi.set_index("detected_roi").correct.to_dict() == {
        0: True, 1: False, 2: True, 3: False,
    }  # fmt: skip
    assert m["n_tracked"] == 3 and m["n_correct"] == 2
    assert m["fraction_correct"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="matched twice"):
        validate.compare_tracking(pd.concat([matches, matches.iloc[:1]]))


def test_pairing_metrics():
    pairs = pd.DataFrame(
        {
            "soma_roi": [0, 0, 1, 1, 2],
            "dendrite_roi": [5, 6, 5, 6, 6],
            "paired": [True, False, False, True, True],
        }
    )
    soma_units = {0: 100, 1: 101}  # soma ROI 2 has no true neuron: not scored
    dendrite_units = {5: 0, 6: 1}
    tuft_neuron = {0: 100, 1: -1}  # tuft 1 is a distractor
    scored, m = validate.compare_pairing(
        pairs, soma_units=soma_units, dendrite_units=dendrite_units, tuft_neuron=tuft_neuron
    )
    assert len(scored) == 4
    assert m["n_paired"] == 2 and m["n_true_pairs"] == 1
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="missing from tuft_neuron"):
        validate.compare_pairing(
            pairs, soma_units=soma_units, dendrite_units=dendrite_units, tuft_neuron={0: 100}
        )


def test_targets_recall():
    truth = pd.DataFrame(
        {"target_id": [-1, 0, 1, 2], "neuron": [3, 4, 7, 9], "group": ["none", "P+", "P-", "P+"]}
    )
    mapped = pd.DataFrame(
        {"target_id": [0, 1, 2], "group": ["P+", "P-", "P+"], "roi": [20, 21, 22]}
    )
    out = validate.compare_targets(mapped, roi_units={20: 4, 21: 7, 22: 8}, true_targets=truth)
    assert out["n_targets"] == 3 and out["n_correct"] == 2
    assert out["recall"] == pytest.approx(2 / 3) and out["group_agreement"] == 1.0
    with pytest.raises(ValueError, match="lacks columns"):
        validate.compare_targets(mapped.drop(columns="roi"), roi_units={}, true_targets=truth)


def test_f1_without_ignores_excluded_somata():
    from analysis.validate.score import _f1_without

    true = np.zeros((3, 20, 20))
    true[0, 1:5, 1:5] = true[1, 8:12, 8:12] = true[2, 14:18, 14:18] = 1
    soma = xr.DataArray(true, dims=("neuron", "row", "col"), coords={"neuron": [0, 1, 2]})
    found = xr.DataArray(true[[0, 2]], dims=("roi", "row", "col"), coords={"roi": [7, 9]})
    neurons = pd.DataFrame({"neuron": [0, 1, 2]})
    matches, _ = validate.compare_rois(found, soma)
    assert _f1_without(found, soma, neurons, np.array([False, True, False]), matches, (0, 0)) == 1
    # ROI 9 found an excluded soma: left out; 1 hit, 1 kept ROI, 2 scored somata
    f1 = _f1_without(found, soma, neurons, np.array([False, False, True]), matches, (0, 0))
    assert f1 == pytest.approx(2 / 3)


def test_somata_cut_by_the_edge_are_found_per_session():
    from analysis.validate.score import _cut_by_edge

    def session(cols: slice) -> xr.Dataset:
        masks = np.zeros((2, 20, 20))
        masks[0, 8:12, cols] = 1
        masks[1, 2:6, 2:6] = 1
        return xr.Dataset({"soma_mask": (("neuron", "row", "col"), masks)})

    cut = _cut_by_edge({"day01": session(slice(14, 18)), "day02": session(slice(19, 23))})
    assert list(cut["day01"]) == [] and list(cut["day02"]) == [0]  # 1 of 4 columns in view


def test_validate_preset_must_exist():
    assert validate.ValidateSettings().preset == "realistic"
    with pytest.raises(ConfigError, match="validate.preset"):
        validate.ValidateSettings.from_mapping({"preset": "nope"})
