"""The rig's CLOOSE log (``BCI_Trials/<n>.mat``, struct StimData) converted to the plain
BCI log (github.com/harnett/CLOOSE, Run_GUI/Run_GUI.m).
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

# CLOOSE StimData (github.com/harnett/CLOOSE, Run_GUI/Run_GUI.m): fields read, then optional.
STIMDATA_FIELDS = (
    "Angle",
    "z_score",
    "NewTrial",
    "Reward_frames",
    "Aversive_frames",
    "threshold_used",
    "targetAngle",
)
STIMDATA_OPTIONAL = ("Licks", "Opto", "ImTranslateXY")
CLOOSE_ANGLE_GREY = -5.0  # Angle code of a trial's opening grey frames
CLOOSE_ANGLE_ITI = -1.0  # Angle code of inter-trial frames (grey or black)
CLOOSE_GREY_FRAMES = 15  # Run_GUI counts them in its trial length (FramesZ)
CLOOSE_SMOOTH_FRAMES = 3  # z = mean(x(n-2:n)) - range from the 3rd frame, x(n) - range before


def convert_stimdata(
    stim: Mapping[str, np.ndarray],
    *,
    meta: Mapping[str, Any] | None,
    path: str | Path,
    meta_path: str | Path,
) -> tuple[pd.DataFrame, dict]:
    """Convert a CLOOSE ``StimData`` struct to the plain BCI table and metadata.

    Mapping (CLOOSE's Run_GUI.m; MATLAB indices are 1-based, volumes ``n`` = 1..N):

    - ``Angle`` (1 x N, degrees; -5 = a trial's grey frames, -1 = inter-trial):
      ``angle_deg`` (NaN for both codes); ``trial`` is -1 on inter-trial frames.
    - ``NewTrial`` (1-based first volume of each trial, NaN-padded): ``new_trial`` = 1
      there; trial k runs from its start to the next start, minus inter-trial frames.
    - ``z_score`` (x(n) = mean dF/F(P+) - mean dF/F(P-), unsmoothed): ``readout`` =
      mean of x over volumes n-2..n as the rig smoothed it (x(n) for the first two).
    - ``Reward_frames``, ``Aversive_frames`` (1 x N): ``reward``, ``aversive`` (1 where > 0).
    - optional ``Licks`` (the rig's lick counter): ``licks`` = 1 where it changed, as
      Run_GUI's lick plot counts; ``Opto``: ``opto`` from its first N values (Run_GUI
      writes opto on reward by volume index); ``ImTranslateXY`` (2 x N, the online
      correction [col; row] applied with ``imtranslate``, NaN without motion correction):
      ``shift_row``, ``shift_col`` = minus the correction (frame displacement,
      :mod:`analysis.register`'s sign), left out when all NaN.
    - ``threshold_used`` ({range; threshold}): ``failure_bound``, ``threshold``;
      ``targetAngle``: ``target_angle_deg``. StimData has no maximum trial length:
      ``max_trial_frames`` comes from ``meta`` (bci_meta.yaml), which may repeat the
      other fields only with the same values.

    Parameters
    ----------
    stim : StimData fields as :func:`analysis.io.read_stimdata` returns them.
    meta : bci_meta.yaml of the session, or None when the folder has none.
    path : the .mat file, named in errors.
    meta_path : where bci_meta.yaml is (or belongs), named in errors.

    Returns
    -------
    (table, meta) : the BCI table (``frame, trial, new_trial, readout, angle_deg, reward,
    aversive`` + present optional columns) and metadata, to be checked by
    :func:`check_bci_frames` and :func:`check_bci_meta`.

    Raises
    ------
    IngestError
        A StimData field is missing or malformed, bci_meta.yaml disagrees with StimData,
        or ``max_trial_frames`` is missing.
    """
    for name in STIMDATA_FIELDS:
        if name not in stim:
            raise IngestError(
                f"{path}: StimData has no field '{name}'; a CLOOSE BCI log needs "
                f"{', '.join(STIMDATA_FIELDS)}. Use the file Run_GUI saved, or write "
                "bci_frames.tsv instead (README, 'BCI logs')."
            )
    angle = _stim_vector(stim, "Angle", path=path)
    n = angle.size
    x = _stim_vector(stim, "z_score", path=path, size=n)
    starts = _stim_trial_starts(stim["NewTrial"], n_frames=n, path=path)
    iti = angle == CLOOSE_ANGLE_ITI
    trial = np.full(n, -1, dtype=np.int64)
    for k, (start, stop) in enumerate(zip(starts, [*starts[1:], n], strict=True)):
        trial[start:stop] = k
    trial[iti] = -1
    new_trial = np.zeros(n, dtype=np.int64)
    new_trial[starts] = 1
    readout = x.copy()
    if n >= CLOOSE_SMOOTH_FRAMES:
        windows = np.lib.stride_tricks.sliding_window_view(x, CLOOSE_SMOOTH_FRAMES)
        readout[CLOOSE_SMOOTH_FRAMES - 1 :] = windows.mean(axis=1)
    columns: dict[str, np.ndarray] = {
        "frame": np.arange(n, dtype=np.int64),
        "trial": trial,
        "new_trial": new_trial,
        "readout": readout,
        "angle_deg": np.where(iti | (angle == CLOOSE_ANGLE_GREY), np.nan, angle),
        "reward": (_stim_vector(stim, "Reward_frames", path=path, size=n) > 0).astype(np.int64),
        "aversive": (_stim_vector(stim, "Aversive_frames", path=path, size=n) > 0).astype(np.int64),
    }
    if "Licks" in stim:
        counter = _stim_vector(stim, "Licks", path=path, size=n)
        columns["licks"] = np.concatenate([[0], np.diff(counter) != 0]).astype(np.int64)
    if "Opto" in stim:
        opto = _stim_vector(stim, "Opto", path=path)
        if opto.size < n:
            raise IngestError(
                f"{path}: StimData.Opto has {opto.size} values but StimData.Angle has {n} "
                "(one per imaging volume); the log is incomplete."
            )
        columns["opto"] = (opto[:n] > 0).astype(np.int64)
    if "ImTranslateXY" in stim:
        xy = np.asarray(stim["ImTranslateXY"], dtype=np.float64)
        if xy.shape != (2, n):
            raise IngestError(
                f"{path}: StimData.ImTranslateXY has shape {xy.shape}, expected (2, {n}) "
                "(column and row shift per imaging volume)."
            )
        if np.isfinite(xy).any():
            columns["shift_row"] = -xy[1]
            columns["shift_col"] = -xy[0]
    return pd.DataFrame(columns), _stim_meta(stim, meta, path=path, meta_path=meta_path)


def _stim_vector(
    stim: Mapping[str, np.ndarray], name: str, *, path: str | Path, size: int | None = None
) -> np.ndarray:
    """A StimData row (or column) vector as float64 (n,), checked against ``size``."""
    try:
        value = np.asarray(stim[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise IngestError(f"{path}: StimData.{name} must be a numeric vector.") from None
    if value.ndim > 2 or (value.ndim == 2 and min(value.shape) > 1):
        raise IngestError(
            f"{path}: StimData.{name} must be a vector (one value per imaging volume), got "
            f"shape {value.shape}."
        )
    value = value.ravel()
    if size is not None and value.size != size:
        raise IngestError(
            f"{path}: StimData.{name} has {value.size} values but StimData.Angle has {size} "
            "(one per imaging volume); the log is incomplete or its fields come from "
            "different runs."
        )
    return value


def _stim_trial_starts(new_trial: np.ndarray, *, n_frames: int, path: str | Path) -> list[int]:
    """0-based first volumes of the trials from StimData.NewTrial (1-based, NaN-padded)."""
    values = _stim_vector({"NewTrial": new_trial}, "NewTrial", path=path)
    values = values[np.isfinite(values)]
    ok = (
        np.all(values == np.round(values))
        and np.all((values >= 1) & (values <= n_frames))
        and np.all(np.diff(values) > 0)
    )
    if not ok:
        raise IngestError(
            f"{path}: StimData.NewTrial must list increasing 1-based volume indices in "
            f"1..{n_frames} (NaN padding allowed); got {values[:8].tolist()}..."
        )
    return [int(v) - 1 for v in values]


def _stim_scalar(value: Any, *, name: str, path: str | Path) -> float:
    array = np.asarray(value)
    if array.dtype == object and array.size == 1:  # a value inside a cell
        array = np.asarray(array.flat[0])
    try:
        number = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        number = np.empty(0)
    if number.size != 1:
        raise IngestError(f"{path}: StimData.{name} must be one number, got {value!r}.")
    return float(number.flat[0])


def _stim_meta(
    stim: Mapping[str, np.ndarray],
    meta: Mapping[str, Any] | None,
    *,
    path: str | Path,
    meta_path: str | Path,
) -> dict:
    used = np.asarray(stim["threshold_used"])
    if used.size != 2:
        raise IngestError(
            f"{path}: StimData.threshold_used must hold {{range; threshold}} (2 values), got "
            f"{used.size}."
        )
    from_log = {
        "failure_bound": _stim_scalar(used.flat[0], name="threshold_used{1}", path=path),
        "threshold": _stim_scalar(used.flat[1], name="threshold_used{2}", path=path),
        "target_angle_deg": _stim_scalar(stim["targetAngle"], name="targetAngle", path=path),
    }
    given = dict(meta or {})
    check_meta_agrees(given, from_log, source=f"{path} (StimData)", meta_path=meta_path)
    if "max_trial_frames" not in given:
        where = "has no field 'max_trial_frames'" if meta is not None else "not found"
        raise IngestError(
            f"{meta_path}: {where}; the CLOOSE log {path} does not record the maximum trial "
            "length. Add bci_meta.yaml with max_trial_frames = Run_GUI's frames per trial "
            f"minus its {CLOOSE_GREY_FRAMES} grey frames (README, 'BCI logs')."
        )
    trial_frames = given["max_trial_frames"]
    if isinstance(trial_frames, bool) or not isinstance(trial_frames, (int, float)):
        raise IngestError(
            f"{meta_path}: field 'max_trial_frames' must be a number, got {trial_frames!r}; "
            "fix the value."
        )
    return {**given, **from_log}
