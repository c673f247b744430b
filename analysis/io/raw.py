"""Raw session input, read-only: YAML, tables, JSON, CLOOSE .mat logs, checksums; every
failure a RawInputError naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


class RawInputError(ValueError):
    """A raw input file is missing, unreadable or malformed; the message names file and fix."""

    __module__ = "analysis.io"  # its public home, as tracebacks and logs name it


@contextlib.contextmanager
def raw_read_errors(path: Path, what: str, *, corrupt_format: str | None = None) -> Iterator[None]:
    """Turn the ways a raw file can fail to read into RawInputError naming the file.

    With ``corrupt_format`` (binary readers such as tifffile, scipy.io and h5py, which
    raise many exception types on a damaged file) any other exception is reported as a
    corrupt or truncated file of that format.
    """
    try:
        yield
    except RawInputError:
        raise
    except FileNotFoundError:
        raise RawInputError(
            f"{path}: file not found; add it or fix the session's path in the sessions table "
            "(README, 'The plain session format', lists the files a session needs)."
        ) from None
    except PermissionError:
        raise RawInputError(
            f"{path}: no read permission (on the file or a folder above it); grant read "
            "access to the raw data, e.g. chmod -R a+rX on the raw folder."
        ) from None
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        json.JSONDecodeError,
    ) as err:
        raise RawInputError(f"{path}: not {what} ({err}).") from None
    except Exception as err:
        if corrupt_format is None:
            raise
        raise RawInputError(
            f"{path}: cannot read {corrupt_format} ({type(err).__name__}: {err}); the file is "
            "corrupt or truncated: copy it again from the acquisition machine."
        ) from None


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping, naming the file on any parse error."""
    import yaml

    path = Path(path)
    try:
        with raw_read_errors(path, "valid YAML"):
            data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RawInputError(f"{path}: not valid YAML ({err}); fix the file's syntax.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RawInputError(f"{path}: expected a YAML mapping of keys to values.")
    return data


def read_raw_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a raw per-frame TSV (e.g. ``bci_frames.tsv``), naming the file on failure."""
    path = Path(path)
    with raw_read_errors(path, "a readable tab-separated table"):
        return pd.read_csv(path, sep="\t")


def read_raw_json(path: str | os.PathLike) -> Any:
    """Read a raw JSON file (e.g. ``targets.json``), naming the file on failure."""
    path = Path(path)
    with raw_read_errors(path, "valid JSON"):
        return json.loads(path.read_text())


def read_stimdata(path: str | os.PathLike, *, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Fields of the CLOOSE ``StimData`` struct in a MATLAB .mat file, in MATLAB's shapes.

    Reads v5/v6/v7 files (CLOOSE's Run_GUI saves with ``-v6``) with
    :func:`scipy.io.loadmat` and v7.3 files (HDF5) with h5py. Both give the same arrays:
    a 1 x n row vector is ``(1, n)``, a scalar ``(1, 1)``, a cell array an object array
    of such arrays.

    Parameters
    ----------
    path : the .mat file.
    fields : StimData fields to read; those the struct lacks are left out of the result
        (the caller decides which it needs).

    Raises
    ------
    RawInputError
        The file is missing, unreadable, not a .mat file, corrupt or truncated, or holds
        no ``StimData`` struct; the message names the file.
    """
    import h5py

    path = Path(path)
    with raw_read_errors(path, "a MATLAB .mat file", corrupt_format="MATLAB .mat file"):
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as mat:
                return _stimdata_hdf5(mat, path, fields)
        return _stimdata_v5(path, fields)


def _no_stimdata(path: Path, found: Sequence[str]) -> RawInputError:
    return RawInputError(
        f"{path}: no struct 'StimData' (variables: {sorted(found)}); a CLOOSE BCI log "
        "(BCI_Trials/<n>.mat, saved by Run_GUI) holds it. Put the right file in the session "
        "folder or write bci_frames.tsv instead (README, 'BCI logs')."
    )


def _stimdata_v5(path: Path, fields: Sequence[str]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat, whosmat
    from scipy.io.matlab import mat_struct

    data = loadmat(path, variable_names=["StimData"], struct_as_record=False, squeeze_me=False)
    stim = data.get("StimData")
    if stim is None or stim.size != 1 or not isinstance(stim.flat[0], mat_struct):
        raise _no_stimdata(path, [name for name, _, _ in whosmat(path)])
    struct = stim.flat[0]
    return {
        name: np.asarray(getattr(struct, name)) for name in fields if name in struct._fieldnames
    }


def _stimdata_hdf5(mat: Any, path: Path, fields: Sequence[str]) -> dict[str, np.ndarray]:
    import h5py

    group = mat.get("StimData")
    if not isinstance(group, h5py.Group):
        raise _no_stimdata(path, [name for name in mat if name != "#refs#"])
    return {name: _hdf5_value(group[name], mat, path) for name in fields if name in group}


def _hdf5_value(node: Any, mat: Any, path: Path) -> np.ndarray:
    """A MATLAB v7.3 array as loadmat gives it: HDF5 stores MATLAB's dims reversed."""
    import h5py

    if not isinstance(node, h5py.Dataset):
        raise RawInputError(f"{path}: {node.name} is a struct, expected an array.")
    if node.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = node[()]
    matlab_class = node.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    if matlab_class == "cell":  # object references into /#refs#
        cells = np.empty(data.shape, dtype=object)
        for index, ref in np.ndenumerate(data):
            cells[index] = _hdf5_value(mat[ref], mat, path)
        return cells.T
    return np.asarray(data).T


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 22) -> str:
    """Checksum of a raw file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
