"""Run this workflow on a simulated cohort in a work folder of its own.

Used by the ``validate`` target (``workflow/scripts/validation_run.py``) and by the
end-to-end check of the headline claim (:func:`simulate_and_run`,
``benchmarks/end_to_end.py``, ``tests/workflow/test_end_to_end.py``): the cohort's raw
sessions become the sessions table, the stage settings are the caller's, and only the data
and the results folder differ.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from analysis import layout

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
#: The closed-loop confounds an end-to-end cohort carries beyond the sample preset's.
CONFOUNDS = ("coupling_exponent=1.15", "coupling_gain_drift_sd=0.1")


def run_workflow(
    raw: Path,
    work: Path,
    *,
    config: Mapping[str, Any],
    cores: int,
    log_path: Path,
    snakefile: Path = SNAKEFILE,
    targets: tuple[str, ...] = (),
    sessions_table: Path | None = None,
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
    sessions_table : Path, optional
        The cohort's own sessions table (paths relative to ``raw``; e.g. the simulator's,
        with conditions); default: one row per ``<subject>/<session>`` folder.

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
    table = Path(sessions_table).read_text() if sessions_table else "\n".join(rows) + "\n"
    (work / "config" / "sessions.tsv").write_text(table)
    run_config = {
        **config,
        "raw_root": str(raw),
        "sessions": "config/sessions.tsv",
        "results": "results",
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(run_config, sort_keys=False))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(Path(snakefile).resolve()),
        "--directory",
        str(work),
        "--cores",
        str(cores),
        "--rerun-incomplete",
        "--nolock",
        *targets,
    ]
    log.info("running %s", " ".join(cmd))
    with open(log_path, "a") as out:
        subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT)
    return Path(layout.path("stats.summary", work / "results"))


def simulate_and_run(
    out: Path,
    *,
    null: bool,
    subjects: int,
    days: int,
    frames: int,
    seed: int,
    cores: int,
    confounds: Sequence[str] = CONFOUNDS,
    settings: Sequence[str] = (),
    name: str | None = None,
) -> dict[str, Any]:
    """Simulate a cohort with movies (sample preset + ``confounds`` + ``settings``, each
    ``KEY=VALUE``), run the workflow on it with the repository's config and the cohort's
    sessions table, and return its headline test row and verdict, and with conditions the
    condition x (group x epoch) row.

    The cohort goes to ``out/<name>`` (default ``null`` or ``planted``), the run to
    ``out/<name>_run``; a cohort already simulated there is reused.
    """
    from analysis import conditions, io, stats

    name = name or ("null" if null else "planted")
    cohort = out / name
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not (cohort / "raw").exists():
        cmd = [
            sys.executable,
            "-m",
            "analysis.simulate",
            "--preset",
            "sample",
            "--out",
            str(cohort),
            "--seed",
            str(seed),
            "--subjects",
            str(subjects),
            "--days",
            str(days),
            "--frames",
            str(frames),
            "--tiff-compression",
            "zlib-fast",
            *[arg for c in (*confounds, *settings) for arg in ("--set", c)],
            *(["--null"] if null else []),
        ]
        with open(out / f"{name}_simulate.log", "w") as log_file:
            subprocess.run(cmd, check=True, stdout=log_file, stderr=subprocess.STDOUT)
    simulated = time.perf_counter()
    summary = run_workflow(
        cohort / "raw",
        out / f"{name}_run",
        config=yaml.safe_load((REPO / "config" / "config.yaml").read_text()),
        cores=cores,
        log_path=out / f"{name}_run.log",
        sessions_table=cohort / "sessions.tsv",
    )
    tests = io.read_tsv(summary.parent / "tests.tsv")
    row = tests[tests["test"] == stats.GROUP_EPOCH_TEST].iloc[0]
    interaction = tests[
        tests["test"].isin([conditions.CONDITION_TEST, conditions.CONDITION_PAIRED_TEST])
    ]
    condition_result = {}
    if len(interaction):
        r = interaction.iloc[0]
        condition_result = {
            "interaction_statistic": r["statistic"],
            "interaction_p_value": r["p_value"],
            "interaction_n_animals": r["n_animals"],
        }
    return {
        "cohort": name,
        "verdict": (
            "found" if "vectorized instructive signal found" in summary.read_text() else "not found"
        ),
        "separation": row["statistic"],
        "p_value": row["p_value"],
        "n_animals": row["n_animals"],
        "n_positive_animals": row.get("n_positive_animals"),
        "n_neurons": row["n_neurons"],
        "n_events": row["n_events"],
        **condition_result,
        "simulate_s": round(simulated - start, 1),
        "workflow_s": round(time.perf_counter() - simulated, 1),
    }
