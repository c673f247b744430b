"""Score the validation run's imaging stages against the simulated truth."""

from pathlib import Path

from analysis import io, validate
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="validate", inputs=sm.input) as log:
    truth = Path(sm.input.cohort)
    subjects = sorted(p.name for p in (truth / "truth").iterdir() if p.is_dir())
    results = Path(sm.input.summary).parents[1]  # <run>/results/stats/summary.txt
    metrics = validate.score_run(results, truth, subjects)
    io.write_tsv(metrics, sm.output.metrics)
    log.info("imaging metrics on %d subjects:\n%s", len(subjects), metrics.to_string(index=False))
