"""Run this workflow on a simulated cohort in a work folder of its own.

Used by the ``validate`` target (``workflow/scripts/validation_run.py``) and by
``benchmarks/end_to_end.py``: the cohort's raw sessions become the sessions table, the
stage settings are the caller's, and only the data and the results folder differ.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

SNAKEFILE = Path(__file__).resolve().parents[1] / "Snakefile"


def run_workflow(
    raw: Path,
    work: Path,
    *,
    config: Mapping[str, Any],
    cores: int,
    log_path: Path,
    snakefile: Path = SNAKEFILE,
    targets: tuple[str, ...] = (),
) -> Path:
    """Write ``work/config`` for the sessions under ``raw`` and run snakemake there.

    Parameters
    ----------
    raw : Path
        ``<raw>/<subject>/<session>/`` folders in the plain session format.
    work : Path
        Work folder (created); results go to ``work/results``.
    config : mapping
        The workflow config to run with; ``raw_root``, ``sessions`` and ``results`` are
        replaced.
    cores : int
    log_path : Path
        Snakemake's output is appended here.
    snakefile : Path
    targets : tuple of str
        Snakemake targets (default: its default target, ``all``).

    Returns
    -------
    Path
        ``work/results/stats/summary.txt``.
    """
    raw = Path(raw).resolve()
    sessions = sorted(p.relative_to(raw) for p in raw.glob("*/*") if p.is_dir())
    if not sessions:
        raise FileNotFoundError(f"{raw}: no <subject>/<session> folders to run")
    (work / "config").mkdir(parents=True, exist_ok=True)
    rows = ["subject\tsession\tpath"] + [f"{s.parts[0]}\t{s.parts[1]}\t{s}" for s in sessions]
    (work / "config" / "sessions.tsv").write_text("\n".join(rows) + "\n")
    run_config = {**config, "raw_root": str(raw), "sessions": "config/sessions.tsv",
                  "results": "results"}  # fmt: skip
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(Path(snakefile).resolve()),
           "--directory", str(work), "--cores", str(cores), "--rerun-incomplete", "--nolock",
           *targets]  # fmt: skip
    log.info("running %s", " ".join(cmd))
    with open(log_path, "a") as out:
        subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT)
    return work / "results" / "stats" / "summary.txt"
