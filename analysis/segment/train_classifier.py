"""Train the soma classifier (:mod:`analysis.segment.classifier`) on simulated sessions.

``python -m analysis.segment.train_classifier --work DIR [--out FILE] [--seed 101]
[--cohort preset:subjects:days:frames ...]`` simulates each training cohort (default
:data:`DEFAULT_COHORTS`; seed 101, never the validation cohort's 1) into
``DIR/<preset>/cohort``, runs this workflow on it up to ``segment`` (``DIR/<preset>/run``) with
mean-image candidates on and the rule classifier (so every candidate is stored with its
features), labels each soma-plane candidate by the Hungarian IoU match of
:func:`analysis.validate.compare_rois` against the simulated somata (a cell when IoU >=
0.5, the score the validation reports; duplicates of one soma are not cells), fits the
logistic model and writes it (default: the package's ``soma_classifier.json``). Real
recordings and their labels are never read.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from analysis import layout
from analysis.segment import classifier
from analysis.segment.settings import RULES

logger = logging.getLogger("train_classifier")
IOU_CELL = 0.5
#: the candidate settings the model is trained for (and must be used with); labels from the
#: ROIs as detected (rims follow the rules' classification and would bias them)
TRAINING_CANDIDATES = {"anatomical": True, "fit_soma_size": True, "cell_rims": False}
#: the builtin model's training cohorts: the realistic field, and the bundled sample's tidy
#: one so that a model trained for hard fields does not fail on easy ones
DEFAULT_COHORTS = ("realistic:2:2:3000", "sample:2:2:950")


def simulate_cohort(out: Path, cohort: dict[str, Any], seed: int) -> None:
    """A training cohort (:func:`parse_cohort`), written by the simulator's CLI."""
    cmd = [
        sys.executable, "-m", "analysis.simulate", "--out", str(out), "--seed", str(seed),
        "--preset", cohort["preset"], "--subjects", str(cohort["subjects"]),
        "--days", str(cohort["days"]), "--frames", str(cohort["frames"]),
        "--tiff-compression", "zlib-fast",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def parse_cohort(spec: str) -> dict[str, Any]:
    """``preset:subjects:days:frames`` (e.g. ``realistic:2:2:3000``) as a dict."""
    parts = spec.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
        raise argparse.ArgumentTypeError(
            f"--cohort '{spec}': expected preset:subjects:days:frames, e.g. realistic:2:2:3000"
        )
    return {
        "preset": parts[0],
        **dict(zip(("subjects", "days", "frames"), map(int, parts[1:]), strict=True)),
    }


def segment_cohort(cohort: Path, work: Path, cores: int) -> list[tuple[str, str]]:
    """Run the workflow up to the soma plane's ``segment`` outputs; the sessions run."""
    import yaml

    from analysis.cohort_run import run_workflow

    config = yaml.safe_load(Path("config/config.yaml").read_text())
    config["segment"] = {
        **config.get("segment", {}),
        **TRAINING_CANDIDATES,
        "classifier": RULES,
    }
    raw = cohort / "raw"
    sessions = sorted((p.parent.name, p.name) for p in raw.glob("*/*") if p.is_dir())
    targets = tuple(
        layout.path("segment.rois", "results", subject=sub, session=ses, plane=0)
        for sub, ses in sessions
    )
    run_workflow(
        raw, work, config=config, cores=cores, log_path=work / "train.log", targets=targets
    )
    return sessions


def labelled_features(
    results: Path, cohort: Path, sessions: list[tuple[str, str]], diameter_px: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Feature matrix and cell labels of every soma-plane candidate of the sessions, and
    the number of simulated somata."""
    from analysis import io
    from analysis.session_format import read_truth_session
    from analysis.validate import compare_registration, compare_rois

    features, labels, n_true = [], [], 0
    for subject, session in sessions:
        at = {"subject": subject, "session": session, "plane": 0}
        truth = read_truth_session(cohort, subject, session)[0]
        reg = io.read_netcdf(layout.path("register.registration", results, **at))
        shifts = compare_registration(reg, truth)
        masks = io.read_netcdf(layout.path("segment.rois", results, **at))
        matches, _ = compare_rois(
            masks,
            truth["soma_mask"],
            iou_threshold=IOU_CELL,
            registration_offset_px=(shifts["offset_row_px"], shifts["offset_col_px"]),
        )
        hits = set(matches.loc[matches["hit"], "detected_roi"])
        n_true += truth.sizes["neuron"]
        rois = {name: masks[name].values for name in masks.coords if masks[name].dims == ("roi",)}
        features.append(classifier.feature_matrix(rois, diameter_px))
        labels.append(np.isin(masks["roi"].values, list(hits)))
        logger.info(
            "%s %s: %d candidates, %d cells", subject, session, masks.sizes["roi"], len(hits)
        )
    return np.concatenate(features), np.concatenate(labels), n_true


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for cohorts and runs")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).with_name(classifier.BUILTIN_FILE),
        help="model file to write (default: the package's builtin model)",
    )
    parser.add_argument(
        "--cohort",
        type=parse_cohort,
        action="append",
        help="preset:subjects:days:frames, repeatable (default: "
        + " and ".join(DEFAULT_COHORTS)
        + ")",
    )
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from analysis.config import load_settings

    cohorts = args.cohort or [parse_cohort(spec) for spec in DEFAULT_COHORTS]
    diameter = load_settings({})["segment"].diameter_px
    parts, n_true, n_sessions = [], 0, 0
    for cohort in cohorts:
        folder = args.work / cohort["preset"]
        if not (folder / "cohort" / "raw").is_dir():
            simulate_cohort(folder / "cohort", cohort, args.seed)
        sessions = segment_cohort(folder / "cohort", folder / "run", args.cores)
        x, y, n = labelled_features(
            folder / "run" / "results", folder / "cohort", sessions, diameter
        )
        parts.append((x, y))
        n_true, n_sessions = n_true + n, n_sessions + len(sessions)
    features = np.concatenate([x for x, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    provenance = {
        "command": "python -m analysis.segment.train_classifier "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "cohorts": cohorts,
        "seed": args.seed,
        "sessions": n_sessions,
        "candidates": int(len(labels)),
        "somata": n_true,
        "cells": int(labels.sum()),
        "label": f"Hungarian IoU match >= {IOU_CELL} to a simulated soma",
        "candidates_settings": TRAINING_CANDIDATES,
    }
    model = classifier.fit(features, labels, n_true, provenance)
    args.out.write_text(json.dumps(model, indent=1) + "\n")
    logger.info(
        "%d candidates, %d of them cells, %d somata; threshold %.3f, soma F1 on the training "
        "sessions %.3f; written to %s",
        len(labels), labels.sum(), n_true, model["threshold"], model["training_f1"], args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
