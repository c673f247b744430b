"""Run this workflow on the simulated validation cohort, in its own work folder."""

from pathlib import Path

from analysis.cohort_run import run_workflow
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="run_validation_cohort", inputs=sm.input):
    # The same stage settings as this run; only the data and the results folder differ.
    run_workflow(
        Path(sm.input.cohort) / "raw",
        Path(sm.output.summary).resolve().parents[2],  # <work>/results/stats/summary.txt
        config=sm.params.config,
        cores=sm.threads,
        log_path=Path(sm.log[0]),
        snakefile=Path(sm.params.snakefile),
    )
