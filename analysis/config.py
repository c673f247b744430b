"""Pipeline configuration: stage settings and the sessions table.

``config/config.yaml`` has top-level keys ``raw_root`` (folder of raw sessions),
``sessions`` (path of the sessions table) and ``results`` (output folder), plus one
section per stage whose keys are exactly the fields of that stage's settings dataclass.
The JSON schema in ``workflow/schemas/config.schema.yaml`` is generated from those
dataclasses (``python -m analysis.config --write``) and a test keeps them equal.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.settings import ConfigError, StageSettings, reject_unknown_keys
from analysis.vocabulary import DEFAULT_CONDITION

#: config section -> "module:SettingsClass"; the order is the DAG order.
STAGES = {
    "simulate": "analysis.simulate.settings:SimulateSettings",
    "ingest": "analysis.ingest:IngestSettings",
    "register": "analysis.register:RegisterSettings",
    "align_days": "analysis.align_days:AlignDaysSettings",
    "segment": "analysis.segment.settings:SegmentSettings",
    "track": "analysis.track.settings:TrackSettings",
    "extract": "analysis.extract.settings:ExtractSettings",
    "bci": "analysis.bci.settings:BciSettings",
    "stats": "analysis.stats.settings:StatsSettings",
    "qc": "analysis.qc:QcSettings",
    "export": "analysis.export.settings:ExportSettings",
    "calibrate": "analysis.calibrate:CalibrateSettings",
    "validate": "analysis.validate.score:ValidateSettings",
}
TOP_LEVEL = {
    "raw_root": "folder holding <subject>/<session>/ raw session folders (read-only)",
    "sessions": "path of the sessions table (TSV)",
    "results": "folder the pipeline writes results and logs under",
}
SESSION_COLUMNS = {
    "subject": "subject (animal) id",
    "session": "session name, unique within a subject; sessions sort by date (dayNN or YYYY-MM-DD)",
    "path": "session folder, relative to raw_root (or absolute)",
}
SESSION_OVERRIDES = {"fs_hz": float, "n_planes": int}
#: Fields that change how a rule runs, never what it writes: left out of the rules'
#: params (Snakemake reruns a job whose params changed), read from the config instead.
UNTRACKED = {
    "ingest": ("batch_frames",),
    "register": ("keep_movie",),
    "extract": ("max_memory_gb",),
}
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


def settings_class(section: str) -> type[StageSettings]:
    module_name, class_name = STAGES[section].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_settings(config: Mapping[str, Any]) -> dict[str, StageSettings]:
    """Build every stage's settings from the config, rejecting unknown keys."""
    allowed = set(TOP_LEVEL) | set(STAGES)
    reject_unknown_keys(config, allowed, what="config: unknown top-level key")
    return {
        section: settings_class(section).from_mapping(config.get(section)) for section in STAGES
    }


def rule_settings(
    section: str, params: Mapping[str, Any], config: Mapping[str, Any]
) -> StageSettings:
    """A rule's settings: its ``params`` with the section's :data:`UNTRACKED` fields
    from the ``config``."""
    cls = settings_class(section)
    full = cls.from_mapping(config.get(section))
    return cls.from_mapping({**params, **{k: getattr(full, k) for k in UNTRACKED.get(section, ())}})


def _schema_for_type(annotation: Any) -> dict:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if annotation is type(None):
        return {"type": "null"}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin in (typing.Union, __import__("types").UnionType):
        return {"anyOf": [_schema_for_type(a) for a in typing.get_args(annotation)]}
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema_for_type(args[0])}
        return {
            "type": "array",
            "prefixItems": [_schema_for_type(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    raise TypeError(f"no JSON schema for settings type {annotation!r}")


def config_schema() -> dict:
    """JSON schema of ``config/config.yaml``, generated from the settings dataclasses."""
    properties: dict[str, Any] = {
        key: {"type": "string", "description": text} for key, text in TOP_LEVEL.items()
    }
    for section in STAGES:
        cls = settings_class(section)
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        props = {}
        for name, field in fields.items():
            prop = _schema_for_type(hints[name])
            default = field.default
            if default is not dataclasses.MISSING:
                prop["default"] = list(default) if isinstance(default, tuple) else default
            props[name] = prop
        properties[section] = {
            "type": "object",
            "description": (cls.__doc__ or "").strip().splitlines()[0],
            "properties": props,
            "additionalProperties": False,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "BCI dendrites pipeline configuration (generated from analysis/*Settings).",
        "type": "object",
        "properties": properties,
        "required": list(TOP_LEVEL),
        "additionalProperties": False,
    }


def load_sessions(table_path: str | Path, *, raw_root: str | Path) -> pd.DataFrame:
    """Read and validate the sessions table.

    Returns a table with columns subject, session, condition (``DEFAULT_CONDITION`` where
    the table has none), session_dir (absolute path) and any override columns, sorted by
    subject then session.
    """
    table_path = Path(table_path)
    try:
        table = pd.read_csv(
            table_path,
            sep="\t",
            dtype={"subject": str, "session": str, "path": str, "condition": str},
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{table_path}: sessions table not found; set 'sessions' in the config."
        ) from None
    missing = [c for c in SESSION_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(
            f"{table_path}: missing column(s) {missing}; required columns are "
            f"{list(SESSION_COLUMNS)}."
        )
    allowed = [*SESSION_COLUMNS, *SESSION_OVERRIDES, "condition"]
    unknown = [c for c in table.columns if c not in allowed]
    if unknown:
        raise ConfigError(f"{table_path}: unknown column(s) {unknown}; allowed: {allowed}.")
    conditions = table["condition"] if "condition" in table else pd.Series(index=table.index)
    table["condition"] = conditions.astype(object).fillna(DEFAULT_CONDITION).astype(str).str.strip()
    for column in SESSION_COLUMNS:
        if table[column].isna().any():
            row = int(table[column].isna().to_numpy().nonzero()[0][0])
            raise ConfigError(f"{table_path}: column '{column}' is empty in row {row + 1}.")
    duplicated = table.duplicated(["subject", "session"], keep=False)
    if duplicated.any():
        pairs = table.loc[duplicated, ["subject", "session"]].drop_duplicates().to_numpy().tolist()
        raise ConfigError(
            f"{table_path}: duplicated session name(s) {pairs}; each (subject, session) "
            "must appear once."
        )
    for column in ("subject", "session", "condition"):
        bad = ~table[column].str.fullmatch(r"[A-Za-z0-9_.-]+")
        if bad.any():
            raise ConfigError(
                f"{table_path}: {column} {table[column][bad].iloc[0]!r} may only contain "
                "letters, digits, '_', '-' and '.'."
            )
    raw_root = Path(raw_root)
    table["session_dir"] = [
        str(Path(p) if Path(p).is_absolute() else raw_root / p) for p in table["path"]
    ]
    return table.sort_values(["subject", "session"]).reset_index(drop=True)


def session_overrides(row: Mapping[str, Any]) -> dict[str, Any]:
    """The sessions-table values that override ``session.yaml`` (empty cells do not)."""
    return {
        key: cast(row[key])
        for key, cast in SESSION_OVERRIDES.items()
        if key in row and not pd.isna(row[key])
    }


CONFIG_PATH = SCHEMA_PATH.parent.parent.parent / "config" / "config.yaml"
CONFIG_HEADER = """\
# Pipeline configuration. Every stage section lists all of that stage's settings with
# their defaults; units are in the key names. Keys are checked against
# workflow/schemas/config.schema.yaml and the stage's settings dataclass in analysis/:
# an unknown or mistyped key stops the run at start and names the key.
# Defaults run the bundled synthetic sample (data_sample/).
# Regenerate after changing a settings dataclass: python -m analysis.config --write
"""


def default_config() -> dict[str, Any]:
    """The default configuration: the bundled sample and every stage's defaults."""
    config: dict[str, Any] = {
        "raw_root": "data_sample/raw",
        "sessions": "config/sessions.tsv",
        "results": "results",
    }
    for section in STAGES:
        defaults = dataclasses.asdict(settings_class(section)())
        config[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write", action="store_true", help=f"write {SCHEMA_PATH} and {CONFIG_PATH}"
    )
    args = parser.parse_args(argv)
    import yaml

    schema = "# Generated by `python -m analysis.config --write`; do not edit.\n" + yaml.safe_dump(
        config_schema(), sort_keys=False
    )
    config = CONFIG_HEADER + yaml.safe_dump(default_config(), sort_keys=False)
    if args.write:
        SCHEMA_PATH.write_text(schema)
        CONFIG_PATH.write_text(config)
    else:
        print(config, end="")


if __name__ == "__main__":
    main()
