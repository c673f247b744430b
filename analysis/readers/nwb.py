"""NWB: one ``*.nwb`` file with TwoPhotonSeries in acquisition (read by pynwb); without
another BCI log, its trials table and BCI time series are the log (:func:`read_nwb_bci_log`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import io
from analysis.readers.base import (
    ImagingFormat,
    ImagingMeta,
    ImagingPlan,
    IngestError,
    IngestSettings,
    check_plane_frames,
)
from analysis.vocabulary import (
    NWB_BCI_CONTAINER,
    NWB_BCI_OPTIONAL_SERIES,
    NWB_BCI_PARAMETERS,
    NWB_BCI_SERIES,
    NWB_SHIFT_SERIES,
)

log = logging.getLogger(__name__)


def _nwb_series(path: Path, *, settings: IngestSettings) -> list[dict[str, Any]]:
    """Name, data shape and rate of the TwoPhotonSeries read, in plane order."""
    from pynwb import NWBHDF5IO
    from pynwb.ophys import TwoPhotonSeries

    available = {}
    with io.raw_read_errors(path, "an NWB file", corrupt_format="NWB file"):
        with NWBHDF5IO(str(path), "r") as nwb_io:
            for name, series in nwb_io.read().acquisition.items():
                if not isinstance(series, TwoPhotonSeries):
                    continue
                rate, rate_field = _nwb_rate(series)
                shape = tuple(int(n) for n in series.data.shape)
                available[name] = {
                    "name": name,
                    "shape": shape,
                    "rate": rate,
                    "rate_field": rate_field,
                }
    names = list(settings.nwb_series) or sorted(available)
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise IngestError(
            f"{path}: no TwoPhotonSeries{f' {missing}' if missing else ''} in acquisition "
            "(ingest.nwb_series); "
            f"the file has {sorted(available) or 'none'}. Set ingest.nwb_series in "
            "config/config.yaml to the raw series, one per plane."
        )
    for name in names:
        shape = available[name]["shape"]
        if len(shape) not in (3, 4) or shape[0] == 0:
            raise IngestError(
                f"{path}: TwoPhotonSeries '{name}' data has shape {shape}; expected (frame, x, "
                "y) or (frame, x, y, z) frames stored in the file (frames in external files "
                "are not read: point the session at those files instead)."
            )
    return [available[name] for name in names]


def _nwb_rate(series: Any) -> tuple[float | None, str | None]:
    """A TimeSeries' sampling rate (Hz) and the field it came from ('rate' or
    'timestamps', their median interval); (None, None) when it records neither."""
    if series.rate is not None:
        return float(series.rate), "rate"
    if series.timestamps is not None and len(series.timestamps) > 1:
        return 1.0 / float(np.median(np.diff(series.timestamps[:]))), "timestamps"
    return None, None


def _nwb_times(series: Any) -> np.ndarray:
    """Sample times (s) of a TimeSeries: its timestamps, else starting_time + k / rate."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    start = 0.0 if series.starting_time is None else float(series.starting_time)
    return start + np.arange(len(series.data)) / float(series.rate)


def read_nwb_bci_log(path: str | Path, *, imaging_series: str) -> dict[str, Any]:
    """The BCI log objects of an NWB file as arrays, for
    :func:`analysis.ingest.convert_nwb_bci_log` (which names what is missing).

    Parameters
    ----------
    path : the NWB file.
    imaging_series : the TwoPhotonSeries (in acquisition) whose volumes the log counts.

    Returns
    -------
    dict with ``imaging_series`` (its name), ``volume_times`` (s, one per volume) and
    ``volume_period`` (s); ``trials`` (DataFrame ``id, start_time, stop_time``, None
    without a trials table); ``series`` ({name: {"where", "times", "data"}} for each BCI
    TimeSeries found in ``processing/behavior/BCI``, else in ``acquisition``); and
    ``parameters`` ({parameter: value} of ``processing/behavior/BCITaskParameters``, None
    without that table).
    """
    from pynwb import NWBHDF5IO, TimeSeries

    path = Path(path)
    names = (*NWB_BCI_SERIES.values(), *NWB_BCI_OPTIONAL_SERIES.values(), NWB_SHIFT_SERIES)
    with io.raw_read_errors(path, "an NWB file", corrupt_format="NWB file"):
        with NWBHDF5IO(str(path), "r") as nwb_io:
            nwb = nwb_io.read()
            imaging = nwb.acquisition[imaging_series]
            volume_times = _nwb_times(imaging)
            rate, _ = _nwb_rate(imaging)
            behavior = nwb.processing.get("behavior")
            interfaces = {} if behavior is None else behavior.data_interfaces
            found = {}
            if NWB_BCI_CONTAINER in interfaces:
                container = interfaces[NWB_BCI_CONTAINER].time_series
                where = f"processing/behavior/{NWB_BCI_CONTAINER}"
                found = {n: (f"{where}/{n}", container[n]) for n in names if n in container}
            for name in names:
                if name not in found and isinstance(nwb.acquisition.get(name), TimeSeries):
                    found[name] = (f"acquisition/{name}", nwb.acquisition[name])
            series = {
                name: {
                    "where": where,
                    "times": _nwb_times(timeseries),
                    "data": np.asarray(timeseries.data[:], dtype=np.float64),
                }
                for name, (where, timeseries) in found.items()
            }
            trials = None
            if nwb.trials is not None:
                trials = pd.DataFrame(
                    {
                        "id": np.asarray(nwb.trials.id[:], dtype=np.int64),
                        "start_time": nwb.trials["start_time"].data[:],
                        "stop_time": nwb.trials["stop_time"].data[:],
                    }
                )
            parameters = None
            if NWB_BCI_PARAMETERS in interfaces:
                table = interfaces[NWB_BCI_PARAMETERS]
                if not {"parameter", "value"} <= set(table.colnames):
                    raise IngestError(
                        f"{path}: table processing/behavior/{NWB_BCI_PARAMETERS} has columns "
                        f"{list(table.colnames)}; it needs 'parameter' (name) and 'value', "
                        "one row per BCI task parameter (as analysis.export writes it)."
                    )
                parameters = dict(
                    zip(
                        (str(name) for name in table["parameter"].data[:]),
                        table["value"].data[:],
                        strict=True,
                    )
                )
    return {
        "imaging_series": imaging_series,
        "volume_times": volume_times,
        "volume_period": 1.0 / rate if rate else np.inf,
        "trials": trials,
        "series": series,
        "parameters": parameters,
    }


def _nwb_meta(folder: Path, path: Path, *, settings: IngestSettings) -> ImagingMeta:
    series = _nwb_series(path, settings=settings)
    volumetric = len(series[0]["shape"]) == 4
    if volumetric and len(series) > 1:
        raise IngestError(
            f"{path}: several TwoPhotonSeries {[s['name'] for s in series]} and "
            f"'{series[0]['name']}' is a (frame, x, y, z) volume; set ingest.nwb_series to "
            "the one volume series or to one 3-D series per plane."
        )
    rates = {s["name"]: s["rate"] for s in series}
    if any(r is None for r in rates.values()):
        fs_hz = None
    elif not np.allclose(list(rates.values()), series[0]["rate"], rtol=1e-3):
        raise IngestError(
            f"{path}: TwoPhotonSeries rates differ {rates} (Hz); the planes of a session are "
            "sampled once per volume. Set ingest.nwb_series to the series of one recording."
        )
    else:
        fs_hz = series[0]["rate"]
    n_planes = series[0]["shape"][3] if volumetric else len(series)
    names = [s["name"] for s in series]
    origin = {
        "n_planes": f"{path} (z of TwoPhotonSeries '{names[0]}')"
        if volumetric
        else f"{path} (TwoPhotonSeries {names})"
    }
    if fs_hz is not None:
        origin["fs_hz"] = f"{path} (TwoPhotonSeries '{names[0]}' {series[0]['rate_field']})"
    return ImagingMeta(
        "nwb",
        folder,
        (path,),
        fs_hz=fs_hz,
        n_planes=int(n_planes),
        origin=origin,
        details={"series": names, "shapes": [list(s["shape"]) for s in series]},
    )


def _plan_nwb(meta: ImagingMeta, n_planes: int) -> ImagingPlan:
    path = meta.files[0]
    names, shapes = meta.details["series"], meta.details["shapes"]
    if len(shapes[0]) == 4:
        planes = {
            plane: {"reader": "nwb", "file": str(path), "series": names[0], "z": plane}
            for plane in range(n_planes)
        }
        counts = dict.fromkeys(range(n_planes), shapes[0][0])
        frame_shapes = dict.fromkeys(range(n_planes), (shapes[0][2], shapes[0][1]))
    else:
        planes = {
            plane: {"reader": "nwb", "file": str(path), "series": name, "z": None}
            for plane, name in enumerate(names)
        }
        counts = {plane: shape[0] for plane, shape in enumerate(shapes)}
        frame_shapes = {plane: (shape[2], shape[1]) for plane, shape in enumerate(shapes)}
    n_frames, shape = check_plane_frames(counts, frame_shapes, source=str(path))
    planes = {p: {**source, "n_frames": n_frames} for p, source in planes.items()}
    return ImagingPlan("nwb", meta.files, n_frames, shape, planes)


def _iter_nwb(source: Mapping[str, Any], batch_frames: int) -> Iterator[np.ndarray]:
    from pynwb import NWBHDF5IO

    path = Path(source["file"])
    with io.raw_read_errors(path, "an NWB file", corrupt_format="NWB file"):
        with NWBHDF5IO(str(path), "r") as nwb_io:
            data = nwb_io.read().acquisition[source["series"]].data
            for start in range(0, source["n_frames"], batch_frames):
                stop = min(start + batch_frames, source["n_frames"])
                frames = (
                    data[start:stop] if source["z"] is None else data[start:stop, ..., source["z"]]
                )
                # NWB stores (frame, x, y): x runs along a row (columns), y down (rows)
                yield np.asarray(frames).transpose(0, 2, 1)


def _read_meta(folder: Path, files: list[Path], settings: IngestSettings) -> ImagingMeta:
    return _nwb_meta(folder, files[0], settings=settings)


FORMAT = ImagingFormat(
    "nwb", "nwb", ("*.nwb",), _read_meta, _plan_nwb, _iter_nwb, records_bci_log=True
)
