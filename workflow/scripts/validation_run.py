"""Run this workflow on the simulated validation cohort, in its own work folder."""

import subprocess
import sys
from pathlib import Path

import yaml

from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="run_validation_cohort", inputs=sm.input) as log:
    work = Path(sm.output.summary).resolve().parents[2]  # <work>/results/stats/summary.txt
    raw = Path(sm.input.cohort).resolve() / "raw"
    sessions = sorted(p.relative_to(raw) for p in raw.glob("*/*") if p.is_dir())
    (work / "config").mkdir(parents=True, exist_ok=True)
    rows = ["subject\tsession\tpath"] + [f"{s.parts[0]}\t{s.parts[1]}\t{s}" for s in sessions]
    (work / "config" / "sessions.tsv").write_text("\n".join(rows) + "\n")
    # The same stage settings as this run; only the data and the results folder differ.
    config = {**sm.params.config, "raw_root": str(raw), "sessions": "config/sessions.tsv",
              "results": "results"}  # fmt: skip
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(Path(sm.params.snakefile).resolve()),
           "--directory", str(work), "--cores", str(sm.threads), "--rerun-incomplete",
           "--nolock"]  # fmt: skip
    log.info("running %s", " ".join(cmd))
    with open(sm.log[0], "a") as out:
        subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT)
