"""Known-answer tests for analysis.register (suite2p rigid + nonrigid registration)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage as ndi

from analysis.register import RegisterSettings, compute_raw_to_registered_offset, register_movie
from analysis.settings import ConfigError

N_PX = 96
PAD = 32
FS_HZ = 30.0


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Smoothed noise plus soma-like blobs, padded so shifted crops stay inside."""
    size = N_PX + 2 * PAD
    img = ndi.gaussian_filter(rng.normal(size=(size, size)), 2.0) * 40
    rr, cc = np.mgrid[:size, :size]
    for r0, c0 in rng.uniform(0, size, (40, 2)):
        img += 150 * np.exp(-((rr - r0) ** 2 + (cc - c0) ** 2) / (2 * 3.0**2))
    return img - img.min() + 50


def _movie(rng: np.random.Generator, shifts: np.ndarray, *, gain: float = 1.0) -> np.ndarray:
    """Frames with content displaced by ``shifts`` (raw(r) = ref(r - shift)), Poisson noise."""
    base = _texture(rng) * gain
    frames = np.empty((len(shifts), N_PX, N_PX), np.int16)
    for t, shift in enumerate(shifts):
        moved = ndi.shift(base, shift, order=3, mode="nearest")[PAD:-PAD, PAD:-PAD]
        frames[t] = rng.poisson(np.clip(moved, 0, None))
    return frames


def _shift_errors(ds, true: np.ndarray, frames: slice | np.ndarray = slice(None)) -> np.ndarray:
    """|estimated - true| after removing the per-session constant (reference position)."""
    est = np.stack([ds.shift_row.values, ds.shift_col.values], axis=1)
    diff = (est - true)[frames]
    return np.abs(diff - np.median(diff, axis=0))


def test_recovers_subpixel_shifts_from_memmap(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(-3, 3, size=(120, 2))
    frames = _movie(rng, true)
    raw = np.lib.format.open_memmap(tmp_path / "raw.npy", "w+", np.int16, frames.shape)
    raw[:] = frames
    raw.flush()
    raw = np.load(tmp_path / "raw.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "out.npy", "w+", np.int16, frames.shape)

    ds = register_movie(raw, out, fs_hz=FS_HZ, settings=RegisterSettings())

    err = _shift_errors(ds, true)
    assert np.median(err) < 0.3
    assert np.percentile(err, 95) < 0.6
    # same sign as the truth (an inverted convention would anti-correlate)
    assert np.corrcoef(ds.shift_row, true[:, 0])[0, 1] > 0.99
    assert np.corrcoef(ds.shift_col, true[:, 1])[0, 1] > 0.99
    np.testing.assert_array_equal(raw, frames)  # input untouched
    # registered frames line up: far less temporal variance per pixel than the raw movie
    rows, cols = slice(*ds.attrs["valid_row_range"]), slice(*ds.attrs["valid_col_range"])
    jitter_out = np.asarray(out)[:, rows, cols].std(axis=0).mean()
    jitter_raw = frames[:, rows, cols].std(axis=0).mean()
    assert jitter_out < 0.6 * jitter_raw
    np.testing.assert_allclose(ds.mean_image, np.asarray(out, np.float64).mean(0), rtol=1e-5)
    np.testing.assert_array_equal(ds.max_image, np.asarray(out).max(0))
    assert ds.sizes == {"time": 120, "block": 9, "row": N_PX, "col": N_PX}
    np.testing.assert_allclose(ds.time, np.arange(120) / FS_HZ)
    np.testing.assert_array_equal(ds.frame, np.arange(120))
    np.testing.assert_array_equal(np.unique(ds.block_row), [31.5, 47.5, 63.5])
    assert not ds.bad_frame.any()
    assert float(ds.corr_ref.median()) > 0.9
    assert 0 <= float(ds.mean_image_enhanced.min()) <= float(ds.mean_image_enhanced.max()) <= 1


def test_motion_spike_recovered_and_out_of_range_frame_flagged():
    rng = np.random.default_rng(1)
    true = rng.uniform(-2, 2, size=(100, 2))
    true[40] = [7.3, -6.6]  # a large jump still inside max_shift_fraction * 96 = 9.6 px
    true[70] = [28.0, 25.0]  # beyond the allowed rigid search range
    ds = register_movie(
        _movie(rng, true),
        np.zeros((100, N_PX, N_PX), np.int16),
        fs_hz=FS_HZ,
        settings=RegisterSettings(),
    )

    good = np.setdiff1d(np.arange(100), [70])
    err = _shift_errors(ds, true, good)
    assert np.median(err) < 0.3
    assert err[good == 40].max() < 0.5  # the spike frame is registered, not dropped
    assert not ds.bad_frame[40]
    assert ds.bad_frame[70]
    assert float(ds.corr_ref[70]) < 0.5 * float(ds.corr_ref.median())
    assert int(ds.bad_frame.sum()) <= 2


def test_dimmer_movie_gives_same_accuracy():
    rng = np.random.default_rng(2)
    true = rng.uniform(-3, 3, size=(80, 2))
    ds = register_movie(
        _movie(rng, true, gain=0.8),
        np.zeros((80, N_PX, N_PX), np.int16),
        fs_hz=FS_HZ,
        settings=RegisterSettings(),
    )
    assert np.median(_shift_errors(ds, true)) < 0.3
    assert not ds.bad_frame.any()


def test_rigid_only_has_integer_shifts_and_no_blocks():
    rng = np.random.default_rng(3)
    true = np.round(rng.uniform(-3, 3, size=(40, 2)))
    ds = register_movie(
        _movie(rng, true),
        np.zeros((40, N_PX, N_PX), np.int16),
        fs_hz=FS_HZ,
        settings=RegisterSettings(nonrigid=False),
    )
    assert ds.sizes["block"] == 0
    np.testing.assert_array_equal(ds.shift_row, ds.rigid_shift_row)
    assert np.max(_shift_errors(ds, true)) == 0


def test_small_field_of_view_shrinks_blocks(caplog):
    rng = np.random.default_rng(4)
    true = rng.uniform(-2, 2, size=(40, 2))
    frames = np.ascontiguousarray(_movie(rng, true)[:, :64, :64])
    with caplog.at_level("WARNING", logger="analysis.register"):
        ds = register_movie(frames, np.zeros_like(frames), fs_hz=FS_HZ, settings=RegisterSettings())
    assert "not smaller than" in caplog.text
    assert ds.sizes["block"] == 9
    assert np.median(_shift_errors(ds, true)) < 0.3


@pytest.mark.parametrize(
    ("raw", "out", "message"),
    [
        (np.zeros((5, 32, 32), np.float32), np.zeros((5, 32, 32), np.int16), "int16"),
        (np.zeros((5, 32, 32), np.int16), np.zeros((5, 32, 30), np.int16), "shape"),
        (np.zeros((32, 32), np.int16), np.zeros((32, 32), np.int16), "3-D"),
        (np.zeros((2, 32, 32), np.int16), np.zeros((2, 32, 32), np.int16), "at least 3"),
    ],
)
def test_bad_movies_rejected(raw, out, message):
    with pytest.raises(ValueError, match=message):
        register_movie(raw, out, fs_hz=FS_HZ, settings=RegisterSettings())


def test_in_place_registration_equals_a_separate_output():
    rng = np.random.default_rng(5)
    raw = _movie(rng, rng.uniform(-3, 3, size=(40, 2)))
    out = np.zeros_like(raw)
    separate = register_movie(raw, out, fs_hz=FS_HZ, settings=RegisterSettings())
    in_place = register_movie(raw, raw, fs_hz=FS_HZ, settings=RegisterSettings())
    np.testing.assert_array_equal(raw, out)
    xr.testing.assert_identical(in_place, separate)


def test_overlapping_views_and_bad_rate_rejected():
    movie = np.zeros((6, 32, 32), np.int16)
    with pytest.raises(ValueError, match="share memory"):
        register_movie(movie[:5], movie[1:], fs_hz=FS_HZ, settings=RegisterSettings())
    with pytest.raises(ValueError, match="fs_hz"):
        register_movie(movie, movie.copy(), fs_hz=0.0, settings=RegisterSettings())


def test_settings_validation():
    assert RegisterSettings.from_mapping({"block_size_px": [32, 32]}).block_size_px == (32, 32)
    with pytest.raises(ConfigError, match="block_size_px"):
        RegisterSettings.from_mapping({"block_size": [32, 32]})
    with pytest.raises(ConfigError, match="max_shift_fraction"):
        RegisterSettings.from_mapping({"max_shift_fraction": 0.9})
    with pytest.raises(ValueError, match="bad_frame_corr_fraction"):
        RegisterSettings(bad_frame_corr_fraction=1.5)


def test_raw_to_registered_offset_uses_logged_rig_shifts():
    # registration frame is the raw frame displaced by s; the rig logged its own shifts d
    s = np.array([2.0, 3.0, 2.5, 2.0])
    d = np.array([1.0, 2.0, 1.5, 1.0])
    registration = xr.Dataset({"shift_row": ("time", s), "shift_col": ("time", -s)})
    off = compute_raw_to_registered_offset(
        registration, bci_frames=pd.DataFrame({"shift_row": d, "shift_col": -d})
    )
    assert off == (-1.0, 1.0)
    assert compute_raw_to_registered_offset(registration) == (-2.25, 2.25)  # median of s
    with pytest.raises(ValueError, match="logged shift_row has 2 frames"):
        compute_raw_to_registered_offset(
            registration, bci_frames=pd.DataFrame({"shift_row": d[:2]})
        )


def test_logs_progress_of_both_passes(caplog):
    rng = np.random.default_rng(5)
    true = np.round(rng.uniform(-2, 2, size=(40, 2)))
    with caplog.at_level("INFO", logger="analysis.register"):
        register_movie(
            _movie(rng, true),
            np.zeros((40, N_PX, N_PX), np.int16),
            fs_hz=FS_HZ,
            settings=RegisterSettings(nonrigid=False, two_step=True, batch_size_frames=16),
        )
    # two-step registration writes every frame twice; the summary pass reads them once
    assert "registration: 80/80 frames (100%)" in caplog.text
    assert "summary images: 40/40 frames (100%)" in caplog.text


def test_threads_set_torch_threads():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        frames = _movie(np.random.default_rng(1), np.zeros((20, 2)))
        register_movie(
            frames, np.zeros_like(frames), fs_hz=FS_HZ, settings=RegisterSettings(), threads=1
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
