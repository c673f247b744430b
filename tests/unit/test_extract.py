"""Known-answer tests for analysis.extract (synthetic movies and traces)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import xarray as xr
from scipy import signal

from analysis.extract import (
    ExtractSettings,
    compute_dff,
    compute_neuropil_masks,
    deconvolve,
    detect_events,
    extract_traces,
    native_step,
)
from analysis.masks import from_dense, to_dense
from analysis.settings import ConfigError

FS_HZ = 30.0


def _masks(n_rows: int = 48, n_cols: int = 48) -> xr.DataArray:
    masks = np.zeros((2, n_rows, n_cols), dtype=np.float32)
    masks[0, 10:16, 10:16] = 1.0
    masks[1, 30:36, 28:34] = 0.5
    masks[1, 32:34, 30:32] = 1.0  # unequal weights inside one ROI
    return xr.DataArray(masks, dims=("roi", "row", "col"), coords={"roi": [5, 9]})


def _traces(values: np.ndarray, fs_hz: float = FS_HZ) -> xr.DataArray:
    values = np.atleast_2d(values).astype(np.float32)
    n_roi, n_time = values.shape
    return xr.DataArray(
        values,
        dims=("roi", "time"),
        coords={
            "roi": np.arange(n_roi),
            "time": np.arange(n_time) / fs_hz,
            "frame": ("time", np.arange(n_time)),
        },
    )


def _spike_trace(
    rng: np.random.Generator, n_time: int, *, tau_s: float, noise_sd: float, spacing: int = 150
):
    """Isolated spikes (every ``spacing`` frames, jittered) through an exponential kernel."""
    base = np.arange(100, n_time - 100, spacing)
    frames = base + rng.integers(-20, 20, size=base.size)
    amps = rng.uniform(0.3, 1.0, size=frames.size)
    spikes = np.zeros(n_time)
    spikes[frames] = amps
    g = np.exp(-1.0 / (tau_s * FS_HZ))
    calcium = signal.lfilter([1.0], [1.0, -g], spikes)
    return calcium + rng.normal(0, noise_sd, n_time), spikes, frames, amps


class _CountingMovie:
    """Array-like movie that records how many frames each read asks for."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self.shape = data.shape
        self.ndim = data.ndim
        self.reads: list[int] = []

    def __getitem__(self, key):
        out = self._data[key]
        self.reads.append(out.shape[0])
        return out


def _contaminated_movie(rng: np.random.Generator, n_time: int = 300):
    """Pixels in ROI k: s_k(t) + 0.7 * N(t); everywhere else: N(t)."""
    masks = _masks()
    signals = rng.uniform(50, 150, size=(2, n_time))
    neuropil = 100 + 20 * np.sin(np.arange(n_time) / 10)
    movie = np.broadcast_to(neuropil[:, None, None], (n_time, 48, 48)).astype(np.float32)
    movie = movie.copy()
    for k in range(2):
        movie[:, masks.values[k] > 0] = (signals[k] + 0.7 * neuropil)[:, None]
    return movie, masks, signals, neuropil


# --- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_bad_values():
    ExtractSettings()
    with pytest.raises(ConfigError, match="neuropil_coeficient"):
        ExtractSettings.from_mapping({"neuropil_coeficient": 0.7})
    with pytest.raises(ValueError, match="neuropil_outer_radius_px"):
        ExtractSettings(neuropil_inner_radius_px=5.0, neuropil_outer_radius_px=4.0)
    with pytest.raises(ValueError, match="baseline_percentile"):
        ExtractSettings(baseline_percentile=120.0)
    with pytest.raises(ConfigError, match="deconvolution_method"):
        ExtractSettings.from_mapping({"deconvolution_method": "mlspike"})


# --- extract_traces ---------------------------------------------------------------------


def test_extract_recovers_signal_and_neuropil_streaming():
    rng = np.random.default_rng(0)
    movie, masks, signals, neuropil = _contaminated_movie(rng)
    counting = _CountingMovie(movie)
    settings = ExtractSettings(neuropil_coefficient=0.7)
    ds = extract_traces(
        counting, from_dense(masks), fs_hz=FS_HZ, settings=settings, batch_frames=64
    )
    assert max(counting.reads) <= 64  # streamed, never the whole movie
    assert ds.F.dims == ("roi", "time") and ds.F.dtype == np.float32
    assert ds.roi.values.tolist() == [5, 9]
    np.testing.assert_array_equal(ds.frame.values, np.arange(movie.shape[0]))
    np.testing.assert_allclose(ds.time.values, np.arange(movie.shape[0]) / FS_HZ)
    np.testing.assert_allclose(
        ds.Fneu.values, np.broadcast_to(neuropil, (2, neuropil.size)), rtol=1e-5
    )
    out = compute_dff(ds, fs_hz=FS_HZ, settings=settings)
    np.testing.assert_allclose(out.Fcorr.values, signals, rtol=1e-4)
    # batch size does not change the result
    again = extract_traces(movie, from_dense(masks), fs_hz=FS_HZ, settings=settings, batch_frames=7)
    np.testing.assert_allclose(again.F.values, ds.F.values, rtol=1e-6)


def test_weighted_mean_uses_mask_weights():
    masks = _masks()
    movie = np.zeros((3, 48, 48), dtype=np.float32)
    movie[:, 30:36, 28:34] = 10.0
    movie[:, 32:34, 30:32] = 40.0  # the weight-1 core
    ds = extract_traces(movie, from_dense(masks), fs_hz=FS_HZ, settings=ExtractSettings())
    w = masks.values[1]
    expected = (w * movie[0]).sum() / w.sum()
    np.testing.assert_allclose(ds.F.values[1], expected, rtol=1e-6)


def test_neuropil_annulus_excludes_all_rois_and_gap():
    masks = _masks()
    settings = ExtractSettings(neuropil_inner_radius_px=2.0, neuropil_outer_radius_px=8.0)
    ring = to_dense(compute_neuropil_masks(from_dense(masks), settings=settings)).values > 0
    any_roi = (masks.values > 0).any(axis=0)
    assert not (ring & any_roi).any()
    # the 2-px gap: pixels adjacent to ROI 0 are not neuropil, pixels 4 px away are
    assert not ring[0, 9, 12] and not ring[0, 8, 12]
    assert ring[0, 5, 12]
    assert not ring[0, 1, 12]  # beyond the outer radius


def test_neuropil_radius_grows_to_min_pixels():
    settings = ExtractSettings(
        neuropil_inner_radius_px=1.0, neuropil_outer_radius_px=2.0, min_neuropil_pixels=300
    )
    ring = compute_neuropil_masks(from_dense(_masks()), settings=settings)
    assert (to_dense(ring).values.sum(axis=(1, 2)) >= 300).all()
    assert (ring.neuropil_outer_radius_px.values > 2.0).all()


def test_extract_bad_inputs():
    masks = _masks()
    settings = ExtractSettings()
    with pytest.raises(ValueError, match="movie's coordinates"):
        extract_traces(np.zeros((5, 40, 48)), from_dense(masks), fs_hz=FS_HZ, settings=settings)
    with pytest.raises(ValueError, match="time, row, col"):
        extract_traces(np.zeros((48, 48)), from_dense(masks), fs_hz=FS_HZ, settings=settings)
    bad = from_dense(masks)
    bad = bad.assign(pixel_weight=-bad["pixel_weight"])
    with pytest.raises(ValueError, match="weights > 0"):
        extract_traces(np.zeros((5, 48, 48)), bad, fs_hz=FS_HZ, settings=settings)
    full = xr.DataArray(np.ones((1, 8, 8), np.float32), dims=("roi", "row", "col"))
    with pytest.raises(ValueError, match="cover the FOV"):
        compute_neuropil_masks(from_dense(full.assign_coords(roi=[0])), settings=settings)
    with pytest.raises(ValueError, match="sparse mask set"):
        extract_traces(np.zeros((5, 48, 48)), masks.values, fs_hz=FS_HZ, settings=settings)


def test_roi_outside_field_of_view_gets_nan_traces():
    # a tracked neuron can fall outside one day's field of view: its mask there is empty
    masks = _masks()
    masks[1] = 0.0
    movie = np.random.default_rng(1).normal(100, 1, (30, 48, 48)).astype(np.float32)
    traces = extract_traces(movie, from_dense(masks), fs_hz=FS_HZ, settings=ExtractSettings())
    assert np.isnan(traces["F"].sel(roi=9)).all() and np.isnan(traces["Fneu"].sel(roi=9)).all()
    assert np.isfinite(traces["F"].drop_sel(roi=9)).all()
    assert int(traces["n_pixels"].sel(roi=9)) == 0


# --- compute_dff ------------------------------------------------------------------------


def _ds(F: np.ndarray, fneu: np.ndarray) -> xr.Dataset:
    da = _traces(F)
    return xr.Dataset({"F": da, "Fneu": da.copy(data=np.atleast_2d(fneu).astype(np.float32))})


def test_dff_known_answer_with_drift():
    rng = np.random.default_rng(1)
    n_time = 18000  # 10 min at 30 Hz
    transients, *_ = _spike_trace(rng, n_time, tau_s=0.7, noise_sd=0.0, spacing=450)
    drift = 1 + 0.1 * np.sin(2 * np.pi * np.arange(n_time) / n_time)  # slow drift
    fneu = 20.0 * drift
    F = 86.0 * drift * (1 + transients) + 0.7 * fneu  # raw F baseline: 86 + 0.7 * 20 = 100
    settings = ExtractSettings(neuropil_coefficient=0.7, baseline_window_s=30.0)
    out = compute_dff(_ds(F, fneu), fs_hz=FS_HZ, settings=settings)
    np.testing.assert_allclose(out.baseline.values[0], 86.0 * drift, rtol=0.02)
    np.testing.assert_allclose(out.baseline_F.values[0], 100.0 * drift, rtol=0.02)
    np.testing.assert_allclose(out.dff.values[0], transients, rtol=0.03, atol=0.02)
    # relative to the raw-F baseline instead: transients * 86 / 100
    raw = compute_dff(
        _ds(F, fneu), fs_hz=FS_HZ, settings=dataclasses.replace(settings, dff_denominator="F")
    )
    np.testing.assert_allclose(raw.dff.values[0], 0.86 * transients, rtol=0.03, atol=0.02)


def test_dff_near_zero_corrected_baseline(caplog):
    rng = np.random.default_rng(2)
    n_time = 3000
    fneu = np.full(n_time, 100.0)
    F = 100.0 + rng.normal(0, 1.0, n_time)  # ROI is all neuropil: Fcorr ~ 0 with c = 1
    settings = ExtractSettings(neuropil_coefficient=1.0, min_baseline_fraction=0.1)
    with caplog.at_level(logging.WARNING, logger="analysis.extract"):
        out = compute_dff(_ds(F, fneu), fs_hz=FS_HZ, settings=settings)
    assert "floored" in caplog.text
    # denominator floored at 0.1 x 100: dF/F = noise (SD 1) / 10
    assert np.isfinite(out.dff).all()
    assert 0.05 < float(out.dff.std()) < 0.15
    raw = compute_dff(
        _ds(F, fneu), fs_hz=FS_HZ, settings=dataclasses.replace(settings, dff_denominator="F")
    )
    assert float(np.abs(raw.dff).max()) < 0.1


def test_dff_is_nan_where_raw_baseline_is_not_positive(caplog):
    F = np.stack([np.full(300, -5.0), np.full(300, 100.0)])
    out = compute_dff(_ds(F, np.zeros((2, 300))), fs_hz=FS_HZ, settings=ExtractSettings())
    assert np.isnan(out["dff"].values[0]).all()
    assert np.isfinite(out["dff"].values[1]).all()
    assert "raw-F baseline <= 0 for ROIs [0]" in caplog.text


def test_dff_missing_variable():
    with pytest.raises(ValueError, match="Fneu"):
        compute_dff(
            xr.Dataset({"F": _traces(np.ones(10))}), fs_hz=FS_HZ, settings=ExtractSettings()
        )


# --- deconvolution and events -----------------------------------------------------------


def test_deconvolve_ar1_recovers_spikes():
    rng = np.random.default_rng(3)
    y, spikes, _, _ = _spike_trace(rng, 6000, tau_s=0.7, noise_sd=0.05)
    ar1 = ExtractSettings(tau_decay_s=0.7, deconvolution_method="oasis_ar1")
    out = deconvolve(_traces(y), fs_hz=FS_HZ, settings=ar1)
    assert out.spikes.dims == ("roi", "time")
    assert np.corrcoef(out.spikes.values[0], spikes)[0, 1] > 0.9
    assert np.corrcoef(out.denoised.values[0], y)[0, 1] > 0.95
    est = deconvolve(
        _traces(y),
        fs_hz=FS_HZ,
        settings=ExtractSettings(estimate_tau=True, deconvolution_method="oasis_ar1"),
    )
    # OASIS's autocovariance estimate of tau is rough on sparse spiking: only sanity here.
    assert 0.1 < float(est.fitted_tau_decay_s[0]) < 2.0
    assert np.corrcoef(est.spikes.values[0], spikes)[0, 1] > 0.7


def test_deconvolve_ar2_recovers_spikes_with_rise():
    rng = np.random.default_rng(9)
    n_time = 6000
    spikes = np.zeros(n_time)
    frames = np.arange(100, n_time - 100, 150) + rng.integers(-20, 20, size=39)
    spikes[frames] = rng.uniform(0.3, 1.0, size=frames.size)
    d, r = np.exp(-1 / (0.7 * FS_HZ)), np.exp(-1 / (0.07 * FS_HZ))
    calcium = signal.lfilter([1.0], [1.0, -(d + r), d * r], spikes)  # AR(2): rise and decay
    y = calcium + rng.normal(0, 0.02, n_time)
    settings = ExtractSettings(deconvolution_method="oasis_ar2", tau_rise_s=0.07)
    out = deconvolve(_traces(y), fs_hz=FS_HZ, settings=settings)
    assert np.corrcoef(out.spikes.values[0], spikes)[0, 1] > 0.85
    assert abs(float(out.fitted_tau_decay_s[0]) - 0.7) < 1e-3
    # A slow drift (left when the dF/F baseline lags) is removed before OASIS and
    # restored in the denoised trace.
    drift = 0.3 * np.sin(np.arange(n_time) / 300.0)
    out = deconvolve(_traces(y + drift), fs_hz=FS_HZ, settings=settings)
    assert np.corrcoef(out.spikes.values[0], spikes)[0, 1] > 0.85
    # (the 60 s maximin only roughly follows a 2-minute sine; OASIS's fit takes the rest)
    assert np.corrcoef(out.denoised.values[0], calcium + drift)[0, 1] > 0.9


def test_resampled_trace_deconvolved_at_its_native_rate():
    # a 10 Hz recording interpolated to 100 Hz (as public spike-inference benchmarks are)
    rng = np.random.default_rng(5)
    n_native, step = 3000, 10
    spikes = rng.poisson(0.05, n_native).astype(float)
    calcium = signal.lfilter([1.0], [1.0, -np.exp(-1 / (0.7 * 10.0))], spikes)
    y = calcium + rng.normal(0, 0.1, n_native)
    upsampled = signal.resample_poly(y, step, 1)
    assert native_step(y) == 1
    assert native_step(rng.normal(size=30000)) == 1
    assert abs(native_step(upsampled) - step) <= 1
    settings = ExtractSettings(deconvolution_method="oasis_ar1")
    out = deconvolve(_traces(upsampled, 100.0), fs_hz=100.0, settings=settings)
    # spikes in bins of two native frames; at 100 Hz OASIS reads the empty upper band as
    # no noise and fits every wiggle (r 0.43 here)
    binned = out.spikes.values[0].reshape(-1, 2 * step).sum(axis=1)
    assert np.corrcoef(binned, spikes.reshape(-1, 2).sum(axis=1))[0, 1] > 0.8
    assert np.corrcoef(out.denoised.values[0], np.repeat(calcium, step))[0, 1] > 0.9


def test_spike_smoothing_keeps_the_sum():
    rng = np.random.default_rng(8)
    y, _, _, _ = _spike_trace(rng, 3000, tau_s=0.7, noise_sd=0.02)
    sharp = deconvolve(_traces(y), fs_hz=FS_HZ, settings=ExtractSettings(spike_smooth_s=0.0))
    smooth = deconvolve(_traces(y), fs_hz=FS_HZ, settings=ExtractSettings(spike_smooth_s=0.1))
    s0, s1 = sharp.spikes.values[0], smooth.spikes.values[0]
    assert (s1 > 0).sum() > 2 * (s0 > 0).sum()
    np.testing.assert_allclose(s1.sum(), s0.sum(), rtol=1e-4)
    with pytest.raises(ValueError, match="spike_smooth_s"):
        ExtractSettings(spike_smooth_s=-0.01)


def test_events_at_known_frames_and_amplitudes():
    rng = np.random.default_rng(4)
    y, _, frames, amps = _spike_trace(rng, 6000, tau_s=0.7, noise_sd=0.02)
    events = detect_events(_traces(y), fs_hz=FS_HZ, settings=ExtractSettings())
    assert list(events.columns[:5]) == ["roi", "frame", "peak_frame", "time_s", "amplitude"]
    assert len(events) == frames.size
    assert np.abs(events.frame.values - frames).max() <= 1
    assert np.all((events.peak_frame.values >= frames) & (events.peak_frame.values - frames <= 3))
    np.testing.assert_allclose(events.time_s.values, events.frame.values / FS_HZ)
    ratio = events.amplitude.values / amps
    assert np.all(np.abs(ratio - 1) < 0.15) and abs(ratio.mean() - 1) < 0.05


def test_false_event_rate_on_noise_is_low():
    noise = np.random.default_rng(8).normal(0, 0.05, size=(10, 6000))  # 10 x 200 s
    events = detect_events(_traces(noise), fs_hz=FS_HZ, settings=ExtractSettings())
    assert len(events) <= 5


def test_event_on_decay_amplitude_is_increment():
    n_time = 600
    spikes = np.zeros(n_time)
    spikes[[100, 130]] = [1.0, 0.5]  # second event rides the first one's decay
    g = np.exp(-1.0 / (0.7 * FS_HZ))
    y = signal.lfilter([1.0], [1.0, -g], spikes)
    y = y + np.random.default_rng(5).normal(0, 0.01, n_time)
    events = detect_events(_traces(y), fs_hz=FS_HZ, settings=ExtractSettings())
    assert events.frame.tolist() == [100, 130]
    # The 3-frame median costs one frame of decay at each peak (~5 %).
    np.testing.assert_allclose(events.amplitude.values, [1.0, 0.5], rtol=0.12)


def test_silent_neuron_has_finite_dff_and_no_events():
    rng = np.random.default_rng(6)
    n_time = 9000
    F = 200.0 + rng.normal(0, 2.0, n_time)
    fneu = 50.0 + rng.normal(0, 1.0, n_time)
    out = compute_dff(_ds(F, fneu), fs_hz=FS_HZ, settings=ExtractSettings())
    assert np.isfinite(out.dff).all()
    assert abs(float(out.dff.median())) < 0.02
    events = detect_events(out.dff, fs_hz=FS_HZ, settings=ExtractSettings())
    assert events.empty
    spikes = deconvolve(out.dff, fs_hz=FS_HZ, settings=ExtractSettings()).spikes
    assert np.isfinite(spikes).all() and float(spikes.sum()) < 1.0


def test_nan_frames_propagate_and_are_skipped():
    rng = np.random.default_rng(7)
    movie, masks, _, neuropil = _contaminated_movie(rng, n_time=3000)
    y, _, frames, _ = _spike_trace(rng, 3000, tau_s=0.7, noise_sd=0.02)
    movie[:, masks.values[0] > 0] = (100 * (1 + y) + 0.7 * neuropil)[:, None]
    bad = np.array([0, 1, 500, 501, 502, 2999])
    movie[bad] = np.nan  # dropped frames
    settings = ExtractSettings(baseline_window_s=20.0)
    ds = compute_dff(
        extract_traces(movie, from_dense(masks), fs_hz=FS_HZ, settings=settings),
        fs_hz=FS_HZ,
        settings=settings,
    )
    for name in ("F", "Fneu", "Fcorr", "baseline", "dff"):
        nan_frames = np.flatnonzero(np.isnan(ds[name].values).any(axis=0))
        np.testing.assert_array_equal(nan_frames, bad, err_msg=name)
    dec = deconvolve(ds.dff, fs_hz=FS_HZ, settings=settings)
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(dec.spikes.values[0])), bad)
    events = detect_events(ds.dff.sel(roi=[5]), fs_hz=FS_HZ, settings=settings)
    assert not np.isin(events.peak_frame, bad).any()
    assert np.isin(frames, events.frame.values + np.arange(-1, 2)[:, None]).mean() > 0.9


def test_trace_functions_reject_bad_input():
    settings = ExtractSettings()
    with pytest.raises(ValueError, match="dims"):
        deconvolve(xr.DataArray(np.zeros(5), dims=("time",)), fs_hz=FS_HZ, settings=settings)
    no_frame = _traces(np.zeros((1, 10))).drop_vars("frame")
    with pytest.raises(ValueError, match="'frame' coordinate"):
        detect_events(no_frame, fs_hz=FS_HZ, settings=settings)
    with pytest.raises(ValueError, match="fs_hz"):
        detect_events(_traces(np.zeros((1, 10))), fs_hz=0.0, settings=settings)


def test_extract_logs_progress(caplog):
    movie, masks, _, _ = _contaminated_movie(np.random.default_rng(1))
    with caplog.at_level(logging.INFO, logger="analysis.extract"):
        extract_traces(
            movie, from_dense(masks), fs_hz=FS_HZ, settings=ExtractSettings(), batch_frames=64
        )
    n = movie.shape[0]
    assert f"extraction: {n}/{n} frames (100%)" in caplog.text
    assert "frames/s" in caplog.text
