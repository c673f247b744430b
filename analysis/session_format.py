"""Writers of the plain session format and readers/writers of simulator truth files.

Plain session format (DESIGN.md section 3), one folder ``<out>/raw/<subject>/<session>/``:

- ``session.yaml``: ``fs_hz`` (volume rate), ``n_planes``, ``plane_roles``
  (``{0: soma, 1: dendrite}``), ``bci_plane`` (0).
- ``plane0.tif``, ``plane1.tif``: uint16 (time, row, col), one page per frame, zlib level 9 (no
  predictor: on shot-noise-dominated frames it makes files ~7% larger) or uncompressed.
- ``bci_frames.tsv``: frame, trial, new_trial, readout, angle_deg (empty when grey or
  black), reward, aversive, licks, shift_row, shift_col (online rigid shift, px), and in a
  cohort with conditions opto (1 on lit frames).
- ``bci_meta.yaml``: threshold, failure_bound, target_angle_deg, max_trial_frames.
- ``targets.json``: ``[{"id", "group", "plane", "polygon": [[row, col], ...]}]`` in raw
  coordinates (the simulator also writes ``neuron``, the true neuron id).

``<out>/sessions.tsv``: the workflow's sessions table for the cohort (subject, session, path
relative to ``<out>/raw``, condition).

Truth, ``<out>/truth/<subject>/``:

- ``neurons.tsv`` (neuron, group, target_id, centroid_row/col in reference coords, tuft,
  coupling_gain, coupling_intercept, burst_rate_hz), ``dendrites.tsv`` (tuft, neuron
  (-1 = distractor), n_segments, centroid_row/col, offset_px), ``transforms.tsv``
  (session, shift_row, shift_col, rotation_deg: reference -> session coords),
  ``sessions.tsv`` (session, threshold, failure_bound, n_trials, n_hits, and condition in
  a cohort with conditions; per-target burst rates are in truth.nc).
- ``<session>/truth.nc``: ``soma_mask(neuron,row,col)``, ``dendrite_mask(tuft,row,col)``
  (session raw coords), ``spikes(neuron,time)``, ``soma_calcium(neuron,time)``,
  ``dendrite_calcium(tuft,time)`` (noise-free dF/F), ``neuropil(plane,time)``,
  ``shift_row/shift_col(time)`` (rigid), ``nonrigid_amp_row/col(time)`` (+ attrs
  ``nonrigid_phase_row/col``, ``nonrigid_wavelength_px``), ``error``,
  ``error_derivative``, ``epoch`` (time; +1 reduction, -1 increase, 0 none),
  ``trend_epoch`` (same codes: the error trend before each frame, which carries the
  planted residual),
  ``online_f(target,time)``, ``burst_rate_hz(neuron)``; attrs hold the transform.
- ``<session>/sd_events.tsv``: every coincident and dendrite-only event (see
  :func:`analysis.simulate.simulate_dendrites`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
import xarray as xr
import yaml

from analysis import dims, io
from analysis.simulate.settings import EPOCH_CODES, SimulateSettings

# Keyword arguments of tifffile's write per compression name. zlib level 9 writes the
# smallest files but costs ~30 ms per 256 x 256 frame, level 1 ~1 ms for 10% more bytes.
_TIFF_WRITE_ARGS: dict[str, dict[str, Any]] = {
    "zlib": {"compression": "zlib", "compressionargs": {"level": 9}},
    "zlib-fast": {"compression": "zlib", "compressionargs": {"level": 1}},
    "none": {},
}
TIFF_COMPRESSIONS = tuple(_TIFF_WRITE_ARGS)


def session_dir(out: str | os.PathLike, subject: str, session: str) -> Path:
    """``<out>/raw/<subject>/<session>``."""
    return Path(out) / "raw" / subject / session


def truth_dir(out: str | os.PathLike, subject: str) -> Path:
    """``<out>/truth/<subject>``."""
    return Path(out) / "truth" / subject


class PlaneWriter:
    """Append uint16 (time, row, col) chunks to a TIFF, one page per frame.

    ``compression`` is "zlib" (level 9, smallest files), "zlib-fast" (level 1, ~30x
    faster to write, ~10% larger) or "none" (as most rigs write; 128 kB per 256 x 256
    frame). ``max_bytes``, the frames' uncompressed size at most, picks BigTIFF where a
    classic TIFF's 4 GiB offsets could not hold them (a 796 x 512 plane past 5200 frames).
    """

    def __init__(
        self, path: str | os.PathLike, *, compression: str = "zlib", max_bytes: int = 0
    ) -> None:
        if compression not in TIFF_COMPRESSIONS:
            raise ValueError(
                f"PlaneWriter: compression must be one of {TIFF_COMPRESSIONS}, got {compression!r}"
            )
        self.path = Path(path)
        self._compression = _TIFF_WRITE_ARGS[compression]
        # room for the per-page headers (~200 B a frame) below the classic limit
        self._bigtiff = max_bytes > 2**32 - 2**27
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tif: tifffile.TiffWriter | None = None

    def __enter__(self) -> PlaneWriter:
        self._tif = tifffile.TiffWriter(self.path, bigtiff=self._bigtiff)
        return self

    def write(self, chunk: np.ndarray) -> None:
        if chunk.dtype != np.uint16 or chunk.ndim != 3:
            raise ValueError(
                f"PlaneWriter: need uint16 (time, row, col), got {chunk.dtype} {chunk.shape}"
            )
        assert self._tif is not None
        for frame in chunk:
            self._tif.write(frame, metadata=None, **self._compression)

    def __exit__(self, *exc: Any) -> None:
        assert self._tif is not None
        self._tif.close()


def _yaml(obj: dict, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(obj, sort_keys=False))


def write_session(
    out: str | os.PathLike,
    subject: str,
    day: dict[str, Any],
    *,
    threshold: float,
    failure_bound: float,
    settings: SimulateSettings,
) -> None:
    """Write the non-imaging files of one session in the plain session format."""
    folder = session_dir(out, subject, day["session"])
    params = settings.task_params
    _yaml(
        {
            "fs_hz": settings.fs_hz,
            "n_planes": 2,
            "plane_roles": {0: "soma", 1: "dendrite"},
            "bci_plane": 0,
            "notes": "simulated by analysis.simulate",
        },
        folder / "session.yaml",
    )
    _yaml(
        {
            "threshold": float(threshold),
            "failure_bound": float(failure_bound),
            "target_angle_deg": float(params.target_angle_deg),
            "max_trial_frames": int(params.max_trial_frames),
        },
        folder / "bci_meta.yaml",
    )
    bci = day["bci"][
        [
            "frame",
            "trial",
            "new_trial",
            "readout",
            "angle_deg",
            "reward",
            "aversive",
            "licks",
            "shift_row",
            "shift_col",
            *(["opto"] if "opto" in day["bci"] else []),
        ]
    ]
    with io.atomic_path(folder / "bci_frames.tsv") as tmp:
        bci.to_csv(tmp, sep="\t", index=False, float_format="%.9g", na_rep="")
    io.write_json(day["targets"], folder / "targets.json")


def truth_dataset(day: dict[str, Any], *, fs_hz: float) -> xr.Dataset:
    """Per-session truth as a Dataset with named dims (see module docstring)."""
    n_frames = day["soma_calcium"].shape[1]
    frame = np.arange(n_frames)
    time = {dims.TIME: frame / fs_hz, dims.FRAME: (dims.TIME, frame)}
    sg = day["sgeom"]
    motion = day["motion"]
    epoch = np.array([EPOCH_CODES[e] for e in day["error"].epoch], dtype=np.int8)
    trend_epoch = np.array([EPOCH_CODES[e] for e in day["error"].trend_epoch], dtype=np.int8)
    ds = xr.Dataset(
        {
            "soma_mask": (("neuron", dims.ROW, dims.COL), sg["soma_mask"]),
            "dendrite_mask": (("tuft", dims.ROW, dims.COL), sg["dendrite_mask"]),
            "spikes": (("neuron", dims.TIME), day["spikes"]),
            "soma_calcium": (("neuron", dims.TIME), day["soma_calcium"]),
            "dendrite_calcium": (("tuft", dims.TIME), day["dendrite_calcium"]),
            "neuropil": (("plane", dims.TIME), day["neuropil_trace"]),
            "shift_row": (dims.TIME, motion["shift_row"]),
            "shift_col": (dims.TIME, motion["shift_col"]),
            "nonrigid_amp_row": (dims.TIME, motion["nonrigid_amp_row"]),
            "nonrigid_amp_col": (dims.TIME, motion["nonrigid_amp_col"]),
            "error": (dims.TIME, day["error"].error.to_numpy(np.float32)),
            "error_derivative": (dims.TIME, day["error"].error_derivative.to_numpy(np.float32)),
            "epoch": (dims.TIME, epoch),
            "trend_epoch": (dims.TIME, trend_epoch),
            "online_f": (("target", dims.TIME), day["online_f"].astype(np.float32)),
            "burst_rate_hz": ("neuron", day["rates_hz"]),
        },
        coords={
            **time,
            "neuron": np.arange(sg["soma_mask"].shape[0]),
            "tuft": np.arange(sg["dendrite_mask"].shape[0]),
            "plane": [0, 1],
            "target": [t["id"] for t in day["targets"]],
        },
        attrs={
            "session": day["session"],
            **{f"transform_{k}": v for k, v in day["transform"].items()},
            "nonrigid_phase_row": motion["nonrigid_phase_row"],
            "nonrigid_phase_col": motion["nonrigid_phase_col"],
            "nonrigid_wavelength_px": motion["nonrigid_wavelength_px"],
            "epoch_codes": EPOCH_CODES,
            "units": "masks 0-1; calcium dF/F; shifts px (raw = motion-free(r - dr, c - dc))",
        },
    )
    ds["epoch"].attrs["codes"] = "1 reduction, -1 increase, 0 none"
    return ds


def write_simulation(
    out: str | os.PathLike, result: dict[str, Any], *, settings: SimulateSettings
) -> None:
    """Write sessions (non-imaging files) and truth of one simulated subject."""
    subject = result["subject"]
    geom = result["geometry"]
    tdir = truth_dir(out, subject)
    io.write_tsv(geom["neurons"], tdir / "neurons.tsv")
    io.write_tsv(geom["dendrites"], tdir / "dendrites.tsv")
    io.write_tsv(
        pd.DataFrame([{"session": d["session"], **d["transform"]} for d in result["days"]]),
        tdir / "transforms.tsv",
    )
    rows = []
    for day in result["days"]:
        write_session(
            out,
            subject,
            day,
            threshold=result["threshold"],
            failure_bound=result["failure_bound"],
            settings=settings,
        )
        io.write_netcdf(
            truth_dataset(day, fs_hz=settings.fs_hz),
            tdir / day["session"] / "truth.nc",
            stage="simulate",
            settings=settings.to_dict(),
        )
        io.write_tsv(day["events"], tdir / day["session"] / "sd_events.tsv")
        rows.append(
            {
                "session": day["session"],
                "threshold": result["threshold"],
                "failure_bound": result["failure_bound"],
                "n_trials": int(day["bci"].new_trial.sum()),
                "n_hits": int(day["bci"].reward.sum()),
                # only in cohorts with conditions: earlier simulations' files stay identical
                **({"condition": result["condition"]} if settings.inhibited_subjects else {}),
            }
        )
    io.write_tsv(pd.DataFrame(rows), tdir / "sessions.tsv")


def write_sessions_table(out: str | os.PathLike, *, settings: SimulateSettings) -> Path:
    """``<out>/sessions.tsv``: the workflow's sessions table for the simulated cohort
    (paths relative to ``<out>/raw``, the ``raw_root``), with each subject's condition."""
    rows = [
        {
            "subject": subject,
            "session": session,
            "path": f"{subject}/{session}",
            "condition": settings.condition_of(subject),
        }
        for subject in (f"m{k + 1:02d}" for k in range(settings.n_subjects))
        for session in (f"day{d + 1:02d}" for d in range(settings.n_days))
    ]
    path = Path(out) / "sessions.tsv"
    io.write_tsv(pd.DataFrame(rows), path)
    return path


def read_truth_subject(out: str | os.PathLike, subject: str) -> dict[str, pd.DataFrame]:
    """Subject-level truth tables: neurons, dendrites, transforms, sessions."""
    tdir = truth_dir(out, subject)
    return {
        name: io.read_tsv(tdir / f"{name}.tsv")
        for name in ("neurons", "dendrites", "transforms", "sessions")
    }


def read_truth_session(
    out: str | os.PathLike, subject: str, session: str
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Per-session truth: (truth.nc Dataset, sd_events table)."""
    tdir = truth_dir(out, subject) / session
    return io.read_netcdf(tdir / "truth.nc"), io.read_tsv(tdir / "sd_events.tsv")
