"""NWB behaviour: the BCI log as time series, task parameters, reward and aversive events,
trials and task-error epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.export.settings import SessionResults
from analysis.vocabulary import BCI_META_REQUIRED, NWB_BCI_CONTAINER, NWB_BCI_PARAMETERS

if TYPE_CHECKING:
    from pynwb import NWBFile

log = logging.getLogger(__name__)


def _frame_times(frames: np.ndarray, fs_hz: float) -> np.ndarray:
    return np.asarray(frames, float) / fs_hz


def add_behavior(nwbfile: NWBFile, results: SessionResults) -> None:
    """Add the ``behavior`` processing module: the BCI log's per-volume time series (readout,
    grating, reward and aversive TTLs, task error and its derivative, licks, opto, online
    shift) in one BehavioralTimeSeries, the task parameters table, and reward and aversive
    events."""
    from pynwb import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries

    frames = results.bci_frames
    fs_hz = float(results.fs_hz)
    if not np.array_equal(frames["frame"].to_numpy(), np.arange(len(frames))):
        raise ValueError(
            "BCI log frames must run 0..n-1 without gaps; rerun ingest on this session."
        )
    bci = BehavioralTimeSeries(name=NWB_BCI_CONTAINER)
    for name, values, unit, description in _bci_series(results):
        bci.add_timeseries(
            TimeSeries(
                name=name,
                data=values.to_numpy(float),
                unit=unit,
                rate=fs_hz,
                starting_time=0.0,
                description=description,
            )
        )
    if {"shift_row", "shift_col"} <= set(frames.columns):
        bci.add_timeseries(
            TimeSeries(
                name="online_shift",
                data=frames[["shift_row", "shift_col"]].to_numpy(float),
                unit="pixels",
                rate=fs_hz,
                starting_time=0.0,
                description="online rigid motion correction applied by the rig, (row, col).",
            )
        )
    behavior = nwbfile.create_processing_module(
        name="behavior", description="BCI task: online readout, grating, outcomes, task error"
    )
    behavior.add(bci)
    behavior.add(_bci_parameters_table(results.bci_meta))
    for name, column, text in (
        ("reward", "reward", "reward TTL"),
        ("aversive", "aversive", "white-noise (failure) sound onset"),
    ):
        hits = frames[frames[column].to_numpy(float) > 0]
        if hits.empty:
            log.info("no %s events in the BCI log", name)
            continue
        _add_events(nwbfile, name, hits, text=text, fs_hz=fs_hz)


def _bci_series(results: SessionResults) -> list[tuple[str, pd.Series, str, str]]:
    """(name, per-volume values, unit, description) of each BCI time series."""
    frames = results.bci_frames
    meta = results.bci_meta
    task = results.task_error.set_index("frame").reindex(frames["frame"])
    series = [
        (
            "readout",
            frames["readout"],
            "n.a.",
            f"online BCI readout: mean dF/F of P+ minus mean dF/F of P- targets, smoothed over "
            f"3 volumes (dimensionless); hit at threshold {meta['threshold']:.6g}, failure "
            f"below failure_bound {meta['failure_bound']:.6g}.",
        ),
        (
            "grating_angle",
            frames["angle_deg"],
            "degrees",
            f"grating angle shown (target {meta['target_angle_deg']:g} deg); NaN when grey or "
            "black.",
        ),
        ("reward_ttl", frames["reward"], "n.a.", "1 on the volume of the reward TTL, else 0."),
        (
            "aversive_ttl",
            frames["aversive"],
            "n.a.",
            "1 on the volume where the white-noise (failure) sound started, else 0.",
        ),
        (
            "task_error",
            task["error"],
            "grating steps",
            "task error: distance of the grating from the target in grating steps; NaN outside "
            "a trial's active period.",
        ),
        (
            "task_error_derivative",
            task["error_derivative"],
            "grating steps per second",
            "smoothed time derivative of the task error.",
        ),
    ]
    if "licks" in frames:
        series.append(("licks", frames["licks"], "n.a.", "1 on volumes with a lick, else 0."))
    if "opto" in frames:
        series.append(("opto", frames["opto"], "n.a.", "optogenetic stimulation as logged."))
    return series


_BCI_PARAMETER_TEXT = {
    "threshold": "readout level of a hit (dimensionless)",
    "failure_bound": "readout level below which a trial fails (dimensionless)",
    "target_angle_deg": "grating angle of the target, degrees",
    "max_trial_frames": "closed-loop volumes before a trial times out",
}


def _bci_parameters_table(meta: Mapping[str, Any]) -> Any:
    """bci_meta as a table, one row per parameter (ingest reads a re-ingested file's)."""
    from hdmf.common import DynamicTable, VectorData

    return DynamicTable(
        name=NWB_BCI_PARAMETERS,
        description="BCI task parameters of the session (bci_meta), one row per parameter",
        id=list(range(len(BCI_META_REQUIRED))),
        columns=[
            VectorData(
                name="parameter", description="parameter name", data=list(BCI_META_REQUIRED)
            ),
            VectorData(
                name="value",
                description="parameter value",
                data=[float(meta[key]) for key in BCI_META_REQUIRED],
            ),
            VectorData(
                name="meaning",
                description="what the parameter sets, with its unit",
                data=[_BCI_PARAMETER_TEXT[key] for key in BCI_META_REQUIRED],
            ),
        ],
    )


def _add_events(
    nwbfile: NWBFile, name: str, rows: pd.DataFrame, *, text: str, fs_hz: float
) -> None:
    from hdmf.common import VectorData
    from pynwb.event import EventsTable, TimestampVectorData

    nwbfile.add_events_table(
        EventsTable(
            name=name,
            description=f"{text}: one row per event, at the time of its imaging volume",
            source_description="BCI log (bci_frames.tsv / CLOOSE StimData)",
            id=list(range(len(rows))),
            columns=[
                TimestampVectorData(
                    name="timestamp",
                    description="event time, seconds from session start",
                    data=_frame_times(rows["frame"], fs_hz),
                    resolution=1.0 / fs_hz,
                ),
                VectorData(
                    name="frame", description="volume index", data=rows["frame"].to_numpy(np.int64)
                ),
                VectorData(
                    name="trial",
                    description="trial index (-1: outside trials)",
                    data=rows["trial"].to_numpy(np.int64),
                ),
            ],
        )
    )


def add_trials(nwbfile: NWBFile, results: SessionResults) -> None:
    trials = results.trials
    fs_hz = float(results.fs_hz)
    if trials.empty:
        log.warning("session %s has no complete trials: no trials table", results.session)
        return
    columns = {
        "outcome": "'hit', 'failure' or 'timeout'",
        "reward_time": "reward TTL, seconds from session start; NaN: none",
        "aversive_time": "white-noise onset, seconds from session start; NaN: none",
        "time_to_outcome": "seconds from the start of the active period to the outcome",
        "active_start_time": "first volume with a grating under closed-loop control, s",
        "active_stop_time": "end of the last closed-loop volume, s",
        "n_active_frames": "number of closed-loop volumes",
        "start_frame": "first volume of the trial (grey period included)",
        "end_frame": "last volume of the trial (inclusive)",
    }
    for name, description in columns.items():
        nwbfile.add_trial_column(name=name, description=description)
    for row in trials.itertuples(index=False):
        nwbfile.add_trial(
            id=int(row.trial),
            start_time=row.start_frame / fs_hz,
            stop_time=(row.end_frame + 1) / fs_hz,
            outcome=str(row.outcome),
            reward_time=row.reward_frame / fs_hz,
            aversive_time=row.aversive_frame / fs_hz,
            time_to_outcome=float(row.time_to_outcome_s),
            active_start_time=row.active_start_frame / fs_hz,
            active_stop_time=(row.active_end_frame + 1) / fs_hz,
            n_active_frames=int(row.n_active_frames),
            start_frame=int(row.start_frame),
            end_frame=int(row.end_frame),
        )


def add_epochs(nwbfile: NWBFile, results: SessionResults) -> None:
    from pynwb.epoch import TimeIntervals

    table = results.task_error.sort_values("frame")
    if table.empty:
        return
    epoch = table["epoch"].fillna("none").to_numpy(str)
    trial = table["trial"].to_numpy(np.int64)
    frame = table["frame"].to_numpy(np.int64)
    # a run ends where the epoch, the trial or frame contiguity changes
    breaks = np.flatnonzero(
        (epoch[1:] != epoch[:-1]) | (trial[1:] != trial[:-1]) | (np.diff(frame) != 1)
    )
    starts = np.r_[0, breaks + 1]
    stops = np.r_[breaks, len(frame) - 1]
    runs = [(a, b) for a, b in zip(starts, stops, strict=True) if epoch[a] != "none"]
    if not runs:
        log.info("session %s: no error-reduction or -increase epochs", results.session)
        return
    intervals = TimeIntervals(
        name="task_error_epochs",
        description=(
            "runs of volumes where the task error falls ('reduction') or rises ('increase'), "
            "from the bci stage's smoothed error derivative"
        ),
    )
    intervals.add_column(name="epoch", description="'reduction' or 'increase'")
    intervals.add_column(name="trial", description="trial index")
    for a, b in runs:
        intervals.add_interval(
            start_time=frame[a] / results.fs_hz,
            stop_time=(frame[b] + 1) / results.fs_hz,
            epoch=str(epoch[a]),
            trial=int(trial[a]),
        )
    nwbfile.add_time_intervals(intervals)
