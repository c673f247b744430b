"""The headline claim end to end: simulated cohorts with movies through the whole DAG.

A null cohort (no vectorized residual, but the closed loop, supralinear coupling and gain
drift) must print "no vectorized signal found"; the planted cohort from the same seed must
print "found". The reduced version of ``benchmarks/end_to_end.py``: 4 animals x 2 days of
2000 frames (at the sample preset's density some targets get no paired tuft, so an animal
can lack P+ or P- neurons with residuals in both epochs; 4 animals leave 3 or more).
"""

from __future__ import annotations

import pytest

from analysis.cohort_run import simulate_and_run

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SIZE = dict(subjects=4, days=2, frames=2000, seed=11, cores=2)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("end_to_end")


def test_null_cohort_is_not_called_vectorized(work):
    row = simulate_and_run(work, null=True, **SIZE)
    assert row["n_animals"] >= 3 and row["n_events"] > 100
    assert row["verdict"] == "not found", row


def test_planted_cohort_is_found(work):
    row = simulate_and_run(work, null=False, **SIZE)
    assert row["n_animals"] >= 3
    assert row["verdict"] == "found", row
    assert row["n_positive_animals"] == row["n_animals"] and row["separation"] > 0.5
