import re
from pathlib import Path

import pytest

from analysis import layout

ROOT = Path(__file__).resolve().parents[2]


def test_path_fills_given_wildcards_and_leaves_the_others():
    assert (
        layout.path("extract.traces", "results", subject="m01", session="day01", plane=0)
        == "results/extract/m01/day01/plane0/traces.nc"
    )
    assert layout.path("extract.traces", "out", subject="m01") == (
        "out/extract/m01/{session}/plane{plane}/traces.nc"
    )
    assert layout.path("stats.table", name="tests") == "{results}/stats/tests.tsv"


def test_path_refuses_unknown_artifacts_and_wildcards():
    with pytest.raises(KeyError, match="unknown artifact"):
        layout.path("stats.tabel", "results")
    with pytest.raises(KeyError, match="no wildcard"):
        layout.path("track.pairs", "results", session="day01")


def test_every_artifact_lives_in_its_stage_folder():
    for key, template in layout.ARTIFACTS.items():
        assert template.split("/")[0] == key.split(".")[0], key
        assert set(layout.fields(key)) <= {"subject", "session", "plane", "name"}, key


def test_rules_build_results_paths_only_through_the_layout():
    """Logs and benchmarks aside, no rule writes a results path by hand."""
    literal = re.compile(r"(RESULTS\}|\{results\})/(?!logs/|benchmarks/)")
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted((ROOT / "workflow" / "rules").glob("*.smk"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert not offenders, offenders
