"""The plain BCI log (bci_frames.tsv, bci_meta.yaml) checked, and which log a session has."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.readers.base import (
    IngestError,
)
from analysis.vocabulary import (
    BCI_META_REQUIRED,
    BCI_OPTIONAL_COLUMNS,
    BCI_REQUIRED_COLUMNS,
)


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


def check_meta_agrees(
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
