"""End-to-end check of the headline claim: a null and a planted cohort through the whole DAG.

Simulates two cohorts with movies (the sample preset's field, the closed loop, supralinear
coupling and a per-day drift of the coupling gain: ``analysis.cohort_run.CONFOUNDS``): one
with no vectorized residual (``--null``), one with the simulator's planted residual, from
the same seed. Each runs through the full Snakemake workflow in its own work folder; the
headline test's row and verdict are printed and written to ``<out>/end_to_end.tsv``.

    python benchmarks/end_to_end.py --out /tmp/e2e                    # 6 animals x 2 days
    python benchmarks/end_to_end.py --out /tmp/e2e --subjects 4 --frames 2000   # the test's

The test suite runs the reduced version (tests/workflow/test_end_to_end.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis import io
from analysis.cohort_run import simulate_and_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (created)")
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--frames", type=int, default=3000, help="frames per plane per day")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    table = pd.DataFrame(
        [
            simulate_and_run(
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
    )
    io.write_tsv(table, args.out / "end_to_end.tsv")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
