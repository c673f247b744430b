"""Unit tests for analysis.conditions and analysis.inference: known answers of the
animal-level condition tests, the designs they pick and their untestable cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis import conditions, inference, stats


def _separation(values: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """Per animal x condition separation table as :func:`conditions.per_value` gives it."""
    return pd.DataFrame(
        [
            {"subject": s, "condition": c, "separation": v, "n_pplus": 4, "n_pminus": 4}
            | {"n_events": 50}
            for s, (c, v) in values.items()
        ]
    )


def test_two_sample_matches_welch_and_exact_permutation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 6), rng.normal(3, 1, 6)
    result = inference.two_sample_across_animals(a, b, n_random=999, seed=0)
    welch = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert result["statistic"] == pytest.approx(a.mean() - b.mean())
    assert result["t_statistic"] == pytest.approx(welch.statistic)
    assert result["p_value"] == pytest.approx(welch.pvalue)
    # fully separated groups: only the observed split and its mirror are as extreme
    assert result["n_permutations"] == math.comb(12, 6)
    assert result["p_permutation"] == pytest.approx(2 / math.comb(12, 6))
    assert result["min_attainable_p"] == pytest.approx(2 / math.comb(12, 6))


def test_one_sample_is_the_headline_computation():
    values = np.array([0.5, 1.2, -0.1, 0.8, 0.9])
    result = inference.one_sample_across_animals(values, alternative="two-sided", seed=0)
    assert result["p_value"] == pytest.approx(scipy_stats.ttest_1samp(values, 0).pvalue)
    assert result["n_positive_animals"] == 4
    assert result["min_attainable_p"] == pytest.approx(2 / 2**5)


def test_interaction_between_animals_finds_abolition_and_not_its_absence():
    rng = np.random.default_rng(1)
    abolished = _separation(
        {f"c{k}": ("control", 3 + rng.normal(0, 0.5)) for k in range(6)}
        | {f"i{k}": ("ndnf_opto", rng.normal(0, 0.5)) for k in range(6)}
    )
    (row,) = conditions.run_condition_interaction_test(
        abolished, reference="control", n_permutations=999, seed=0
    )
    r = row.iloc[0]
    assert r["test"] == conditions.CONDITION_TEST
    assert r["contrast"] == "ndnf_opto - control"
    assert r["statistic"] < -2 and r["p_value"] < 1e-4
    assert (r["n_animals"], r["n_condition_animals"], r["n_reference_animals"]) == (12, 6, 6)
    assert r["n_neurons"] == 12 * 8 and r["n_events"] == 12 * 50
    same = _separation(
        {f"c{k}": ("control", 3 + v) for k, v in enumerate(rng.normal(0, 0.5, 6))}
        | {f"i{k}": ("ndnf_opto", 3 + v) for k, v in enumerate(rng.normal(0, 0.5, 6))}
    )
    (row,) = conditions.run_condition_interaction_test(
        same, reference="control", n_permutations=999, seed=0
    )
    assert row.iloc[0]["p_value"] > 0.05


def test_interaction_within_animals_when_animals_span_conditions():
    rows = []
    for k, (ctrl, opto) in enumerate([(3.0, 0.2), (2.5, 0.1), (3.2, -0.3), (2.8, 0.4)]):
        rows += [
            {"subject": f"m{k}", "condition": "control", "separation": ctrl},
            {"subject": f"m{k}", "condition": "ndnf_opto", "separation": opto},
        ]
    table = pd.DataFrame(rows).assign(n_pplus=4, n_pminus=4, n_events=50)
    (row,) = conditions.run_condition_interaction_test(
        table, reference="control", n_permutations=999, seed=0
    )
    r = row.iloc[0]
    assert r["test"] == conditions.CONDITION_PAIRED_TEST
    assert r["n_animals"] == 4 and r["statistic"] == pytest.approx(-2.775)


def test_interaction_untestable_with_one_animal_per_condition():
    table = _separation({"a": ("control", 3.0), "b": ("ndnf_opto", 0.0)})
    (row,) = conditions.run_condition_interaction_test(
        table, reference="control", n_permutations=999, seed=0
    )
    assert np.isnan(row.iloc[0]["p_value"])
    assert "need 2 and 2" in row.iloc[0]["note"]


def test_reference_condition():
    one = pd.DataFrame({"condition": ["baseline", "baseline"]})
    assert conditions.reference_condition(one, "control") == "baseline"
    two = pd.DataFrame({"condition": ["baseline", "ndnf_opto"]})
    with pytest.raises(ValueError, match="set stats.reference_condition to one of them"):
        conditions.reference_condition(two, "control")


def test_label_light_uses_interleaved_sessions_and_in_trial_events():
    trials = pd.DataFrame(
        {
            "subject": ["m1"] * 3 + ["m2"] * 2,
            "session": ["d1"] * 3 + ["d1"] * 2,
            "start_frame": [0, 20, 40, 0, 20],
            "end_frame": [15, 35, 55, 15, 35],
            "light_on": [1, 0, 1, 1, 1],  # m2 is not interleaved
        }
    )
    events = pd.DataFrame(
        {
            "subject": ["m1"] * 4 + ["m2"],
            "session": ["d1"] * 5,
            "frame": [3, 17, 25, 50, 3],  # frame 17 falls between trials
        }
    )
    labelled = conditions.label_light(events, trials)
    assert labelled["frame"].tolist() == [3, 25, 50]
    assert labelled["light_on"].tolist() == [1, 0, 1]


def test_light_table_and_test():
    per_light = pd.DataFrame(
        {
            "subject": ["a", "a", "b", "b", "c", "c"],
            "light_on": [0, 1, 0, 1, 0, 1],
            "separation": [3.0, 0.5, 2.0, 0.0, 2.5, 0.2],
        }
    )
    table = conditions.light_table(per_light)
    np.testing.assert_allclose(table["difference"], [-2.5, -2.0, -2.3])
    row = conditions.run_light_test(table, seed=0).iloc[0]
    assert row["test"] == conditions.LIGHT_TEST and row["statistic"] == pytest.approx(-6.8 / 3)
    with pytest.raises(inference.InsufficientDataError, match="interleave"):
        conditions.run_light_test(table.iloc[:1], seed=0)


def test_learning_slopes_and_their_test():
    rows = []
    for k in range(6):
        condition = "control" if k < 3 else "ndnf_opto"
        slope = 0.1 if k < 3 else 0.0
        for day in range(4):
            rows.append(
                {
                    "subject": f"m{k}",
                    "session": f"day{day + 1:02d}",
                    "day_index": day,
                    "condition": condition,
                    "hit_rate": 0.3 + slope * day + 0.01 * k,
                    "rewards_per_min": 1.0 + 2 * slope * day,
                }
            )
    rows.append(rows[-1] | {"session": "day05", "day_index": 4, "condition": "control"})
    behaviour = pd.DataFrame(rows)
    activity = pd.DataFrame(
        [
            {"subject": r["subject"], "session": r["session"], "group": g, "change_mean_dff": v}
            for r in rows
            for g, v in (("P+", 0.05 * r["day_index"]), ("P-", -0.05 * r["day_index"]))
        ]
    )
    slopes = conditions.learning_slopes(behaviour, activity)
    assert slopes["subject"].tolist() == ["m0", "m1", "m2", "m3", "m4"]  # m5 mixes conditions
    np.testing.assert_allclose(slopes["slope_hit_rate"], [0.1, 0.1, 0.1, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(slopes["slope_target_activity"], 0.1)
    tests = conditions.run_learning_test(slopes, reference="control", n_permutations=999, seed=0)
    by_test = {r.iloc[0]["test"]: r.iloc[0] for r in tests}
    hit = by_test[conditions.LEARNING_TESTS["hit_rate"]]
    assert hit["statistic"] == pytest.approx(-0.1) and hit["n_animals"] == 5
    # identical target-activity slopes in both conditions: no difference
    assert by_test[conditions.LEARNING_TESTS["target_activity"]]["statistic"] == pytest.approx(0)


def test_summary_reads_condition_tests():
    rng = np.random.default_rng(2)
    table = _separation(
        {f"c{k}": ("control", 3 + rng.normal(0, 0.5)) for k in range(4)}
        | {f"i{k}": ("ndnf_opto", rng.normal(0, 0.5)) for k in range(4)}
    )
    tests = pd.concat(
        [
            inference.result_row(
                stats.GROUP_EPOCH_TEST,
                statistic=3.0,
                p_value=0.001,
                alternative="two-sided",
                n_animals=4,
                n_neurons=32,
                n_events=200,
                n_permutations=16,
                n_positive_animals=4,
                p_sign_flip=0.125,
                min_attainable_p=0.125,
            ),
            *conditions.run_condition_interaction_test(
                table, reference="control", n_permutations=999, seed=0
            ),
        ],
        ignore_index=True,
    )
    text = stats.summarize(tests, settings=stats.StatsSettings(), reference="control")
    assert "ran on the 'control' sessions only" in text
    assert "Conditions compared (reference 'control'" in text
    assert "[ndnf_opto - control]" in text and "ndnf_opto lower than control" in text


def test_light_test_through_the_measurement_path():
    """Interleaved lit trials that abolish a planted residual: the light-on minus light-off
    separation is negative in every animal, from detected events and logged epochs."""
    from analysis import bci, calibrate, calibration_cohorts, simulate

    settings = calibrate.CalibrateSettings(n_animals=3, n_days=2, n_frames=3000)
    base = simulate.settings_for("sample")
    subjects = ["m01", "m02", "m03"]
    sim = calibration_cohorts.cohort_settings(
        settings,
        base,
        n_subjects=3,
        inhibited_subjects=subjects,
        opto_trial_fraction=0.5,
        null=False,
        residual_amplitude=0.35,
    )
    parts, trials = [], []
    for a, subject in enumerate(subjects):
        animal = simulate.simulate_subject(sim, subject=subject, rng=np.random.default_rng(a))
        rng = np.random.default_rng([a, 1])
        dendrites = calibration_cohorts.animal_dendrites(animal, sim, n_frames=3000, rng=rng)
        parts.append(
            calibration_cohorts.measured_tables(
                animal, dendrites, sim=sim, noise_dff=0.055, rng=rng
            )
        )
        meta = {
            "threshold": animal["threshold"],
            "failure_bound": animal["failure_bound"],
            "target_angle_deg": sim.task_params.target_angle_deg,
            "max_trial_frames": sim.task_params.max_trial_frames,
        }
        for day in animal["days"]:
            table = bci.compute_trials(day["bci"], meta=meta, fs_hz=sim.fs_hz)
            trials.append(table.assign(subject=subject, session=day["session"]))
    tables = calibration_cohorts.merge_tables(parts)
    fitted, _, _ = stats.residual_events(**tables, settings=stats.StatsSettings())
    lit = conditions.label_light(fitted, pd.concat(trials, ignore_index=True))
    light = conditions.light_table(
        conditions.per_value(lit, "light_on", stats.compute_signed_separation)
    )
    assert len(light) == 3 and (light["difference"] < 0).all()
    assert (light["separation_light_off"] > 1).all()
