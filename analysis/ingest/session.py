"""session.yaml checked and merged with the imaging metadata and the sessions table."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.readers.base import (
    ImagingMeta,
    IngestError,
    IngestSettings,
)
from analysis.vocabulary import (
    PLANE_ROLES,
)


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
