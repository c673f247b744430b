"""End-to-end check of the headline claim: a null and a planted cohort through the whole DAG.

Simulates two cohorts with movies (the sample preset's field, the closed loop, supralinear
coupling and a per-day drift of the coupling gain): one with no vectorized residual
(``--null``), one with the simulator's planted residual, from the same seed. Each runs
through the full Snakemake workflow in its own work folder, and the headline test's row
and verdict are printed and written to ``<out>/end_to_end.tsv``.

    python benchmarks/end_to_end.py --out /tmp/e2e                 # 6 animals x 3 days
    python benchmarks/end_to_end.py --out /tmp/e2e --subjects 3 --days 1   # the test's size

The test suite runs the reduced version (tests/workflow/test_end_to_end.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from analysis import io, stats
from analysis.cohort_run import run_workflow

REPO = Path(__file__).resolve().parents[1]
#: The closed-loop confounds the null carries beyond the sample preset's.
CONFOUNDS = ("coupling_exponent=1.15", "coupling_gain_drift_sd=0.1")


def run_cohort(
    out: Path, *, null: bool, subjects: int, days: int, frames: int, seed: int, cores: int
) -> dict:
    """Simulate one cohort, run the workflow on it, return its headline test row."""
    name = "null" if null else "planted"
    cohort = out / name
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
            *[arg for c in CONFOUNDS for arg in ("--set", c)],
            *(["--null"] if null else []),
        ]
        with open(out / f"{name}_simulate.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    simulated = time.perf_counter()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    summary = run_workflow(
        cohort / "raw",
        out / f"{name}_run",
        config=config,
        cores=cores,
        log_path=out / f"{name}_run.log",
    )
    tests = io.read_tsv(summary.parent / "tests.tsv")
    row = tests[tests["test"] == stats.GROUP_EPOCH_TEST].iloc[0]
    text = summary.read_text()
    return {
        "cohort": name,
        "verdict": "found" if "vectorized instructive signal found" in text else "not found",
        "separation": row["statistic"],
        "p_value": row["p_value"],
        "n_animals": row["n_animals"],
        "n_positive_animals": row.get("n_positive_animals"),
        "n_neurons": row["n_neurons"],
        "n_events": row["n_events"],
        "simulate_s": round(simulated - start, 1),
        "workflow_s": round(time.perf_counter() - simulated, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (created)")
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--frames", type=int, default=950, help="frames per plane per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        run_cohort(
            args.out,
            null=null,
            subjects=args.subjects,
            days=args.days,
            frames=args.frames,
            seed=args.seed,
            cores=args.cores,
        )
        for null in (True, False)
    ]
    table = pd.DataFrame(rows)
    io.write_tsv(table, args.out / "end_to_end.tsv")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
