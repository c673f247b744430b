"""Checks shared by the functions that take tidy tables (stats, figures)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def require_columns(
    table: pd.DataFrame, columns: Iterable[str], name: str, *, hint: str = ""
) -> None:
    """Raise a clear error unless ``table`` is a DataFrame with all ``columns``.

    ``name`` is the table's role in messages (e.g. "events"); ``hint`` says where its
    contract is documented.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{name} table is missing column(s) {missing}; it has {list(table.columns)}.{hint}"
        )
