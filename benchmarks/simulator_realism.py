"""Compare a real movie's summary statistics with a simulated movie of a preset.

Usage (from the repository root; not part of the pytest suite)::

    python benchmarks/simulator_realism.py [--data ../shared/realdata] [--preset realistic]
        [--frames 1200] [--seed 0] [--set KEY=VALUE ...]
        [--out results/benchmarks/simulator_realism.tsv]

Real movies: ``neurofinder/q0_movie.tif`` (600 frames, about 7.5 Hz, motion corrected)
and, for reference, ``sima/example.tif`` (20 frames, another microscope, not matched).
The ROI labels are never read. The simulated movie is plane 0 (somata) of day01 of one
subject of the preset, rendered at its ``fs_hz`` (15 Hz) without within-session motion
(the real movie is motion corrected), then binned to the real frame rate by summing
frame pairs (minus one offset): the same photons per binned frame as one real frame at
the same photon flux per second. Only the part of the field where somata are placed
(inside the border margin; with ``border_somata`` the whole field) is compared.

Statistics (percentiles over pixels unless said): temporal mean; noise gain SD / sqrt(mean
- offset) with SD from frame differences (sqrt(counts per photon) for shot noise);
per-pixel SNR = mean / temporal SD; neighbour correlation of frame differences (row,
column); autocorrelation length of the high-passed mean image (px where the radial
autocorrelation falls to 1/e); soma-scale blob contrast, the negative
Laplacian-of-Gaussian (sigma 3.5 px) of the mean image over its median; per-pixel
skewness of the traces; the local correlation image (each pixel's mean correlation with
its 8 neighbours, traces high-passed by a 31-frame running mean), whose upper tail is how
visible cells' activity is to functional detection; shadow depth, the mean image above
the offset (smoothed at 2 px) over its local background (Gaussian of 25 px), 32 px or
more from the edges (the neurofinder movie's unlit border band is not a shadow), whose
lowest percentiles are how much light vessel shadows keep; strong blobs, local maxima of
the anatomical detector's blob z (:func:`analysis.segment.anatomy.blob_images` at the
default ``segment.diameter_px``: texture-normalised, so the count above a z is how far
somata stand out of the texture in the mean image) per 10,000 px, same region, bright and
dark (somata whose indicator spares the nucleus can look darker than dense labelled
neuropil), and how light or dark those above z 3 are (mean within 2.5 px over the median
6-9 px away); the resting contrast of the most active cells, the mean image inside over
around (``contrast`` of :func:`analysis.segment.detect_somata`, default settings, the
movie at the real frame rate) of the most skewed functional ROIs (the top 30 per 256 x
256 px, :func:`analysis.segment.field_contrast.most_active`) and the share of them
reaching ``segment.bright_soma_contrast``: how much brighter than the neuropil active
somata are at rest; their median area, and how far their events spread (their event
image, the mean frame of their top 5 % frames less their median frames, on rings 2, 4
and 6 px from the centroid, over its 90th percentile inside the ROI: a soma's events
light it to its edge, a bouton's or a process's fade within a few px); and how many
functional ROIs there are per 10,000 px and their median area.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import ndimage, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import simulate  # noqa: E402

PERCENTILES = (5, 25, 50, 75, 95)
LOG_SIGMA_PX = 3.5
HIGHPASS_SIGMA_PX = 8.0
SHADOW_BACKGROUND_PX = 25.0
SHADOW_EDGE_PX = 32
MIN_ACTIVE_FRAMES = 100
#: distances from an active ROI's centroid at which its event image is read
EVENT_PROFILE_PX = (2, 4, 6)


def _zero_photon_level(movie: np.ndarray) -> float:
    """The raw level of no photons: the mode of the lowest values (the detector offset),
    zeros left out (negative read noise clipped to 0 piles up there)."""
    low = movie[(movie <= np.percentile(movie, 10)) & (movie > 0)]
    values, counts = np.unique(np.round(low), return_counts=True)
    return float(values[counts.argmax()])


def _autocorr_length(image: np.ndarray) -> float:
    """Distance (px) where the radially averaged autocorrelation falls to 1/e."""
    x = image - image.mean()
    f = np.fft.fft2(x)
    ac = np.fft.fftshift(np.fft.ifft2(f * np.conj(f)).real)
    ac /= ac.max()
    centre = np.array(ac.shape) // 2
    rr, cc = np.indices(ac.shape)
    dist = np.hypot(rr - centre[0], cc - centre[1]).round().astype(int)
    radial = np.bincount(dist.ravel(), ac.ravel()) / np.bincount(dist.ravel())
    below = np.flatnonzero(radial < np.exp(-1))[0]
    a, b = radial[below - 1], radial[below]
    return float(below - 1 + (a - np.exp(-1)) / (a - b))


def _neighbour_corr(diff: np.ndarray, axis: int) -> float:
    a = np.moveaxis(diff, axis, 0)
    return float(np.corrcoef(a[1:].ravel(), a[:-1].ravel())[0, 1])


def local_correlation(movie: np.ndarray, *, highpass_frames: int = 31) -> np.ndarray:
    """Each pixel's mean correlation with its 8 neighbours, slow drift removed first."""
    m = movie - ndimage.uniform_filter1d(movie, highpass_frames, axis=0, mode="nearest")
    m = (m - m.mean(axis=0)) / np.where(m.std(axis=0) > 0, m.std(axis=0), np.inf)
    total = np.zeros(m.shape[1:])
    count = np.zeros(m.shape[1:])
    n_rows, n_cols = m.shape[1:]
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        rows, cols = slice(0, n_rows - dr), slice(max(0, -dc), n_cols - max(0, dc))
        shifted = (slice(dr, n_rows), slice(cols.start + dc, cols.stop + dc))
        corr = (m[:, rows, cols] * m[:, shifted[0], shifted[1]]).mean(axis=0)
        for region in ((rows, cols), shifted):
            total[region] += corr
            count[region] += 1
    return total / count


def movie_statistics(movie: np.ndarray, *, offset: float, fs_hz: float) -> dict[str, float]:
    """Summary statistics of a movie (time, row, col) in raw counts at ``fs_hz``."""
    movie = movie.astype(np.float64)
    mean = movie.mean(axis=0)
    sd = movie.std(axis=0)
    diff = np.diff(movie, axis=0)
    noise = diff.std(axis=0) / np.sqrt(2)
    gain = noise / np.sqrt(np.clip(mean - offset, 1e-3, None))
    snr = mean / np.where(sd > 0, sd, np.nan)
    blob = -(LOG_SIGMA_PX**2) * ndimage.gaussian_laplace(mean, LOG_SIGMA_PX) / np.median(mean)
    skew = stats.skew(movie, axis=0)
    out: dict[str, float] = {"offset (zero-photon level)": offset}
    for name, values in (
        ("mean", mean),
        ("noise gain", gain),
        ("pixel SNR", snr),
        ("blob contrast (LoG)", blob),
        ("skewness", skew),
    ):
        values = values[np.isfinite(values)]
        for q in PERCENTILES:
            out[f"{name} p{q}"] = float(np.percentile(values, q))
    out["blob contrast (LoG) p99"] = float(np.percentile(blob, 99))
    corr = local_correlation(movie)
    for q in (50, 95, 99, 99.9):
        out[f"local correlation p{q}"] = float(np.percentile(corr, q))
    out["skewness p99"] = float(np.nanpercentile(skew, 99))
    # a scan's unlit border band has almost no photons, so its pixels are very skewed
    edge = SHADOW_EDGE_PX
    out["skewness p99, 32 px from the edges"] = float(
        np.nanpercentile(skew[edge:-edge, edge:-edge], 99)
    )
    out["diff corr, row neighbours"] = _neighbour_corr(diff, 1)
    out["diff corr, column neighbours"] = _neighbour_corr(diff, 2)
    out["diff corr, next frame"] = _neighbour_corr(diff, 0)
    hp = mean - ndimage.gaussian_filter(mean, HIGHPASS_SIGMA_PX)
    out["mean-image autocorr length px"] = _autocorr_length(hp)
    # how dark shadows get: the mean image (smoothed at 2 px) over its local background,
    # away from the edges (a scan's unlit border band is not a shadow)
    above = mean - offset
    depth = ndimage.gaussian_filter(above, 2.0) / np.maximum(
        ndimage.gaussian_filter(above, SHADOW_BACKGROUND_PX), 1e-6
    )
    b = SHADOW_EDGE_PX
    depth = depth[b:-b, b:-b]
    for q in (0.5, 1, 2, 5):
        out[f"shadow depth p{q}"] = float(np.percentile(depth, q))
    out.update(_strong_blobs(mean - offset, b))
    out.update(_active_contrast(movie - offset, fs_hz))
    return out


def _active_contrast(movie: np.ndarray, fs_hz: float) -> dict[str, float]:
    """Resting contrast of the most skewed functional ROIs (see the module docstring)."""
    from analysis import masks
    from analysis.segment import SegmentSettings, detect_somata
    from analysis.segment.field_contrast import most_active

    names = (
        "contrast p25",
        "contrast p50",
        "contrast p75",
        "share >= bright_soma_contrast",
        "skewness p50",
        "all: per 1e4 px",
        "all: area px p50",
        "area px p50",
        *(f"event image at {d} px" for d in EVENT_PROFILE_PX),
    )
    if len(movie) < MIN_ACTIVE_FRAMES:  # too short to find cells by their activity
        return {f"active ROIs: {name}": float("nan") for name in names}
    settings = SegmentSettings(anatomical=False)
    counts = np.clip(np.round(movie), 0, np.iinfo(np.int16).max).astype(np.int16)
    rois = detect_somata(counts, mean_image=counts.mean(0), fs_hz=fs_hz, settings=settings)
    top = most_active(
        rois["skewness"].values,
        rois["centroid_row"].values,
        rois["centroid_col"].values,
        counts.shape[1:],
        settings.diameter_px,
    )
    contrast = rois["contrast"].values[top]
    pixels = masks.roi_pixels(rois)
    values = (
        *np.percentile(contrast, [25, 50, 75]),
        np.mean(contrast >= settings.bright_soma_contrast),
        np.median(rois["skewness"].values[top]),
        len(rois["skewness"]) / counts[0].size * 1e4,
        np.median(rois["area_px"].values),
        np.median(rois["area_px"].values[top]),
        *np.median([_event_profile(movie, *pixels[k]) for k in top], axis=0),
    )
    return {f"active ROIs: {name}": float(v) for name, v in zip(names, values, strict=True)}


def _event_profile(
    movie: np.ndarray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """How far a ROI's events spread: its event image (the detector's
    :func:`analysis.segment.footprint.event_image`) averaged on rings
    :data:`EVENT_PROFILE_PX` from its centroid, over the image's 90th percentile inside
    the ROI."""
    from analysis.segment.footprint import event_image

    image = event_image(movie, movie[:, rows, cols] @ (weights / weights.sum()))
    level = np.percentile(image[rows, cols], 90)
    r, c = np.average(rows, weights=weights), np.average(cols, weights=weights)
    distance = np.hypot(*np.ogrid[-r : movie.shape[1] - r, -c : movie.shape[2] - c])
    return np.array([image[np.abs(distance - d) < 0.5].mean() / level for d in EVENT_PROFILE_PX])


def _strong_blobs(mean: np.ndarray, edge_px: int) -> dict[str, float]:
    """Local extrema of the detector's blob z per 10,000 px, ``edge_px`` from the edges:
    bright blobs (z above) and dark ones (below minus)."""
    from skimage.feature import peak_local_max

    from analysis.segment.anatomy import blob_images
    from analysis.segment.settings import SegmentSettings

    z, _ = blob_images(mean, SegmentSettings().diameter_px, 0.0)
    z = z[edge_px:-edge_px, edge_px:-edge_px]
    inner = mean[edge_px:-edge_px, edge_px:-edge_px]
    out = {}
    for kind, sign in (("strong blobs", 1.0), ("strong dark blobs", -1.0)):
        at = peak_local_max(sign * z, min_distance=3, threshold_abs=2.0)
        peaks = sign * z[tuple(at.T)]
        for t in (3, 4, 5):
            out[f"{kind} |z|>{t} /1e4 px"] = np.sum(peaks > t) / z.size * 1e4
        depth = [_centre_over_surround(inner, r, c) for r, c in at[peaks > 3]]
        out[f"{kind} |z|>3: centre / surround p50"] = float(np.median(depth)) if depth else np.nan
    return out


def _centre_over_surround(image: np.ndarray, r: int, c: int) -> float:
    """Mean within 2.5 px of (r, c) over the median 6-9 px away: how much lighter or
    darker than its surround a blob is (the image is light above the zero-photon level)."""
    rr, cc = np.ogrid[-r : image.shape[0] - r, -c : image.shape[1] - c]
    distance = np.hypot(rr, cc)
    surround = np.median(image[(distance >= 6) & (distance <= 9)])
    return float(image[distance <= 2.5].mean() / surround)


def simulated_movie(settings: simulate.SimulateSettings, *, seed: int) -> np.ndarray:
    """Plane 0 of day01, no within-session motion, cropped to the somata's region (the
    whole field with ``border_somata``)."""
    result = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(seed))
    day = result["days"][0]
    day["motion"] = {k: v * 0 if isinstance(v, np.ndarray) else v for k, v in day["motion"].items()}
    movie = np.concatenate(list(simulate.render_plane(day, plane=0, settings=settings)))
    if settings.border_somata:
        return movie
    m = int(np.ceil(settings.margin_px - settings.max_soma_radius_px))
    return movie[:, m : settings.n_rows - m, m : settings.n_cols - m]


def _read(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/realdata"))
    parser.add_argument("--preset", default="realistic", choices=sorted(simulate.PRESETS))
    parser.add_argument("--frames", type=int, default=1200, help="simulated frames (15 Hz)")
    parser.add_argument("--bin", type=int, default=2, help="simulated frames per real frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--out", type=Path, default=Path("results/benchmarks/simulator_realism.tsv")
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"n_days": 1, "n_frames": args.frames, "baseline_frames": 3000}
    overrides["calibration_trial_frames"] = 200
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    settings = simulate.settings_for(args.preset, **overrides)
    sim = simulated_movie(settings, seed=args.seed).astype(np.float64)
    usable = sim.shape[0] // args.bin * args.bin
    sim = sim[:usable].reshape(-1, args.bin, *sim.shape[1:]).sum(axis=1)
    sim -= (args.bin - 1) * settings.raw_offset
    real_fs_hz = settings.fs_hz / args.bin
    columns = {
        "simulated": movie_statistics(sim, offset=float(settings.raw_offset), fs_hz=real_fs_hz)
    }
    for name, rel in (("neurofinder", "neurofinder/q0_movie.tif"), ("sima", "sima/example.tif")):
        path = args.data / rel
        if path.exists():
            real = _read(path)
            columns[name] = movie_statistics(
                real, offset=_zero_photon_level(real), fs_hz=real_fs_hz
            )
        else:
            print(f"{path} missing: skipped", file=sys.stderr)
    table = pd.DataFrame(columns)
    table.index.name = "statistic"
    order = [c for c in ("neurofinder", "simulated", "sima") if c in table]
    table = table[order]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", float_format="%.4g")
    with pd.option_context("display.float_format", "{:.3g}".format, "display.width", 120):
        print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
