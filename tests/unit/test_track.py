"""Known-answer tests for analysis.track: tracking, target mapping, soma-dendrite pairing."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analysis.align_days import to_session
from analysis.masks import from_dense, is_sparse, mask_matrix, to_dense
from analysis.settings import ConfigError
from analysis.track import (
    TargetMatchError,
    TrackSettings,
    map_targets,
    masks_to_session,
    pair_dendrites,
    track_rois,
)
from analysis.track.rois import TARGET_PART_FRACTION, _merge_disjoint_tracks

SIZE = 64
CENTRES = [(12, 12), (12, 40), (30, 24), (32, 50), (50, 14), (50, 40)]
SHIFTS = {"day01": (0, 0), "day02": (3, -2), "day03": (-4, 5)}


def _shift(masks, transform):
    """Integer-shift stand-in for align_days.to_session: ref (r, c) -> session (r+dr, c+dc)."""
    if is_sparse(masks):
        return from_dense(_shift(to_dense(masks), transform))
    dr, dc = int(transform["shift_row"]), int(transform["shift_col"])
    out = np.zeros_like(np.asarray(masks))
    src = np.asarray(masks)
    rs, rd = slice(max(-dr, 0), SIZE - max(dr, 0)), slice(max(dr, 0), SIZE - max(-dr, 0))
    cs, cd = slice(max(-dc, 0), SIZE - max(dc, 0)), slice(max(dc, 0), SIZE - max(-dc, 0))
    out[..., rd, cd] = src[..., rs, cs]
    return masks.copy(data=out)


def _unshift(masks: xr.DataArray, transform) -> xr.DataArray:
    """Inverse of ``_shift`` (stand-in for align_days.to_reference)."""
    back = {k: -float(v) for k, v in transform.items() if k != "rotation_deg"}
    return _shift(masks, {**back, "rotation_deg": 0.0})


def _disks(centres, shift=(0, 0), radius=6.0) -> np.ndarray:
    rr, cc = np.mgrid[:SIZE, :SIZE]
    return np.stack(
        [np.hypot(rr - r - shift[0], cc - c - shift[1]) <= radius for r, c in centres]
    ).astype(np.float32)


def _masks(data: np.ndarray, ids=None, **coords) -> xr.Dataset:
    """Sparse masks (analysis.masks) of dense weights."""
    ids = np.arange(len(data)) if ids is None else np.asarray(ids)
    w = data / np.maximum(data.sum(axis=(1, 2), keepdims=True), 1)
    return from_dense(w.astype(np.float32), roi=ids, coords=coords)


def _transforms() -> xr.Dataset:
    sessions = list(SHIFTS)
    return xr.Dataset(
        {
            "shift_row": ("session", [float(SHIFTS[s][0]) for s in sessions]),
            "shift_col": ("session", [float(SHIFTS[s][1]) for s in sessions]),
            "rotation_deg": ("session", [0.0] * len(sessions)),
        },
        coords={"session": sessions},
    )


def _sessions(seed: int = 0):
    """Six neurons; neuron 2 absent on day02; a one-day spurious ROI and a non-cell on day03."""
    rng = np.random.default_rng(seed)
    by_session, truth_ids = {}, {}
    for session, shift in SHIFTS.items():
        present = [k for k in range(len(CENTRES)) if not (session == "day02" and k == 2)]
        data = _disks([CENTRES[k] for k in present], shift)
        data *= rng.random(data.shape) > 0.1  # detection noise: drop 10 % of pixels
        if session == "day03":
            data = np.concatenate([data, _disks([(22, 4)], shift), _disks([(40, 32)], shift)])
        order = rng.permutation(len(data))  # ROI order must not matter (Hungarian)
        is_cell = np.ones(len(data), bool)
        if session == "day03":
            is_cell[-1] = False  # neuropil fragment: ignored by cells_only
        by_session[session] = _masks(
            data[order], ids=np.arange(len(data)) + 100, is_cell=is_cell[order]
        )
        labels = present + (["spurious", "noncell"] if session == "day03" else [])
        truth_ids[session] = {100 + i: labels[o] for i, o in enumerate(order)}
    return by_session, truth_ids


def test_track_rois_stable_ids_and_absent_day():
    by_session, truth_ids = _sessions()
    tracked, table = track_rois(
        by_session, _transforms(), settings=TrackSettings(min_sessions=2), to_reference=_unshift
    )
    assert is_sparse(tracked) and tracked["pixel_weight"].dtype == np.float32
    masks = to_dense(tracked)
    assert list(masks.roi.values) == list(range(len(CENTRES)))
    np.testing.assert_allclose(masks.sum(("row", "col")), 1.0, rtol=1e-5)
    truth = _disks(CENTRES)
    inter = np.einsum("ipq,jpq->ij", (masks.values > 0).astype(float), truth)
    union = (masks.values > 0).sum((1, 2))[:, None] + truth.sum((1, 2))[None] - inter
    iou = inter / union
    neuron_of_roi = iou.argmax(axis=1)
    assert sorted(neuron_of_roi) == list(range(len(CENTRES)))
    assert iou.max(axis=1).min() >= 0.8
    # every detection of one neuron carries the same tracked id
    for row in table[table.detected].itertuples():
        assert truth_ids[row.session][row.session_roi] == neuron_of_roi[row.roi]
    roi2 = int(np.flatnonzero(neuron_of_roi == 2)[0])
    absent = table[(table.session == "day02") & (table.roi == roi2)].iloc[0]
    assert not absent.detected and absent.session_roi == -1 and np.isnan(absent.iou)
    assert int(masks.n_sessions_detected[roi2]) == 2
    assert len(table) == len(CENTRES) * len(SHIFTS)


def test_track_rois_keeps_single_day_rois_with_min_sessions_1():
    by_session, _ = _sessions()
    masks, table = track_rois(
        by_session, _transforms(), settings=TrackSettings(min_sessions=1), to_reference=_unshift
    )
    assert masks.sizes["roi"] == len(CENTRES) + 1  # spurious kept, non-cell dropped
    assert set(table.columns) == {"session", "session_roi", "roi", "iou", "detected"}


def test_masks_to_session_and_silent_target_day():
    by_session, _ = _sessions()
    ref_masks, _ = track_rois(
        by_session, _transforms(), settings=TrackSettings(min_sessions=2), to_reference=_unshift
    )
    transform = _transforms().sel(session="day02")
    day2 = to_dense(masks_to_session(ref_masks, transform, to_session=_shift))
    assert list(day2.roi.values) == list(ref_masks.roi.values)
    np.testing.assert_allclose(day2.sum(("row", "col")), 1.0, rtol=1e-5)
    # neuron 2 was not detected on day02 but its target still maps (silent target day)
    r, c = CENTRES[2][0] + SHIFTS["day02"][0], CENTRES[2][1] + SHIFTS["day02"][1]
    targets = [
        {
            "id": "t2",
            "group": "P+",
            "plane": 0,
            "polygon": [[r - 4, c - 4], [r - 4, c + 4], [r + 4, c + 4], [r + 4, c - 4]],
        },
        {"id": "t0", "group": "P-", "plane": 0, "polygon": [[10, 8], [10, 14], [16, 14], [16, 8]]},
    ]
    table = map_targets(targets, from_dense(day2), shape=(SIZE, SIZE), settings=TrackSettings())
    assert list(table.columns) == ["target_id", "group", "roi", "iou", "overlap"]
    expected = {
        "t2": int(day2.roi[np.argmax(day2.values[:, r, c])]),
        "t0": int(day2.roi[np.argmax(day2.values[:, 13, 10])]),
    }
    assert dict(zip(table.target_id, table.roi, strict=True)) == expected
    assert list(table.group) == ["P+", "P-"]
    assert (table.overlap > 0.9).all()


def test_map_targets_errors_name_the_target():
    masks = _masks(_disks(CENTRES), ids=np.arange(len(CENTRES)))
    settings = TrackSettings()
    outside = [{"id": "t9", "group": "P+", "polygon": [[100, 100], [100, 110], [110, 110]]}]
    with pytest.raises(
        TargetMatchError, match=r"t9.*outside the 64x64 field of view.*\[row, col\]"
    ):
        map_targets(outside, masks, shape=(SIZE, SIZE), settings=settings)
    empty_spot = [{"id": "t7", "group": "P-", "polygon": [[0, 56], [0, 63], [6, 63], [6, 56]]}]
    with pytest.raises(TargetMatchError, match=r"\['t7'\] match no soma ROI"):
        map_targets(empty_spot, masks, shape=(SIZE, SIZE), settings=settings)
    with pytest.raises(ValueError, match="lacks key 'polygon'"):
        map_targets([{"id": "t1", "group": "P+"}], masks, shape=(SIZE, SIZE), settings=settings)
    # two targets on one soma: Hungarian gives the soma to one; the other must fail loudly
    twin = [
        {"id": "a", "group": "P+", "polygon": [[9, 9], [9, 15], [15, 15], [15, 9]]},
        {"id": "b", "group": "P-", "polygon": [[10, 10], [10, 14], [14, 14], [14, 10]]},
    ]
    with pytest.raises(TargetMatchError, match="match no soma ROI") as err:
        map_targets(twin, masks, shape=(SIZE, SIZE), settings=settings)
    # ... and say which target took its ROI
    assert "best ROI 0" in str(err.value) and "one ROI covers two targets" in str(err.value)


def _traces(values: np.ndarray, ids, fs_hz: float = 15.0) -> xr.DataArray:
    n_t = values.shape[1]
    return xr.DataArray(
        values.astype(np.float32),
        dims=("roi", "time"),
        coords={
            "roi": np.asarray(ids),
            "time": np.arange(n_t) / fs_hz,
            "frame": ("time", np.arange(n_t)),
        },
    )


def _spiky(rng, n_roi, n_t, rate=0.02):
    kernel = np.exp(-np.arange(40) / 10.0)
    spikes = (rng.random((n_roi, n_t)) < rate) * rng.uniform(0.5, 2.0, (n_roi, n_t))
    return np.stack([np.convolve(s, kernel)[:n_t] for s in spikes])


def test_pair_dendrites_known_coupling():
    rng = np.random.default_rng(4)
    n_t = 4000
    soma = _spiky(rng, 4, n_t) + rng.normal(0, 0.1, (4, n_t))
    coupled = {0: 2, 1: 0, 2: 3}  # dendrite -> soma
    dend = _spiky(rng, 5, n_t) * 0.8 + rng.normal(0, 0.1, (5, n_t))
    for j, k in coupled.items():
        dend[j] = 0.7 * soma[k] + 0.3 * _spiky(rng, 1, n_t, 0.005)[0] + rng.normal(0, 0.15, n_t)
    table = pair_dendrites(
        _traces(soma, [10, 11, 12, 13]),
        _traces(dend, [20, 21, 22, 23, 24]),
        settings=TrackSettings(n_shuffles=500),
        rng=np.random.default_rng(0),
    )
    assert list(table.columns) == ["soma_roi", "dendrite_roi", "corr", "p_value", "paired"]
    assert len(table) == 4 * 5
    pairs = {(r.dendrite_roi, r.soma_roi) for r in table[table.paired].itertuples()}
    assert pairs == {(20 + j, 10 + k) for j, k in coupled.items()}
    assert table.groupby("dendrite_roi").paired.sum().max() == 1
    true_rows = table[table.paired]
    assert (true_rows.p_value < 0.01).all() and (true_rows["corr"] > 0.5).all()
    independent = table[table.dendrite_roi.isin([23, 24])]
    assert independent["corr"].abs().max() < 0.15


def test_pair_dendrites_null_calibration():
    """Independent traces: p-values near uniform, few false pairings at alpha."""
    rng = np.random.default_rng(5)
    n_t = 3000
    soma = _spiky(rng, 6, n_t) + rng.normal(0, 0.1, (6, n_t))
    dend = _spiky(rng, 20, n_t) + rng.normal(0, 0.1, (20, n_t))
    settings = TrackSettings(n_shuffles=200, alpha=0.05, min_corr=-1.0)
    table = pair_dendrites(
        _traces(soma, range(6)), _traces(dend, range(20)), settings=settings, rng=rng
    )
    # p is max-corrected over somata: P(any pairing per dendrite) ~ alpha
    assert table.paired.sum() <= 4
    # the max-corrected p of each dendrite's best soma is ~uniform under the null
    assert 0.25 < table.groupby("dendrite_roi").p_value.min().median() < 0.75


def test_bad_inputs():
    by_session, _ = _sessions()
    transforms = _transforms().sel(session=["day01", "day02"])
    with pytest.raises(ValueError, match="no session 'day03'"):
        track_rois(by_session, transforms, settings=TrackSettings(), to_reference=_unshift)
    with pytest.raises(ValueError, match="empty"):
        track_rois({}, _transforms(), settings=TrackSettings(), to_reference=_unshift)
    t = _traces(np.zeros((2, 100)), [0, 1])
    with pytest.raises(ValueError, match="same frames"):
        pair_dendrites(
            t, t.isel(time=slice(0, 50)), settings=TrackSettings(), rng=np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="dims"):
        pair_dendrites(t.T, t, settings=TrackSettings(), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="too short"):
        pair_dendrites(t, t, settings=TrackSettings(), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="iou_threshold"):
        TrackSettings(iou_threshold=0.0)
    with pytest.raises(ConfigError, match="target_metric"):
        TrackSettings.from_mapping({"target_metric": "dice"})


def test_stand_in_shift_matches_align_days_convention():
    masks = _masks(_disks(CENTRES))
    transform = {"shift_row": 3.0, "shift_col": -2.0, "rotation_deg": 0.0}
    np.testing.assert_allclose(
        to_dense(to_session(masks, transform)), to_dense(_shift(masks, transform)), atol=1e-6
    )


def test_with_align_days_rotation_round_trip():
    ref = _masks(_disks(CENTRES))
    transform = {"shift_row": 2.5, "shift_col": -3.0, "rotation_deg": 2.0}
    session = masks_to_session(ref, transform)
    assert session["pixel_weight"].dtype == np.float32
    transforms = xr.Dataset(
        {k: ("session", [0.0, v]) for k, v in transform.items()}, coords={"session": ["a", "b"]}
    )
    tracked, table = track_rois(
        {"a": ref, "b": session}, transforms, settings=TrackSettings(min_sessions=2)
    )
    assert tracked.sizes["roi"] == len(CENTRES)
    assert table.iou.min() > 0.7
    assert (table.groupby("roi").detected.sum() == 2).all()


def test_merge_disjoint_tracks_joins_one_neuron_not_two_cells():
    a, b, far = mask_matrix(_masks(_disks([(20, 20), (20, 23), (45, 45)])), binary=True)
    members = [{"day01": 0}, {"day01": 1}, {"day03": 2}, {"day02": 4}]
    stacks = [[a], [b], [far], [a]]
    merged, merged_stacks = _merge_disjoint_tracks(members, stacks, fraction=0.5, min_iou=0.2)
    # the day02-only track is the day01 track 0 seen again: joined; track 1 overlaps too
    # but holds another ROI of day01 (two cells of one day), so it stays apart
    assert merged == [{"day01": 0, "day02": 4}, {"day01": 1}, {"day03": 2}]
    assert [len(s) for s in merged_stacks] == [2, 1, 1]
    assert members[0] == {"day01": 0} and len(stacks[0]) == 1  # inputs untouched


def test_track_rois_caps_min_sessions_at_the_number_of_sessions():
    by_session, _ = _sessions()
    one = {"day01": by_session["day01"]}
    masks, table = track_rois(
        one, _transforms(), settings=TrackSettings(min_sessions=3), to_reference=_unshift
    )
    assert masks.sizes["roi"] == len(CENTRES)
    assert table.detected.all()


def test_track_rois_min_sessions_2_drops_one_day_rois():
    by_session, truth_ids = _sessions()
    masks, _ = track_rois(
        by_session, _transforms(), settings=TrackSettings(), to_reference=_unshift
    )
    assert masks.sizes["roi"] == len(CENTRES)  # the one-day spurious ROI is dropped


def test_track_settings_reject_bad_merge_iou():
    with pytest.raises(ValueError, match="merge_iou_threshold"):
        TrackSettings(merge_iou_threshold=0.0)


def _track_with_targets(by_session, polygons: np.ndarray):
    """track_rois with target polygons (reference coordinates) protected, min_sessions=2."""
    return track_rois(
        by_session,
        _transforms(),
        settings=TrackSettings(min_sessions=2),
        protect=polygons,
        to_reference=_unshift,
    )


def test_track_rois_keeps_a_protected_one_day_roi():
    # the day03-only ROI at (22, 4) stands in for a target seen on one day: a target
    # polygon over it (reference coordinates) keeps it despite min_sessions=2
    by_session, _ = _sessions()
    protect = _disks([(22, 4)]) > 0
    masks = to_dense(_track_with_targets(by_session, protect)[0])
    assert masks.sizes["roi"] == len(CENTRES) + 1
    kept = masks.values[-1] > 0
    assert (kept & protect[0]).sum() / protect[0].sum() >= 0.5


def test_track_rois_does_not_keep_a_one_day_fragment_of_a_tracked_target():
    # day03 also holds the left half of neuron 0 as a second ROI (a soma split in two on
    # one day); the target polygon over neuron 0 keeps its full track, not the fragment
    by_session, _ = _sessions()
    rr, cc = np.mgrid[:SIZE, :SIZE]
    shift = SHIFTS["day03"]
    half = _disks([CENTRES[0]], shift) * (cc < CENTRES[0][1] + shift[1])
    day03 = by_session["day03"]
    by_session["day03"] = from_dense(
        xr.concat([to_dense(day03), to_dense(_masks(half, ids=[999], is_cell=[True]))], dim="roi")
    )
    protect = _disks([CENTRES[0]]) > 0
    masks = to_dense(_track_with_targets(by_session, protect)[0])
    assert masks.sizes["roi"] == len(CENTRES)
    target = masks.values[np.argmax((masks.values > 0)[:, protect[0]].sum(axis=1))] > 0
    assert (target & protect[0]).sum() / (target | protect[0]).sum() >= 0.8


def _split_neuron_zero(by_session):
    """Every day, neuron 0 detected as two ROIs: its left and its right half."""
    cc = np.mgrid[:SIZE, :SIZE][1]
    for session, shift in SHIFTS.items():
        disk = _disks([CENTRES[0]], shift)
        left = disk * (cc < CENTRES[0][1] + shift[1])
        dense = to_dense(by_session[session])
        whole = np.argmax((dense.values > 0)[:, disk[0] > 0].sum(axis=1))
        rest = dense.isel(roi=[k for k in range(dense.sizes["roi"]) if k != whole])
        halves = _masks(np.concatenate([left, disk - left]), ids=[998, 999], is_cell=[True] * 2)
        by_session[session] = from_dense(xr.concat([rest, to_dense(halves)], dim="roi"))
    return by_session


def test_track_rois_joins_the_halves_of_a_target_split_on_every_day():
    # two kept tracks inside one target polygon are one soma: one track, the whole disk
    by_session = _split_neuron_zero(_sessions()[0])
    untargeted = track_rois(
        by_session, _transforms(), settings=TrackSettings(min_sessions=2), to_reference=_unshift
    )[0]
    assert untargeted.sizes["roi"] == len(CENTRES) + 1  # without a polygon: two halves
    # the target's polygon of each day, drawn 1 px off to either side
    polygons = _disks([CENTRES[0], CENTRES[0]], shift=(0, 0)) > 0
    polygons[0], polygons[1] = np.roll(polygons[0], -1, axis=1), np.roll(polygons[1], 1, axis=1)
    masks = to_dense(_track_with_targets(by_session, polygons)[0])
    assert masks.sizes["roi"] == len(CENTRES)
    polygon = _disks([CENTRES[0]]) > 0
    on_target = (masks.values > 0)[:, polygon[0]].sum(axis=1)
    assert (on_target > 0).sum() == 1  # no second ROI on the target
    target = masks.values[np.argmax(on_target)] > 0
    assert (target & polygon[0]).sum() / (target | polygon[0]).sum() >= 0.8


def test_track_rois_does_not_join_a_neighbour_that_touches_the_target():
    # a polygon drawn loosely around neuron 0 also takes in the top of neuron 2 (30, 24),
    # which lies mostly outside it: two neurons, not one split soma
    by_session, _ = _sessions()
    rr = np.mgrid[:SIZE, :SIZE][0]
    neighbour = _disks([CENTRES[2]]) > 0
    polygon = (_disks([CENTRES[0]], radius=7.0) > 0) | (neighbour & (rr < 27))
    inside = (polygon & neighbour).sum() / neighbour.sum()
    assert 0.1 < inside < TARGET_PART_FRACTION
    masks = to_dense(_track_with_targets(by_session, polygon)[0])
    assert masks.sizes["roi"] == len(CENTRES)


def test_track_rois_tracks_an_undetected_target_from_its_polygon():
    by_session, _ = _sessions()
    polygon = _disks([(40, 8)]) > 0  # no ROI was ever detected there
    tracked, table = _track_with_targets(by_session, polygon)
    masks = to_dense(tracked)
    assert masks.sizes["roi"] == len(CENTRES) + 1
    new = masks.isel(roi=-1)
    assert int(new.n_sessions_detected) == 0
    np.testing.assert_array_equal(new.values > 0, polygon[0])
    assert not table[table.roi == int(new.roi)].detected.any()
