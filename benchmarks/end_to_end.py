"""End-to-end check of the headline claim: a null and a planted cohort through the whole DAG.

Simulates two cohorts with movies (the sample preset's field, the closed loop, supralinear
coupling and a per-day drift of the coupling gain: ``analysis.cohort_run.CONFOUNDS``): one
with no vectorized residual (``--null``), one with the simulator's planted residual, from
the same seed. Each runs through the full Snakemake workflow in its own work folder; the
headline test's row and verdict are printed and written to ``<out>/end_to_end.tsv``.

    python benchmarks/end_to_end.py --out /tmp/e2e                    # 6 animals x 2 days
    python benchmarks/end_to_end.py --out /tmp/e2e --subjects 4 --frames 2000   # the test's

The test suite runs the reduced version (tests/workflow/test_end_to_end.py).

With ``--conditions`` the two cohorts are two-condition ones instead (the causal
experiment): the second half of the subjects is in ``ndnf_opto`` (lit all session), both
conditions carry the planted residual, and the light either abolishes it and slows
learning (``abolished``) or does nothing (``no_effect``); the condition x (group x epoch)
row is printed beside the headline's:

    python benchmarks/end_to_end.py --out /tmp/e2e_conditions --conditions
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
    parser.add_argument(
        "--conditions", action="store_true", help="two-condition cohorts (abolished, no effect)"
    )
    args = parser.parse_args(argv)
    size = dict(subjects=args.subjects, days=args.days, frames=args.frames, seed=args.seed)
    if args.conditions:
        inhibited = [f"m{k + 1:02d}" for k in range(args.subjects // 2, args.subjects)]
        labels = f"inhibited_subjects=[{','.join(inhibited)}]"
        effects = {
            "abolished": ("inhibition_residual_removed=1", "inhibition_learning_factor=0.25"),
            "no_effect": ("inhibition_residual_removed=0", "inhibition_learning_factor=1"),
        }
        runs = [
            dict(null=False, name=name, settings=(labels, *effect))
            for name, effect in effects.items()
        ]
    else:
        runs = [dict(null=True), dict(null=False)]
    table = pd.DataFrame(
        [simulate_and_run(args.out, cores=args.cores, **size, **run) for run in runs]
    )
    io.write_tsv(table, args.out / "end_to_end.tsv")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
