"""Recall and precision of ``detect_dendrites`` against the simulator's planted tufts.

Usage (from the repository root, after ``snakemake`` has run ``register``)::

    python benchmarks/dendrite_recall.py [--results results] [--truth data_sample]
        [--subject m01] [--plane 1] [--iou 0.3] [--track]

For every session: runs :func:`analysis.segment.detect_dendrites` (config defaults of
``SegmentSettings``) on the registered dendrite-plane movie, maps the truth tuft masks
(session raw coordinates) into the registration frame by the integer offset that best
matches them to the registered mean image, matches detected ROIs to truth tufts by
Hungarian assignment on IoU and prints recall (all tufts and target neurons' tufts) and
precision at IoU >= ``--iou``. With ``--track`` the ROIs are also tracked across days
(``analysis.track.track_rois`` with the ``align_days`` transforms and ``cells_only``
off) and the consensus masks, mapped back to every session, are scored the same way.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from analysis import io, layout
from analysis.masks import to_dense
from analysis.segment import SegmentSettings, detect_dendrites
from analysis.session_format import read_truth_session, read_truth_subject
from analysis.track import TrackSettings, masks_to_session, track_rois

log = logging.getLogger("dendrite_recall")


def best_offset(truth_sum: np.ndarray, mean_image: np.ndarray, max_px: int = 6) -> tuple[int, int]:
    """Integer (row, col) shift of the truth image that best correlates with the mean image."""
    hp = mean_image - ndimage.gaussian_filter(mean_image, 4)
    best, arg = -np.inf, (0, 0)
    for dr in range(-max_px, max_px + 1):
        for dc in range(-max_px, max_px + 1):
            c = np.corrcoef(ndimage.shift(truth_sum, (dr, dc), order=0).ravel(), hp.ravel())[0, 1]
            if c > best:
                best, arg = c, (dr, dc)
    return arg


def score(found: np.ndarray, truth: np.ndarray, iou_min: float) -> tuple[np.ndarray, int]:
    """Best matched IoU per truth tuft (Hungarian; 0 if unmatched) and number of true positives."""
    if len(found) == 0:
        return np.zeros(len(truth)), 0
    f = found.reshape(len(found), -1).astype(np.float32)
    t = truth.reshape(len(truth), -1).astype(np.float32)
    inter = f @ t.T
    iou = inter / np.maximum(f.sum(1)[:, None] + t.sum(1)[None, :] - inter, 1)
    rows, cols = linear_sum_assignment(-iou)
    per_truth = np.zeros(len(truth))
    per_truth[cols] = iou[rows, cols]
    return per_truth, int((iou[rows, cols] >= iou_min).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--truth", type=Path, default=Path("data_sample"))
    parser.add_argument("--subject", default="m01")
    parser.add_argument("--plane", type=int, default=1)
    parser.add_argument("--iou", type=float, default=0.3)
    parser.add_argument("--track", action="store_true", help="also score tracked ROIs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    subject_truth = read_truth_subject(args.truth, args.subject)
    neurons, dendrites = subject_truth["neurons"], subject_truth["dendrites"]
    target_neurons = set(neurons.neuron[neurons.group != "none"])
    is_target = dendrites.neuron.isin(target_neurons).to_numpy()
    sessions = list(subject_truth["sessions"].session)
    settings = SegmentSettings()
    rows, detected, truths = [], {}, {}
    for session in sessions:
        at = {"subject": args.subject, "session": session, "plane": args.plane}
        movie, header = io.open_movie(layout.path("register.movie", args.results, **at))
        registration = io.read_netcdf(layout.path("register.registration", args.results, **at))
        mean_image = registration.mean_image.values
        truth_ds, _ = read_truth_session(args.truth, args.subject, session)
        truth_raw = truth_ds.dendrite_mask.values > 0
        offset = best_offset(truth_raw.sum(0).astype(float), mean_image)
        truth = np.stack([ndimage.shift(m, offset, order=0) for m in truth_raw])
        truths[session] = truth
        t0 = time.perf_counter()
        masks = detect_dendrites(
            movie, mean_image=mean_image, fs_hz=float(registration.fs_hz), settings=settings
        )
        runtime = time.perf_counter() - t0
        detected[session] = masks
        per_truth, tp = score(to_dense(masks).values > 0, truth, args.iou)
        hit = per_truth >= args.iou
        rows.append(
            {
                "session": session,
                "stage": "segment",
                "offset": offset,
                "n_rois": masks.sizes["roi"],
                "recall_all": hit.mean(),
                "recall_target": hit[is_target].mean(),
                "precision": tp / max(masks.sizes["roi"], 1),
                "runtime_s": round(runtime, 1),
            }
        )
    if args.track:
        transforms = io.read_netcdf(
            layout.path(
                "align_days.transforms", args.results, subject=args.subject, plane=args.plane
            )
        )
        tracked, _ = track_rois(detected, transforms, settings=TrackSettings(cells_only=False))
        for session in sessions:
            t = transforms.sel(session=session)
            transform = {k: float(t[k]) for k in ("shift_row", "shift_col", "rotation_deg")}
            masks = masks_to_session(tracked, transform)
            per_truth, tp = score(to_dense(masks).values > 0, truths[session], args.iou)
            hit = per_truth >= args.iou
            rows.append(
                {
                    "session": session,
                    "stage": "track",
                    "n_rois": masks.sizes["roi"],
                    "recall_all": hit.mean(),
                    "recall_target": hit[is_target].mean(),
                    "precision": tp / max(masks.sizes["roi"], 1),
                }
            )
    table = pd.DataFrame(rows)
    print(f"{len(dendrites)} planted tufts, {is_target.sum()} of target neurons; IoU >= {args.iou}")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
