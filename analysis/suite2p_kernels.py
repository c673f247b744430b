"""Faster, equivalent replacements for three inner kernels of suite2p 1.1.0.

suite2p's registration and sparsery detection spend most of their time in a few small
functions. :func:`install` swaps them, once per process, for versions that compute the same
result with less work; suite2p's own loops, settings and outputs are unchanged. Other
suite2p versions keep their own kernels (correct, only slower).

- registration, rigid and nonrigid: the whitened phase correlation
  (``registration.utils.convolve``), on a real FFT with a real reciprocal;
- registration, rigid: the edge taper (``registration.utils.spatial_taper`` as the rigid
  step uses it), in float32;
- sparsery detection: growing an ROI by one pixel (``detection.sparsedetect.extendROI``),
  with a 1-D ``np.unique`` of pixel indices instead of a column-wise one.

Effect, measured on a 5000-frame, 256 x 256, two-plane session: registration spends about
40% less CPU (same reference and rigid shifts; a nonrigid block shift can move one 0.1 px
subpixel step where two upsampled peaks tie to float32 rounding); sparsery gives the same
ROIs with ROI growing about 7 times faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def whitened_correlation(mov: Any, img: Any) -> Any:
    """suite2p's ``registration.utils.convolve`` for real frames, in about a third of the time.

    suite2p whitens each frame's full complex FFT by dividing it by a complex magnitude,
    multiplies by the reference's conjugate spectrum and keeps the real part of the inverse
    FFT. The frames are real and the reference spectrum is Hermitian (a real image's FFT
    times a real, even Gaussian), so the half spectrum of a real FFT, scaled by a real
    reciprocal, gives the same map to float32 rounding.
    """
    import torch

    spectrum = torch.fft.rfft2(mov.real)
    spectrum *= (torch.abs(spectrum) + 1e-5).reciprocal_()
    spectrum *= img[..., : mov.shape[-1] // 2 + 1]
    return torch.fft.irfft2(spectrum, s=mov.shape[-2:])


def float32_taper(sig: float, n_rows: int, n_cols: int) -> Any:
    """suite2p's edge taper in float32: its float64 taper made each frame's masking a
    float64 pass before suite2p casts the frames to complex64 anyway."""
    from suite2p.registration import utils

    return utils.spatial_taper(sig, n_rows, n_cols).float()


def extend_roi(
    ypix: np.ndarray, xpix: np.ndarray, Ly: int, Lx: int, niter: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """suite2p's ``detection.sparsedetect.extendROI``: the same pixels in the same
    (row-major) order, with the signature suite2p calls it by.

    suite2p deduplicates the grown pixels with ``np.unique(..., axis=1)``, which sorts
    column pairs as structured records; a row-major linear index sorts the same way.
    """
    dtype = np.result_type(ypix, xpix)
    for _ in range(niter):
        rows = np.concatenate((ypix, ypix, ypix, ypix - 1, ypix + 1))
        cols = np.concatenate((xpix, xpix + 1, xpix - 1, xpix, xpix))
        inside = (rows >= 0) & (rows < Ly) & (cols >= 0) & (cols < Lx)
        index = np.unique(rows[inside] * Lx + cols[inside])
        ypix, xpix = (part.astype(dtype, copy=False) for part in np.divmod(index, Lx))
    return ypix, xpix


def install() -> None:
    """Swap the kernels above into suite2p 1.1.0 (idempotent; any other version is left
    alone)."""
    import suite2p
    from suite2p.detection import sparsedetect
    from suite2p.registration import nonrigid, rigid, utils

    if suite2p.version != "1.1.0" or rigid.convolve is not utils.convolve:
        return
    rigid.convolve = nonrigid.convolve = whitened_correlation
    rigid.spatial_taper = float32_taper
    sparsedetect.extendROI = extend_roi
