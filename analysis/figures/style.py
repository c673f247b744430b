"""Colours, orders and small helpers shared by the figures."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.tables import require_columns
from analysis.vocabulary import EPOCHS, GROUPS, NON_TARGET

GROUP_COLORS = {"P+": "#d62728", "P-": "#1f77b4", NON_TARGET: "#7f7f7f"}
OUTCOME_COLORS = {"hit": "#2ca02c", "failure": "#9467bd"}
EPOCH_ORDER = EPOCHS
GROUP_ORDER = (*GROUPS, NON_TARGET)
#: Conditions in order (control first, then by name).
CONDITION_COLORS = ("#4d4d4d", "#e08214", "#8073ac", "#1b7837")


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (4.0, 3.0)) -> Axes:
    """``ax``, or the axes of a new (non-pyplot) figure of ``figsize`` inches."""
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def require_table_columns(table: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    require_columns(table, columns, name)
    if table.empty:
        raise ValueError(f"{name} table is empty; nothing to plot")


def standard_error(values: pd.Series) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
