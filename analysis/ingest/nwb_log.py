"""A BCI log recorded in an NWB file (trials table and BCI time series) converted to the
plain BCI log.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.ingest.bci_log import check_meta_agrees
from analysis.readers.base import (
    IngestError,
)
from analysis.vocabulary import (
    BCI_META_REQUIRED,
    NWB_BCI_CONTAINER,
    NWB_BCI_OPTIONAL_SERIES,
    NWB_BCI_PARAMETERS,
    NWB_BCI_SERIES,
    NWB_SHIFT_SERIES,
)


def convert_nwb_bci_log(
    record: Mapping[str, Any],
    *,
    meta: Mapping[str, Any] | None,
    path: str | Path,
    meta_path: str | Path,
) -> tuple[pd.DataFrame, dict]:
    """Convert the BCI log an NWB file records to the plain BCI table and metadata.

    Mapping (the layout :mod:`analysis.export` writes; volume k is at the k-th time of the
    imaging TwoPhotonSeries, its timestamps or ``starting_time + k / rate``):

    - trials table (``intervals/trials``): ``trial`` = the row's id on the volumes that
      start in [start_time, stop_time), -1 elsewhere; ``new_trial`` = 1 on each trial's
      first volume.
    - TimeSeries in ``processing/behavior/BCI`` (else ``acquisition``), one sample per
      volume: ``readout`` -> ``readout``, ``grating_angle`` -> ``angle_deg`` (NaN: grey
      or black), ``reward_ttl`` / ``aversive_ttl`` -> ``reward`` / ``aversive`` (1 where
      > 0); optional ``licks`` (1 where > 0), ``opto`` (as recorded) and ``online_shift``
      (volume, 2) -> ``shift_row``, ``shift_col``.
    - table ``processing/behavior/BCITaskParameters`` (rows ``parameter``, ``value``):
      ``threshold``, ``failure_bound``, ``target_angle_deg``, ``max_trial_frames``;
      ``meta`` (bci_meta.yaml) gives those it lacks and may repeat the others only with
      the same values.

    Parameters
    ----------
    record : what :func:`analysis.readers.read_nwb_bci_log` read from the file.
    meta : bci_meta.yaml beside the file, or None when there is none.
    path : the NWB file, named in errors.
    meta_path : where bci_meta.yaml is (or belongs), named in errors.

    Returns
    -------
    (table, meta) as :func:`convert_stimdata` returns them.

    Raises
    ------
    IngestError
        The trials table or a BCI TimeSeries is missing, a series is not sampled once
        per imaging volume, trials overlap or lie outside the recording, or a task
        parameter is in neither the file nor bci_meta.yaml; names the object and the fix.
    """
    volume_times = np.asarray(record["volume_times"], dtype=np.float64)
    half = record["volume_period"] / 2
    n = volume_times.size
    imaging = f"the imaging TwoPhotonSeries '{record['imaging_series']}'"
    instead = "or write bci_frames.tsv beside the NWB file (README, 'BCI logs')"
    trials = record["trials"]
    if trials is None:
        raise IngestError(
            f"{path}: no trials table (intervals/trials); the BCI log in an NWB file takes "
            f"each volume's trial from it. Add the trials (start_time, stop_time) {instead}."
        )
    trial = np.full(n, -1, dtype=np.int64)
    new_trial = np.zeros(n, dtype=np.int64)
    for row in trials.sort_values("start_time").itertuples(index=False):
        inside = (volume_times >= row.start_time - half) & (volume_times < row.stop_time - half)
        if not inside.any():
            raise IngestError(
                f"{path}: trial {row.id} ({row.start_time:g}..{row.stop_time:g} s) holds no "
                f"volume of {imaging} ({_time_span(volume_times)}); trial times must be "
                "seconds on the imaging's clock. Correct the trials table or remove the trial."
            )
        if (trial[inside] >= 0).any():
            raise IngestError(
                f"{path}: trial {row.id} overlaps trial {trial[inside].max()} in the trials "
                "table; trials must not overlap. Correct their start_time / stop_time."
            )
        trial[inside] = row.id
        new_trial[np.flatnonzero(inside)[0]] = 1
    series = record["series"]
    missing = [name for name in NWB_BCI_SERIES.values() if name not in series]
    if missing:
        raise IngestError(
            f"{path}: no TimeSeries {missing} in processing/behavior/{NWB_BCI_CONTAINER} or "
            f"acquisition; the BCI log in an NWB file needs {list(NWB_BCI_SERIES.values())}, "
            f"one sample per imaging volume (as analysis.export writes them). Add them {instead}."
        )

    def per_volume(name: str, shape: tuple[int, ...]) -> np.ndarray:
        entry = series[name]
        times, data = np.asarray(entry["times"], dtype=np.float64), entry["data"]
        if times.size != n or np.any(np.abs(times - volume_times) >= half):
            raise IngestError(
                f"{path}: TimeSeries {entry['where']} has {times.size} samples at "
                f"{_time_span(times)} but {imaging} has {n} volumes at "
                f"{_time_span(volume_times)}; the BCI log needs one sample per imaging volume. "
                f"Resample it to the volume times {instead}."
            )
        if data.shape != shape:
            raise IngestError(
                f"{path}: TimeSeries {entry['where']} has data of shape {data.shape}, "
                f"expected {shape} (one row per imaging volume)."
            )
        return data

    columns: dict[str, np.ndarray] = {
        "frame": np.arange(n, dtype=np.int64),
        "trial": trial,
        "new_trial": new_trial,
    }
    flags = ("reward", "aversive", "licks")
    for column, name in {**NWB_BCI_SERIES, **NWB_BCI_OPTIONAL_SERIES}.items():
        if name in series:
            values = per_volume(name, (n,))
            columns[column] = (values > 0).astype(np.int64) if column in flags else values
    if NWB_SHIFT_SERIES in series:
        shift = per_volume(NWB_SHIFT_SERIES, (n, 2))
        columns["shift_row"], columns["shift_col"] = shift[:, 0], shift[:, 1]
    return pd.DataFrame(columns), _nwb_bci_meta(
        record["parameters"], meta, path=path, meta_path=meta_path
    )


def _time_span(times: np.ndarray) -> str:
    return f"{times[0]:.6g}..{times[-1]:.6g} s" if times.size else "no times"


def _nwb_bci_meta(
    parameters: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None,
    *,
    path: str | Path,
    meta_path: str | Path,
) -> dict:
    table = f"processing/behavior/{NWB_BCI_PARAMETERS}"
    from_log = {}
    for key in BCI_META_REQUIRED:
        if key not in (parameters or {}):
            continue
        try:
            from_log[key] = float(parameters[key])
        except (TypeError, ValueError):
            raise IngestError(
                f"{path}: {table} gives {key} = {parameters[key]!r}, not a number; correct "
                f"the table or remove the row and give {key} in bci_meta.yaml."
            ) from None
    given = dict(meta or {})
    check_meta_agrees(given, from_log, source=f"{path} ({table})", meta_path=meta_path)
    merged = {**given, **from_log}
    missing = [key for key in BCI_META_REQUIRED if key not in merged]
    if missing:
        where = f"{table} has no {missing}" if parameters is not None else f"no table {table}"
        raise IngestError(
            f"{path}: {where} (the BCI task parameters) and {meta_path} "
            f"{'does not give them' if meta is not None else 'not found'}; add bci_meta.yaml "
            f"beside the NWB file with {', '.join(missing)} (README, 'BCI logs')."
        )
    return merged
