"""The performance benchmark's stats timing feeds the stats stage what it requires (the
benchmark is no test itself: a changed signature once stopped a 35-minute run there)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stats_timing_runs_on_a_small_cohort():
    script = ROOT / "benchmarks" / "performance.py"
    out = subprocess.run(
        [sys.executable, str(script), "--stats-child", "2", "2", "1500"],
        capture_output=True, text=True, check=True, cwd=ROOT / "benchmarks",
    ).stdout  # fmt: skip
    timing = json.loads(out.strip().splitlines()[-1])
    assert timing["n_sd_events"] > 0 and timing["stats_s"] > 0
