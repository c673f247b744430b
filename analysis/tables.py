"""Checks shared by the functions that take tidy tables (stats, figures), and runs of a
boolean vector (bci epochs, extract events)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
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


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs of a boolean vector."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))
