"""Unit tests for analysis.calibrate: a tiny calibration run, the events table, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import calibrate, simulate, stats
from analysis.calibrate import CalibrateSettings
from analysis.settings import ConfigError

TINY = dict(
    n_null_cohorts=3,
    n_effect_cohorts=2,
    n_animals=2,
    n_permutations=99,
    n_days=1,
    n_frames=900,
    baseline_frames=500,
    seed=3,
)


@pytest.fixture(scope="module")
def table():
    return calibrate.run_calibration(
        settings=CalibrateSettings(**TINY), simulate_settings=simulate.settings_for("sample")
    )


def test_table_has_the_contract_columns_and_rows(table):
    assert list(table.columns) == ["metric", "value", "goal"]
    assert list(table["metric"]) == [
        "false_positive_rate_null",
        "power_planted",
        "fraction_animals_positive_separation",
        "n_null_cohorts",
        "n_effect_cohorts",
        "n_untestable_cohorts",
    ]
    values = table.set_index("metric")["value"]
    assert values["n_null_cohorts"] == 3 and values["n_effect_cohorts"] == 2
    for metric in ("false_positive_rate_null", "power_planted"):
        assert 0 <= values[metric] <= 1
    # alpha + 2 * sqrt(alpha (1 - alpha) / 3)
    assert table.set_index("metric").loc["false_positive_rate_null", "goal"].startswith("<= 0.3017")


def test_planted_cohorts_beat_null_cohorts(table):
    values = table.set_index("metric")["value"]
    assert values["n_untestable_cohorts"] == 0
    assert values["power_planted"] == 1.0
    assert values["power_planted"] > values["false_positive_rate_null"]
    assert values["fraction_animals_positive_separation"] == 1.0


def test_coincident_events_are_the_target_truth_events():
    sim = calibrate.cohort_settings(
        CalibrateSettings(**TINY), simulate.settings_for("sample"), null=True
    )
    cohort = simulate.simulate_traces(sim, rng=np.random.default_rng(0))
    events = calibrate.build_coincident_events(cohort)
    truth = cohort[0]["days"][0]["events"]
    truth = truth[(truth.kind == "coincident") & (truth.group != "none")]
    assert set(events["group"]) == {"P+", "P-"}
    assert set(events["subject"]) == {"m01", "m02"}
    first = events[events["subject"] == "m01"]
    assert len(first) == len(truth)
    np.testing.assert_allclose(first["dendrite_amplitude"], truth["dendrite_magnitude"])
    assert (events["soma_roi"] == events["dendrite_roi"]).all()
    # The table is what stats.fit_sd_residuals and test_group_epoch need.
    sd_events, fits = stats.fit_sd_residuals(events, settings=stats.StatsSettings())
    assert len(fits) > 0 and np.isfinite(sd_events["residual_z"]).all()


def test_cohort_settings_override_the_simulator():
    base = simulate.settings_for("sample")
    sim = calibrate.cohort_settings(
        CalibrateSettings(n_animals=4, n_days=2, n_frames=700, baseline_frames=100),
        base,
        null=False,
    )
    assert (sim.n_subjects, sim.n_days, sim.n_frames, sim.baseline_frames) == (4, 2, 700, 100)
    assert sim.calibration_trial_frames == 100 and not sim.null
    assert sim.n_rows == base.n_rows


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"n_animals": 0}, "n_animals must be >= 1"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"n_permutations": 5}, "n_permutations must be >= 19"),
        ({"n_cohorts": 5}, "unknown key 'n_cohorts'"),
    ],
)
def test_bad_settings_fail_with_the_key_named(mapping, match):
    with pytest.raises(ConfigError, match=match):
        CalibrateSettings.from_mapping(mapping)


def test_bad_inputs():
    with pytest.raises(ValueError, match="no simulated sessions"):
        calibrate.build_coincident_events([])
    with pytest.raises(ValueError, match="n_workers must be >= 1"):
        calibrate.run_calibration(
            settings=CalibrateSettings(),
            simulate_settings=simulate.settings_for("sample"),
            n_workers=0,
        )
