"""Unit tests for analysis.stats: known answers, calibration on null cohorts, power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats as scipy_stats

from analysis import stats
from analysis.settings import ConfigError
from analysis.stats import StatsSettings


def _settings(**kw) -> StatsSettings:
    return StatsSettings(**kw)


# --- synthetic residual cohorts ----------------------------------------------------------


def _residual_cohort(
    rng: np.random.Generator,
    *,
    n_animals: int = 6,
    n_per_group: int = 4,
    events_per_epoch: int = 12,
    effect: float = 0.0,
) -> pd.DataFrame:
    """Residual-level events with neuron and animal random offsets.

    The planted effect adds +effect to P+ and -effect to P- residuals in error reduction,
    and the opposite in error increase (separation = 4 * effect).
    """
    rows = []
    for a in range(n_animals):
        animal_offset = rng.normal(0, 0.5)
        for n in range(2 * n_per_group + 2):
            group = "P+" if n < n_per_group else "P-" if n < 2 * n_per_group else "non-target"
            neuron_offset = rng.normal(0, 0.5)
            sign = {"P+": 1.0, "P-": -1.0, "non-target": 0.0}[group]
            for epoch, esign in (("reduction", 1.0), ("increase", -1.0), ("none", 0.0)):
                z = animal_offset + neuron_offset + sign * esign * effect
                z = z + rng.normal(0, 1, events_per_epoch)
                for v in z:
                    rows.append((f"m{a}", "day01", n, group, epoch, v))
    return pd.DataFrame(
        rows, columns=["subject", "session", "soma_roi", "group", "epoch", "residual_z"]
    )


# --- settings ----------------------------------------------------------------------------


def test_settings_defaults_and_validation():
    s = StatsSettings.from_mapping({"coincidence_window_s": 0.3, "outcome_window_s": [-1, 2]})
    assert s.coincidence_window_s == 0.3 and s.outcome_window_s == (-1, 2)
    with pytest.raises(ConfigError, match="did you mean 'alpha'"):
        StatsSettings.from_mapping({"alpah": 0.01})
    with pytest.raises(ConfigError, match="alpha must be in"):
        StatsSettings.from_mapping({"alpha": 1.5})
    with pytest.raises(ValueError, match="outcome_window_s"):
        StatsSettings(outcome_window_s=(2.0, 1.0))


# --- behaviour and activity --------------------------------------------------------------


def test_compute_behaviour_known_answer():
    trials = pd.DataFrame(
        dict(
            subject="m0",
            session=["day02"] * 4,
            trial=range(4),
            outcome=["hit", "hit", "failure", "timeout"],
            reward_frame=[10, 50, np.nan, np.nan],
            time_to_outcome_s=[2.0, 4.0, 3.0, 29.0],
        )
    )
    sessions = pd.DataFrame(
        dict(subject="m0", session=["day01", "day02"], duration_s=[60.0, 120.0])
    )
    out = stats.compute_behaviour(trials, sessions)
    assert list(out["session"]) == ["day01", "day02"]
    assert list(out["day_index"]) == [0, 1]
    d1, d2 = out.iloc[0], out.iloc[1]
    assert d1["n_trials"] == 0 and np.isnan(d1["hit_rate"]) and d1["rewards_per_min"] == 0
    assert d2["hit_rate"] == 0.5 and d2["rewards_per_min"] == pytest.approx(1.0)
    assert d2["median_time_to_hit_s"] == pytest.approx(3.0)
    assert (d2["n_failures"], d2["n_timeouts"]) == (1, 1)


def test_compute_behaviour_bad_input():
    trials = pd.DataFrame(dict(subject=["m0"], session=["d"], trial=[0], outcome=["win"]))
    sessions = pd.DataFrame(dict(subject=["m0"], session=["d"], duration_s=[10.0]))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['reward_frame'"):
        stats.compute_behaviour(trials, sessions)
    trials = trials.assign(reward_frame=np.nan, time_to_outcome_s=1.0)
    with pytest.raises(ValueError, match="invalid value.*win"):
        stats.compute_behaviour(trials, sessions)


def test_compute_activity_and_change():
    dff = xr.DataArray(
        np.array([[0, 1, 1, 0, 0, 5], [2, 2, 2, 2, 2, 2]], dtype=np.float32),
        dims=("roi", "time"),
        coords={"roi": [3, 7], "frame": ("time", np.arange(10, 16)), "time": np.arange(6) / 2.0},
    )
    trials = pd.DataFrame(dict(start_frame=[11], end_frame=[12]))
    events = pd.DataFrame(dict(roi=[3, 3, 7]))
    act = stats.compute_activity(dff, trials=trials, events=events, fs_hz=2.0)
    assert list(act["roi"]) == [3, 7]
    np.testing.assert_allclose(act["mean_dff"], [1.0, 2.0])
    np.testing.assert_allclose(act["event_rate_hz"], [2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="dims"):
        stats.compute_activity(dff.rename(roi="cell"), trials=trials, events=events, fs_hz=2.0)

    activity = pd.concat(
        [
            act.assign(subject="m0", session="day01"),
            act.assign(subject="m0", session="day02", mean_dff=[0.5, 9]),
        ]
    )
    targets = pd.DataFrame(
        dict(
            subject="m0",
            session=["day01", "day02"],
            target_id=[0, 0],
            group=["P-", "P-"],
            roi=[3, 3],
        )
    )
    change = stats.compute_activity_change(activity, targets)
    assert len(change) == 2 and set(change["roi"]) == {3}
    np.testing.assert_allclose(change["change_mean_dff"], [0.0, -0.5])
    groups = stats.compute_group_activity(change)
    assert list(groups["day_index"]) == [0, 1] and (groups["n_neurons"] == 1).all()
    with pytest.raises(ValueError, match="no target ROI has activity"):
        stats.compute_activity_change(activity, targets.assign(roi=99))


# --- group x epoch -----------------------------------------------------------------------


def test_signed_separation_known_answer():
    rows = []
    # P+ neuron: red 1, inc -1 (diff 2); P- neuron: red -0.5, inc 0.5 (diff -1) -> sep 3.
    for roi, group, red, inc in ((0, "P+", 1.0, -1.0), (1, "P-", -0.5, 0.5)):
        rows += [("m0", roi, group, "reduction", red)] * 2 + [("m0", roi, group, "increase", inc)]
    rows += [("m0", 2, "P+", "reduction", 5.0)]  # no increase events -> dropped
    rows += [("m0", 3, "non-target", "reduction", 7.0), ("m0", 0, "P+", "none", 9.0)]
    ev = pd.DataFrame(rows, columns=["subject", "soma_roi", "group", "epoch", "residual_z"])
    sep = stats.compute_signed_separation(ev)
    assert len(sep) == 1
    assert sep["separation"].iloc[0] == pytest.approx(3.0)
    assert sep["pplus_reduction"].iloc[0] == 1.0 and sep["pminus_increase"].iloc[0] == 0.5
    assert (sep["n_pplus"].iloc[0], sep["n_pminus"].iloc[0], sep["n_events"].iloc[0]) == (1, 1, 6)
    contrasts = stats.compute_group_epoch_contrasts(ev)
    nt = contrasts[(contrasts["group"] == "non-target")]
    assert nt["mean_residual_z"].iloc[0] == 7.0
    pr = contrasts[(contrasts["group"] == "P+") & (contrasts["epoch"] == "reduction")]
    assert pr["mean_residual_z"].iloc[0] == pytest.approx(3.0)  # mean of neuron means 1 and 5
    assert pr["n_neurons"].iloc[0] == 2 and pr["n_events"].iloc[0] == 3


def test_group_epoch_is_an_animal_level_t_test():
    rng = np.random.default_rng(1)
    cohort = _residual_cohort(rng, n_animals=5, effect=0.3)
    settings = _settings()
    row = stats.run_group_epoch_test(cohort, settings=settings).iloc[0]
    sep = stats.compute_signed_separation(cohort)["separation"].to_numpy()
    t = sep.mean() / (sep.std(ddof=1) / np.sqrt(sep.size))
    assert row["test"] == stats.GROUP_EPOCH_TEST
    assert row["statistic"] == pytest.approx(sep.mean())
    assert row["t_statistic"] == pytest.approx(t)
    assert row["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), df=4))
    assert row["n_animals"] == 5 and row["n_positive_animals"] == int((sep > 0).sum())
    # 5 animals: 32 sign patterns, the all-positive one alone gives p = 2/32
    assert row["min_attainable_p"] == pytest.approx(2 / 32)
    if (sep > 0).all():
        assert row["p_sign_flip"] == pytest.approx(2 / 32)
    greater = stats.run_group_epoch_test(cohort, settings=_settings(alternative="greater"))
    assert greater["p_value"].iloc[0] == pytest.approx(scipy_stats.t.sf(t, df=4))
    text = stats.summarize(pd.concat([greater]), settings=settings)
    assert "n = 5 animals" in text and "df = 4" in text


def test_group_epoch_needs_two_animals():
    one = _residual_cohort(np.random.default_rng(0), n_animals=1, effect=1.0)
    with pytest.raises(stats.InsufficientDataError, match="at least 2"):
        stats.run_group_epoch_test(one, settings=_settings())
    # the neuron-level secondary test still runs on one animal
    row = stats.run_group_epoch_neuron_test(
        one, settings=_settings(n_permutations=199), rng=np.random.default_rng(0)
    ).iloc[0]
    assert row["test"] == stats.GROUP_EPOCH_NEURON_TEST and row["p_value"] < 0.05


@pytest.mark.parametrize("test", ["animals", "neurons"])
def test_group_epoch_false_positive_rate_on_null_cohorts(test):
    settings = _settings(n_permutations=199)
    n_cohorts = 200
    rng = np.random.default_rng(2)

    def p_value(cohort):
        if test == "animals":
            return stats.run_group_epoch_test(cohort, settings=settings)["p_value"].iloc[0]
        return stats.run_group_epoch_neuron_test(cohort, settings=settings, rng=rng)[
            "p_value"
        ].iloc[0]

    p = np.array([p_value(_residual_cohort(rng)) for _ in range(n_cohorts)])
    fpr = np.mean(p < settings.alpha)
    bound = settings.alpha + 2 * np.sqrt(settings.alpha * (1 - settings.alpha) / n_cohorts)
    assert fpr <= bound, f"false-positive rate {fpr:.3f} exceeds {bound:.3f}"
    # p-values are roughly uniform under the null, not just conservative.
    assert 0.35 < np.mean(p) < 0.65


def test_group_epoch_power_on_planted_effect():
    settings = _settings()
    rng = np.random.default_rng(3)
    p = np.array(
        [
            stats.run_group_epoch_test(_residual_cohort(rng, effect=0.15), settings=settings)[
                "p_value"
            ].iloc[0]
            for _ in range(40)
        ]
    )
    assert np.mean(p < settings.alpha) >= 0.8


def test_group_epoch_bad_input():
    ev = pd.DataFrame(
        dict(
            subject="m0",
            soma_roi=[0, 0],
            group=["P+", "P+"],
            epoch=["reduction", "increase"],
            residual_z=[1.0, 0.0],
        )
    )
    with pytest.raises(ValueError, match="no animal has both P\\+ and P- neurons"):
        stats.run_group_epoch_neuron_test(ev, settings=_settings(), rng=np.random.default_rng(0))
    with pytest.raises(stats.InsufficientDataError, match="0 animal"):
        stats.run_group_epoch_test(ev, settings=_settings())
    flip = pd.concat([ev, ev.assign(group="P-")])
    with pytest.raises(ValueError, match="both P\\+ and P- labels"):
        stats.run_group_epoch_test(flip, settings=_settings())
    with pytest.raises(ValueError, match="missing column"):
        stats.run_group_epoch_test(ev.drop(columns="epoch"), settings=_settings())


# --- outcome, early residual vs change, network ------------------------------------------


def _outcome_tables(rng: np.random.Generator, *, effect: float):
    """Trials with a decision frame; after hits, P+ neurons (0, 1) carry +effect, P- (2, 3)
    -effect and the non-target (4) +effect (no predicted sign, so it must not count)."""
    trials, events = [], []
    sign = {0: 1.0, 1: 1.0, 2: -1.0, 3: -1.0, 4: 1.0}
    group = {0: "P+", 1: "P+", 2: "P-", 3: "P-", 4: "non-target"}
    for a in range(4):
        for t in range(20):
            outcome = "hit" if t % 2 == 0 else "failure"
            decision = 100 * t + 50
            trials.append((f"m{a}", "day01", t, outcome, decision))
            for n in range(5):
                for lag in (-5, 3, 8):
                    z = rng.normal() + sign[n] * (effect if (outcome == "hit" and lag > 0) else 0)
                    events.append((f"m{a}", "day01", n, decision + lag, z, group[n]))
    trials = pd.DataFrame(
        trials, columns=["subject", "session", "trial", "outcome", "decision_frame"]
    )
    events = pd.DataFrame(
        events, columns=["subject", "session", "soma_roi", "frame", "residual_z", "group"]
    )
    sessions = pd.DataFrame(dict(subject=[f"m{a}" for a in range(4)], session="day01", fs_hz=10.0))
    return events, trials, sessions


def test_outcome_residuals_aligned_to_the_decision_frame_and_signed_by_group():
    settings = _settings(n_permutations=199, outcome_window_s=(-1.0, 1.0), outcome_bin_s=0.5)
    events, trials, sessions = _outcome_tables(np.random.default_rng(4), effect=1.0)
    aligned = stats.compute_outcome_residuals(events, trials, sessions, settings=settings)
    assert len(aligned) == 4 * 20 * 5 * 3
    assert set(np.round(aligned["lag_s"], 6)) == {-0.5, 0.3, 0.8}
    course = stats.compute_outcome_timecourse(aligned, settings=settings)
    assert set(course["lag_s"]) == {-0.25, 0.25, 0.75}  # empty bins are absent
    res = stats.run_outcome_test(aligned, settings=settings, rng=np.random.default_rng(5))
    # P+ up and P- down after hits: the signed statistic is the full effect, not its mean 0
    assert res["p_value"].iloc[0] < 0.01 and res["statistic"].iloc[0] > 0.7
    assert res["n_neurons"].iloc[0] == 4 * 4  # the non-target is left out
    null_events, _, _ = _outcome_tables(np.random.default_rng(6), effect=0.0)
    null_aligned = stats.compute_outcome_residuals(null_events, trials, sessions, settings=settings)
    null_res = stats.run_outcome_test(null_aligned, settings=settings, rng=np.random.default_rng(7))
    assert null_res["p_value"].iloc[0] > 0.01
    with pytest.raises(ValueError, match="lacks fs_hz"):
        stats.compute_outcome_residuals(events, trials, sessions.iloc[:1], settings=settings)
    with pytest.raises(ValueError, match="decision_frame"):
        stats.compute_outcome_residuals(
            events, trials.drop(columns="decision_frame"), sessions, settings=settings
        )


def test_residual_predicts_change():
    rng = np.random.default_rng(8)
    settings = _settings(n_permutations=499, early_fraction=0.5, late_fraction=0.5)
    ev_rows, act_rows = [], []
    for a in range(4):
        for n in range(10):
            early = rng.normal()
            for d in range(4):
                act_rows.append(
                    (
                        f"m{a}",
                        f"day{d + 1:02d}",
                        n,
                        3.0 * a + (0.8 * early if d >= 2 else 0.0) + rng.normal(0, 0.2),
                    )
                )
                if d < 2:
                    for _ in range(5):
                        ev_rows.append(
                            (f"m{a}", f"day{d + 1:02d}", n, "reduction", early + rng.normal(0, 0.3))
                        )
                ev_rows.append((f"m{a}", f"day{d + 1:02d}", n, "increase", 50.0))
    events = pd.DataFrame(
        ev_rows, columns=["subject", "session", "soma_roi", "epoch", "residual_z"]
    )
    activity = pd.DataFrame(act_rows, columns=["subject", "session", "roi", "mean_dff"])
    neurons, res = stats.run_early_change_test(events, activity, settings=settings, rng=rng)
    assert len(neurons) == 40 and (neurons["n_events"] == 10).all()
    assert res["statistic"].iloc[0] > 0.7 and res["p_value"].iloc[0] < 0.01
    shuffled = activity.assign(mean_dff=rng.permutation(activity["mean_dff"].to_numpy()))
    _, null_res = stats.run_early_change_test(events, shuffled, settings=settings, rng=rng)
    assert abs(null_res["statistic"].iloc[0]) < 0.5


def test_group_differences_alone_do_not_predict_change():
    # P+ neurons: positive residuals and rising activity; P- neurons: negative residuals
    # and falling activity; no relation within a group. Pooled over groups r would be ~1.
    rng = np.random.default_rng(12)
    settings = _settings(n_permutations=499, early_fraction=0.5, late_fraction=0.5)
    ev_rows, act_rows = [], []
    for a in range(4):
        for n in range(12):
            group, sign = ("P+", 1.0) if n < 6 else ("P-", -1.0)
            for d in range(4):
                change = sign * 2.0 if d >= 2 else 0.0
                act_rows.append((f"m{a}", f"day{d + 1:02d}", n, change + rng.normal(0, 0.2)))
                if d < 2:
                    ev_rows += [
                        (f"m{a}", f"day{d + 1:02d}", n, "reduction", sign * 2 + rng.normal(), group)
                        for _ in range(5)
                    ]
    events = pd.DataFrame(
        ev_rows, columns=["subject", "session", "soma_roi", "epoch", "residual_z", "group"]
    )
    activity = pd.DataFrame(act_rows, columns=["subject", "session", "roi", "mean_dff"])
    _, res = stats.run_early_change_test(events, activity, settings=settings, rng=rng)
    assert abs(res["statistic"].iloc[0]) < 0.35 and res["p_value"].iloc[0] > 0.05
    assert res["n_animals"].iloc[0] == 4 and res["n_neurons"].iloc[0] == 48


def test_network_prediction_vs_shuffle():
    rng = np.random.default_rng(9)
    settings = _settings(n_network_shuffles=49, network_window_s=(-0.5, 0.0))
    n_roi, n_t, fs = 12, 3000, 10.0
    dff = rng.normal(0, 1, (n_roi, n_t))
    frames = np.sort(rng.choice(np.arange(10, n_t), 200, replace=False))
    drive = dff[3, :][None, :]
    window = np.array([drive[0, f - 5 : f].mean() for f in frames])
    da = xr.DataArray(
        dff,
        dims=("roi", "time"),
        coords={"roi": np.arange(n_roi), "frame": ("time", np.arange(n_t))},
    )
    residual = window * 3 + rng.normal(0, 0.3, frames.size)
    ev = pd.DataFrame(
        dict(subject="m0", session="day01", soma_roi=0, frame=frames, residual_z=residual)
    )
    row = stats.compute_network_prediction(ev, da, fs_hz=fs, settings=settings, rng=rng).iloc[0]
    assert row["r_cv"] > 0.8 and row["p_value"] == pytest.approx(1 / 50)
    assert abs(row["null_mean"]) < 0.2
    # The neuron whose activity drives the residual cannot predict its own residual.
    own = stats.compute_network_prediction(
        ev.assign(soma_roi=3), da, fs_hz=fs, settings=settings, rng=rng
    )
    assert own["r_cv"].iloc[0] < 0.4
    few = stats.compute_network_prediction(ev.iloc[:5], da, fs_hz=fs, settings=settings, rng=rng)
    assert few.empty
    # A target drives the cursor: it is never a predictor.
    no_target = stats.compute_network_prediction(
        ev, da, fs_hz=fs, settings=settings, rng=rng, exclude_rois=[3]
    ).iloc[0]
    assert no_target["r_cv"] < 0.4 and no_target["n_features"] == n_roi - 1
    # The neuropil control sees what the neuropil traces carry.
    with_np = stats.compute_network_prediction(
        ev, da, fs_hz=fs, settings=settings, rng=rng, neuropil=da * 0 + rng.normal(size=da.shape)
    ).iloc[0]
    assert with_np["r_cv"] > 0.8 and abs(with_np["r_cv_neuropil"]) < 0.3
    net = pd.concat([with_np.to_frame().T.assign(subject=s) for s in ("m0", "m1", "m2", "m3")])
    cohort = stats.run_network_test(net, settings=settings, rng=rng)
    assert list(cohort["test"]) == [stats.NETWORK_TEST, stats.NETWORK_NEUROPIL_TEST]
    assert cohort["p_value"].iloc[0] == pytest.approx(1 / 16) and cohort["n_animals"].iloc[0] == 4


def test_network_null_shuffles_within_neurons():
    # Two neurons with different mean residuals; ROI 5 is active around neuron 0's events.
    # Across-event shuffles would call that "prediction"; within-neuron shuffles do not.
    rng = np.random.default_rng(11)
    settings = _settings(n_network_shuffles=99, network_window_s=(-0.5, 0.0))
    n_roi, n_t, fs = 8, 4000, 10.0
    dff = rng.normal(0, 1, (n_roi, n_t))
    frames = np.sort(rng.choice(np.arange(10, n_t), 300, replace=False))
    neuron = rng.integers(0, 2, frames.size)
    for f in frames[neuron == 0]:
        dff[5, f - 5 : f] += 3.0
    da = xr.DataArray(dff, dims=("roi", "time"), coords={"frame": ("time", np.arange(n_t))})
    ev = pd.DataFrame(
        dict(
            subject="m0",
            session="day01",
            soma_roi=neuron,
            frame=frames,
            residual_z=np.where(neuron == 0, 2.0, -2.0) + rng.normal(0, 1, frames.size),
        )
    )
    row = stats.compute_network_prediction(ev, da, fs_hz=fs, settings=settings, rng=rng).iloc[0]
    assert row["r_cv"] > 0.5  # neuron identity is predictable ...
    assert row["null_mean"] > 0.5 and row["p_value"] > 0.05  # ... and the null knows it


# --- summary -----------------------------------------------------------------------------


def test_summarize_verdicts_claims_and_errors():
    settings = _settings()
    row = dict(
        test=stats.GROUP_EPOCH_TEST,
        statistic=0.4,
        p_value=0.2,
        alternative="two-sided",
        n_animals=6,
        n_neurons=48,
        n_events=900,
        n_permutations=64,
        n_positive_animals=4,
        t_statistic=1.4,
        p_sign_flip=0.3,
        min_attainable_p=2 / 64,
    )
    text = stats.summarize(pd.DataFrame([row]), settings=settings)
    assert "no vectorized signal found" in text and "p = 0.2" in text and "n = 6 animals" in text
    assert "Can claim" in text and "Cannot claim" in text
    assert "smallest possible with 6 animals: 0.0312" in text
    reversed_sign = pd.DataFrame([{**row, "statistic": -0.4, "p_value": 0.001}])
    assert "no vectorized signal found" in stats.summarize(reversed_sign, settings=settings)
    other = {**row, "test": stats.OUTCOME_TEST, "p_value": 0.03}
    both = pd.DataFrame([{**row, "p_value": 0.001}, other])
    text = stats.summarize(both, settings=settings)
    assert "vectorized instructive signal found" in text and stats.OUTCOME_TEST in text
    assert text.count("Can claim") == 2
    with pytest.raises(ValueError, match="exactly one"):
        stats.summarize(pd.DataFrame([other]), settings=settings)


def test_summary_of_an_untestable_headline():
    row = stats.untestable_row(stats.GROUP_EPOCH_TEST, "1 animal(s)", alternative="two-sided")
    text = stats.summarize(row, settings=_settings())
    assert "could not run: 1 animal(s)" in text and "no vectorized signal found" in text


def test_cv_ridge_fits_every_column_as_alone():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 6))
    y = np.column_stack([x @ rng.normal(size=6) + rng.normal(size=80) for _ in range(3)])
    y = np.column_stack([y, np.ones(80)])  # a constant column scores 0
    folds = rng.permutation(np.arange(80) % 5)
    together = stats.prediction._cv_ridge_r(x, y, folds, 10.0)
    for k in range(3):
        pred = np.empty(80)
        for f in range(5):
            train, test = folds != f, folds == f
            xm, ym = x[train].mean(0), y[train, k].mean()
            coef = np.linalg.solve(
                (x[train] - xm).T @ (x[train] - xm) + 10.0 * np.eye(6),
                (x[train] - xm).T @ (y[train, k] - ym),
            )
            pred[test] = (x[test] - xm) @ coef + ym
        assert together[k] == pytest.approx(np.corrcoef(pred, y[:, k])[0, 1], abs=1e-12)
    assert together[3] == 0.0
