"""Imaging edge cases through the real stages, checked against the simulator's truth.

One simulated subject, three days, each day carrying one case (docs/imaging_edge_cases.md):

- day01: one frame with a motion spike of 3x ``max_motion_px`` (beyond register's
  search range on this field of view);
- day02: every photon rate 20% lower (a dimmer day);
- day03: one BCI target neuron silent all day.

The stages are chained in memory as ``workflow/scripts/*.py`` do (register ->
align_days -> segment -> track with the targets protected -> map_targets -> extract with
bad frames blanked -> pair).
"""

import logging

import imaging_chain
import numpy as np
import pandas as pd
import pytest

from analysis import simulate, validate
from analysis.align_days import to_reference
from analysis.dims import SESSION
from analysis.register import RegisterSettings, compute_raw_to_registered_offset, register_movie
from analysis.track import (
    TrackSettings,
    map_targets,
    masks_to_session,
    rasterize_targets,
    shift_targets,
    track_rois,
)

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

SEED = 3
SPIKE_DAY, SPIKE_FRAME, SPIKE_PX = 0, 300, 12.0
DIM_DAY, DIM_FACTOR = 1, 0.8
SILENT_DAY, SILENT_TARGET = 2, 0
SIM = {
    "n_days": 3,
    "n_frames": 500,
    "n_rows": 96,
    "n_cols": 96,
    "n_neurons": 20,
    "n_distractor_dendrites": 4,
    "burst_rate_hz": 0.4,
    "baseline_frames": 6000,
    "soma_radius_px": 4.0,
    "max_motion_px": 4.0,
    "max_day_shift_px": 8.0,
    "max_trial_frames": 60,
    "calibration_trial_frames": 60,
    # the realization these imaging thresholds were measured on (simulate.PLANTED_EPOCH_COLUMN)
    "planted_epoch": "centred",
    "motion_spikes": ((SPIKE_DAY, SPIKE_FRAME, SPIKE_PX, 0.0),),
    "day_brightness": tuple(DIM_FACTOR if d == DIM_DAY else 1.0 for d in range(3)),
    "silent_targets": ((SILENT_DAY, SILENT_TARGET),),
}


def run_pipeline():
    """Simulate the subject and run every imaging stage; return a dict of results."""
    settings = simulate.settings_for("sample", **SIM)
    fs_hz, shape = settings.fs_hz, (settings.n_rows, settings.n_cols)
    result = simulate.simulate_subject(settings, subject="m01", rng=np.random.default_rng(SEED))
    days = {d["session"]: d for d in result["days"]}
    sessions = list(days)
    out = {"settings": settings, "result": result, "days": days, "sessions": sessions}

    movies = {
        (s, plane): np.concatenate(list(simulate.render_plane(day, plane=plane, settings=settings)))
        for s, day in days.items()
        for plane in (0, 1)
    }
    reg, registered = imaging_chain.register_movies(movies, fs_hz=fs_hz)
    out["reg"] = reg
    transforms = {
        plane: imaging_chain.align_mean_images([reg[(s, plane)] for s in sessions], sessions)
        for plane in (0, 1)
    }
    out["transforms"] = transforms

    # control: the dim day rendered at full brightness (same activity, motion, seed)
    dim = sessions[DIM_DAY]
    control = dict(days[dim], sgeom=simulate.session_geometry(
        result["geometry"], days[dim]["transform"], settings=settings
    ))  # fmt: skip
    raw = np.concatenate(list(simulate.render_plane(control, plane=0, settings=settings)))
    raw = raw.astype(np.int16)
    out["control_reg"] = register_movie(
        raw, np.empty_like(raw), fs_hz=fs_hz, settings=RegisterSettings()
    )
    means = [out["control_reg"] if s == dim else reg[(s, 0)] for s in sessions]
    out["control_transforms"] = imaging_chain.align_mean_images(means, sessions)
    rois = imaging_chain.segment_movies(registered, reg, fs_hz=fs_hz)
    out["rois"] = rois

    # as workflow/scripts/track.py: target polygons (registered, reference coords) protected
    track_settings = TrackSettings(n_shuffles=200)
    offsets = {
        s: compute_raw_to_registered_offset(reg[(s, 0)], bci_frames=days[s]["bci"])
        for s in sessions
    }
    targets = {s: shift_targets(days[s]["targets"], offsets[s]) for s in sessions}
    protect = np.concatenate(
        [
            np.asarray(
                to_reference(
                    rasterize_targets(targets[s], shape=shape).astype(np.float32),
                    transforms[0].sel({SESSION: s}),
                )
            )
            >= 0.5
            for s in sessions
        ]
    )
    tracked, table, session_masks = {}, {}, {}
    for plane in (0, 1):
        tracked[plane], table[plane] = track_rois(
            {s: rois[(s, plane)] for s in sessions},
            transforms[plane],
            settings=track_settings,
            protect=protect if plane == 0 else None,
        )
        for s in sessions:
            transform = transforms[plane].sel({SESSION: s})
            session_masks[(s, plane)] = masks_to_session(tracked[plane], transform)
    out["tracked"], out["track_table"], out["session_masks"] = tracked, table, session_masks
    out["targets"] = {
        s: map_targets(targets[s], session_masks[(s, 0)], shape=shape, settings=track_settings)
        for s in sessions
    }

    traces, events = imaging_chain.extract_movies(registered, session_masks, reg, fs_hz=fs_hz)
    out["traces"], out["events"] = traces, events
    out["pairs"] = imaging_chain.pair_over_sessions(traces, sessions, track_settings)
    return out


@pytest.fixture(scope="module")
def run():
    return run_pipeline()


@pytest.fixture(scope="module")
def shifts(run):
    """compare_shifts per (session, plane), bad frames left out."""
    shape = (run["settings"].n_rows, run["settings"].n_cols)
    out = {}
    for (s, plane), r in run["reg"].items():
        true_row, true_col = imaging_chain.true_mean_shift(run["days"][s]["motion"], shape)
        out[(s, plane)] = validate.compare_shifts(
            r["shift_row"].values,
            r["shift_col"].values,
            true_row,
            true_col,
            exclude=r["bad_frame"].values,
        )
    return out


@pytest.fixture(scope="module")
def hits(run, shifts):
    """Per session: tracked soma ROIs matched to true neurons (compare_rois hits)."""
    out = {}
    for s in run["sessions"]:
        offset = (shifts[(s, 0)]["offset_row_px"], shifts[(s, 0)]["offset_col_px"])
        matches, _ = validate.compare_rois(
            run["session_masks"][(s, 0)],
            run["days"][s]["sgeom"]["soma_mask"],
            registration_offset_px=offset,
        )
        out[s] = matches[matches["hit"]]
    return out


def _event_recall(events, hits, bursts, *, min_magnitude=0.5, tolerance=3):
    """Fraction of true bursts (>= min_magnitude dF/F) of matched neurons with an event
    onset within ``tolerance`` frames."""
    found = []
    for roi, unit in zip(hits["detected_roi"], hits["true_roi"], strict=True):
        onsets = events.loc[events["roi"] == roi, "frame"].to_numpy()
        true = bursts[(bursts["neuron"] == unit) & (bursts["soma_magnitude"] >= min_magnitude)]
        found += [bool(np.any(np.abs(onsets - f) <= tolerance)) for f in true["frame"]]
    return float(np.mean(found))


def _dff_slope(dff, calcium, hits):
    """Median least-squares slope of extracted dF/F on true calcium over matched ROIs."""
    slopes = []
    for roi, unit in zip(hits["detected_roi"], hits["true_roi"], strict=True):
        y, x = dff.sel(roi=roi).values, calcium[unit]
        ok = np.isfinite(y)
        x0 = x[ok] - x[ok].mean()
        if not x0.any():  # a silent neuron has no slope
            continue
        slopes.append(float(x0 @ (y[ok] - y[ok].mean()) / (x0 @ x0)))
    return float(np.median(slopes))


def test_motion_spike_registration(run, shifts):
    s = run["sessions"][SPIKE_DAY]
    shape = (run["settings"].n_rows, run["settings"].n_cols)
    true_row, _ = imaging_chain.true_mean_shift(run["days"][s]["motion"], shape)
    for plane in (0, 1):
        r = run["reg"][(s, plane)]
        bad = np.flatnonzero(r["bad_frame"].values)
        error = r["shift_row"].values[SPIKE_FRAME] - true_row[SPIKE_FRAME]
        error -= shifts[(s, plane)]["offset_row_px"]
        log.info("plane %d: bad frames %s, spike frame row error %.2f px, others %s",
                 plane, bad, error, shifts[(s, plane)])  # fmt: skip
        # the rigid search stops at 10 px here; nonrigid blocks recover the rest,
        # and the frame is flagged because its rigid shift sits at that limit
        assert SPIKE_FRAME in bad
        assert len(bad) <= 3
        assert abs(error) <= 1.5  # measured 0.0 (soma), 0.7 px (dendrite)
        # the other frames register as well as on the days without a spike
        assert shifts[(s, plane)]["median_abs_error_px"] <= 1.2  # measured 0.7 / 0.9


def test_motion_spike_traces(run, hits):
    s = run["sessions"][SPIKE_DAY]
    for plane in (0, 1):
        traces = run["traces"][(s, plane)]
        assert np.isnan(traces["dff"].isel(time=SPIKE_FRAME)).all()
        assert np.isnan(traces["spikes"].isel(time=SPIKE_FRAME)).all()
        assert np.isfinite(traces["dff"].isel(time=[SPIKE_FRAME - 1, SPIKE_FRAME + 1])).all()
        events = run["events"][(s, plane)]
        assert not (events["peak_frame"] == SPIKE_FRAME).any()
    # dF/F around the spike still follows the truth
    traces = run["traces"][(s, 0)]
    r = validate.compare_traces(traces["dff"], run["days"][s]["soma_calcium"], matches=hits[s])
    log.info("spike day trace r median %.3f", r["r"].median())
    assert r["r"].median() >= 0.8


def test_dimmer_day_alignment_and_detection(run, shifts):
    s = run["sessions"][DIM_DAY]
    shape = (run["settings"].n_rows, run["settings"].n_cols)
    truth = pd.DataFrame([{"session": t, **d["transform"]} for t, d in run["days"].items()])
    offsets = {t: (shifts[(t, 0)]["offset_row_px"], shifts[(t, 0)]["offset_col_px"])
               for t in run["sessions"]}  # fmt: skip
    errors = {}
    for name, transforms, reg in (
        ("dim", run["transforms"][0], run["reg"][(s, 0)]),
        ("control", run["control_transforms"], run["control_reg"]),
    ):
        true_row, true_col = imaging_chain.true_mean_shift(run["days"][s]["motion"], shape)
        m = validate.compare_shifts(
            reg["shift_row"].values, reg["shift_col"].values, true_row, true_col
        )
        table = validate.compare_transforms(
            transforms,
            truth,
            shape=shape,
            registration_offsets_px={**offsets, s: (m["offset_row_px"], m["offset_col_px"])},
        ).set_index("session")
        log.info("align_days %s:\n%s", name, table.to_string())
        errors[name] = table.loc[s, "mean_error_px"]
    # measured 1.16 px dim vs 1.20 px at full brightness, so not from the brightness: each
    # registered mean carries its registration reference's nonrigid warp (84 px wavelength
    # here, it looks like +1.0 / -0.8 deg on day01 / day02), which the translation-only
    # truth of compare_transforms leaves out (align_days on motion-free means: 0.04 px)
    assert abs(errors["dim"] - errors["control"]) <= 0.3
    assert errors["dim"] <= 1.5
    f1 = {}
    for t in run["sessions"]:
        detected = run["rois"][(t, 0)]
        cells = detected.isel(roi=np.flatnonzero(detected["is_cell"].values))
        offset = (shifts[(t, 0)]["offset_row_px"], shifts[(t, 0)]["offset_col_px"])
        _, m = validate.compare_rois(
            cells, run["days"][t]["sgeom"]["soma_mask"], registration_offset_px=offset
        )
        f1[t] = m["f1_iou"]
    log.info("soma F1 (IoU) per day: %s", f1)
    # measured 0.97 / 0.86 (dim) / 0.82: no worse than a normal day
    assert f1[s] >= min(v for t, v in f1.items() if t != s) - 0.1


def test_dimmer_day_tracking_and_traces(run, hits):
    s = run["sessions"][DIM_DAY]
    bright = run["sessions"][0]
    matched = pd.concat([h.assign(session=t) for t, h in hits.items()], ignore_index=True)
    _, m = validate.compare_tracking(matched)
    log.info("tracking: %s", m)
    assert m["fraction_correct"] >= 0.9
    neurons = run["result"]["geometry"]["neurons"]
    same = run["targets"][s]["roi"].to_numpy() == run["targets"][bright]["roi"].to_numpy()
    m = validate.compare_targets(
        run["targets"][s],
        roi_units=dict(zip(hits[s]["detected_roi"], hits[s]["true_roi"], strict=True)),
        true_targets=neurons,
    )
    log.info("dim day targets %s, same ids as %s: %s", m, bright, same)
    # measured 9 / 9 same ids; 8 / 9 on their true neuron at IoU 0.5 (this day's masks
    # also carry the reference warp's apparent 1.2 px offset, see above)
    assert same.all()
    assert m["recall"] >= 8 / 9
    slopes, recall = {}, {}
    for t in (s, bright):
        day = run["days"][t]
        slopes[t] = _dff_slope(run["traces"][(t, 0)]["dff"], day["soma_calcium"], hits[t])
        recall[t] = _event_recall(run["events"][(t, 0)], hits[t], day["bursts"])
    log.info("dF/F slope on true calcium %s, event recall %s", slopes, recall)
    # dF/F is a ratio: 20% fewer photons leave its scale unchanged
    assert abs(slopes[s] / slopes[bright] - 1) <= 0.15
    assert recall[s] >= recall[bright] - 0.1


def test_silent_target(run, hits):
    s = run["sessions"][SILENT_DAY]
    neurons = run["result"]["geometry"]["neurons"]
    unit = int(neurons.loc[neurons["target_id"] == SILENT_TARGET, "neuron"].iloc[0])
    assert run["days"][s]["spikes"][unit].sum() == 0
    roi_by_day = {
        t: int(run["targets"][t].set_index("target_id").loc[SILENT_TARGET, "roi"])
        for t in run["sessions"]
    }
    table = run["track_table"][0]
    detected = table[(table["roi"] == roi_by_day[s])].set_index("session")["detected"]
    log.info("silent target: roi per day %s, detected %s", roi_by_day, detected.to_dict())
    # one stable id on every day, and on the silent day it is the target's true neuron
    assert len(set(roi_by_day.values())) == 1
    roi = roi_by_day[s]
    assert dict(zip(hits[s]["detected_roi"], hits[s]["true_roi"], strict=True))[roi] == unit
    dff = run["traces"][(s, 0)]["dff"].sel(roi=roi).values
    log.info("silent day dF/F: median %.3f sd %.3f", np.nanmedian(dff), np.nanstd(dff))
    assert np.isfinite(dff).mean() >= 0.99
    assert abs(np.nanmedian(dff)) <= 0.05
    assert np.nanstd(dff) <= 0.2  # measured 0.08
    events = run["events"][(s, 0)]
    assert not (events["roi"] == roi).any()
    assert (run["events"][(run["sessions"][0], 0)]["roi"] == roi).sum() >= 5


def test_silent_target_pairing(run, hits, shifts):
    s = run["sessions"][0]
    dend_matches, _ = validate.compare_rois(
        run["session_masks"][(s, 1)],
        run["days"][s]["sgeom"]["dendrite_mask"],
        registration_offset_px=(shifts[(s, 1)]["offset_row_px"], shifts[(s, 1)]["offset_col_px"]),
    )
    dend = dend_matches[dend_matches["iou"] >= 0.2]
    dendrites = run["result"]["geometry"]["dendrites"]
    soma_units = dict(zip(hits[s]["detected_roi"], hits[s]["true_roi"], strict=True))
    dendrite_units = dict(zip(dend["detected_roi"], dend["true_roi"], strict=True))
    tuft_neuron = dict(zip(dendrites["tuft"], dendrites["neuron"], strict=True))
    _, m = validate.compare_pairing(
        run["pairs"], soma_units=soma_units, dendrite_units=dendrite_units, tuft_neuron=tuft_neuron
    )
    log.info("pairing: %s", m)
    assert m["precision"] >= 0.8
    neurons = run["result"]["geometry"]["neurons"]
    unit = int(neurons.loc[neurons["target_id"] == SILENT_TARGET, "neuron"].iloc[0])
    roi = int(run["targets"][s].set_index("target_id").loc[SILENT_TARGET, "roi"])
    paired = run["pairs"][run["pairs"]["paired"] & (run["pairs"]["soma_roi"] == roi)]
    owners = [tuft_neuron.get(dendrite_units.get(d), -1) for d in paired["dendrite_roi"]]
    log.info("silent target soma roi %d paired with dendrites %s (neurons %s)",
             roi, paired["dendrite_roi"].tolist(), owners)  # fmt: skip
    # a silent day must not attach the target to another neuron's tuft
    assert all(o == unit for o in owners)
