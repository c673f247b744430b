"""Precision, recall and F1 of soma detection and tracking against the simulator's truth.

Usage (from the repository root, after ``snakemake`` has run ``register``, ``align_days``
and ``ingest``)::

    python benchmarks/soma_recall.py [--results results] [--root data_sample]
        [--subject m01] [--plane 0] [--iou 0.5]

For every session: runs :func:`analysis.segment.detect_somata` (``SegmentSettings``
defaults) on the registered soma-plane movie and scores the ROIs classified as cells
against the true soma masks (:func:`analysis.validate.compare_rois`, Hungarian matching on
IoU; the registration offset comes from :func:`analysis.validate.compare_shifts`). The
cells are then tracked across days (:func:`analysis.track.track_rois`, ``TrackSettings``
defaults, the ``align_days`` transforms), the consensus masks mapped back to each session
are scored the same way, tracking accuracy is :func:`analysis.validate.compare_tracking`,
and the online targets are mapped onto the tracked somata
(:func:`analysis.track.map_targets`) and checked against their true neurons, including
whether each target keeps one tracked ROI id on every day.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from analysis import io, layout
from analysis.masks import select_rois
from analysis.register import compute_raw_to_registered_offset
from analysis.segment import SegmentSettings, detect_somata
from analysis.session_format import read_truth_session, read_truth_subject
from analysis.track import TrackSettings, map_targets, masks_to_session, shift_targets, track_rois
from analysis.validate import compare_rois, compare_shifts, compare_targets, compare_tracking

log = logging.getLogger("soma_recall")


def registration_offset(registration, truth) -> tuple[float, float]:
    """Constant offset of the registered frame from the motion-free frame, px."""
    m = compare_shifts(
        registration.shift_row.values,
        registration.shift_col.values,
        truth.shift_row.values,
        truth.shift_col.values,
        exclude=registration.bad_frame.values,
    )
    return m["offset_row_px"], m["offset_col_px"]


def session_targets(ingest: Path, registration) -> tuple[list[dict], tuple[int, int]]:
    """Target polygons of the soma plane in registered coordinates, and the plane shape."""
    record = io.read_json(ingest / "session.json")
    offset = compute_raw_to_registered_offset(
        registration, bci_frames=io.read_tsv(ingest / "bci_frames.tsv")
    )
    targets = [
        t
        for t in io.read_json(ingest / "targets.json")["targets"]
        if t["plane"] == record["bci_plane"]
    ]
    return shift_targets(targets, offset), tuple(record["shape"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--root", type=Path, default=Path("data_sample"), help="simulated folder")
    parser.add_argument("--subject", default="m01")
    parser.add_argument("--plane", type=int, default=0)
    parser.add_argument("--iou", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    subject_truth = read_truth_subject(args.root, args.subject)
    neurons = subject_truth["neurons"]
    true_targets = neurons[neurons.target_id >= 0][["target_id", "neuron", "group"]]
    sessions = list(subject_truth["sessions"].session)
    seg_settings, track_settings = SegmentSettings(), TrackSettings()
    rows, detected, truths, offsets, regs = [], {}, {}, {}, {}
    for session in sessions:
        at = {"subject": args.subject, "session": session, "plane": args.plane}
        movie, header = io.open_movie(layout.path("register.movie", args.results, **at))
        registration = io.read_netcdf(layout.path("register.registration", args.results, **at))
        truth, _ = read_truth_session(args.root, args.subject, session)
        truths[session], regs[session] = truth.soma_mask, registration
        offsets[session] = registration_offset(registration, truth)
        t0 = time.perf_counter()
        masks = detect_somata(
            movie,
            mean_image=registration.mean_image.values,
            fs_hz=header.fs_hz,
            settings=seg_settings,
        )
        runtime = time.perf_counter() - t0
        cells = select_rois(masks, masks.is_cell.values.astype(bool))
        detected[session] = masks
        _, m = compare_rois(
            cells, truth.soma_mask, iou_threshold=args.iou, registration_offset_px=offsets[session]
        )
        rows.append(
            {
                "session": session,
                "stage": "segment",
                "n_rois": masks.sizes["roi"],
                "n_cells": m["n_detected"],
                "n_true": m["n_true"],
                "precision": m["precision_iou"],
                "recall": m["recall_iou"],
                "f1": m["f1_iou"],
                "runtime_s": round(runtime, 1),
            }
        )

    transforms = io.read_netcdf(
        layout.path("align_days.transforms", args.results, subject=args.subject, plane=args.plane)
    )
    tracked, _ = track_rois(detected, transforms, settings=track_settings)
    hits, target_rows = [], []
    for session in sessions:
        t = transforms.sel(session=session)
        masks = masks_to_session(
            tracked, {k: float(t[k]) for k in ("shift_row", "shift_col", "rotation_deg")}
        )
        matches, m = compare_rois(
            masks, truths[session], iou_threshold=args.iou, registration_offset_px=offsets[session]
        )
        hit = matches[matches.hit]
        hits.append(hit.assign(session=session))
        rows.append(
            {
                "session": session,
                "stage": "track",
                "n_rois": masks.sizes["roi"],
                "n_cells": m["n_detected"],
                "n_true": m["n_true"],
                "precision": m["precision_iou"],
                "recall": m["recall_iou"],
                "f1": m["f1_iou"],
            }
        )
        targets, shape = session_targets(
            Path(
                layout.path("ingest.session", args.results, subject=args.subject, session=session)
            ).parent,
            regs[session],
        )
        # a target is on its neuron when its ROI's best (Hungarian) match is that neuron
        units = dict(zip(matches.detected_roi, matches.true_roi, strict=True))
        try:
            mapped = map_targets(targets, masks, shape=shape, settings=track_settings)
        except ValueError as err:
            log.warning("%s: %s", session, err)
            continue
        tm = compare_targets(mapped, roi_units=units, true_targets=true_targets)
        rows[-1]["targets_correct"] = f"{tm['n_correct']}/{tm['n_targets']}"
        target_rows.append(mapped.assign(session=session)[["session", "target_id", "roi"]])
    _, tracking = compare_tracking(pd.concat(hits)[["session", "detected_roi", "true_roi"]])

    table = pd.DataFrame(rows)
    print(f"{args.root}: soma detection, IoU >= {args.iou}")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(
        f"tracked ROIs {tracked.sizes['roi']} for {len(neurons)} neurons; tracking accuracy "
        f"{tracking['fraction_correct']:.3f} ({tracking['n_correct']}/{tracking['n_tracked']}), "
        f"split neurons {tracking['n_split_units']}"
    )
    if target_rows:
        ids = pd.concat(target_rows).pivot(index="target_id", columns="session", values="roi")
        stable = ids.nunique(axis=1) == 1
        print(f"targets keeping one tracked ROI id on every day: {stable.sum()}/{len(ids)}")
        print(ids.to_string())


if __name__ == "__main__":
    main()
