"""Print the simulator's planted truth beside what the pipeline recovered on a sample.

    python benchmarks/sample_truth.py [--data data_sample] [--results results]

Truth: mean planted residual of coincident soma/dendrite events by target group and
task epoch, and trials/hits per day, from ``<data>/truth``. Pipeline: the residual z
contrasts (``results/stats/contrasts.tsv``) and behaviour (``behaviour.tsv``) of a
finished ``snakemake`` run on the same data.
"""

import argparse
from pathlib import Path

import pandas as pd

from analysis import layout, session_format


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data_sample"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    truth_events = []
    for subject_dir in sorted((args.data / "truth").iterdir()):
        sessions = session_format.read_truth_subject(args.data, subject_dir.name)["sessions"]
        for session in sessions["session"]:
            _, events = session_format.read_truth_session(args.data, subject_dir.name, session)
            truth_events.append(events.assign(subject=subject_dir.name, session=session))
    events = pd.concat(truth_events, ignore_index=True)
    coincident = events[events["kind"] == "coincident"]
    planted = coincident.pivot_table(
        index="group", columns="epoch", values="planted_residual", aggfunc="mean"
    )
    print("Truth: mean planted residual (dF/F) of coincident events, by group x epoch")
    print(planted.round(3).to_string(), end="\n\n")
    print("Truth: coincident events by group x epoch")
    print(coincident.pivot_table(index="group", columns="epoch", aggfunc="size").to_string())
    print()
    contrasts = pd.read_csv(layout.path("stats.table", args.results, name="contrasts"), sep="\t")
    table = contrasts.pivot_table(index="group", columns="epoch", values="mean_residual_z")
    print("Pipeline: mean SD residual z by group x epoch (results/stats/contrasts.tsv)")
    print(table.round(3).to_string(), end="\n\n")
    if {"P+", "P-"} <= set(table.index) and "reduction" in table.columns:
        diff = table.loc["P+", "reduction"] - table.loc["P-", "reduction"]
        print(f"Pipeline: P+ minus P- residual z in error-reduction epochs = {diff:.3f}\n")
    behaviour = pd.read_csv(layout.path("stats.table", args.results, name="behaviour"), sep="\t")
    print("Pipeline: behaviour per day (results/stats/behaviour.tsv)")
    print(behaviour[["subject", "session", "n_trials", "n_hits", "hit_rate", "rewards_per_min"]]
          .round(3).to_string(index=False))  # fmt: skip


if __name__ == "__main__":
    main()
