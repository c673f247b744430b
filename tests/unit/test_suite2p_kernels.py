"""analysis.suite2p_kernels computes what suite2p 1.1.0's own kernels compute."""

import numpy as np
import pytest
import torch
from suite2p.detection import sparsedetect

# suite2p's own extendROI: the extraction module bound it when suite2p was imported, and
# install() swaps only the name sparsery looks up
from suite2p.extraction.masks import extendROI as suite2p_extend_roi
from suite2p.registration import nonrigid, rigid, utils
from test_register import FS_HZ, N_PX, _movie, _texture
from test_segment import FS_HZ as SOMA_FS_HZ
from test_segment import _soma_movie

from analysis import suite2p_kernels
from analysis.register import RegisterSettings, register_movie
from analysis.segment import SegmentSettings, detect_somata


@pytest.fixture
def suite2p_own_kernels(monkeypatch):
    """suite2p's original kernels for one test; install() does nothing meanwhile."""
    monkeypatch.setattr(suite2p_kernels, "install", lambda: None)
    monkeypatch.setattr(rigid, "convolve", utils.convolve)
    monkeypatch.setattr(nonrigid, "convolve", utils.convolve)
    monkeypatch.setattr(rigid, "spatial_taper", utils.spatial_taper)
    monkeypatch.setattr(sparsedetect, "extendROI", suite2p_extend_roi)


def test_whitened_correlation_matches_suite2p_convolve():
    rng = np.random.default_rng(7)
    ref = torch.from_numpy(_texture(rng)[:N_PX, :N_PX].astype(np.float32))
    frames = torch.from_numpy(_movie(rng, rng.uniform(-3, 3, (6, 2))).astype(np.float32))
    mask_mul, mask_offset, ref_spectrum = rigid.compute_masks_ref_smooth_fft(ref, 3.45, 1.15)
    yblock, xblock = nonrigid.make_blocks(N_PX, N_PX, (32, 32))[:2]
    block_mul, block_offset, block_spectra = nonrigid.compute_masks_ref_smooth_fft(
        ref, 3.45, 1.15, yblock, xblock
    )
    blocks = torch.stack(
        [frames[:, y[0] : y[1], x[0] : x[1]] for y, x in zip(yblock, xblock, strict=True)], 1
    )
    for data, spectrum in (
        ((frames * mask_mul + mask_offset).type(torch.complex64), ref_spectrum),
        ((blocks * block_mul + block_offset).type(torch.complex64), block_spectra),
    ):
        expected = utils.convolve(data.clone(), spectrum)
        # two float32 FFT paths: each rounds within ~eps * log2(n) of the peak; the
        # rounding order differs between CPUs' SIMD kernels
        n_px = data.shape[-1] * data.shape[-2]
        tolerance = 2 * np.finfo(np.float32).eps * np.log2(n_px) * float(expected.abs().max())
        found = suite2p_kernels.whitened_correlation(data, spectrum)
        np.testing.assert_allclose(found, expected, atol=tolerance)
    taper = suite2p_kernels.float32_taper(3.45, N_PX, N_PX)
    assert taper.dtype == torch.float32
    np.testing.assert_allclose(taper, utils.spatial_taper(3.45, N_PX, N_PX), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_extend_roi_matches_suite2p(dtype):
    rng = np.random.default_rng(3)
    for _ in range(100):
        n_rows, n_cols = rng.integers(3, 60, 2)
        n_pixels = rng.integers(1, 80)
        ypix = rng.integers(0, n_rows, n_pixels).astype(dtype)  # duplicates included
        xpix = rng.integers(0, n_cols, n_pixels).astype(dtype)
        niter = int(rng.integers(0, 4))
        expected = suite2p_extend_roi(ypix, xpix, n_rows, n_cols, niter)
        found = suite2p_kernels.extend_roi(ypix, xpix, n_rows, n_cols, niter)
        for got, want in zip(found, expected, strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_registration_with_either_kernels_agrees(request):
    rng = np.random.default_rng(8)
    raw = _movie(rng, rng.uniform(-4, 4, size=(80, 2)))
    fast = register_movie(raw, np.zeros_like(raw), fs_hz=FS_HZ, settings=RegisterSettings())
    assert rigid.convolve is suite2p_kernels.whitened_correlation

    request.getfixturevalue("suite2p_own_kernels")
    own = register_movie(raw, np.zeros_like(raw), fs_hz=FS_HZ, settings=RegisterSettings())

    assert rigid.convolve is utils.convolve
    np.testing.assert_array_equal(fast.ref_image, own.ref_image)
    np.testing.assert_array_equal(fast.rigid_shift_row, own.rigid_shift_row)
    np.testing.assert_array_equal(fast.rigid_shift_col, own.rigid_shift_col)
    # nonrigid peaks that tie to float32 rounding may land one 0.1 px subpixel step apart
    for name in ("nonrigid_shift_row", "nonrigid_shift_col"):
        diff = np.abs(fast[name].values - own[name].values)
        assert diff.max() <= 0.1 + 1e-5
        assert (diff > 1e-5).mean() < 0.01


def test_sparsery_with_either_kernels_finds_the_same_rois(request):
    movie, _ = _soma_movie(seed=2)
    settings = SegmentSettings(diameter_px=12.0)
    fast = detect_somata(movie, mean_image=movie.mean(0), fs_hz=SOMA_FS_HZ, settings=settings)
    assert sparsedetect.extendROI is suite2p_kernels.extend_roi

    request.getfixturevalue("suite2p_own_kernels")
    own = detect_somata(movie, mean_image=movie.mean(0), fs_hz=SOMA_FS_HZ, settings=settings)

    assert fast.sizes["roi"] > 0
    assert fast.identical(own)
