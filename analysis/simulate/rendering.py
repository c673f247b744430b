"""Rendering raw frames of a simulated plane: the image model with motion and shot noise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import ndimage

from analysis.simulate.geometry import plane_components
from analysis.simulate.settings import SimulateSettings


def displacement_field(motion: dict[str, Any], frame: int, shape: tuple[int, int]) -> np.ndarray:
    """Total displacement (2, row, col) of frame content at raw pixels, px (rigid + warp)."""
    return _displacement(motion, frame, _warp_waves(motion, shape))


def _warp_waves(motion: dict[str, Any], shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The warp's sine waves (row, col), the same for every frame of a day."""
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    k = 2 * np.pi / motion["nonrigid_wavelength_px"]
    return np.sin(k * cc + motion["nonrigid_phase_row"]), np.sin(
        k * rr + motion["nonrigid_phase_col"]
    )


def _displacement(motion: dict[str, Any], frame: int, waves: tuple[np.ndarray, ...]) -> np.ndarray:
    dr = motion["shift_row"][frame] + motion["nonrigid_amp_row"][frame] * waves[0]
    dc = motion["shift_col"][frame] + motion["nonrigid_amp_col"][frame] * waves[1]
    return np.stack([dr, dc])


def detect(
    photons: np.ndarray, *, settings: SimulateSettings, rng: np.random.Generator
) -> np.ndarray:
    """Raw counts of photon counts (row, col), clipped to uint16's range.

    The ideal counter (raw = ``raw_offset`` + photons) unless a detector option is set:
    then each photon adds a pulse of mean ``photon_gain`` and coefficient of variation
    ``photon_gain_cv`` (the sum of k pulses drawn as a Gaussian of the same mean and
    variance, ten times faster than gamma draws), plus Gaussian read noise.
    """
    gain, cv, read_sd = settings.photon_gain, settings.photon_gain_cv, settings.read_noise_sd
    if gain == 1 and cv == 0 and read_sd == 0:
        return np.minimum(photons + settings.raw_offset, 65535)
    signal = gain * photons + settings.raw_offset
    if cv > 0:
        signal += gain * cv * np.sqrt(photons) * rng.standard_normal(photons.shape)
    if read_sd > 0:
        signal += rng.normal(0, read_sd, photons.shape)
    return np.clip(np.rint(signal), 0, 65535)


def render_plane(
    day: dict[str, Any],
    *,
    plane: int,
    settings: SimulateSettings,
    chunk_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream raw uint16 frames (time, row, col) of one plane of one simulated day.

    Clean photon rate = static image + sum_k brightness_k * calcium_k(t) + neuropil image x
    neuropil_trace(t) (+ the soma plane's puncta x their dF/F); warped by the day's motion
    (bilinear); Poisson shot noise; raw counts by :func:`detect`. Plane 1 needs
    ``day["dendrite_calcium"]``. Only one chunk is held at a time; the noise generator is
    seeded per (day, plane) for determinism.
    """
    chunk_frames = chunk_frames or settings.chunk_frames
    static, fp, npil = plane_components(day["sgeom"], plane)
    activity = day["soma_calcium"] if plane == 0 else day["dendrite_calcium"]
    n_frames = activity.shape[1]
    shape = static.shape
    fp_flat = fp.reshape(fp.shape[0], -1)
    rng = np.random.default_rng([day["noise_seed"], plane])
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    waves = _warp_waves(day["motion"], shape)
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        clean = activity[:, start:stop].T @ fp_flat
        clean = clean.reshape(-1, *shape) + static[None]
        clean += npil[None] * day["neuropil_trace"][plane, start:stop, None, None]
        if plane == 0 and "puncta_fp" in day["sgeom"]:
            puncta = day["puncta_calcium"][:, start:stop].T @ day["sgeom"]["puncta_fp"]
            clean += np.asarray(puncta).reshape(-1, *shape)
        out = np.empty((stop - start, *shape), dtype=np.uint16)
        for i, t in enumerate(range(start, stop)):
            dr, dc = _displacement(day["motion"], t, waves)
            warped = ndimage.map_coordinates(clean[i], [rr - dr, cc - dc], order=1, mode="nearest")
            photons = rng.poisson(np.clip(warped, 0, None))
            out[i] = detect(photons, settings=settings, rng=rng)
        yield out
