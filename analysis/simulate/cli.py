"""Experiment simulator with ground truth (DESIGN.md section 5): the command line.

``python -m analysis.simulate --out DIR --seed N [--preset ...] [--null] ...`` writes the
sessions (raw/) and truth (truth/) in the plain session format (:mod:`analysis.session_format`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis import session_format
from analysis.simulate.activity import online_target_f
from analysis.simulate.geometry import polygon_masks
from analysis.simulate.rendering import render_plane
from analysis.simulate.settings import PRESETS, settings_for
from analysis.simulate.subject import simulate_subject


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m analysis.simulate --out DIR --seed N [--preset ...] [--null] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.simulate",
        description="Experiment simulator with ground truth (DESIGN.md section 5).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output root (raw/ and truth/)")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--preset", default="sample", choices=sorted(PRESETS))
    parser.add_argument("--null", action="store_true", help="no vectorized signal")
    parser.add_argument("--subjects", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None, help="frames per plane per day")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other SimulateSettings key (value read as YAML), e.g. coupling_exponent=1.15",
    )
    parser.add_argument(
        "--tiff-compression",
        default="zlib",
        choices=session_format.TIFF_COMPRESSIONS,
        help="zlib (default, smallest), zlib-fast (level 1, for large cohorts) or none "
        "(fastest to write, e.g. long benchmark movies)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {"null": args.null}
    for key, value in (
        ("n_subjects", args.subjects),
        ("n_days", args.days),
        ("n_frames", args.frames),
    ):
        if value is not None:
            overrides[key] = value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    settings = settings_for(args.preset, **overrides)
    rng = np.random.default_rng(args.seed)
    shape = (settings.n_rows, settings.n_cols)
    plane_bytes = settings.n_frames * settings.n_rows * settings.n_cols * 2
    for k in range(settings.n_subjects):
        subject = f"m{k + 1:02d}"

        def online_f(day: dict[str, Any], subject: str = subject) -> tuple[np.ndarray, ...]:
            masks = polygon_masks(day["targets"], shape)
            path = session_format.session_dir(args.out, subject, day["session"]) / "plane0.tif"
            parts, reference = [], None
            with session_format.PlaneWriter(
                path, compression=args.tiff_compression, max_bytes=plane_bytes
            ) as writer:
                for chunk in render_plane(day, plane=0, settings=settings):
                    writer.write(chunk)
                    if reference is None:
                        reference = chunk[: min(50, len(chunk))].mean(axis=0)
                    parts.append(
                        online_target_f(
                            chunk,
                            target_masks=masks,
                            reference=reference,
                            max_shift_px=settings.max_motion_px + 2,
                        )
                    )
            return tuple(np.concatenate(p, axis=-1) for p in zip(*parts, strict=True))

        result = simulate_subject(settings, subject=subject, rng=rng, online_f=online_f)
        for day in result["days"]:
            path = session_format.session_dir(args.out, subject, day["session"]) / "plane1.tif"
            with session_format.PlaneWriter(
                path, compression=args.tiff_compression, max_bytes=plane_bytes
            ) as writer:
                for chunk in render_plane(day, plane=1, settings=settings):
                    writer.write(chunk)
        session_format.write_simulation(args.out, result, settings=settings)
    session_format.write_sessions_table(args.out, settings=settings)
    return 0
