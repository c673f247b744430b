"""Table checks and keys shared by the stats modules."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis.tables import require_columns


def require_input_columns(table: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    require_columns(
        table,
        columns,
        name,
        hint=" See the analysis.stats module docstring for the input contract.",
    )


def require_values(table: pd.DataFrame, column: str, allowed: Iterable[str], name: str) -> None:
    allowed = tuple(allowed)
    # the distinct values first: a cohort's events table has millions of rows
    bad = sorted({str(v) for v in pd.unique(table[column].dropna())} - set(allowed))
    if bad:
        raise ValueError(f"{name}.{column} has invalid value(s) {bad}; allowed: {list(allowed)}")


def rows_by_session(table: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Row positions of each (subject, session), in table order (one pass, not a scan per
    session: string comparisons over a cohort's millions of events are slow)."""
    if table.empty:
        return {}
    return {
        key: rows for key, rows in table.groupby(["subject", "session"], sort=False).indices.items()
    }


def session_day_index(table: pd.DataFrame) -> pd.Series:
    """0-based order of each row's session within its subject (session names sort by date)."""
    order = {
        (subj, sess): i
        for subj, sessions in table.groupby("subject")["session"]
        for i, sess in enumerate(sorted(sessions.unique()))
    }
    return pd.Series(
        [order[(s, d)] for s, d in zip(table["subject"], table["session"], strict=True)],
        index=table.index,
        dtype=int,
    )
