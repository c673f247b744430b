"""Score the pipeline's own stages on real recordings with independent ground truth.

Usage (from the repository root; not part of the pytest suite)::

    python benchmarks/realdata.py --data ../shared/realdata [--config config/config.yaml]
        [--out results/benchmarks/realdata.tsv] [--threads 2] [--seed 0]

``--data`` is a folder laid out like ``../shared/realdata`` (see its ``README.md``)::

    neurofinder/q0_movie.tif, neurofinder/q0_regions.json
    cascade/DS14-GCaMP6s-m-V1/*.mat
    spikefinder/{4,5,6}.train.calcium.csv, spikefinder/{4,5,6}.train.spikes.csv

Without ``--data``, or when a part's files are missing, the command says what it needs;
missing parts are skipped (exit status 0). Every stage runs with the settings the
workflow gives it (``--config`` through :func:`analysis.config.load_settings`) and the
functions its rules call:

- **Soma segmentation** (neurofinder, Peron et al. / codeneuro; 600 frames, 256 x 256
  px, about 7-8 Hz, already motion-corrected): :func:`analysis.segment.detect_somata` on
  the movie as int16 with its mean image, ``fs_hz`` 7.5. The ROIs it classifies as cells
  (method ``pipeline, cells``), all its ROIs, the same two with the mean-image blobs
  toggled (``segment.anatomical`` the other way from the config), the same two at
  ``segment.min_contrast_dark`` equal to ``segment.min_contrast`` (no switch to the
  dark-somata contrast rule, README "Dark somata"), and suite2p's own
  detection run by hand in the same run (``suite2p_variants.py``: defaults, its
  classifier's cells, sourcery, threshold scaling 0.5 and 2) are each matched to the 106
  hand-drawn ROIs by :func:`analysis.validate.compare_rois` (Hungarian on centroid
  distance, a hit within 5 px: precision, recall, F1; and F1 of the IoU assignment at
  IoU >= 0.5).
- **Registration** (the same movie with known motion): smooth random rigid shifts (SD
  ``RIGID_SD_PX`` per axis, changing over about a second) plus a smooth nonrigid field
  (a plane wave of ``NONRIGID_WAVELENGTH_PX`` whose amplitude, up to
  ``NONRIGID_MAX_PX``, drifts in time), applied with cubic subpixel interpolation to a
  central crop so that no frame samples outside the movie;
  :func:`analysis.register.register_movie` registers it and the unmoved crop, and
  :func:`analysis.validate.compare_shifts` scores the applied per-frame shift (the
  frame's mean displacement) against the difference of the two recovered shifts, after
  removing the constant reference offset. The movie keeps ~0.4 px of its own motion,
  which the difference cancels; the error against the applied motion alone is reported
  too (see :func:`score_registration`).
- **Spike inference** (CASCADE DS14 GCaMP6s, Chen et al. 2013 / Rupprecht et al. 2021,
  60 Hz dF/F; spikefinder training sets 4, 5, 6, Berens et al. 2018, 100 Hz):
  :func:`analysis.extract.deconvolve` on each recording's trace at its own frame rate;
  Pearson r between the inferred activity and the electrophysiological spike counts,
  both summed in 40 ms bins (the spikefinder metric, no lag), median over recordings.

Prints the table and writes it to ``--out`` (columns ``dataset``, ``method``, ``metric``,
``value``, ``peer``); method ``pipeline / best suite2p`` is the ratio of the pipeline cells'
F1 to the best suite2p variant's. ``peer`` (pipeline rows only) is the baseline measured
by the data's provider with suite2p 1.1.0 / oasis-deconv 0.3.2 at their defaults
(``realdata/README.md``): for segmentation suite2p's sparsery detection (all ROIs), for
spikes the best of OASIS AR(1), OASIS AR(2) and suite2p's deconvolution.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from scipy import ndimage

from analysis.config import load_settings
from analysis.dims import FRAME, ROI, TIME
from analysis.extract import deconvolve
from analysis.masks import select_rois
from analysis.register import register_movie
from analysis.segment import detect_somata
from analysis.validate import compare_rois, compare_shifts

sys.path.insert(0, str(Path(__file__).parent))
import suite2p_variants  # noqa: E402  (the benchmarks folder is no package)

log = logging.getLogger("realdata")

NEUROFINDER_FS_HZ = 7.5  # "about 7-8 Hz" (realdata/README.md)
SPIKEFINDER_FS_HZ = 100.0
SPIKEFINDER_SETS = (4, 5, 6)
CASCADE_SET = "DS14-GCaMP6s-m-V1"
BIN_S = 0.04
CENTROID_PX = 5.0
RIGID_SD_PX = 2.0
RIGID_TIMESCALE_S = 1.0
NONRIGID_MAX_PX = 1.0
NONRIGID_WAVELENGTH_PX = 160.0
PAD_PX = 10  # crop margin: larger than any applied displacement
PIPELINE = "pipeline"
PIPELINE_CELLS = "pipeline, cells"

PEERS = {
    ("neurofinder q0", "precision_centroid_5px"): 0.11,
    ("neurofinder q0", "recall_centroid_5px"): 0.60,
    ("neurofinder q0", "f1_centroid_5px"): 0.19,
    ("neurofinder q0", "f1_iou_0.5"): 0.06,
    (f"cascade {CASCADE_SET}", "median_r_40ms"): 0.46,
    ("spikefinder train 4", "median_r_40ms"): 0.28,
    ("spikefinder train 5", "median_r_40ms"): 0.22,
    ("spikefinder train 6", "median_r_40ms"): 0.59,
}


def stage_settings(config_path: Path) -> dict:
    """Every stage's settings as the workflow builds them from ``config_path``."""
    with open(config_path) as f:
        return load_settings(yaml.safe_load(f))


# --- segmentation and registration (neurofinder) -----------------------------------------------


def load_neurofinder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Movie as int16 (time, row, col) and the true ROI masks (roi, row, col) bool."""
    import tifffile

    movie = tifffile.imread(folder / "q0_movie.tif")
    if movie.ndim != 3 or movie.max() > np.iinfo(np.int16).max:
        raise ValueError(
            f"{folder / 'q0_movie.tif'}: expected a (time, row, col) movie with values "
            f"<= 32767 (the pipeline's int16 movies); got shape {movie.shape}, max {movie.max()}"
        )
    with open(folder / "q0_regions.json") as f:
        regions = json.load(f)
    true = np.zeros((len(regions), *movie.shape[1:]), bool)
    for k, region in enumerate(regions):
        rows, cols = np.asarray(region["coordinates"], dtype=int).T
        true[k, rows, cols] = True
    return movie.astype(np.int16), true


def _detection_scores(masks, true: np.ndarray) -> dict:
    _, m = compare_rois(masks, true, iou_threshold=0.5, distance_threshold_px=CENTROID_PX)
    return {
        "n_rois": m["n_detected"],
        "precision_centroid_5px": m["precision_centroid"],
        "recall_centroid_5px": m["recall_centroid"],
        "f1_centroid_5px": m["f1_centroid"],
        "f1_iou_0.5": m["f1_iou"],
    }


def score_segmentation(
    movie: np.ndarray, true: np.ndarray, settings, threads: int
) -> dict[str, dict]:
    """Scores per method: the pipeline's cells and all its ROIs, then suite2p by hand.

    The last method, ``pipeline / best suite2p``, holds the pipeline cells' F1 over the
    best suite2p variant's of this run, each metric on its own.
    """
    mean_image = movie.mean(axis=0, dtype=np.float64).astype(np.float32)
    scores = {}
    # the mean-image blobs (segment.anatomical) toggled, beside the config's choice, so a
    # lab sees what they do to a real field
    toggled = not settings.anatomical
    runs = {
        PIPELINE: settings,
        f"pipeline, segment.anatomical {str(toggled).lower()}": dataclasses.replace(
            settings, anatomical=toggled
        ),
        # the contrast rule without the switch for fields whose somata rest dark
        f"pipeline, segment.min_contrast_dark {settings.min_contrast}": dataclasses.replace(
            settings, min_contrast_dark=settings.min_contrast
        ),
    }
    for label, run_settings in runs.items():
        masks = detect_somata(
            movie,
            mean_image=mean_image,
            fs_hz=NEUROFINDER_FS_HZ,
            settings=run_settings,
            threads=threads,
        )
        cells = select_rois(masks, masks["is_cell"].values.astype(bool))
        scores[f"{label}, cells"] = _detection_scores(cells, true)
        scores[f"{label}, all ROIs"] = _detection_scores(masks, true)
        log.info("segmentation (%s): %d ROIs, %d cells, %d true", label, masks.sizes[ROI],
                 cells.sizes[ROI], len(true))  # fmt: skip
    for name, variant in suite2p_variants.detect_variants(
        movie, NEUROFINDER_FS_HZ, threads
    ).items():
        scores[name] = _detection_scores(variant, true)
    ratio = {}
    for metric in ("f1_centroid_5px", "f1_iou_0.5"):
        best = max(v[metric] for k, v in scores.items() if k.startswith("suite2p"))
        ratio[metric] = scores[PIPELINE_CELLS][metric] / best if best > 0 else np.nan
    scores["pipeline / best suite2p"] = ratio
    return scores


def _smooth_noise(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Unit-SD Gaussian noise low-passed with a Gaussian of ``sigma_frames``."""
    x = ndimage.gaussian_filter1d(rng.standard_normal(n + int(8 * sigma_frames)), sigma_frames)
    x = x[int(4 * sigma_frames) : int(4 * sigma_frames) + n]
    return (x - x.mean()) / x.std()


def apply_known_motion(
    movie: np.ndarray, rng: np.random.Generator, fs_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move a motion-corrected movie by known rigid + nonrigid shifts.

    Returns the moved central crop (``PAD_PX`` cut from every side) and the true
    per-frame shift (row, col): the mean displacement over the crop, in register.py's
    convention ``raw(r, c) = ref(r - shift_row, c - shift_col)``.
    """
    n_t, n_rows, n_cols = movie.shape
    sigma = RIGID_TIMESCALE_S * fs_hz
    rigid = RIGID_SD_PX * np.stack([_smooth_noise(rng, n_t, sigma) for _ in range(2)])
    amplitude = NONRIGID_MAX_PX * np.tanh(
        np.stack([_smooth_noise(rng, n_t, sigma) for _ in range(2)])
    )
    rows, cols = np.mgrid[PAD_PX : n_rows - PAD_PX, PAD_PX : n_cols - PAD_PX].astype(np.float64)
    angle, phase = rng.uniform(0, 2 * np.pi, 2)
    wave = np.sin(
        2 * np.pi * (rows * np.cos(angle) + cols * np.sin(angle)) / NONRIGID_WAVELENGTH_PX + phase
    )
    out = np.empty((n_t, *rows.shape), np.int16)
    true = np.empty((2, n_t))
    for t in range(n_t):
        shift_r = rigid[0, t] + amplitude[0, t] * wave
        shift_c = rigid[1, t] + amplitude[1, t] * wave
        frame = ndimage.map_coordinates(
            movie[t].astype(np.float32), [rows - shift_r, cols - shift_c], order=3, mode="nearest"
        )
        out[t] = np.clip(np.round(frame), 0, np.iinfo(np.int16).max)
        true[:, t] = shift_r.mean(), shift_c.mean()
    return out, true[0], true[1]


def score_registration(movie: np.ndarray, settings, threads: int, seed: int) -> dict:
    """Recovery of known motion applied to the movie.

    The movie is "already motion-corrected", but not to zero: registering it unmoved
    finds frame shifts of 0.42 px SD (a motion-free copy, its mean image plus noise at its
    frame-to-frame noise level, gives 0.08 px), and the errors of the moved movie against
    the applied motion alone correlate 0.94 with them (seed 0). Those shifts are the
    movie's own residual motion, present in both runs, so the applied motion is scored
    as the difference of the shifts recovered from the moved and the unmoved movie
    (same crop, frame by frame). The error against the applied motion alone is reported
    beside it.
    """
    moved, true_row, true_col = apply_known_motion(
        movie, np.random.default_rng(seed), NEUROFINDER_FS_HZ
    )
    unmoved = np.ascontiguousarray(movie[:, PAD_PX:-PAD_PX, PAD_PX:-PAD_PX])
    regs = []
    for frames in (moved, unmoved):
        regs.append(
            register_movie(
                frames,
                np.empty_like(frames),
                fs_hz=NEUROFINDER_FS_HZ,
                settings=settings,
                threads=threads,
            )
        )
    reg, own = regs
    bad = reg["bad_frame"].values | own["bad_frame"].values
    applied = compare_shifts(
        reg["shift_row"].values - own["shift_row"].values,
        reg["shift_col"].values - own["shift_col"].values,
        true_row,
        true_col,
        exclude=bad,
    )
    total = compare_shifts(
        reg["shift_row"].values, reg["shift_col"].values, true_row, true_col, exclude=bad
    )
    own_row = own["shift_row"].values - np.median(own["shift_row"].values)
    own_col = own["shift_col"].values - np.median(own["shift_col"].values)
    return {
        "median_shift_error_px": applied["median_abs_error_px"],
        "median_error_vs_applied_only_px": total["median_abs_error_px"],
        "own_motion_sd_px": float(np.hypot(own_row.std(), own_col.std())),
        "applied_shift_sd_px": float(np.hypot(true_row.std(), true_col.std())),
        "frames_scored": applied["n_frames"],
    }


# --- spike inference (CASCADE, spikefinder) ------------------------------------------------------


def load_cascade(folder: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(time s, dF/F, spike times s) of every recording in the CASCADE dataset folder."""
    import scipy.io as sio

    files = sorted(folder.glob("*.mat"))
    if not files:
        raise FileNotFoundError(f"{folder}: no CASCADE .mat files")
    out = []
    for path in files:
        for rec in np.atleast_1d(
            sio.loadmat(path, squeeze_me=True, struct_as_record=False)["CAttached"]
        ):
            t = np.asarray(rec.fluo_time, np.float64)
            out.append(
                (t, np.asarray(rec.fluo_mean, np.float64), np.atleast_1d(rec.events_AP) / 1e4)
            )
    return out


def load_spikefinder(folder: Path, dataset: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(time s, calcium, spike counts per sample) per neuron; NaN padding dropped."""
    calcium = pd.read_csv(folder / f"{dataset}.train.calcium.csv")
    spikes = pd.read_csv(folder / f"{dataset}.train.spikes.csv")
    out = []
    for col in calcium.columns:
        y, s = calcium[col].to_numpy(np.float64), spikes[col].to_numpy(np.float64)
        n = int(np.flatnonzero(np.isfinite(y) & np.isfinite(s))[-1]) + 1
        out.append((np.arange(n) / SPIKEFINDER_FS_HZ, y[:n], s[:n]))
    return out


def binned_r(activity: np.ndarray, t: np.ndarray, spikes: np.ndarray, *, counts: bool) -> float:
    """Pearson r of activity and spikes summed in ``BIN_S`` bins (complete bins only).

    ``spikes`` are spike times (s) or, with ``counts``, spike counts per sample of ``t``.
    """
    n_bins = int((t[-1] - t[0]) // BIN_S)
    index = ((t - t[0]) // BIN_S).astype(int)
    keep = index < n_bins
    a = np.bincount(index[keep], weights=np.nan_to_num(activity[keep]), minlength=n_bins)
    if counts:
        s = np.bincount(index[keep], weights=spikes[keep], minlength=n_bins)
    else:
        s = np.histogram(spikes, bins=t[0] + BIN_S * np.arange(n_bins + 1))[0]
    if a.std() == 0 or s.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, s)[0, 1])


def infer_spikes(t: np.ndarray, y: np.ndarray, settings) -> np.ndarray:
    """The extract stage's deconvolution of one trace at its own frame rate."""
    fs_hz = 1.0 / float(np.median(np.diff(t)))
    frames = np.arange(len(y))
    dff = xr.DataArray(
        y[None].astype(np.float32),
        dims=(ROI, TIME),
        coords={ROI: [0], TIME: frames / fs_hz, FRAME: (TIME, frames)},
    )
    return deconvolve(dff, fs_hz=fs_hz, settings=settings)["spikes"].values[0]


def score_spikes(recordings, settings, *, counts: bool) -> dict:
    r = [binned_r(infer_spikes(t, y, settings), t, s, counts=counts) for t, y, s in recordings]
    return {"median_r_40ms": float(np.nanmedian(r)), "n_recordings": len(r)}


# --- driver ------------------------------------------------------------------------------------


def needs(data: Path) -> dict[str, list[Path]]:
    """Files each part of the benchmark reads."""
    parts = {
        "neurofinder": [
            data / "neurofinder" / "q0_movie.tif",
            data / "neurofinder" / "q0_regions.json",
        ],
        "cascade": [data / "cascade" / CASCADE_SET],
    }
    for k in SPIKEFINDER_SETS:
        parts[f"spikefinder {k}"] = [
            data / "spikefinder" / f"{k}.train.{kind}.csv" for kind in ("calcium", "spikes")
        ]
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="folder laid out like ../shared/realdata")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/realdata.tsv"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (as a rule's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the applied motion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    log.setLevel(logging.INFO)

    if args.data is None or not args.data.is_dir():
        given = f"'{args.data}' is not a folder. " if args.data is not None else ""
        print(
            f"{given}This benchmark needs real recordings with ground truth: pass --data DIR, "
            "a folder laid out like ../shared/realdata (neurofinder/q0_movie.tif + "
            "q0_regions.json, cascade/DS14-GCaMP6s-m-V1/*.mat, spikefinder/{4,5,6}.train."
            "{calcium,spikes}.csv). Nothing was run."
        )
        return 0
    settings = stage_settings(args.config)
    missing = {
        part: [p for p in paths if not p.exists()] for part, paths in needs(args.data).items()
    }
    for part, paths in missing.items():
        if paths:
            print(f"skipping {part}: missing {', '.join(str(p) for p in paths)}")

    rows, timings = [], {}

    def add(dataset: str, metrics: dict, method: str = PIPELINE) -> None:
        provider = method in (PIPELINE, PIPELINE_CELLS)
        rows.extend(
            {
                "dataset": dataset,
                "method": method,
                "metric": k,
                "value": v,
                "peer": PEERS.get((dataset, k), np.nan) if provider else np.nan,
            }
            for k, v in metrics.items()
        )

    start = time.perf_counter()
    if not missing["neurofinder"]:
        movie, true = load_neurofinder(args.data / "neurofinder")
        t0 = time.perf_counter()
        segmentation = score_segmentation(movie, true, settings["segment"], args.threads)
        for method, metrics in segmentation.items():
            add("neurofinder q0", metrics, method)
        timings["segmentation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        add(
            "neurofinder q0 + known shifts",
            score_registration(movie, settings["register"], args.threads, args.seed),
        )
        timings["registration"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not missing["cascade"]:
        add(
            f"cascade {CASCADE_SET}",
            score_spikes(
                load_cascade(args.data / "cascade" / CASCADE_SET), settings["extract"], counts=False
            ),
        )
    for k in SPIKEFINDER_SETS:
        if not missing[f"spikefinder {k}"]:
            recordings = load_spikefinder(args.data / "spikefinder", k)
            add(
                f"spikefinder train {k}",
                score_spikes(recordings, settings["extract"], counts=True),
            )
    timings["spikes"] = time.perf_counter() - t0
    if not rows:
        print("no dataset found under", args.data)
        return 0

    table = pd.DataFrame(rows, columns=["dataset", "method", "metric", "value", "peer"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t", index=False, float_format="%.4g")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep=""))
    print(
        "wall time "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; total {time.perf_counter() - start:.0f} s; written to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
