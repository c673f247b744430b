"""Frozen, validated settings: one dataclass per stage, built from one config section.

Every stage module defines ``<Stage>Settings(StageSettings)`` with units in field names
and checks in ``__post_init__``. ``from_mapping`` rejects unknown keys (with a suggestion),
so a typo in ``config/config.yaml`` fails at start instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T", bound="StageSettings")


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range."""


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _type_ok(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def reject_unknown_keys(keys: typing.Iterable[str], allowed: typing.Iterable[str], *, what: str):
    """Raise ConfigError on the first key not in ``allowed``, suggesting the closest one.

    ``what`` starts the message, e.g. ``"config: unknown top-level key"``.
    """
    allowed = sorted(allowed)
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{what} '{key}'{hint} Valid keys: {', '.join(allowed)}.")


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Base class: subclasses are frozen dataclasses named after their config section."""

    section: typing.ClassVar[str] = ""

    @classmethod
    def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None) -> T:
        """Build settings from a config section, rejecting unknown or mistyped keys.

        Missing keys take the dataclass default. Lists become tuples so the result
        stays hashable and immutable.
        """
        if mapping is not None and not isinstance(mapping, Mapping):
            raise ConfigError(
                f"config section '{cls.section}' must be a mapping of keys to values, got "
                f"{mapping!r}; see config/config.yaml for its keys."
            )
        mapping = dict(mapping or {})
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        hints = typing.get_type_hints(cls)
        reject_unknown_keys(mapping, fields, what=f"config section '{cls.section}': unknown key")
        values = {}
        for key, value in mapping.items():
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            if not _type_ok(value, hints[key]):
                raise ConfigError(
                    f"config section '{cls.section}': key '{key}' must be of type "
                    f"{_describe(hints[key])}, got {value!r} ({type(value).__name__}). "
                    f"Fix the value in config/config.yaml."
                )
            if hints[key] is float and isinstance(value, int):
                value = float(value)
            values[key] = value
        try:
            return cls(**values)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"config section '{cls.section}': {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view, e.g. for provenance attrs."""
        return dataclasses.asdict(self)


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def require(condition: bool, message: str) -> None:
    """Raise ValueError with ``message`` unless ``condition``; for ``__post_init__`` checks."""
    if not condition:
        raise ValueError(message)


def check_device(device: str, field: str) -> None:
    """Raise ValueError unless ``device`` names a torch device: cpu, cuda, cuda:<n> or mps.

    Only the spelling: whether the machine has that device is known where the stage runs
    (:func:`torch_device`), not where the config is read (a login node without a GPU).
    """
    kind, colon, index = device.partition(":")
    require(
        kind in ("cpu", "cuda", "mps") and (not colon or (kind == "cuda" and index.isdigit())),
        f"{field} must be 'cpu', 'cuda', 'cuda:<n>' or 'mps', got {device!r}",
    )


def torch_device(device: str, field: str) -> Any:
    """The ``torch.device`` for ``device``, or a ConfigError naming ``field`` when this
    machine lacks it (instead of a CUDA error deep inside suite2p)."""
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(index or 0) >= count:
            raise ConfigError(
                f"{field} is {device!r} but torch {torch.__version__} sees {count} CUDA "
                f"device(s) on this machine; set {field}: cpu, or run this job on a GPU node"
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{field} is 'mps' but this machine has no MPS device; set it to cpu")
    return torch.device(device)
