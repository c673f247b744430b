"""Simulated activity: somatic bursts and calcium, online target F, motion, the task
error and its epochs, and the bAP-coupled dendritic events carrying the planted residual.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis import bci, cloose
from analysis.simulate.geometry import plane_components
from analysis.simulate.settings import SimulateSettings
from analysis.vocabulary import NO_EPOCH, SIMULATED_NON_TARGET


def calcium_kernel(tau_rise_s: float, tau_decay_s: float, fs_hz: float) -> np.ndarray:
    """Unit-peak double-exponential transient sampled at ``fs_hz`` (6 decay constants)."""
    t = np.arange(int(np.ceil(6 * tau_decay_s * fs_hz)) + 1) / fs_hz
    k = np.exp(-t / tau_decay_s) - np.exp(-t / tau_rise_s)
    return k / k.max()


def _convolve(events: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Causal convolution of (unit, time) event magnitudes with a kernel."""
    from scipy.signal import fftconvolve

    if events.shape[0] == 0:
        return events.astype(np.float32)
    out = fftconvolve(events, kernel[None, :], axes=1)[:, : events.shape[1]]
    return np.clip(out, 0, None).astype(np.float32)


def _bursts(
    rates_hz: np.ndarray, n_frames: int, settings: SimulateSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Somatic bursts: neuron, frame, n_spikes, soma_magnitude (dF/F)."""
    p = np.clip(rates_hz / settings.fs_hz, 0, 1)
    hit = rng.random((rates_hz.size, n_frames)) < p[:, None]
    neuron, frame = np.nonzero(hit)
    n_spikes = 1 + rng.poisson(settings.mean_burst_spikes - 1, size=neuron.size)
    magnitude = settings.spike_dff * n_spikes * rng.uniform(0.8, 1.2, size=neuron.size)
    return pd.DataFrame(
        {"neuron": neuron, "frame": frame, "n_spikes": n_spikes, "soma_magnitude": magnitude}
    )


def _slow_noise(n_frames: int, timescale_frames: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-SD slow fluctuation (Gaussian-filtered white noise)."""
    x = ndimage.gaussian_filter1d(rng.normal(size=n_frames + 200), timescale_frames)[100:-100]
    return (x - x.mean()) / (x.std() + 1e-12)


def simulate_soma(
    geometry: dict[str, Any],
    rates_hz: np.ndarray,
    *,
    n_frames: int,
    settings: SimulateSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Somatic bursts, spikes and calcium dF/F (neuron, time), neuropil (plane, time)."""
    n = rates_hz.size
    bursts = _bursts(rates_hz, n_frames, settings, rng)
    spikes = np.zeros((n, n_frames), dtype=np.int16)
    events = np.zeros((n, n_frames))
    np.add.at(spikes, (bursts.neuron, bursts.frame), bursts.n_spikes.astype(np.int16))
    np.add.at(events, (bursts.neuron, bursts.frame), bursts.soma_magnitude)
    calcium = _convolve(
        events, calcium_kernel(settings.tau_rise_s, settings.tau_decay_s, settings.fs_hz)
    )
    timescale = settings.neuropil_timescale_s * settings.fs_hz
    neuropil = settings.neuropil_fluctuation * np.stack(
        [_slow_noise(n_frames, timescale, rng) for _ in range(2)]
    )
    out = {
        "bursts": bursts,
        "spikes": spikes,
        "soma_calcium": calcium,
        "neuropil_trace": neuropil.astype(np.float32),
    }
    if "puncta" in geometry:
        out["puncta_calcium"] = _puncta_calcium(len(geometry["puncta"]), n_frames, settings, rng)
    return out


def _puncta_calcium(
    n_puncta: int, n_frames: int, settings: SimulateSettings, rng: np.random.Generator
) -> np.ndarray:
    """dF/F (punctum, time) of the specks: Poisson events at ``punctum_rate_hz``, dF/F
    log-normal (log-SD 0.5) around ``punctum_dff``, a soma's decay (the real movie's specks'
    largest events last 4 frames at 7.5 Hz at half height, its somata's 6.5)."""
    punctum, frame = np.nonzero(
        rng.random((n_puncta, n_frames)) < settings.punctum_rate_hz / settings.fs_hz
    )
    events = np.zeros((n_puncta, n_frames))
    np.add.at(
        events, (punctum, frame), rng.lognormal(np.log(settings.punctum_dff), 0.5, punctum.size)
    )
    kernel = calcium_kernel(settings.tau_rise_s, settings.tau_decay_s, settings.fs_hz)
    return _convolve(events, kernel).astype(np.float32)


def silence_neurons(soma: dict[str, Any], neurons: np.ndarray) -> dict[str, Any]:
    """``simulate_soma`` output without any burst of ``neurons`` (indices); others untouched.

    A neuron's calcium comes only from its own bursts, so zeroing its rows is exact.
    """
    if not len(neurons):
        return soma
    spikes, calcium = soma["spikes"].copy(), soma["soma_calcium"].copy()
    spikes[neurons] = 0
    calcium[neurons] = 0
    bursts = soma["bursts"]
    bursts = bursts[~bursts.neuron.isin(neurons)].reset_index(drop=True)
    return {**soma, "bursts": bursts, "spikes": spikes, "soma_calcium": calcium}


def analytic_online_f(
    sgeom: dict[str, Any],
    masks: np.ndarray,
    soma: dict[str, Any],
    *,
    settings: SimulateSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Online polygon means (target, time) of the motion-free image model, in raw counts
    with the detector's noise (Gaussian: shot noise x pulse heights, read noise)."""
    static, fp, npil = plane_components(sgeom, 0)
    m = masks.reshape(masks.shape[0], -1).astype(np.float64)
    npx = m.sum(axis=1, keepdims=True)
    w_cell = m @ fp.reshape(fp.shape[0], -1).T / npx
    photons = (
        (m @ static.ravel() / npx[:, 0])[:, None]
        + w_cell @ soma["soma_calcium"]
        + (m @ npil.ravel() / npx[:, 0])[:, None] * soma["neuropil_trace"][0][None, :]
    )
    if "puncta_fp" in sgeom:  # a punctum's tail inside a target polygon lights it too
        photons += np.asarray(sgeom["puncta_fp"] @ m.T).T / npx @ soma["puncta_calcium"]
    gain = settings.photon_gain
    mean = settings.raw_offset + gain * photons
    var = gain**2 * (1 + settings.photon_gain_cv**2) * photons + settings.read_noise_sd**2
    return mean + rng.normal(size=mean.shape) * np.sqrt(np.clip(var, 0, None) / npx)


def online_target_f(
    frames: np.ndarray,
    *,
    target_masks: np.ndarray,
    reference: np.ndarray,
    max_shift_px: float = 8.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rig's online step for a chunk: integer rigid correction then polygon means.

    Parameters
    ----------
    frames : array (time, row, col)
        Raw soma-plane frames.
    target_masks : bool array (target, row, col)
    reference : array (row, col)
        Online reference image.
    max_shift_px : float
        Largest shift searched (px).

    Returns
    -------
    F : array (target, time)
    shift_row, shift_col : int arrays (time,)
        Estimated displacement of frame content relative to the reference (px).
    """
    x = frames.astype(np.float64)
    x -= x.mean(axis=(1, 2), keepdims=True)
    n_r, n_c = reference.shape
    lag_r = np.fft.fftfreq(n_r, 1 / n_r).astype(np.int64)
    lag_c = np.fft.fftfreq(n_c, 1 / n_c).astype(np.int64)
    lag_r, lag_c = lag_r[np.abs(lag_r) <= max_shift_px], lag_c[np.abs(lag_c) <= max_shift_px]
    # Plain (unwhitened) circular cross-correlation, robust at a few photons per pixel, at
    # the searched row lags only: a 2D FFT is slow when a side has a large prime factor
    # (796 = 4 x 199 on the rig). corr[a, b] = sum_r irfft(X[r + a] R*[r])[b].
    spectrum = np.fft.rfft(x, axis=2).transpose(2, 0, 1)  # (freq, time, row)
    ref = np.conj(np.fft.rfft(reference - reference.mean(), axis=1))
    shifted_ref = np.stack([np.roll(ref, a, axis=0) for a in lag_r], axis=2)  # (row, freq, lag)
    by_lag = np.matmul(spectrum, shifted_ref.transpose(1, 0, 2))  # (freq, time, row lag)
    corr = np.fft.irfft(by_lag.transpose(1, 2, 0), n=n_c, axis=2)[:, :, lag_c % n_c]
    peak = corr.reshape(corr.shape[0], -1).argmax(axis=1)
    ir, ic = np.unravel_index(peak, (len(lag_r), len(lag_c)))
    sr, sc = lag_r[ir], lag_c[ic]
    m = target_masks.reshape(target_masks.shape[0], -1).astype(np.float64)
    npx = m.sum(axis=1, keepdims=True)
    F = np.empty((m.shape[0], frames.shape[0]))
    for t in range(frames.shape[0]):
        corrected = np.roll(frames[t], (-sr[t], -sc[t]), axis=(0, 1)).astype(np.float64)
        F[:, t] = (m @ corrected.ravel()) / npx[:, 0]
    return F, sr.astype(np.int64), sc.astype(np.int64)


def simulate_motion(
    n_frames: int, *, settings: SimulateSettings, rng: np.random.Generator
) -> dict[str, Any]:
    """Rigid drift + slow wander + jitter, and smooth nonrigid warp amplitudes (px)."""
    t = np.linspace(0, 1, n_frames)
    rigid_max = settings.max_motion_px - settings.max_nonrigid_px
    rigid = []
    for _ in range(2):
        drift = rng.uniform(-0.4, 0.4) * t
        wander = 0.3 * _slow_noise(n_frames, 3 * settings.fs_hz, rng)
        jitter = 0.15 * rng.normal(size=n_frames)
        x = drift + 0.25 * wander + jitter
        x = x / max(np.abs(x).max(), 1e-9) * rng.uniform(0.6, 1.0)
        rigid.append(x * rigid_max)
    amp = [
        settings.max_nonrigid_px * np.tanh(_slow_noise(n_frames, 5 * settings.fs_hz, rng))
        for _ in range(2)
    ]
    return {
        "shift_row": rigid[0].astype(np.float32),
        "shift_col": rigid[1].astype(np.float32),
        "nonrigid_amp_row": amp[0].astype(np.float32),
        "nonrigid_amp_col": amp[1].astype(np.float32),
        "nonrigid_phase_row": float(rng.uniform(0, 2 * np.pi)),
        "nonrigid_phase_col": float(rng.uniform(0, 2 * np.pi)),
        "nonrigid_wavelength_px": settings.nonrigid_wavelength_px,
    }


def task_error(
    frames: pd.DataFrame,
    *,
    params: cloose.TaskParams,
    fs_hz: float,
    smooth_s: float,
    trend_window_s: float,
    trend_gap_s: float,
) -> pd.DataFrame:
    """Task error (grating steps from target, active frames), derivative and epochs.

    Active frames are trial frames whose angle follows the readout (not grey, not the
    outcome hold). The derivative is the centred difference of the error smoothed with
    a ``smooth_s`` box, computed within each run of active frames (``epoch``). The
    ``trend_epoch`` of frame f is the sign of the error's slope over ``trend_window_s``
    ending ``trend_gap_s`` before f (:func:`analysis.bci.causal_error_trend`).
    """
    angle = frames["angle_deg"].to_numpy(dtype=float)
    hold = np.zeros(angle.size, dtype=bool)
    for col, n in (("reward", params.reward_hold_frame - 1), ("aversive", 0)):
        for f in np.flatnonzero(frames[col].to_numpy() == 1):
            hold[max(0, f - n) : f - n + params.hold_frames] = True
    hit_start = np.flatnonzero(frames["reward"].to_numpy() == 1) - (params.reward_hold_frame - 1)
    hold[hit_start[hit_start >= 0]] = True
    active = np.isfinite(angle) & ~hold
    error = np.where(active, (params.target_angle_deg - angle) / params.step_deg, np.nan)
    deriv = np.full(angle.size, np.nan)
    width = max(1, int(round(smooth_s * fs_hz)))
    labels, n_runs = ndimage.label(active)
    for run in ndimage.find_objects(labels):
        seg = error[run[0]]
        if seg.size < 3:
            continue
        smooth = ndimage.uniform_filter1d(seg, width, mode="nearest")
        deriv[run[0]] = np.gradient(smooth) * fs_hz
    epoch = np.full(angle.size, NO_EPOCH, dtype=object)
    epoch[deriv < 0] = "reduction"
    epoch[deriv > 0] = "increase"
    trend = bci.causal_error_trend(error, fs_hz=fs_hz, window_s=trend_window_s, gap_s=trend_gap_s)
    return pd.DataFrame(
        {
            "frame": frames["frame"].to_numpy(),
            "error": error,
            "error_derivative": deriv,
            "epoch": epoch.astype(str),
            "error_trend": trend,
            "trend_epoch": bci.trend_epochs(trend).astype(str),
        }
    )


def simulate_dendrites(
    geometry: dict[str, Any],
    bursts: pd.DataFrame,
    epoch: np.ndarray,
    *,
    n_frames: int,
    settings: SimulateSettings,
    rng: np.random.Generator,
    opto: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Coincident and dendrite-only events and tuft calcium (tuft, time) dF/F.

    ``epoch`` (per frame) is the epoch that carries the planted residual: the error trend
    before each frame (``task_error``'s ``trend_epoch``). ``opto`` (per frame, 0/1; a
    cohort with conditions) removes ``inhibition_residual_removed`` of the planted
    residual of bursts on lit frames.

    Returns the event table (kind, neuron, tuft, group, frame, time_s, epoch, n_spikes,
    soma_magnitude, predicted, planted_residual, residual, dendrite_magnitude; with
    ``opto`` also ``opto`` and ``instructive_residual``, the planted residual before
    removal) and the noise-free tuft calcium.
    """
    neurons = geometry["neurons"]
    groups = neurons.group.to_numpy()[bursts.neuron.to_numpy()]
    ep = epoch[bursts.frame.to_numpy()]
    sign = np.where(groups == "P+", 1.0, np.where(groups == "P-", -1.0, 0.0))
    epoch_factor = np.where(
        ep == "reduction", 1.0, np.where(ep == "increase", settings.increase_residual_factor, 0.0)
    )
    instructive = 0.0 if settings.null else 1.0
    instructive = instructive * settings.residual_amplitude * sign * epoch_factor
    lit = opto[bursts.frame.to_numpy()] > 0 if opto is not None else False
    planted = instructive * (1 - settings.inhibition_residual_removed * lit)
    day_gain = neurons.coupling_gain.to_numpy()
    if settings.coupling_gain_drift_sd > 0:  # no draw when off: earlier realizations stay
        day_gain = day_gain * np.exp(
            rng.normal(0, settings.coupling_gain_drift_sd, size=len(neurons))
        )
    gain = day_gain[bursts.neuron.to_numpy()]
    intercept = neurons.coupling_intercept.to_numpy()[bursts.neuron.to_numpy()]
    s_ref = settings.spike_dff * settings.mean_burst_spikes
    drive = s_ref * (bursts.soma_magnitude.to_numpy() / s_ref) ** settings.coupling_exponent
    predicted = intercept + gain * drive
    noisy = predicted + planted + rng.normal(0, settings.residual_noise_sd, size=planted.size)
    magnitude = np.clip(noisy, 0.02, None)
    coincident = pd.DataFrame(
        {
            "kind": "coincident",
            "neuron": bursts.neuron.to_numpy(),
            "tuft": bursts.neuron.to_numpy(),
            "group": groups.astype(str),
            "frame": bursts.frame.to_numpy(),
            "epoch": ep.astype(str),
            "n_spikes": bursts.n_spikes.to_numpy(),
            "soma_magnitude": bursts.soma_magnitude.to_numpy(),
            "predicted": predicted,
            "planted_residual": planted,
            "residual": magnitude - predicted,
            "dendrite_magnitude": magnitude,
        }
    )
    only, frame = _dendrite_only_events(
        geometry, epoch, n_frames=n_frames, settings=settings, rng=rng
    )
    n_tufts = len(geometry["dendrites"])
    if opto is not None:
        coincident["opto"] = np.asarray(lit, dtype=np.int64)
        coincident["instructive_residual"] = instructive
        only["opto"] = (opto[frame] > 0).astype(np.int64)
        only["instructive_residual"] = np.nan
    events = pd.concat([coincident, only], ignore_index=True)
    events = events.sort_values(["frame", "kind", "tuft"], kind="stable").reset_index(drop=True)
    events.insert(5, "time_s", events.frame / settings.fs_hz)
    amp = np.zeros((n_tufts, n_frames))
    np.add.at(amp, (events.tuft.to_numpy(), events.frame.to_numpy()), events.dendrite_magnitude)
    kernel = calcium_kernel(settings.tau_rise_s, settings.tau_dendrite_decay_s, settings.fs_hz)
    return events, _convolve(amp, kernel)


def _dendrite_only_events(
    geometry: dict[str, Any],
    epoch: np.ndarray,
    *,
    n_frames: int,
    settings: SimulateSettings,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Dendritic events without a somatic burst (Poisson, ``dendrite_only_rate_hz`` per
    tuft, dF/F uniform in ``dendrite_only_dff``) and their frames."""
    neurons = geometry["neurons"]
    n_tufts = len(geometry["dendrites"])
    p = settings.dendrite_only_rate_hz / settings.fs_hz
    tuft, frame = np.nonzero(rng.random((n_tufts, n_frames)) < p)
    owner = geometry["dendrites"].neuron.to_numpy()[tuft]
    only = pd.DataFrame(
        {
            "kind": "dendrite_only",
            "neuron": owner,
            "tuft": tuft,
            "group": np.where(
                owner >= 0, neurons.group.to_numpy()[np.maximum(owner, 0)], SIMULATED_NON_TARGET
            ).astype(str),
            "frame": frame,
            "epoch": epoch[frame].astype(str),
            "n_spikes": 0,
            "soma_magnitude": 0.0,
            "predicted": np.nan,
            "planted_residual": np.nan,
            "residual": np.nan,
            "dendrite_magnitude": rng.uniform(*settings.dendrite_only_dff, size=tuft.size),
        }
    )
    return only, frame
