"""Unit tests for analysis.residuals: soma-locked responses, causal epochs, the EIV fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis import residuals


def _trace(values: np.ndarray, rois, fs: float = 10.0) -> xr.DataArray:
    values = np.atleast_2d(values)
    frame = np.arange(values.shape[1])
    return xr.DataArray(
        values,
        dims=("roi", "time"),
        coords={"roi": list(rois), "time": frame / fs, "frame": ("time", frame)},
    )


def test_window_response_known_answer():
    y = np.zeros(20)
    y[10:] = 1.0
    y[15] = np.nan
    r = residuals.window_response(y, baseline_frames=2, response_frames=3)
    assert r[10] == pytest.approx(1.0) and r[5] == pytest.approx(0.0)
    assert r[9] == pytest.approx(1.0 / 3 * 2 - 0.0)  # frames 9,10,11 minus 7,8
    assert np.isnan(r[0]) and np.isnan(r[1]) and np.isnan(r[18])  # windows leave the trace
    assert np.isnan(r[13]) and np.isnan(r[17])  # a NaN inside a window
    assert np.isfinite(r[2])


def test_quiet_noise_variance_matches_white_noise():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.1, 20000)
    onsets = np.arange(100, 20000, 400)
    y[onsets] += 5.0  # events: their frames must not count as noise
    r = residuals.window_response(y, baseline_frames=3, response_frames=7)
    var = residuals.quiet_noise_variance(r, onsets, before_frames=20, after_frames=7)
    assert var == pytest.approx(0.01 * (1 / 3 + 1 / 7), rel=0.08)
    assert np.isnan(
        residuals.quiet_noise_variance(r[:10], onsets[:0], before_frames=1, after_frames=1)
    )


def _events(rows):
    cols = ["subject", "session", "plane_role", "roi", "frame", "time_s", "amplitude"]
    return pd.DataFrame(rows, columns=cols)


def test_measure_sd_events_reads_every_somatic_event_and_classifies_it():
    fs = 10.0
    soma = np.zeros(200)
    dend = np.zeros(200)
    for onset, s_amp, d_amp in ((50, 1.0, 0.8), (100, 2.0, 0.0), (150, 0.5, 0.3)):
        soma[onset:] += s_amp * np.exp(-np.arange(200 - onset) / 7)
        dend[onset:] += d_amp * np.exp(-np.arange(200 - onset) / 4)
    dend[170:] += 0.6  # a dendrite-only event
    ev = _events(
        [("m1", "d1", "soma", 1, f, f / fs, a) for f, a in ((50, 1.0), (100, 2.0), (150, 0.5))]
        + [
            ("m1", "d1", "dendrite", 7, f, f / fs, a)
            for f, a in ((51, 0.8), (149, 0.3), (170, 0.6))
        ]
    )
    pairs = pd.DataFrame(dict(subject="m1", soma_roi=[1], dendrite_roi=[7], paired=[True]))
    targets = pd.DataFrame(dict(subject="m1", session="d1", target_id=[3], group=["P-"], roi=[1]))
    key = ("m1", "d1")
    out = residuals.measure_sd_events(
        ev,
        pairs,
        targets,
        {key: _trace(soma, [1])},
        {key: _trace(dend, [7])},
        {key: fs},
        coincidence_window_s=0.2,
        response_window_s=0.5,
        response_baseline_s=0.2,
        quiet_s=2.0,
    )
    assert list(out["kind"]) == ["coupled", "soma_only", "coupled", "dendrite_only"]
    assert list(out["frame"]) == [50, 100, 150, 170]
    # the undetected dendritic response of the soma-only event is still measured (here 0)
    expected = residuals.window_response(dend, baseline_frames=2, response_frames=5)
    np.testing.assert_allclose(out["dendrite_amplitude"], expected[[50, 100, 150, 170]])
    assert out["dendrite_amplitude"].iloc[1] < 0.05
    assert (out["group"] == "P-").all() and (out["target_id"] == 3).all()
    assert np.isnan(out["soma_event_amplitude"].iloc[3])


def _epoch_table(error: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        dict(
            subject="m1",
            session="d1",
            frame=np.arange(error.size),
            error=error,
            error_derivative=np.gradient(error),
            epoch="none",
        )
    )


def test_an_event_cannot_set_its_own_epoch():
    # The error is flat, then falls right after the event (the event moved the cursor).
    fs = 10.0
    error = np.full(100, 3.0)
    error[52:] = 2.0
    table = _epoch_table(error)
    table["epoch"] = np.where(np.abs(table["error_derivative"]) > 0, "reduction", "none")
    sd = pd.DataFrame(
        dict(subject="m1", session="d1", soma_roi=1, kind="coupled", frame=[51], time_s=[5.1])
    )
    kwargs = dict(window_s=1.0, gap_s=0.3, own_event_exclusion_s=2.0)
    at = residuals.assign_epochs(sd, table, {("m1", "d1"): fs}, reference="at_onset", **kwargs)
    pre = residuals.assign_epochs(sd, table, {("m1", "d1"): fs}, reference="pre_onset", **kwargs)
    assert at["epoch"].iloc[0] == "reduction"
    assert pre["epoch"].iloc[0] == "none" and pre["error_trend"].iloc[0] == 0.0
    # A fall that ended before the gap is the event's epoch.
    error2 = np.full(100, 3.0)
    error2[45:] = 2.0
    pre2 = residuals.assign_epochs(
        sd, _epoch_table(error2), {("m1", "d1"): fs}, reference="pre_onset", **kwargs
    )
    assert pre2["epoch"].iloc[0] == "reduction" and pre2["error_trend"].iloc[0] < 0


def test_events_preceded_by_their_own_event_get_no_epoch():
    fs = 10.0
    error = np.linspace(5, 0, 300)  # falling throughout
    sd = pd.DataFrame(
        dict(
            subject="m1",
            session="d1",
            soma_roi=[1, 1, 1, 2],
            kind=["coupled"] * 4,
            frame=[100, 115, 200, 110],
            time_s=[10.0, 11.5, 20.0, 11.0],
        )
    )
    out = residuals.assign_epochs(
        sd,
        _epoch_table(error),
        {("m1", "d1"): fs},
        reference="pre_onset",
        window_s=1.0,
        gap_s=0.3,
        own_event_exclusion_s=2.0,
    )
    assert list(out["preceded"]) == [False, True, False, False]  # roi 2's event is another soma's
    assert list(out["epoch"]) == ["reduction", "none", "reduction", "reduction"]


def _fit_table(x_true, y, noise_var, rng, roi=0):
    x = x_true + rng.normal(0, np.sqrt(noise_var), x_true.size)
    return pd.DataFrame(
        dict(
            subject="m1",
            soma_roi=roi,
            dendrite_roi=10 + roi,
            kind="coupled",
            soma_amplitude=x,
            dendrite_amplitude=y,
            soma_noise_var=noise_var,
        )
    )


def test_errors_in_variables_removes_regression_dilution():
    rng = np.random.default_rng(4)
    s = rng.gamma(4, 0.2, 4000)
    y = 0.05 + 0.8 * s + rng.normal(0, 0.05, s.size)
    table = _fit_table(s, y, 0.04, rng)  # reliability ~ 0.16 / 0.2
    kw = dict(model="linear", min_events=5, min_reliability=0.3)
    eiv_events, eiv = residuals.fit_sd_residuals(table, method="errors_in_variables", **kw)
    ols_events, ols = residuals.fit_sd_residuals(table, method="ols", **kw)
    assert eiv["slope"].iloc[0] == pytest.approx(0.8, abs=0.04)
    assert ols["slope"].iloc[0] < 0.7  # attenuated by the reliability
    assert eiv["reliability"].iloc[0] == pytest.approx(0.8, abs=0.05)
    # residual against the TRUE size: flat with EIV, rising with OLS
    flat = np.polyfit(s, eiv_events["residual_z"], 1)[0]
    rising = np.polyfit(s, ols_events["residual_z"], 1)[0]
    assert abs(flat) < 0.15 < rising
    binned = residuals.residual_by_true_size(eiv_events, s, n_bins=5)
    assert len(binned) == 5 and binned["mean_residual_z"].abs().max() < 0.15


def test_auto_model_takes_a_monotone_quadratic_only_where_the_data_prefer_it():
    rng = np.random.default_rng(5)
    s = rng.gamma(4, 0.2, 3000)
    supra = 0.2 + 0.3 * s + 0.5 * s**2 + rng.normal(0, 0.05, s.size)
    linear = 0.2 + 0.8 * s + rng.normal(0, 0.05, s.size)
    table = pd.concat([_fit_table(s, supra, 0.01, rng, 0), _fit_table(s, linear, 0.01, rng, 1)])
    events, fits = residuals.fit_sd_residuals(
        table, method="errors_in_variables", model="auto", min_events=5, min_reliability=0.3
    )
    by_roi = fits.set_index("soma_roi")
    assert by_roi.loc[0, "model"] == "quadratic" and by_roi.loc[1, "model"] == "linear"
    assert by_roi.loc[0, "curvature"] == pytest.approx(0.5, abs=0.08)
    quad = events[events["soma_roi"] == 0]
    assert abs(np.polyfit(s, quad["residual_z"], 2)[0]) < 0.2  # no U left against true size


def test_fit_skips_pairs_it_cannot_fit_honestly():
    rng = np.random.default_rng(6)
    s = rng.gamma(4, 0.2, 200)
    y = 0.8 * s
    too_noisy = _fit_table(s, y, 1.0, rng, 0)
    too_few = _fit_table(s[:3], y[:3], 0.01, rng, 1)
    only = too_few.assign(soma_roi=2, kind="dendrite_only")
    events, fits = residuals.fit_sd_residuals(
        pd.concat([too_noisy, too_few, only]),
        method="errors_in_variables",
        model="auto",
        min_events=5,
        min_reliability=0.3,
    )
    assert fits.empty and events.empty
    with pytest.raises(ValueError, match="method must be one of"):
        residuals.fit_sd_residuals(
            too_noisy, method="deming", model="linear", min_events=5, min_reliability=0.3
        )
