"""Ingest: check a raw session and split it into planes, in the plain session format's terms.

Input contract (DESIGN.md section 3, read-only): a session folder with ``session.yaml``
(``plane_roles``, optional ``bci_plane``; ``fs_hz`` and ``n_planes`` unless the imaging
metadata records them), imaging files, a BCI log, ``bci_meta.yaml`` and ``targets.json``.
Imaging is ``plane<k>.tif`` per plane or interleaved TIFF stacks (frame k belongs to plane
k mod n_planes), or what a rig wrote: ScanImage TIFF, Scanbox .sbx, HDF5 or NWB, read by
:mod:`analysis.readers` into the same per-plane frames. The BCI log is
``bci_frames.tsv`` (one row per imaging volume) or, when that is absent, the rig's CLOOSE
log ``BCI_Trials/<n>.mat`` (struct ``StimData``), converted by :func:`convert_stimdata` to
the same table and metadata (``bci_meta.yaml`` then only needs ``max_trial_frames``), or,
when the imaging is an NWB file and neither is there, that file's trials table and BCI
time series (:func:`convert_nwb_bci_log`).

Output contract: per plane a ``(time, row, col)`` int16 binary movie; a session record
with metadata, frame counts, dropped/saturated frames and raw sha256 checksums; the
validated BCI table, BCI metadata and targets.

Every problem raises :class:`IngestError` naming the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# the ingest stage's error, settings and frame checks live below the readers; re-exported
from analysis.readers.base import (
    INT16_MAX,
    ImagingMeta,
    IngestError,
    IngestSettings,
)
from analysis.readers.base import check_interleaved_count as check_interleaved_count
from analysis.readers.base import check_plane_frames as check_plane_frames
from analysis.vocabulary import (
    BCI_META_REQUIRED,
    BCI_OPTIONAL_COLUMNS,
    BCI_REQUIRED_COLUMNS,
    NWB_BCI_CONTAINER,
    NWB_BCI_OPTIONAL_SERIES,
    NWB_BCI_PARAMETERS,
    NWB_BCI_SERIES,
    NWB_SHIFT_SERIES,
    PLANE_ROLES,
)

log = logging.getLogger(__name__)

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


@dataclasses.dataclass(frozen=True)
class SessionMeta:
    """What ``session.yaml`` (plus sessions-table overrides) says about a session."""

    fs_hz: float
    n_planes: int
    plane_roles: dict[int, str]
    bci_plane: int


def check_session_meta(meta: Mapping[str, Any], *, path: str | Path) -> SessionMeta:
    """Validate the ``session.yaml`` mapping (overrides already merged in).

    Parameters
    ----------
    meta : mapping with ``fs_hz`` (volume rate, Hz), ``n_planes``, ``plane_roles``
        ({plane index: 'soma' | 'dendrite'}), optional ``bci_plane`` (default: the soma plane).
    path : the file the mapping came from, named in errors.
    """
    known = {"fs_hz", "n_planes", "plane_roles", "bci_plane", "notes", "session_start_time"}
    for key in meta:
        if key not in known:
            raise IngestError(
                f"{path}: unknown field '{key}'; valid fields are {', '.join(sorted(known))}."
            )
    start = meta.get("session_start_time")
    if start is not None and not isinstance(start, (datetime.date, datetime.datetime)):
        try:
            datetime.datetime.fromisoformat(str(start))
        except ValueError:
            raise IngestError(
                f"{path}: field 'session_start_time' must be an ISO 8601 date or time, e.g. "
                f"2026-03-14T09:30:00-05:00, got {start!r}."
            ) from None
    for key in ("fs_hz", "n_planes", "plane_roles"):
        if key not in meta:
            raise IngestError(
                f"{path}: missing field '{key}'; add it (or set it as a column of the "
                "sessions table)."
            )
    fs_hz = meta["fs_hz"]
    if isinstance(fs_hz, bool) or not isinstance(fs_hz, (int, float)) or not fs_hz > 0:
        raise IngestError(f"{path}: field 'fs_hz' must be a positive number (Hz), got {fs_hz!r}.")
    n_planes = meta["n_planes"]
    if isinstance(n_planes, bool) or not isinstance(n_planes, int) or n_planes < 1:
        raise IngestError(f"{path}: field 'n_planes' must be an integer >= 1, got {n_planes!r}.")
    roles_in = meta["plane_roles"]
    if not isinstance(roles_in, Mapping):
        raise IngestError(
            f"{path}: field 'plane_roles' must map plane index to role, e.g. "
            "{0: soma, 1: dendrite}."
        )
    roles: dict[int, str] = {}
    for plane, role in roles_in.items():
        try:
            plane_index = int(plane)
        except (TypeError, ValueError):
            raise IngestError(f"{path}: plane_roles key {plane!r} is not a plane index.") from None
        if not 0 <= plane_index < n_planes:
            raise IngestError(
                f"{path}: plane_roles names plane {plane_index} but n_planes is {n_planes}."
            )
        if role not in PLANE_ROLES:
            raise IngestError(
                f"{path}: plane_roles[{plane_index}] is {role!r}; use one of {PLANE_ROLES}."
            )
        roles[plane_index] = role
    if "soma" not in roles.values():
        raise IngestError(f"{path}: plane_roles must name a 'soma' plane (the BCI plane).")
    bci_plane = meta.get("bci_plane", next(p for p, r in roles.items() if r == "soma"))
    if bci_plane not in roles:
        raise IngestError(f"{path}: bci_plane {bci_plane!r} is not among plane_roles.")
    return SessionMeta(float(fs_hz), n_planes, dict(sorted(roles.items())), int(bci_plane))


FS_RTOL = 0.01  # session.yaml's fs_hz may round the metadata's rate to 1%


def merge_imaging_meta(
    given: Mapping[str, Any], imaging: ImagingMeta, *, sources: Mapping[str, str]
) -> dict[str, Any]:
    """session.yaml fields (overrides merged in), with ``fs_hz`` / ``n_planes`` filled in
    from the imaging metadata where not set.

    Parameters
    ----------
    given : session.yaml merged with the sessions-table overrides.
    imaging : :class:`analysis.readers.ImagingMeta` (``fs_hz``, ``n_planes``, ``origin``).
    sources : {field: where the user set it}, named in errors.

    Raises
    ------
    IngestError
        A set field disagrees with the metadata (``fs_hz`` by more than 1%); the message
        names both places.
    """
    out = dict(given)
    for key, value in (("fs_hz", imaging.fs_hz), ("n_planes", imaging.n_planes)):
        if value is None:
            continue
        if key not in given:
            out[key] = value
            continue
        user = given[key]
        if isinstance(user, bool) or not isinstance(user, (int, float)):
            continue  # check_session_meta names the wrong type
        same = np.isclose(user, value, rtol=FS_RTOL, atol=0.0) if key == "fs_hz" else user == value
        if not same:
            raise IngestError(
                f"{sources[key]}: '{key}' is {user!r} but {imaging.origin[key]} says "
                f"{value:g}; remove '{key}' there (the imaging metadata sets it) or correct it."
            )
    return out


def read_session_meta(
    folder: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    settings: IngestSettings | None = None,
) -> tuple[SessionMeta, ImagingMeta]:
    """The session's metadata: session.yaml, sessions-table overrides and imaging metadata.

    Reads ``session.yaml`` and the imaging files' metadata (never frames); fields the user
    did not set are taken from the metadata (:func:`merge_imaging_meta`).

    Returns
    -------
    (:class:`SessionMeta`, :class:`analysis.readers.ImagingMeta`)
    """
    from analysis import io, readers

    folder = Path(folder)
    path = folder / "session.yaml"
    overrides = dict(overrides or {})
    given = {**io.read_yaml(path), **overrides}
    imaging = readers.read_imaging_meta(folder, settings=settings or IngestSettings())
    sources = {
        key: f"{folder}: the sessions table" if key in overrides else str(path)
        for key in ("fs_hz", "n_planes")
    }
    return check_session_meta(
        merge_imaging_meta(given, imaging, sources=sources), path=path
    ), imaging


def check_bci_frames(table: pd.DataFrame, *, n_frames: int, path: str | Path) -> pd.DataFrame:
    """Validate the per-volume BCI log against the imaging.

    Parameters
    ----------
    table : bci_frames.tsv as read, or as :func:`convert_stimdata` made it from a .mat.
    n_frames : imaging volumes (frames per plane); the log must have one row per volume.
    path : named in errors.

    Returns
    -------
    A copy with required columns typed (ints for indices/flags, float for readout/angle).
    """
    missing = [c for c in BCI_REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise IngestError(
            f"{path}: missing column(s) {missing}; the BCI log needs columns "
            f"{list(BCI_REQUIRED_COLUMNS)} (see README, 'BCI logs')."
        )
    if len(table) != n_frames:
        raise IngestError(
            f"{path}: {len(table)} rows but the imaging has {n_frames} volumes; the BCI log "
            "must have one row per imaging volume. Check that the log and the imaging "
            "belong to the same session and that no frames were dropped."
        )
    out = table.copy()
    for column in (*BCI_REQUIRED_COLUMNS, *[c for c in BCI_OPTIONAL_COLUMNS if c in table]):
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna() & out[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise IngestError(
                f"{path}: column '{column}' has a non-numeric value {out[column].iloc[row]!r} "
                f"at row {row}; fix or remove it."
            )
        out[column] = values
    integral = ("frame", "trial", "new_trial", "reward", "aversive")
    for column in integral:
        if out[column].isna().any():
            row = int(np.flatnonzero(out[column].isna().to_numpy())[0])
            raise IngestError(f"{path}: column '{column}' is empty at row {row}.")
        out[column] = out[column].astype(np.int64)
    if not np.array_equal(out["frame"].to_numpy(), np.arange(n_frames)):
        raise IngestError(f"{path}: column 'frame' must count volumes 0..{n_frames - 1} in order.")
    return out


def check_bci_meta(meta: Mapping[str, Any], *, path: str | Path) -> dict:
    """Validate ``bci_meta.yaml``: threshold, failure bound, target angle, max trial length."""
    out = {}
    for key in BCI_META_REQUIRED:
        if key not in meta:
            raise IngestError(
                f"{path}: missing field '{key}'; bci_meta.yaml needs "
                f"{', '.join(BCI_META_REQUIRED)} (see README, 'BCI logs')."
            )
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IngestError(
                f"{path}: field '{key}' must be a number, got {value!r}; fix the value."
            )
        out[key] = value
    if not out["threshold"] > out["failure_bound"]:
        raise IngestError(
            f"{path}: threshold ({out['threshold']}) must exceed failure_bound "
            f"({out['failure_bound']})."
        )
    out["max_trial_frames"] = int(out["max_trial_frames"])
    return {**dict(meta), **out}


def find_bci_log(folder: str | Path) -> Path:
    """The BCI log of a session folder: ``bci_frames.tsv``, else its one CLOOSE .mat, else
    its NWB imaging file (read by :func:`convert_nwb_bci_log`).

    The .mat is looked for as ``BCI_Trials/*.mat`` (where Run_GUI saves it) and
    ``*.mat`` in the folder itself, except a Scanbox info file (``<name>.mat`` beside
    ``<name>.sbx``).

    Raises
    ------
    IngestError
        No ``bci_frames.tsv`` and more than one .mat file (the message lists them), or
        NWB files that are not the folder's one imaging file
        (:func:`analysis.readers.find_imaging`).
    analysis.io.RawInputError
        Neither ``bci_frames.tsv`` nor any .mat or NWB file.
    """
    from analysis.io import RawInputError
    from analysis.readers import imaging_bci_log

    folder = Path(folder)
    table = folder / "bci_frames.tsv"
    if table.exists():
        return table
    sbx_info = {p.with_suffix(".mat") for p in folder.glob("*.sbx")}  # Scanbox's, not a log
    mats = sorted(folder.glob("BCI_Trials/*.mat")) + sorted(
        p for p in folder.glob("*.mat") if p not in sbx_info
    )
    if len(mats) == 1:
        return mats[0]
    if mats:
        raise IngestError(
            f"{folder}: several CLOOSE logs {[str(m.relative_to(folder)) for m in mats]} and "
            "no bci_frames.tsv; a session has one BCI log. Move the .mat files of other "
            "recordings out of the session folder, or write bci_frames.tsv."
        )
    nwb = imaging_bci_log(folder)  # refuses several NWB files or other formats beside
    if nwb is not None:
        return nwb
    raise RawInputError(
        f"{folder}: no BCI log; add bci_frames.tsv or the rig's CLOOSE log "
        "BCI_Trials/<n>.mat, or record it in the session's NWB imaging file (trials table "
        "and BCI time series; README, 'BCI logs')."
    )


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
    _check_meta_agrees(given, from_log, source=f"{path} (StimData)", meta_path=meta_path)
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


def _check_meta_agrees(
    given: Mapping[str, Any],
    from_log: Mapping[str, float],
    *,
    source: str,
    meta_path: str | Path,
) -> None:
    """bci_meta.yaml may repeat a field the rig's log records only with the same value.

    Parameters
    ----------
    given : bci_meta.yaml as read.
    from_log : the fields the log records.
    source : the log (file and object), named in errors.
    meta_path : bci_meta.yaml, named in errors.
    """
    for key, value in from_log.items():
        if key not in given:
            continue
        other = given[key]
        same = (
            isinstance(other, (int, float))
            and not isinstance(other, bool)
            and np.isclose(other, value, rtol=1e-6, atol=0.0)
        )
        if not same:
            raise IngestError(
                f"{meta_path}: field '{key}' is {other!r} but {source} says {value!r}; "
                f"remove '{key}' from bci_meta.yaml (the rig's log sets it) or correct it."
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
    _check_meta_agrees(given, from_log, source=f"{path} ({table})", meta_path=meta_path)
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


# polygons drawn at the edge of the live image overshoot it by a fraction of a pixel
TARGET_EDGE_TOLERANCE_PX = 1.0


def _clip_polygon(polygon: np.ndarray, *, shape: tuple[int, int], where: str) -> np.ndarray:
    """Clip vertices up to TARGET_EDGE_TOLERANCE_PX outside the field (pixel edges at -0.5
    and size - 0.5) into it with a warning; further out is an IngestError."""
    low, high = -0.5, np.asarray(shape, float) - 0.5
    clipped = np.clip(polygon, low, high)
    outside_px = np.abs(polygon - clipped).max()
    if outside_px > TARGET_EDGE_TOLERANCE_PX:
        vertex = polygon[np.abs(polygon - clipped).max(axis=1).argmax()]
        raise IngestError(
            f"{where}: polygon vertex {vertex.tolist()} lies outside the {shape[0]} x "
            f"{shape[1]} field of view by {outside_px:.2f} px (more than "
            f"{TARGET_EDGE_TOLERANCE_PX:g} px); targets must be in that day's raw imaging "
            "coordinates (row, col)."
        )
    if outside_px > 0:
        log.warning(
            "%s: polygon vertices up to %.2f px outside the %d x %d field of view were "
            "clipped to its edge",
            where,
            outside_px,
            *shape,
        )
    return clipped


def check_targets(
    targets: Any, *, shape: tuple[int, int], n_planes: int, path: str | Path
) -> list[dict]:
    """Validate online targets: id, group P+/P-, plane, polygon of (row, col) inside the FOV."""
    if not isinstance(targets, list) or not targets:
        raise IngestError(f"{path}: expected a non-empty JSON list of target objects.")
    seen = set()
    out = []
    for index, target in enumerate(targets):
        where = f"{path}: target {index}"
        if not isinstance(target, dict):
            raise IngestError(f"{where} is not an object.")
        for key in ("id", "group", "plane", "polygon"):
            if key not in target:
                raise IngestError(f"{where} lacks field '{key}'.")
        if target["id"] in seen:
            raise IngestError(f"{where}: duplicate id {target['id']!r}.")
        seen.add(target["id"])
        if target["group"] not in ("P+", "P-"):
            raise IngestError(f"{where}: group must be 'P+' or 'P-', got {target['group']!r}.")
        if not (isinstance(target["plane"], int) and 0 <= target["plane"] < n_planes):
            raise IngestError(f"{where}: plane {target['plane']!r} is not a plane index.")
        polygon = np.asarray(target["polygon"], dtype=float)
        if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
            raise IngestError(f"{where}: polygon must be >= 3 [row, col] vertices.")
        if not np.isfinite(polygon).all():
            raise IngestError(f"{where} (id {target['id']!r}): polygon has a non-finite vertex.")
        polygon = _clip_polygon(polygon, shape=shape, where=f"{where} (id {target['id']!r})")
        out.append({**target, "polygon": polygon.tolist()})
    return out


def inspect_session(
    folder: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    settings: IngestSettings | None = None,
) -> dict:
    """Read and check every raw file of one session folder (what the ingest rule runs).

    Reads the imaging files' metadata and headers (never the pixels, see
    :mod:`analysis.readers`), the BCI log (``bci_frames.tsv``, a CLOOSE .mat converted by
    :func:`convert_stimdata`, or the NWB imaging file's trials and BCI series converted by
    :func:`convert_nwb_bci_log`), its metadata and the targets, and checks them against
    each other.

    Parameters
    ----------
    folder : session folder (see module docstring).
    overrides : session.yaml fields set in the sessions table; they win over the file.
    settings : ingest settings (which channel, HDF5 dataset or NWB series to read).

    Returns
    -------
    dict with ``meta`` (:class:`SessionMeta`), ``imaging``
    (:class:`analysis.readers.ImagingPlan`: format, files, per-plane sources),
    ``n_frames`` (volumes = frames per plane), ``shape`` ((rows, cols), pixels),
    ``bci_log`` (path (str) of the log read, see :func:`find_bci_log`), ``bci_frames``
    (checked table), ``bci_meta`` (dict) and ``targets`` (list of dict).

    Raises
    ------
    IngestError
        A file disagrees with the format or with another file; names file, field and fix.
    analysis.io.RawInputError
        A file is missing, unreadable, corrupt or truncated; names the file.
    """
    from analysis import io, readers

    folder = Path(folder)
    meta, imaging_meta = read_session_meta(folder, overrides=overrides, settings=settings)
    imaging = readers.plan_imaging(imaging_meta, n_planes=meta.n_planes)
    n_frames, shape = imaging.n_frames, imaging.shape
    bci_log = find_bci_log(folder)
    meta_path = folder / "bci_meta.yaml"
    if bci_log.suffix == ".tsv":
        bci_table, bci_meta = io.read_raw_table(bci_log), io.read_yaml(meta_path)
        bci_meta_source = meta_path
    else:
        given = io.read_yaml(meta_path) if meta_path.exists() else None
        if bci_log.suffix == ".nwb":
            record = readers.read_nwb_bci_log(
                bci_log, imaging_series=imaging.planes[meta.bci_plane]["series"]
            )
            convert = convert_nwb_bci_log
        else:
            record = io.read_stimdata(bci_log, fields=(*STIMDATA_FIELDS, *STIMDATA_OPTIONAL))
            convert = convert_stimdata
        bci_table, bci_meta = convert(record, meta=given, path=bci_log, meta_path=meta_path)
        bci_meta_source = bci_log
    return {
        "meta": meta,
        "imaging": imaging,
        "n_frames": n_frames,
        "shape": shape,
        "bci_log": str(bci_log),
        "bci_frames": check_bci_frames(bci_table, n_frames=n_frames, path=bci_log),
        "bci_meta": check_bci_meta(bci_meta, path=bci_meta_source),
        "targets": check_targets(
            io.read_raw_json(folder / "targets.json"),
            shape=shape,
            n_planes=meta.n_planes,
            path=folder / "targets.json",
        ),
    }


def convert_frames(frames: np.ndarray, *, settings: IngestSettings) -> dict[str, np.ndarray]:
    """Convert raw frames to the int16 registration dtype and flag problem frames.

    Returns
    -------
    dict with ``frames`` (int16), ``dropped`` (bool per frame: any NaN or all zero; NaN
    pixels are set to 0, documented as a dropped frame), ``saturated`` (bool per frame:
    more than ``max_saturated_fraction`` of pixels at or above ``saturation_value``).
    """
    data = np.asarray(frames)
    n_pixels = data.shape[1] * data.shape[2]
    if data.dtype.kind == "f":
        nan_pixels = np.isnan(data).reshape(len(data), -1).any(axis=1)
        data = np.nan_to_num(data, nan=0.0)
    else:
        nan_pixels = np.zeros(len(data), dtype=bool)
    flat = data.reshape(len(data), -1)
    all_zero = ~flat.any(axis=1)
    saturated = (flat >= settings.saturation_value).sum(axis=1) > (
        settings.max_saturated_fraction * n_pixels
    )
    converted = np.clip(data, np.iinfo(np.int16).min, INT16_MAX).astype(np.int16)
    return {"frames": converted, "dropped": nan_pixels | all_zero, "saturated": saturated}


def fill_plane(
    batches: Iterable[np.ndarray],
    out: np.ndarray,
    *,
    settings: IngestSettings,
    source: str = "the raw files",
) -> dict[str, np.ndarray]:
    """Copy one plane's frames from raw frame batches into ``out``, converting to int16.

    Parameters
    ----------
    batches : iterable of arrays ``(frames, row, col)``
        The plane's frames in time order, e.g. :func:`analysis.readers.iter_plane`.
    out : writable array ``(time, row, col)`` int16
        Receives the plane's frames (e.g. a memmap from ``analysis.io.create_movie``).
    settings : IngestSettings
    source : str
        What the frames come from (file or folder), named in errors.

    Returns
    -------
    dict with per-frame ``dropped`` and ``saturated`` flags (see :func:`convert_frames`).

    Raises
    ------
    IngestError
        If the batches hold fewer or more frames than ``out`` has.
    """
    n_frames = len(out)
    dropped = np.zeros(n_frames, dtype=bool)
    saturated = np.zeros(n_frames, dtype=bool)
    written = 0
    for frames in batches:
        if written + len(frames) > n_frames:
            written += len(frames)
            break
        converted = convert_frames(frames, settings=settings)
        stop = written + len(frames)
        out[written:stop] = converted["frames"]
        dropped[written:stop] = converted["dropped"]
        saturated[written:stop] = converted["saturated"]
        written = stop
    if written != n_frames:
        raise IngestError(
            f"{source}: the plane yielded {'more than ' if written > n_frames else ''}"
            f"{written} frames, expected {n_frames}; the raw files changed since the ingest "
            "rule checked them: rerun from ingest."
        )
    return {"dropped": dropped, "saturated": saturated}
