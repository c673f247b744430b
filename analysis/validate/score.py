"""Scoring a whole simulated run: every imaging stage's output against the truth."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis import dims, layout
from analysis.masks import select_rois, select_session
from analysis.settings import StageSettings, require
from analysis.simulate.settings import PRESETS
from analysis.validate.common import ratio
from analysis.validate.identity import compare_pairing, compare_tracking
from analysis.validate.rois import (
    compare_registration,
    compare_rois,
    compare_transforms,
)
from analysis.validate.signals import compare_spikes, compare_traces


@dataclasses.dataclass(frozen=True)
class ValidateSettings(StageSettings):
    """Settings of the ``validate`` target: the simulated cohort it scores the pipeline on.

    The cohort is a simulator preset (256 x 256 px, two planes) with these sizes; the
    pipeline then runs on it with this config's stage settings.

    Attributes
    ----------
    preset : the simulator preset (``analysis.simulate.PRESETS``): ``realistic`` (random,
        overlapping somata of spread size and brightness, rings, silent and out-of-focus
        cells, vessels, processes, a real detector's noise) or ``validate`` (the grid of
        uniform disks the goals were first met on).
    seed : random seed of the cohort.
    n_subjects, n_days : cohort size.
    n_frames : frames per plane per day.
    """

    section = "validate"
    preset: str = "realistic"
    seed: int = 1
    n_subjects: int = 3
    n_days: int = 5
    n_frames: int = 3000

    def __post_init__(self) -> None:
        require(
            self.preset in PRESETS,
            f"validate.preset must be one of {sorted(PRESETS)}, got '{self.preset}'",
        )
        require(self.n_subjects >= 1, "validate.n_subjects must be >= 1")
        require(self.n_days >= 2, "validate.n_days must be >= 2 (tracking needs two days)")
        require(self.n_frames >= 500, "validate.n_frames must be >= 500")


# Goals of the imaging stages on simulated cohorts (the ``validate`` target's metrics.tsv).
IMAGING_GOALS = {
    "registration_shift_error_px": "<= 0.3",
    "crossday_target_centroid_error_px": "<= 1.0",
    "soma_f1_iou50": ">= 0.85",
    "target_soma_recall": ">= 1.0",
    "dendrite_recall_targets": ">= 0.90",
    "dendrite_recall_targets_tracked": ">= 0.90",
    "pairing_accuracy_targets": ">= 0.95",
    "tracking_accuracy": ">= 0.95",
    "trace_corr_median": ">= 0.90",
    "spike_corr_median": "> spike_corr_median_suite2p",
    "spike_corr_median_suite2p": "",
}
# Reported only for cohorts whose truth flags somata no detector can find from activity
# or shape (the ``realistic`` preset's silent and out-of-focus cells).
FLAGGED_METRICS = {"soma_f1_iou50_detectable": ""}
#: A soma less than this share in view on a session (cut by the field's edge) is not scored
#: there, as a lab does not count cells cut by the frame.
CUT_BY_EDGE_FRACTION = 0.5


def _unit_map(hits: pd.DataFrame) -> dict[int, int]:
    return dict(zip(hits["detected_roi"].astype(int), hits["true_roi"].astype(int), strict=True))


def _majority_units(matches: pd.DataFrame) -> dict[int, int]:
    """Tracked ROI id -> the true unit it matches on most days."""
    if matches.empty:
        return {}
    mode = matches.groupby("detected_roi")["true_roi"].agg(lambda s: s.mode().iloc[0])
    return _unit_map(mode.reset_index())


def suite2p_default_spikes(fcorr: np.ndarray, *, fs_hz: float) -> np.ndarray:
    """suite2p 1.1.0's default deconvolution of neuropil-corrected traces (roi, time).

    Its defaults: maximin baseline (60 s window, 10-sample Gaussian, 8th percentile)
    and OASIS with tau 1.0 s, as ``run_s2p`` applies them, on the CPU.
    """
    import torch
    from suite2p import default_settings
    from suite2p.extraction import dcnv

    defaults = default_settings()
    pre = defaults["dcnv_preprocess"]
    fc = np.ascontiguousarray(np.nan_to_num(np.asarray(fcorr, dtype=np.float32)))
    fc = dcnv.preprocess(
        fc,
        pre["baseline"],
        pre["win_baseline"],
        pre["sig_baseline"],
        fs_hz,
        pre["prctile_baseline"],
        device=torch.device("cpu"),
    )
    return dcnv.oasis(fc, defaults["extraction"]["batch_size"], defaults["tau"], fs_hz)


def score_subject(results: Any, truth_root: Any, subject: str) -> dict[str, list]:
    """Score one subject's pipeline outputs against the simulator's truth.

    Parameters
    ----------
    results : path
        The run's results folder (``register``, ``segment``, ``align_days``, ``track``,
        ``extract`` outputs of the workflow).
    truth_root : path
        The simulated cohort's root (``truth/<subject>/...``).
    subject : str

    Returns
    -------
    dict of metric name -> list of per-unit values (shift errors per session and plane,
    per-session F1, per-(target, session) correctness, per-ROI correlations, ...), to be
    pooled over subjects by :func:`score_run`.
    """
    from analysis import io
    from analysis.session_format import read_truth_session, read_truth_subject

    results, truth_root = Path(results), Path(truth_root)
    subject_truth = read_truth_subject(truth_root, subject)
    sessions = list(subject_truth["sessions"]["session"])
    record = io.read_json(
        _artifact(results, "ingest.session", subject=subject, session=sessions[0])
    )
    roles = {role: int(plane) for plane, role in record["plane_roles"].items()}
    planes = (roles["soma"], roles["dendrite"])
    truths = {s: read_truth_session(truth_root, subject, s)[0] for s in sessions}
    out: dict[str, list] = {name: [] for name in {**IMAGING_GOALS, **FLAGGED_METRICS}}
    run = _Scoring(results, subject, planes, subject_truth, truths, out)
    _score_detection(run)
    _score_crossday(run)
    soma_hits, dendrite_hits = _score_tracked(run)
    _score_pairing(out, subject_truth, soma_hits, dendrite_hits, results=results, subject=subject)
    return out


@dataclasses.dataclass
class _Scoring:
    """One subject's run and truth being scored, and the metrics gathered so far."""

    results: Path
    subject: str
    planes: tuple[int, int]  # soma plane, dendrite plane
    subject_truth: Mapping[str, pd.DataFrame]
    truths: dict[str, xr.Dataset]  # per session, in session order
    out: dict[str, list]
    offsets: dict[int, dict[str, tuple[float, float]]] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def cut_by_edge(self) -> dict[str, np.ndarray]:
        """Per session, the neurons less than half in view (:func:`_cut_by_edge`)."""
        return _cut_by_edge(self.truths)


def _artifact(results: Path, key: str, **wildcards: Any) -> Path:
    """A results artifact of the run (:mod:`analysis.layout`)."""
    return Path(layout.path(key, results, **wildcards))


def _truth_targets(subject_truth: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The simulated BCI target neurons."""
    neurons = subject_truth["neurons"]
    return neurons[neurons["target_id"] >= 0]


def _target_tufts(subject_truth: Mapping[str, pd.DataFrame]) -> list[int]:
    """The tufts of the simulated BCI target neurons."""
    dendrites = subject_truth["dendrites"]
    targets = _truth_targets(subject_truth)["neuron"]
    return sorted(dendrites.loc[dendrites["neuron"].isin(targets), "tuft"])


def _score_detection(run: _Scoring) -> None:
    """Registration shifts and per-session detection (somata F1, target tuft recall).

    Fills ``run.offsets``, the registration offsets ``{plane: {session: (row, col)}}`` the
    later steps compare masks with.
    """
    from analysis import io

    out, subject_truth, truths = run.out, run.subject_truth, run.truths
    results, subject, planes, offsets = run.results, run.subject, run.planes, run.offsets
    soma_plane, dendrite_plane = planes
    target_tufts = _target_tufts(subject_truth)
    offsets.update({soma_plane: {}, dendrite_plane: {}})
    for session, truth in truths.items():
        at = {"subject": subject, "session": session}
        for plane in (soma_plane, dendrite_plane):
            reg = io.read_netcdf(_artifact(results, "register.registration", plane=plane, **at))
            m = compare_registration(reg, truth)
            out["registration_shift_error_px"].append(m["median_abs_error_px"])
            offsets[plane][session] = (m["offset_row_px"], m["offset_col_px"])
        somata = io.read_netcdf(_artifact(results, "segment.rois", plane=soma_plane, **at))
        cells = select_rois(somata, somata["is_cell"].values.astype(bool))
        matches, _ = compare_rois(
            cells,
            truth["soma_mask"],
            iou_threshold=0.5,
            registration_offset_px=offsets[soma_plane][session],
        )
        neurons = subject_truth["neurons"]
        cut = neurons["neuron"].isin(run.cut_by_edge[session]).to_numpy()
        offset = offsets[soma_plane][session]
        out["soma_f1_iou50"].append(
            _f1_without(cells, truth["soma_mask"], neurons, cut, matches, offset)
        )
        if {"silent", "out_of_focus"} <= set(neurons.columns):
            hidden = neurons["silent"].astype(bool) | neurons["out_of_focus"].astype(bool)
            out["soma_f1_iou50_detectable"].append(
                _f1_without(
                    cells, truth["soma_mask"], neurons, cut | hidden.to_numpy(), matches, offset
                )
            )
        dend = io.read_netcdf(_artifact(results, "segment.rois", plane=dendrite_plane, **at))
        tuft_masks = truth["dendrite_mask"].sel(tuft=target_tufts)
        _, m = compare_rois(
            dend,
            tuft_masks,
            iou_threshold=0.3,
            registration_offset_px=offsets[dendrite_plane][session],
        )
        out["dendrite_recall_targets"].append(m["recall_iou"])


def _f1_without(
    cells: xr.Dataset,
    soma_mask: xr.DataArray,
    neurons: pd.DataFrame,
    excluded: np.ndarray,
    matches: pd.DataFrame,
    offset: tuple[float, float],
) -> float:
    """Soma F1 (IoU >= 0.5) against the somata not ``excluded`` (bool per neuron row):
    ROIs that hit an excluded soma count neither as hits nor as false positives."""
    found_excluded = matches["hit"] & matches["true_roi"].isin(neurons.loc[excluded, "neuron"])
    dropped = set(matches.loc[found_excluded, "detected_roi"])
    kept = [roi for roi in cells["roi"].values if roi not in dropped]
    _, m = compare_rois(
        cells.sel(roi=kept),
        soma_mask.sel(neuron=neurons.loc[~excluded, "neuron"].to_numpy()),
        iou_threshold=0.5,
        registration_offset_px=offset,
    )
    return m["f1_iou"]


def _cut_by_edge(truths: Mapping[str, xr.Dataset]) -> dict[str, np.ndarray]:
    """Per session, the neurons less than half in view (the field moved over them, see
    ``simulate.border_somata``): a soma's area there over its largest over sessions."""
    areas = {s: (t["soma_mask"] > 0).sum((dims.ROW, dims.COL)) for s, t in truths.items()}
    full = np.max([a.values for a in areas.values()], axis=0)
    return {s: a["neuron"].values[a.values < CUT_BY_EDGE_FRACTION * full] for s, a in areas.items()}


def _score_crossday(run: _Scoring) -> None:
    """Cross-day alignment: target centroids moved by the fitted transforms vs truth."""
    from analysis import io

    out, subject_truth, truths = run.out, run.subject_truth, run.truths
    results, subject, planes, offsets = run.results, run.subject, run.planes, run.offsets
    soma_plane = planes[0]
    sessions = list(truths)
    targets = _truth_targets(subject_truth)
    transforms = io.read_netcdf(
        _artifact(results, "align_days.transforms", subject=subject, plane=soma_plane)
    )
    shape = tuple(truths[sessions[0]]["soma_mask"].shape[1:])
    moved = compare_transforms(
        transforms,
        subject_truth["transforms"],
        shape=shape,
        points=targets[["centroid_row", "centroid_col"]].to_numpy(float),
        registration_offsets_px=offsets[soma_plane],
    )
    reference = str(transforms.attrs.get("reference_session", sessions[0]))
    out["crossday_target_centroid_error_px"] += list(
        moved.loc[moved["session"] != reference, "mean_error_px"]
    )


def _score_tracked(run: _Scoring) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per session: tracked somata and targets, traces and spikes; then tracking accuracy.

    Returns the matched (hit) somata and dendrites of every session.
    """
    from analysis import io

    out, subject_truth, truths = run.out, run.subject_truth, run.truths
    results, subject, planes, offsets = run.results, run.subject, run.planes, run.offsets
    soma_plane, dendrite_plane = planes
    true_targets = _truth_targets(subject_truth)[["target_id", "neuron", "group"]]
    target_tufts = _target_tufts(subject_truth)
    tracked = {
        plane: io.read_netcdf(_artifact(results, "track.rois", subject=subject, plane=plane))
        for plane in planes
    }
    soma_matches, dendrite_matches = [], []
    for session, truth in truths.items():
        matches, _ = compare_rois(
            select_session(tracked[soma_plane], session),
            truth["soma_mask"],
            iou_threshold=0.5,
            registration_offset_px=offsets[soma_plane][session],
        )
        hits = matches[matches["hit"]].assign(session=session)
        soma_matches.append(hits)
        mapped = io.read_tsv(_artifact(results, "track.targets", subject=subject, session=session))
        # A target is on its neuron when its ROI's optimal (Hungarian) partner is that
        # neuron, whatever the IoU: a weak overlap of the right cell is still the cell.
        units = _unit_map(matches)
        merged = true_targets.merge(mapped[["target_id", "roi"]], on="target_id", how="left")
        out["target_soma_recall"] += list(merged["roi"].map(units) == merged["neuron"])
        matches, _ = compare_rois(
            select_session(tracked[dendrite_plane], session),
            truth["dendrite_mask"],
            iou_threshold=0.3,
            registration_offset_px=offsets[dendrite_plane][session],
        )
        dendrite_matches.append(matches[matches["hit"]].assign(session=session))
        # the tufts the analyses get: one found on track.min_sessions days is on every day
        _, m = compare_rois(
            select_session(tracked[dendrite_plane], session),
            truth["dendrite_mask"].sel(tuft=target_tufts),
            iou_threshold=0.3,
            registration_offset_px=offsets[dendrite_plane][session],
        )
        out["dendrite_recall_targets_tracked"].append(m["recall_iou"])
        traces = io.read_netcdf(
            _artifact(results, "extract.traces", subject=subject, session=session, plane=soma_plane)
        )
        _score_traces(out, traces, truth, hits[hits["detected_roi"].isin(traces["roi"].values)])
    soma_hits = pd.concat(soma_matches)[["session", "detected_roi", "true_roi"]]
    _, tracking = compare_tracking(soma_hits)
    out["tracking_accuracy"].append((tracking["n_correct"], tracking["n_tracked"]))
    return soma_hits, pd.concat(dendrite_matches)


def _score_traces(
    out: dict[str, list], traces: xr.Dataset, truth: xr.Dataset, found: pd.DataFrame
) -> None:
    """dF/F and spike correlations with truth of the matched somata (and suite2p's spikes)."""
    out["trace_corr_median"] += list(
        compare_traces(traces["dff"], truth["soma_calcium"], matches=found)["r"]
    )
    fs_hz = float(traces.attrs["fs_hz"])
    out["spike_corr_median"] += list(
        compare_spikes(traces["spikes"], truth["spikes"], matches=found, fs_hz=fs_hz)["r"]
    )
    s2p = xr.DataArray(
        suite2p_default_spikes(traces["Fcorr"].values, fs_hz=fs_hz),
        dims=("roi", "time"),
        coords={"roi": traces["roi"].values},
    )
    out["spike_corr_median_suite2p"] += list(
        compare_spikes(s2p, truth["spikes"], matches=found, fs_hz=fs_hz)["r"]
    )


def _score_pairing(
    out: dict[str, list],
    subject_truth: Mapping[str, pd.DataFrame],
    soma_hits: pd.DataFrame,
    dendrite_hits: pd.DataFrame,
    *,
    results: Path,
    subject: str,
) -> None:
    """Pairing accuracy of the target neurons whose tuft was tracked."""
    from analysis import io

    dendrites = subject_truth["dendrites"]
    targets = _truth_targets(subject_truth)
    # A target's pairing is right when its tracked soma's paired dendrites are exactly
    # the tracked dendrite ROIs of its own tuft (scored where that tuft was tracked).
    scored, _ = compare_pairing(
        io.read_tsv(_artifact(results, "track.pairs", subject=subject)),
        soma_units=_majority_units(soma_hits),
        dendrite_units=_majority_units(dendrite_hits),
        tuft_neuron=dict(zip(dendrites["tuft"], dendrites["neuron"], strict=True)),
    )
    scored = scored[scored["true_neuron"].isin(targets["neuron"])]
    for _, rows in scored.groupby("soma_roi"):
        if rows["true_pair"].any():
            out["pairing_accuracy_targets"].append(
                bool((rows["paired"].astype(bool) == rows["true_pair"]).all())
            )


def score_run(results: Any, truth_root: Any, subjects: list[str]) -> pd.DataFrame:
    """The imaging metrics of a whole simulated cohort: ``metric, value, goal, n``.

    Medians pool sessions (registration: sessions x planes), fractions pool units over
    subjects (targets x sessions for target recall; tracked ROIs for tracking accuracy;
    target neurons with a tracked tuft for pairing). ``spike_corr_median_suite2p`` is
    suite2p's default deconvolution on the same neuropil-corrected traces, the baseline
    ``spike_corr_median`` must beat.
    """
    goals = {**IMAGING_GOALS, **FLAGGED_METRICS}
    pooled: dict[str, list] = {name: [] for name in goals}
    for subject in subjects:
        for name, values in score_subject(results, truth_root, subject).items():
            pooled[name] += values
    rows = []
    for name, values in pooled.items():
        if name in FLAGGED_METRICS and not values:
            continue
        if name == "tracking_accuracy":
            correct, total = (sum(v) for v in zip(*values, strict=True)) if values else (0, 0)
            value, n = ratio(correct, total), total
        elif name in ("target_soma_recall", "pairing_accuracy_targets"):
            value, n = ratio(sum(values), len(values)), len(values)
        else:
            finite = np.asarray(values, dtype=float)
            finite = finite[np.isfinite(finite)]
            value, n = (float(np.median(finite)) if finite.size else np.nan), int(finite.size)
        rows.append({"metric": name, "value": value, "goal": goals[name], "n": n})
    return pd.DataFrame(rows)
