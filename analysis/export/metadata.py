"""Session start time, subject and identifier of an NWB file, from session.yaml and subject.yaml."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.export.settings import (
    PLACEHOLDER_DATE,
    SEXES,
    SUBJECT_FIELDS,
    WEIGHT_PATTERN,
    ExportSettings,
    is_age,
)


def _as_datetime(value: Any, *, path: str | Path, field: str) -> tuple[dt.datetime, bool]:
    """A YAML/ISO date or datetime as an aware datetime; True when only a date was given."""
    if isinstance(value, str):
        try:
            value = (
                dt.date.fromisoformat(value)
                if len(value.strip()) == 10
                else dt.datetime.fromisoformat(value)
            )
        except ValueError:
            raise ValueError(
                f"{path}: field '{field}' is {value!r}, not an ISO 8601 date or date-time; "
                "write e.g. 2024-03-05 or 2024-03-05T10:30:00+01:00."
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"{path}: field '{field}' ({value.isoformat()}) has no UTC offset; add one, "
                "e.g. 2024-03-05T10:30:00+01:00 (or give only the date)."
            )
        return value, False
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), True
    raise ValueError(
        f"{path}: field '{field}' must be an ISO 8601 date or date-time, got {value!r}."
    )


def compute_session_start_time(
    session: str, *, session_meta: Mapping[str, Any], path: str | Path
) -> tuple[dt.datetime, str]:
    """The session's start time and a sentence saying where it came from.

    Parameters
    ----------
    session : str
        Session name (``dayNN``, ``YYYY-MM-DD``, ...).
    session_meta : mapping
        The session's ``session.yaml``; its optional ``session_start_time`` (ISO 8601
        date-time with a UTC offset, or a date) wins.
    path : str or Path
        The ``session.yaml`` path, named in errors.

    Returns
    -------
    (datetime.datetime, str)
        Timezone-aware start time (the time of imaging volume 0), and its source.

    Examples
    --------
    >>> compute_session_start_time("day03", session_meta={}, path="session.yaml")[0].date()
    datetime.date(2000, 1, 3)
    """
    if session_meta.get("session_start_time") is not None:
        when, date_only = _as_datetime(
            session_meta["session_start_time"], path=path, field="session_start_time"
        )
        detail = " (a date only: midnight UTC)" if date_only else ""
        return when, f"session_start_time from {path}{detail}"
    found = re.search(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)", session)
    if found:
        try:
            day = dt.date(*map(int, found.groups()))
        except ValueError:
            day = None
        if day is not None:
            return (
                dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC),
                f"the date in the session name '{session}' (time of day unknown: midnight UTC)",
            )
    numbered = re.fullmatch(r"day(\d+)", session, flags=re.IGNORECASE)
    if numbered and int(numbered.group(1)) >= 1:
        when = PLACEHOLDER_DATE + dt.timedelta(days=int(numbered.group(1)) - 1)
        return when, (
            f"PLACEHOLDER: the real date is unknown; 2000-01-01 UTC plus {session}'s day "
            f"number minus one (set session_start_time in {path})"
        )
    return PLACEHOLDER_DATE, (
        f"PLACEHOLDER: the real date is unknown; 2000-01-01 UTC (set session_start_time in {path})"
    )


def compute_subject(
    subject: str,
    *,
    settings: ExportSettings,
    subject_meta: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Keyword arguments of :class:`pynwb.file.Subject` for one subject.

    Parameters
    ----------
    subject : str
        Subject id.
    settings : ExportSettings
        Defaults for fields ``subject.yaml`` leaves out (``subject_*``).
    subject_meta : mapping, optional
        The subject's ``subject.yaml`` (fields in :data:`SUBJECT_FIELDS`).
    path : str or Path, optional
        The ``subject.yaml`` path, named in errors.

    Returns
    -------
    dict
        ``subject_id``, ``species``, ``sex``, ``age`` or ``date_of_birth``,
        ``description`` and, when known, ``strain``, ``genotype``, ``weight``.
    """
    meta = dict(subject_meta or {})
    for key in meta:
        if key not in SUBJECT_FIELDS:
            raise ValueError(
                f"{path}: unknown field '{key}'; valid fields are {', '.join(SUBJECT_FIELDS)}."
            )
    for key in ("species", "sex", "age", "strain", "genotype", "description", "weight"):
        if key in meta and not isinstance(meta[key], str):
            raise ValueError(f"{path}: field '{key}' must be text, got {meta[key]!r}.")
    if meta.get("sex", "U") not in SEXES:
        raise ValueError(
            f"{path}: field 'sex' is {meta['sex']!r}; use one of {', '.join(SEXES)} "
            "(M male, F female, U unknown, O other)."
        )
    if "age" in meta and not is_age(meta["age"]):
        raise ValueError(
            f"{path}: field 'age' is {meta['age']!r}, not an ISO 8601 duration; write e.g. "
            "P90D (90 days), P12W, or a range P60D/P90D."
        )
    if "weight" in meta and not WEIGHT_PATTERN.fullmatch(meta["weight"]):
        raise ValueError(
            f"{path}: field 'weight' is {meta['weight']!r}; write a number and a unit, e.g. '25 g'."
        )
    info: dict[str, Any] = {
        "subject_id": subject,
        "species": meta.get("species", settings.subject_species),
        "sex": meta.get("sex", settings.subject_sex),
        "strain": meta.get("strain", settings.subject_strain),
        "genotype": meta.get("genotype", settings.subject_genotype),
        "weight": meta.get("weight"),
    }
    if "date_of_birth" in meta:
        info["date_of_birth"] = _as_datetime(
            meta["date_of_birth"], path=path or "subject.yaml", field="date_of_birth"
        )[0]
    if "age" in meta or "date_of_birth" not in meta:
        info["age"] = meta.get("age", settings.subject_age)
    source = f"from {path}" if subject_meta is not None else "no subject.yaml"
    info["description"] = meta.get(
        "description",
        f"mouse {subject}; metadata {source}, missing fields from the export settings",
    )
    return {k: v for k, v in info.items() if v is not None}


def find_subject_yaml(session_dir: str | Path) -> list[str]:
    """``[path]`` of the optional ``subject.yaml`` beside a session folder, else ``[]``."""
    path = Path(session_dir).parent / "subject.yaml"
    return [str(path)] if path.is_file() else []


def nwb_identifier(subject: str, session: str, raw_sha256: Mapping[str, str]) -> str:
    """A UUID fixed by the subject, session and raw data (same raw data, same id)."""
    key = json.dumps(
        {"subject": subject, "session": session, "raw": sorted(raw_sha256.values())},
        sort_keys=True,
    )
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bci-dendrites:{key}"))
