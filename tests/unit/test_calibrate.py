"""Unit tests for analysis.calibrate: a tiny calibration through the measurement path."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import calibrate, calibration_cohorts, simulate, stats
from analysis.calibrate import CalibrateSettings
from analysis.settings import ConfigError

TINY = dict(
    n_null_cohorts=2,
    n_power_cohorts=1,
    n_animals=3,
    n_days=2,
    n_frames=1500,
    baseline_frames=600,
    effect_sizes_sd=(1.0,),
    null_variants=("linear", "supralinear_1.3"),
    parts=("group_epoch",),
    seed=3,
)


@pytest.fixture(scope="module")
def calibration():
    return calibrate.run_calibration(
        settings=CalibrateSettings(**TINY), simulate_settings=simulate.settings_for("sample")
    )


def test_table_has_a_row_per_variant_size_and_the_effect_floor(calibration):
    table, _ = calibration
    assert list(table.columns) == ["metric", "variant", "value", "goal"]
    fpr = table[table["metric"] == "false_positive_rate"].set_index("variant")
    assert list(fpr.index) == ["linear", "supralinear_1.3"]
    assert fpr["goal"].str.startswith("<= 0.3582").all()  # 0.05 + 2 sqrt(0.05 0.95 / 2)
    assert fpr["value"].between(0, 1).all()
    power = table[table["metric"] == "power"].set_index("variant")["value"]
    assert list(power.index) == ["0_sd", "1_sd"]
    assert table.query("metric == 'minimum_detectable_effect_sd'")["value"].notna().all()


def test_planted_cohorts_are_found_with_the_size_they_were_planted_at(calibration):
    table, _ = calibration
    values = table.set_index(["metric", "variant"])["value"]
    assert values[("power", "1_sd")] == 1.0
    # the planted size is in the test's own residual-SD units
    assert values[("realized_effect_sd", "1_sd")] == pytest.approx(1.0, abs=0.35)
    assert values[("n_untestable_cohorts", "linear")] == 0


def test_null_residuals_are_flat_in_true_somatic_size(calibration):
    _, residual_size = calibration
    assert {"linear", "supralinear_1.15"} - set(residual_size["variant"]) == {"supralinear_1.15"}
    linear = residual_size[residual_size["variant"] == "linear"]
    assert len(linear) == 8 and (linear["n_events"] > 20).all()
    assert linear["mean_residual_z"].abs().max() < 0.5


def test_measured_tables_go_through_detection_and_the_log():
    settings = CalibrateSettings(**{**TINY, "n_days": 1})
    sim = calibration_cohorts.cohort_settings(settings, simulate.settings_for("sample"))
    animal = simulate.simulate_subject(sim, subject="m01", rng=np.random.default_rng(0))
    day = animal["days"][0]
    tables = calibration_cohorts.measured_tables(
        animal,
        [(day["events"], day["dendrite_calcium"])],
        sim=sim,
        noise_dff=0.06,
        rng=np.random.default_rng(1),
    )
    targets = [t["neuron"] for t in day["targets"]]
    soma = tables["soma_dff"][("m01", "day01")]
    assert list(soma["roi"].values) == targets
    noise = calibration_cohorts.noise_sd(soma.values)
    assert noise == pytest.approx(np.full(len(targets), 0.06), rel=0.15)
    # events are detected from the traces, not copied from the truth
    detected = tables["events"].query("plane_role == 'soma'")
    truth = day["bursts"][day["bursts"]["neuron"].isin(targets)]
    assert 0.5 * len(truth) < len(detected) < 1.5 * len(truth)
    assert set(tables["epochs"]["epoch"]) <= {"reduction", "increase", "none"}
    fitted, fits, _ = stats.residual_events(**tables, settings=stats.StatsSettings())
    assert len(fits) == len(targets) and np.isfinite(fitted["residual_z"]).all()


def test_minimum_detectable_effect_interpolates_the_power_curve():
    sizes = np.array([0.0, 0.1, 0.2, 0.3])
    assert calibrate.minimum_detectable_effect(sizes, np.array([0.05, 0.5, 0.9, 1]), 0.8) == 0.175
    assert calibrate.minimum_detectable_effect(sizes, np.array([0.05, 0.1, 0.2, 0.3]), 0.8) == (
        float("inf")
    )


def test_interaction_calibration_through_two_condition_cohorts():
    settings = CalibrateSettings(
        **{**TINY, "parts": ("interaction",)},
        n_interaction_cohorts=2,
        n_interaction_power_cohorts=1,
        interaction_sizes_sd=(1.0,),
    )
    table, residual_size = calibrate.run_calibration(
        settings=settings, simulate_settings=simulate.settings_for("sample")
    )
    values = table.set_index(["metric", "variant"])["value"]
    fpr = table[table["metric"] == "false_positive_rate"]
    assert fpr["variant"].tolist() == [
        "interaction_null_no_signal",
        "interaction_null_same_signal_0.2_sd",
    ]
    assert fpr["value"].between(0, 1).all()
    assert values[("n_untestable_cohorts", "interaction_null_no_signal")] == 0
    # the light abolished a 1-SD residual in 3 of 6 animals: found, at about that size
    assert values[("power", "interaction_abolished_1_sd")] == 1.0
    assert values[("realized_effect_sd", "interaction_abolished_1_sd")] == pytest.approx(
        -1.0, abs=0.4
    )
    assert residual_size.empty


def test_cohort_settings_override_the_simulator():
    base = simulate.settings_for("sample")
    sim = calibration_cohorts.cohort_settings(
        CalibrateSettings(n_animals=4, n_days=2, n_frames=700, baseline_frames=100),
        base,
        coupling_exponent=1.3,
    )
    assert (sim.n_subjects, sim.n_days, sim.n_frames, sim.baseline_frames) == (1, 2, 700, 100)
    assert sim.calibration_trial_frames == 100 and sim.null and sim.coupling_exponent == 1.3
    assert sim.coupling_gain_drift_sd == CalibrateSettings().gain_drift_sd
    assert sim.n_rows == base.n_rows


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"n_animals": 0}, "n_animals must be >= 1"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"n_power_cohorts": 500}, "n_power_cohorts must be in"),
        ({"null_variants": ["linear", "cubic"]}, "unknown \\['cubic'\\]"),
        ({"effect_sizes_sd": [0.0]}, "residual SDs > 0"),
        ({"n_cohorts": 5}, "unknown key 'n_cohorts'"),
        ({"parts": ["interaction", "learning"]}, "unknown \\['learning'\\]"),
        ({"n_interaction_power_cohorts": 500}, "n_interaction_power_cohorts must be in"),
    ],
)
def test_bad_settings_fail_with_the_key_named(mapping, match):
    with pytest.raises(ConfigError, match=match):
        CalibrateSettings.from_mapping(mapping)


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_workers must be >= 1"):
        calibrate.run_calibration(
            settings=CalibrateSettings(),
            simulate_settings=simulate.settings_for("sample"),
            n_workers=0,
        )
