"""Known-answer tests for analysis.segment on small synthetic movies."""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from analysis import io
from analysis.masks import is_sparse, to_dense
from analysis.segment import SegmentSettings, anatomy, dendrites, detect_dendrites, detect_somata
from analysis.segment.dendrites import (
    MIN_HALF_CORR,
    _block_median,
    _grow_by_correlation,
    _merge_groups,
    _PixelStats,
    _remove_residual_motion,
    _split_crossings,
    _traces_and_reliability,
)
from analysis.segment.somata import (
    _classify,
    _merge_split_somata,
    _second_on_a_soma,
    _split_blobs,
    _with_field_contrast,
)
from analysis.settings import ConfigError

logger = logging.getLogger(__name__)
FS_HZ = 15.0


def _calcium(rng: np.random.Generator, n_frames: int, rate_hz: float, tau_s: float = 0.8):
    """Sparse spikes convolved with an exponential (GCaMP-like) kernel; (time,) float."""
    spikes = rng.random(n_frames) < rate_hz / FS_HZ
    amps = spikes * rng.uniform(0.8, 1.6, n_frames)
    kernel = np.exp(-np.arange(int(5 * tau_s * FS_HZ)) / (tau_s * FS_HZ))
    return np.convolve(amps, kernel)[:n_frames]


def _soma_movie(seed: int, size: int = 80, n_frames: int = 1200, n_cells: int = 9, rest=None):
    """Disk cells (radius 6 px) with sparse transients on noise + smooth neuropil; each
    rests ``rest`` (per cell, default 60) above the 300 background."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:size, :size]
    centres: list[tuple[float, float]] = []
    while len(centres) < n_cells:
        c = rng.uniform(9, size - 9, 2)
        if all(np.hypot(*(c - np.asarray(o))) > 15 for o in centres):
            centres.append(tuple(c))
    truth = np.stack([np.hypot(rr - r, cc - c) <= 6 for r, c in centres])
    movie = 300.0 + rng.normal(0, 12, (n_frames, size, size))
    neuropil = _calcium(rng, n_frames, 0.3, tau_s=3.0)
    movie += 40 * neuropil[:, None, None] * np.exp(-((cc - size / 2) ** 2) / (2 * 30**2))
    for mask, above in zip(truth, [60.0] * n_cells if rest is None else rest, strict=True):
        movie[:, mask] += 120 * _calcium(rng, n_frames, 0.15)[:, None] + above
    return movie.astype(np.int16), truth


def _hungarian_iou(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    inter = np.einsum("ipq,jpq->ij", found.astype(float), truth.astype(float))
    union = found.sum((1, 2))[:, None] + truth.sum((1, 2))[None, :] - inter
    iou = inter / np.maximum(union, 1)
    rows, cols = linear_sum_assignment(-iou)
    return iou[rows, cols]


def test_detect_somata_recovers_disk_cells():
    movie, truth = _soma_movie(seed=1)
    t0 = time.perf_counter()
    # the disks have radius 6 px: tell the detector their diameter
    found = detect_somata(
        movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=SegmentSettings(diameter_px=12.0)
    )
    runtime = time.perf_counter() - t0
    assert is_sparse(found) and found["pixel_weight"].dtype == np.float32
    masks = to_dense(found)
    np.testing.assert_allclose(masks.sum(("row", "col")), 1.0, rtol=1e-4)
    cells = masks.where(masks.is_cell, drop=True)
    matched = _hungarian_iou(cells.values > 0, truth)
    tp = int((matched >= 0.5).sum())
    precision, recall = tp / max(cells.sizes["roi"], 1), tp / len(truth)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    logger.info(
        "somata: %d ROIs, %d cells, TP %d/%d, precision %.2f recall %.2f F1 %.2f, %.1f s",
        masks.sizes["roi"],
        cells.sizes["roi"],
        tp,
        len(truth),
        precision,
        recall,
        f1,
        runtime,
    )
    assert f1 >= 0.8
    for name in ("area_px", "compactness", "centroid_row", "centroid_col", "is_cell", "rim_px"):
        assert name in masks.coords
    # the features describe each ROI as classified; its mask adds the rim a cell gained
    np.testing.assert_array_equal((masks > 0).sum(("row", "col")), masks.area_px + masks.rim_px)
    assert (masks.rim_px.values[~masks.is_cell.values] == 0).all()
    # bright disks: the field keeps the contrast rule for bright somata
    assert found.attrs["min_contrast_applied"] == SegmentSettings().min_contrast


def test_detect_somata_switches_a_field_whose_active_rois_fail_the_contrast_rule(tmp_path):
    """The disks rest 1.2-1.27 times as bright as their surround: at bright_soma_contrast
    1.3 the most active ROIs fall short of it, so the field gets min_contrast_dark, which
    keeps the disks and drops the neuropil patches around them (contrast 0.85-0.97); the
    rule applied is written with the ROIs."""
    movie, truth = _soma_movie(seed=1)
    runs = {}
    for dark in (1.1, 1.3):
        settings = SegmentSettings(
            diameter_px=12.0, min_contrast=1.3, bright_soma_contrast=1.3, min_contrast_dark=dark
        )
        found = detect_somata(movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=settings)
        io.write_netcdf(found, tmp_path / f"rois_{dark}.nc", stage="segment", settings=settings)
        runs[dark] = io.read_netcdf(tmp_path / f"rois_{dark}.nc")
    assert runs[1.1].attrs["min_contrast_applied"] == 1.1
    assert runs[1.3].attrs["min_contrast_applied"] == 1.3
    functional = {k: r.is_cell.values & ~r.anatomical.values for k, r in runs.items()}
    assert functional[1.1].sum() > functional[1.3].sum()
    cells = to_dense(runs[1.1]).where(runs[1.1].is_cell, drop=True)
    assert (_hungarian_iou(cells.values > 0, truth) >= 0.5).sum() == len(truth)
    assert cells.sizes["roi"] == len(truth)


def test_a_dim_active_soma_on_a_bright_field_is_a_cell():
    """Somata of a field vary in brightness: three of nine, active, rest only 1.04-1.06
    times as bright as their surround (their transients alone), the others 1.3. The
    field keeps the bright-field rule (min_contrast 1.0), which keeps the dim ones and
    still drops the neuropil patches (contrast 0.81-0.995 here); at 1.2 the dim ones are
    lost."""
    rest = [90.0] * 6 + [0.0, 5.0, 10.0]
    movie, truth = _soma_movie(seed=1, rest=rest)
    found = {}
    for min_contrast in (SegmentSettings().min_contrast, 1.2):
        settings = SegmentSettings(diameter_px=12.0, min_contrast=min_contrast)
        rois = detect_somata(movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=settings)
        assert rois.attrs["min_contrast_applied"] == min_contrast
        cells = to_dense(rois).where(rois.is_cell, drop=True)
        found[min_contrast] = _hungarian_iou(cells.values > 0, truth) >= 0.5
        if min_contrast == SegmentSettings().min_contrast:
            assert cells.sizes["roi"] == len(truth)
    assert found[SegmentSettings().min_contrast].sum() == len(truth)
    assert found[1.2].sum() == len(truth) - 3


def _dendrite_movie(seed: int, size: int = 80, n_frames: int = 900):
    """Three tufts of thin (3 px) branched segments on noise + shared neuropil.

    Tuft 0 has two disjoint pieces that share one trace (they must be merged).
    """
    rng = np.random.default_rng(seed)
    from skimage.draw import line
    from skimage.morphology import dilation, disk

    def branch(segments):
        img = np.zeros((size, size), bool)
        for r0, c0, r1, c1 in segments:
            rr, cc = line(r0, c0, r1, c1)
            img[rr, cc] = True
        return dilation(img, disk(1))

    tuft_segments = [
        [[(8, 8, 8, 40), (8, 24, 30, 34)], [(20, 50, 45, 72)]],  # two pieces, one trace
        [[(40, 6, 72, 20), (56, 13, 60, 35)]],
        [[(60, 45, 74, 74), (67, 60, 50, 70)]],
    ]
    tufts = [[branch(piece) for piece in pieces] for pieces in tuft_segments]
    movie = 200.0 + rng.normal(0, 20, (n_frames, size, size))
    movie += 40 * _calcium(rng, n_frames, 0.3, tau_s=3.0)[:, None, None]
    for pieces in tufts:
        trace = 80 * _calcium(rng, n_frames, 0.2, tau_s=0.5)
        for piece in pieces:
            movie[:, piece] += trace[:, None] + 30
    truth = np.stack([np.any(pieces, axis=0) for pieces in tufts])
    return movie.astype(np.int16), truth


def test_detect_dendrites_merges_tuft_fragments():
    movie, truth = _dendrite_movie(seed=2)
    t0 = time.perf_counter()
    masks = to_dense(
        detect_dendrites(movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=SegmentSettings())
    )
    runtime = time.perf_counter() - t0
    matched = _hungarian_iou(masks.values > 0, truth)
    logger.info(
        "dendrites: %d ROIs for %d tufts, IoUs %s, %.1f s",
        masks.sizes["roi"],
        len(truth),
        np.round(matched, 2),
        runtime,
    )
    assert masks.sizes["roi"] == len(truth)
    assert np.all(matched >= 0.3)
    assert int(masks.n_fragments.max()) >= 2
    assert np.all(masks.length_px >= SegmentSettings().min_length_px)


def test_pure_noise_gives_no_dendrites():
    rng = np.random.default_rng(3)
    movie = (200 + rng.normal(0, 10, (300, 48, 48))).astype(np.int16)
    masks = detect_dendrites(
        movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=SegmentSettings()
    )
    assert masks.sizes["roi"] == 0
    assert is_sparse(masks)


def test_pure_noise_gives_no_cells():
    rng = np.random.default_rng(6)
    movie = (200 + rng.normal(0, 10, (600, 48, 48))).astype(np.int16)
    settings = SegmentSettings(anatomical=True)
    masks = detect_somata(movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=settings)
    assert is_sparse(masks)
    assert not masks.is_cell.any()


def test_bad_inputs():
    movie = np.zeros((100, 32, 32), np.int16)
    with pytest.raises(ValueError, match="mean_image shape"):
        detect_somata(movie, mean_image=np.zeros((16, 16)), fs_hz=FS_HZ, settings=SegmentSettings())
    with pytest.raises(ValueError, match="fs_hz"):
        detect_dendrites(
            movie, mean_image=np.zeros((32, 32)), fs_hz=0.0, settings=SegmentSettings()
        )
    with pytest.raises(ValueError, match="3-d"):
        detect_dendrites(
            movie[0], mean_image=np.zeros((32, 32)), fs_hz=FS_HZ, settings=SegmentSettings()
        )
    with pytest.raises(ValueError, match="diameter_px"):
        SegmentSettings(diameter_px=1.0)
    with pytest.raises(ValueError, match="motion_block_px"):
        SegmentSettings(motion_block_px=2)
    with pytest.raises(ValueError, match="dendrite_neuropil_block_px"):
        SegmentSettings(dendrite_neuropil_block_px=1)
    with pytest.raises(ConfigError, match="did you mean 'diameter_px'"):
        SegmentSettings.from_mapping({"diameter": 12})


def test_streamed_local_correlation_and_traces_match_the_whole_movie():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 12, 9)).astype(np.float32)
    x[:, 3:6, 2:7] += 2 * rng.normal(size=(50, 1, 1)).astype(np.float32)  # correlated patch
    x[:, 0, 0] = 1.0  # a constant pixel
    pixel_stats = _PixelStats(x.shape[1:])
    for start in range(0, 50, 16):
        pixel_stats.add(x[start : start + 16])
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    expected = np.zeros(x.shape[1:])
    for r in range(12):
        for c in range(9):
            neighbours = [
                (r + dr, c + dc)
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
                if (dr, dc) != (0, 0) and 0 <= r + dr < 12 and 0 <= c + dc < 9
            ]
            expected[r, c] = np.mean([(z[:, r, c] * z[:, q, k]).mean() for q, k in neighbours])
    np.testing.assert_allclose(pixel_stats.local_correlation(), expected, atol=1e-5)
    fragments = [np.zeros((12, 9), bool) for _ in range(2)]
    fragments[0][3:6, 2:7] = True
    fragments[1][8, 1:4] = True
    traces = _traces_and_reliability(x, fragments, pixel_stats, batch_bins=7)[0]
    np.testing.assert_allclose(traces, [z[:, f].mean(axis=1) for f in fragments], atol=1e-5)


def test_remove_residual_motion_cancels_subpixel_shifts():
    """Frames of a bright line shifted by +-0.3 px lose >90% of their deviation from the mean."""
    rng = np.random.default_rng(3)
    rr, cc = np.mgrid[:40, :40].astype(float)
    image = lambda dr: 20 * np.exp(-((rr - 20 - dr - 0.3 * cc) ** 2) / 4) + 5  # noqa: E731
    shifts = rng.uniform(-0.3, 0.3, 30)
    frames = np.stack([image(d) for d in shifts]).astype(np.float32)
    mean = frames.mean(axis=0)
    cleaned = _remove_residual_motion(frames - mean, mean, block_px=20)
    assert np.abs(cleaned).std() < 0.1 * np.abs(frames - mean).std()
    assert not np.shares_memory(cleaned, frames)


def test_block_median_ignores_sparse_active_pixels():
    """A smooth background is recovered; a bright thin line barely raises it."""
    rr, cc = np.mgrid[:48, :48].astype(np.float32)
    background = 2.0 + 0.05 * rr + 0.02 * cc
    frame = background.copy()
    frame[20:22, :] += 50.0  # an active dendrite: 2 px wide
    est = _block_median(frame[None], 16)[0]
    assert np.abs(est - background)[4:-4, 4:-4].max() < 0.6


def _blob(centre, size: int = 40, sigma: float = 2.0) -> np.ndarray:
    rr, cc = np.mgrid[:size, :size]
    w = np.exp(-((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / (2 * sigma**2))
    return np.where(w > 0.05, w, 0.0)


def test_split_blobs_cuts_two_somata_and_keeps_one():
    two = np.maximum(_blob((20, 14)), _blob((20, 25)))
    parts = _split_blobs(two, 8.0)
    assert len(parts) == 2
    rows_cols = sorted(tuple(np.round(ndimage.center_of_mass(p)).astype(int)) for p in parts)
    assert rows_cols == [(20, 14), (20, 25)]
    np.testing.assert_allclose(np.sum(parts, axis=0), two)
    assert len(_split_blobs(_blob((20, 20)), 8.0)) == 1


def test_merge_split_somata_joins_halves_not_neighbours():
    soma = _blob((20, 12))
    left, right = np.where(np.mgrid[:40, :40][1] < 12, soma, 0.0), soma.copy()
    right[:, :12] = 0.0
    neighbour = 3.0 * _blob((20, 24))  # 12 px away: another cell (scale must not matter)
    parts = [left.copy(), neighbour.copy(), right.copy()]
    merged = _merge_split_somata(
        parts, max_distance_px=0.7 * 8, max_area_px=120, trim_fraction=0.3, min_core_iou=1.0
    )
    assert parts == []  # consumed, so the caller holds no second copy
    assert len(merged) == 2
    assert all(m.max() == pytest.approx(1.0) for m in merged)
    joined = np.maximum(left / left.max(), right / right.max())
    np.testing.assert_array_equal(merged[0] > 0, joined >= 0.3)  # halves joined, rim trimmed
    np.testing.assert_array_equal(merged[1] > 0, neighbour >= 0.3 * 3.0)
    # the union of two whole somata exceeds the area bound: never merged
    assert len(_merge_split_somata([soma, neighbour], max_distance_px=20, max_area_px=60,
                                   trim_fraction=0.0, min_core_iou=1.0)) == 2  # fmt: skip
    assert (
        _merge_split_somata(
            [], max_distance_px=5, max_area_px=50, trim_fraction=0.3, min_core_iou=1.0
        )
        == []
    )


def test_crossing_tufts_each_take_back_the_crossing_and_their_own_gaps():
    """A horizontal and a vertical dendrite with independent activity cross; the
    horizontal ROI lost the crossing and its neighbours (given to the other fragment), the
    vertical one a pixel further on. Grown, each is its whole line, both hold the
    crossing, and neither takes the other's pixels or the noise around."""
    rng = np.random.default_rng(0)
    n_bins = 400
    frames = rng.normal(0.0, 1.0, (n_bins, 20, 20))
    horizontal, vertical = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    horizontal[10, 2:18] = True
    vertical[2:18, 10] = True
    for line in (horizontal, vertical):
        frames[:, line] += 3.0 * _calcium(rng, n_bins, 0.3)[:, None]
    stats = _PixelStats((20, 20))
    stats.add(frames.astype(np.float32))
    h_roi, v_roi = horizontal.copy(), vertical.copy()
    h_roi[10, 9:12] = False
    v_roi[13, 10] = False
    bins = frames.astype(np.float32)
    traces = _traces_and_reliability(bins, [h_roi, v_roi], stats)[0]
    grown = _grow_by_correlation(bins, [h_roi, v_roi], traces, stats, reach_px=3, min_corr=0.2)
    np.testing.assert_array_equal(grown[0], horizontal)
    np.testing.assert_array_equal(grown[1], vertical)
    unchanged = _grow_by_correlation(bins, [h_roi, v_roi], traces, stats, reach_px=3, min_corr=0.99)
    np.testing.assert_array_equal(unchanged[0], h_roi)
    assert _grow_by_correlation(bins, [], traces[:0], stats, reach_px=3, min_corr=0.2) == []


def _two_lines(rng, n_bins: int, noise_sd: float, shared: bool):
    """Binned frames with a horizontal and a vertical 3 px line; independent calcium on
    each, or one trace on both (``shared``)."""
    frames = rng.normal(0.0, noise_sd, (n_bins, 24, 24))
    horizontal, vertical = np.zeros((24, 24), bool), np.zeros((24, 24), bool)
    horizontal[10:13, 2:22] = True
    vertical[13:22, 10:13] = True
    trace = _calcium(rng, n_bins, 0.3)
    for line in (horizontal, vertical):
        frames[:, line] += 3.0 * (trace if shared else _calcium(rng, n_bins, 0.3))[:, None]
    stats = _PixelStats((24, 24))
    stats.add(frames.astype(np.float32))
    return frames.astype(np.float32), stats, horizontal, vertical


def test_a_fragment_over_two_crossing_tufts_is_cut_between_them(monkeypatch):
    """One watershed fragment holding a piece of each of two tufts with their own activity
    is cut along the tufts; a fragment of one tuft beside it stays whole, also when the
    two are read in separate batches."""
    rng = np.random.default_rng(4)
    bins, stats, horizontal, vertical = _two_lines(rng, 400, 1.0, shared=False)
    third = np.zeros_like(horizontal)
    third[2:5, 2:22] = True
    bins[:, third] += 3.0 * _calcium(rng, len(bins), 0.3)[:, None]
    stats = _PixelStats(third.shape)
    stats.add(bins)
    for batch_px in (4096, 10):
        monkeypatch.setattr(dendrites, "SPLIT_BATCH_PX", batch_px)
        pieces = _split_crossings(bins, [horizontal | vertical, third], stats)
        assert len(pieces) == 3
        np.testing.assert_array_equal(pieces[1], third)
        found = np.stack([pieces[0], pieces[2]])
        assert sorted(_hungarian_iou(found, np.stack([horizontal, vertical]))) == [1, 1]


def test_a_dim_tuft_is_not_cut_along_its_pixel_noise():
    """Fitted on its own noise, 2-means always finds two sides of one dim tuft's pixels;
    judged on other bins and corrected for the sides' reliabilities, they are one trace."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        for noise_sd in (1.0, 9.0):
            bins, stats, horizontal, vertical = _two_lines(rng, 400, noise_sd, shared=True)
            whole = _split_crossings(bins, [horizontal | vertical], stats)
            assert len(whole) == 1
            np.testing.assert_array_equal(whole[0], horizontal | vertical)


def test_noisy_fragments_of_one_tuft_merge_and_of_two_tufts_do_not():
    """Pixel noise holds the raw correlation of two fragments of one dim tuft below the
    merge threshold; corrected for each fragment's split-half reliability they merge,
    while fragments of tufts with their own activity stay apart."""
    rng = np.random.default_rng(5)
    threshold = SegmentSettings().merge_corr_threshold
    bins, stats, horizontal, vertical = _two_lines(rng, 400, 9.0, shared=True)
    fragments = [horizontal, vertical]
    traces, reliability = _traces_and_reliability(bins, fragments, stats)
    assert np.corrcoef(traces)[0, 1] < threshold
    assert _merge_groups(traces, threshold) == [[0], [1]]
    assert _merge_groups(traces, threshold, reliability) == [[0, 1]]
    bins, stats, horizontal, vertical = _two_lines(rng, 400, 9.0, shared=False)
    traces, reliability = _traces_and_reliability(bins, fragments, stats)
    assert _merge_groups(traces, threshold, reliability) == [[0], [1]]


def test_a_fragment_half_without_variance_gets_the_floor_reliability():
    """Constant pixels (dead or saturated) make a half's trace constant: its reliability is
    the floor's, not NaN, so the merge's distances stay finite."""
    rng = np.random.default_rng(6)
    bins, stats, horizontal, vertical = _two_lines(rng, 200, 1.0, shared=True)
    rows, cols = np.indices(horizontal.shape)
    bins[:, horizontal & ((rows + cols) % 2 == 0)] = 5.0
    stats = _PixelStats(horizontal.shape)
    stats.add(bins)
    traces, reliability = _traces_and_reliability(bins, [horizontal, vertical], stats)
    floor = 2 * MIN_HALF_CORR / (1 + MIN_HALF_CORR)
    assert reliability[0] == pytest.approx(floor)
    assert floor < reliability[1] <= 1
    _merge_groups(traces, 0.5, reliability)  # raised on NaN distances before


def test_a_piece_inside_a_larger_cell_is_not_a_second_cell():
    rr, cc = np.mgrid[:40, :40]
    soma = (np.hypot(rr - 20, cc - 12) <= 5).astype(float)  # grown to its whole soma
    piece = (np.hypot(rr - 20, cc - 15) <= 3).astype(float)  # partly outside the soma
    touching = (np.hypot(rr - 20, cc - 24) <= 5).astype(float)  # the next soma, 1 px apart
    weights = [piece, soma, touching]
    share = np.count_nonzero(piece * soma) / np.count_nonzero(piece)
    assert 0.5 < share < 1.0
    np.testing.assert_array_equal(
        _second_on_a_soma(weights, np.ones(3, bool), 0.3), [True, False, False]
    )
    # only cells count: a non-cell larger ROI leaves the piece a cell
    np.testing.assert_array_equal(
        _second_on_a_soma(weights, np.array([True, False, True]), 0.3), [False, False, False]
    )
    assert not _second_on_a_soma(weights, np.ones(3, bool), share + 0.01).any()
    assert _second_on_a_soma([], np.zeros(0, bool), 0.3).shape == (0,)


def test_merge_split_somata_joins_halves_whose_dim_rims_spill_far():
    """Two halves of one soma, each with a wide dim rim: their plain union is too large,
    but their cores overlap, so they merge when ``min_core_iou`` allows it; two somata
    with the same rims (disjoint cores) never do."""
    rr, cc = np.mgrid[:40, :40]
    r = np.hypot(rr - 20, cc - 20)
    rim = np.where((r > 5) & (r <= 9), 0.1, 0.0)  # 0.1 < trim_fraction: not core
    left = np.where((r <= 5) & (cc < 22), 1.0, rim)
    right = np.where((r <= 5) & (cc >= 18), 1.0, rim)
    bounds = dict(max_distance_px=0.7 * 8, max_area_px=120, trim_fraction=0.3)
    assert (np.maximum(left, right) > 0).sum() > 120  # the untrimmed union is too large
    assert len(_merge_split_somata([left.copy(), right.copy()], min_core_iou=1.0, **bounds)) == 2
    merged = _merge_split_somata([left.copy(), right.copy()], min_core_iou=0.3, **bounds)
    assert len(merged) == 1
    np.testing.assert_array_equal(merged[0] > 0, r <= 5)  # one soma, rims trimmed
    near = np.where(np.hypot(rr - 20, cc - 24) <= 5, 1.0, rim)  # core IoU 0.14
    assert len(_merge_split_somata([left.copy(), near], min_core_iou=0.3, **bounds)) == 2


def test_merge_split_somata_joins_a_half_whose_dim_tail_pulls_its_centroid_away():
    """The second half of a soma trails a long dim tail (sparsery's residual): its weighted
    centroid lies > max_distance_px from the first half, but the ROIs it would make
    (the cores) are one soma, so they merge."""
    rr, cc = np.mgrid[:40, :40]
    r = np.hypot(rr - 20, cc - 20)
    first = np.where((r <= 5) & (cc < 22), 1.0, 0.0)
    second = np.where((r <= 5) & (cc >= 18), 1.0, 0.0)
    second[30:40, 10:40] = 0.25  # tail: below trim_fraction, 75 px of weight
    com = ndimage.center_of_mass(second)
    assert np.hypot(com[0] - 20, com[1] - 20) > 0.7 * 8  # the weighted centroid is off
    merged = _merge_split_somata(
        [first, second], max_distance_px=0.7 * 8, max_area_px=120, trim_fraction=0.3,
        min_core_iou=0.3,
    )  # fmt: skip
    assert len(merged) == 1
    np.testing.assert_array_equal(merged[0] > 0, r <= 5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("trim_fraction", 1.0, "trim_fraction must be in"),
        ("merge_distance_fraction", -0.1, "merge_distance_fraction must be >= 0"),
        ("min_area_fraction", 4.0, "min_area_fraction must be >= 0 and <="),
        ("min_contrast", -1.0, "min_contrast must be >= 0"),
        ("min_contrast_dark", -0.1, "min_contrast_dark must be >= 0"),
        ("bright_soma_contrast", 0.9, "bright_soma_contrast must be >= segment.min_contrast"),
    ],
)
def test_soma_settings_reject_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        SegmentSettings(**{field: value})


def test_silent_bright_and_dark_somata_found_in_the_mean_image():
    """Somata without transients (sparsery has nothing to find) are mean-image blobs:
    bright ones and dark (indicator-excluded) ones; the dark rim a bright soma leaves in
    the Laplacian is not taken for a dark soma."""
    rng = np.random.default_rng(3)
    size = 80
    rr, cc = np.mgrid[:size, :size]
    centres = [(20, 20, 1), (20, 58, 1), (58, 20, -1), (58, 58, -1)]
    truth = np.stack([np.hypot(rr - r, cc - c) <= 4.5 for r, c, _ in centres])
    movie = 300.0 + rng.normal(0, 10, (300, size, size))
    for mask, (_, _, sign) in zip(truth, centres, strict=True):
        movie[:, mask] += sign * 80
    movie = movie.astype(np.int16)
    settings = SegmentSettings(anatomical=True)
    masks = to_dense(detect_somata(movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=settings))
    cells = masks.where(masks.is_cell, drop=True)
    assert bool(cells.anatomical.all())
    assert cells.sizes["roi"] == len(truth)
    assert (_hungarian_iou(cells.values > 0, truth) >= 0.5).all()
    assert sorted(np.sign(cells.blob_z.values)) == [-1, -1, 1, 1]
    off = detect_somata(
        movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=SegmentSettings(anatomical=False)
    )
    assert not off.is_cell.any()


def test_mean_image_blobs_take_the_size_of_their_soma():
    """Silent somata from 0.8 to 1.8 times the expected diameter get masks of their own
    size (the blob's scale is fitted), not one of the expected diameter."""
    rng = np.random.default_rng(4)
    size = 90
    rr, cc = np.mgrid[:size, :size]
    centres = [(22, 22, 3.5), (22, 66, 5.0), (66, 22, 6.0), (66, 66, 7.0)]
    truth = np.stack([np.hypot(rr - r, cc - c) <= radius for r, c, radius in centres])
    movie = 300.0 + rng.normal(0, 10, (300, size, size))
    movie[:, truth.any(0)] += 80
    movie = movie.astype(np.int16)
    settings = SegmentSettings(anatomical=True, max_area_fraction=4.0)
    masks = to_dense(detect_somata(movie, mean_image=movie.mean(0), fs_hz=FS_HZ, settings=settings))
    cells = masks.where(masks.is_cell, drop=True)
    assert cells.sizes["roi"] == len(truth)
    assert (_hungarian_iou(cells.values > 0, truth) >= 0.7).all()


def test_mean_image_blob_masks_reach_a_soft_somas_edge():
    """A soma's profile falls off softly (the simulator's: a fifth of its peak at 1.17 of
    its radius, a dim nucleus inside); the Laplacian fits it smaller than that, so its
    mask is cut at a share of its contrast, not at the fitted diameter. A sharp-edged
    soma keeps its own edge."""
    rng = np.random.default_rng(5)
    shape = (70, 70)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    somata = [(20, 20, 4.0), (20, 50, 6.0), (50, 35, 5.0)]

    def soft(r, c, radius):
        d = np.hypot(rr - r, cc - c) / radius
        return 1 / (1 + np.exp((d - 1) * 8)) - 0.4 * np.exp(-(d**2) / 0.18)

    soft_truth = np.stack([soft(*s) > 0.2 for s in somata])
    soft_image = 100 + rng.normal(0, 1, shape) + sum(60 * soft(*s) for s in somata)
    sharp_truth = np.stack([np.hypot(rr - r, cc - c) <= radius for r, c, radius in somata])
    sharp_image = 100 + rng.normal(0, 1, shape) + 60 * sharp_truth.any(0)
    kwargs = dict(diameter_px=8.0, min_z=3.0, min_snr=3.0, max_distance_px=4.0)
    for image, truth in ((soft_image, soft_truth), (sharp_image, sharp_truth)):
        scales = anatomy.scale_images(image, 8.0, noise_sd=1.0)
        added = np.stack(anatomy.anatomical_rois(image, scales, [], **kwargs)) > 0
        assert (_hungarian_iou(added, truth) >= 0.9).all()


def test_dark_gap_between_functional_cells_is_not_a_soma():
    """Four bright somata around a gap leave a dark blob there; ringed by functional cells
    it is dropped, while the same dark spot in open neuropil is a dark soma."""
    shape = (90, 60)
    corners = [(16, 16), (16, 34), (34, 16), (34, 34)]
    mean_image = _bright_disks(shape, [(r, c, 8.0) for r, c in corners])
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    mean_image[np.hypot(rr - 70, cc - 30) <= 4.5] -= 60.0  # a dark soma, open neuropil
    scales = anatomy.scale_images(mean_image, 10.0, noise_sd=0.1)
    cells = [(np.hypot(rr - r, cc - c) <= 8.0).astype(float) for r, c in corners]
    kwargs = dict(diameter_px=10.0, min_z=2.0, min_snr=1.0, max_distance_px=5.0)
    added = anatomy.anatomical_rois(mean_image, scales, cells, **kwargs)
    centroids = [ndimage.center_of_mass(a) for a in added]
    assert [round(r) for r, _ in centroids] == [70]  # the dark soma, not the gap at 25
    # without the functional cells the gap is just another dark blob
    alone = anatomy.anatomical_rois(mean_image, scales, [], **kwargs)
    assert any(abs(r - 25) < 3 and abs(c - 25) < 3 for r, c in map(ndimage.center_of_mass, alone))


def _bright_disks(shape, disks):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100.0)
    for r, c, radius in disks:
        image[np.hypot(rr - r, cc - c) <= radius] += 100.0
    return image


def test_grow_to_somata_fills_the_soma_a_fragment_sits_on():
    mean_image = _bright_disks((60, 60), [(30, 30, 6.5)])
    fragment = np.zeros((60, 60))
    fragment[28:32, 28:33] = 1.0
    scales = anatomy.scale_images(mean_image, 8.0, noise_sd=1.0)
    (grown,) = anatomy.grow_to_somata([fragment], scales, mean_image)
    soma = mean_image > 150
    assert _hungarian_iou((grown > 0)[None], soma[None])[0] >= 0.7
    assert np.count_nonzero(grown) > 5 * np.count_nonzero(fragment)


def test_grow_to_somata_leaves_a_dim_soma_beside_a_bright_one_as_it_is(monkeypatch):
    """A soma resting no brighter than the neuropil, beside a larger bright soma: the
    response at its centre keeps rising with size, and its disk would take in half the
    neighbour."""
    shape = (60, 60)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    mean_image = np.full(shape, 100.0)
    mean_image[np.hypot(rr - 30, cc - 37) <= 6.0] = 140.0
    dim_soma = np.hypot(rr - 30, cc - 30) <= 3.5
    mean_image[dim_soma] = 100.0
    fragment = (np.hypot(rr - 30, cc - 30) <= 2.5).astype(float)
    scales = anatomy.scale_images(mean_image, 8.0, noise_sd=1.0)
    (kept,) = anatomy.grow_to_somata([fragment], scales, mean_image)
    assert np.array_equal(kept > 0, fragment > 0)
    # the rule is what keeps it: without it the fragment takes in its neighbour
    monkeypatch.setattr(anatomy, "GROW_MIN_DISK_CONTRAST", 0.0)
    (grown,) = anatomy.grow_to_somata([fragment], scales, mean_image)
    assert np.count_nonzero((grown > 0) & (mean_image > 120)) > 20


def test_grow_to_somata_leaves_a_larger_rois_soma_to_it():
    """A second, smaller ROI on a soma does not become a copy of the first, and a fragment
    between two touching somata does not take both in."""
    shape = (60, 80)
    mean_image = _bright_disks(shape, [(30, 30, 5.0), (30, 40, 5.0)])
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    first = (np.hypot(rr - 30, cc - 30) <= 4.0).astype(float)
    second = (np.hypot(rr - 30, cc - 40) <= 4.0).astype(float)
    small_on_first = np.zeros(shape)
    small_on_first[26:28, 29:31] = 1.0
    between = np.zeros(shape)
    between[29:31, 34:37] = 1.0
    scales = anatomy.scale_images(mean_image, 8.0, noise_sd=1.0)
    grown = anatomy.grow_to_somata([small_on_first, between, first, second], scales, mean_image)
    for before, after in zip([small_on_first, between], grown[:2], strict=True):
        assert np.array_equal(after > 0, before > 0)
    assert not (grown[2] > 0)[30, 40] and not (grown[3] > 0)[30, 30]


def test_a_field_whose_most_active_rois_rest_dim_gets_the_dark_contrast_rule(caplog):
    """Label-free: most of the most skewed soma-sized functional ROIs resting below
    bright_soma_contrast means the field's somata rest dark; its contrast rule becomes
    min_contrast_dark, with a warning. Dim specks (too small for a soma) do not count."""
    rng = np.random.default_rng(0)
    skewness = rng.uniform(0, 5, 100)
    active = skewness > np.sort(skewness)[-31]
    settings = SegmentSettings()
    caplog.set_level(logging.WARNING, logger="analysis.segment.field_contrast")
    inside = rng.uniform(20, 236, (2, 100))
    # the most skewed ROIs on the frame's edge (registration's artifacts) are not counted
    at_edge = np.where(active, 3.0, inside)
    soma_area, speck_area = 50, 10
    for active_contrast, rows, active_area, dark in (
        (1.05, inside[0], soma_area, True),
        (1.5, inside[0], soma_area, False),
        (1.05, at_edge[0], soma_area, False),
        (1.05, inside[0], speck_area, False),
    ):
        caplog.clear()
        contrast = np.where(active, active_contrast, 1.5)
        feats = {"skewness": skewness, "contrast": contrast}
        feats.update(centroid_row=rows, centroid_col=inside[1])
        feats.update(area_px=np.where(active, active_area, soma_area), compactness=np.ones(100))
        applied = _with_field_contrast(feats, settings, (256, 256), None).min_contrast
        assert applied == (settings.min_contrast_dark if dark else settings.min_contrast)
        assert ("segment.min_contrast_dark" in caplog.text) is dark


def test_a_functional_roi_whose_events_light_a_speck_is_not_a_cell():
    """The event-area rule: of two active ROIs alike in every other feature, the one whose
    events light a speck (10 px) is not a cell, the one lighting a soma (40 px) is; a
    mean-image blob, possibly silent, is not held to it."""
    settings = SegmentSettings()
    feats = {
        "area_px": np.array([40, 40, 40]),
        "compactness": np.ones(3),
        "skewness": np.array([2.0, 2.0, 0.0]),
        "contrast": np.array([1.5, 1.5, 1.5]),
        "event_area_px": np.array([10, 40, 0]),
        "anatomical": np.array([False, False, True]),
    }
    is_cell, _ = _classify(feats, settings, None)
    assert is_cell.tolist() == [False, True, True]
    off = dataclasses.replace(settings, min_event_area_fraction=0.0)
    assert _classify(feats, off, None)[0].tolist() == [True, True, True]
