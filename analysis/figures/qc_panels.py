"""The QC panels: cursor replay, registration, pairing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes

from analysis.figures.style import new_axes, require_table_columns


def plot_cursor_replay(replay: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """QC: the logged online readout vs the readout replayed from offline traces.

    Parameters
    ----------
    replay : pandas.DataFrame
        ``results/bci/<subject>/<session>/replay.tsv``: ``frame, logged, replayed``
        (readout z; NaN where undefined).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Two lines ("logged", "replayed"); the title gives their correlation.
    """
    require_table_columns(replay, ["frame", "logged", "replayed"], "replay")
    ax = new_axes(ax, figsize=(6.0, 2.5))
    ax.plot(replay["frame"], replay["logged"], color="k", lw=0.8, label="logged")
    ax.plot(replay["frame"], replay["replayed"], color="C1", lw=0.8, alpha=0.8, label="replayed")
    ok = np.isfinite(replay["logged"]) & np.isfinite(replay["replayed"])
    r = (
        np.corrcoef(replay.loc[ok, "logged"], replay.loc[ok, "replayed"])[0, 1]
        if ok.sum() > 2
        else np.nan
    )
    ax.set_title(f"cursor replay: r = {r:.3f}", fontsize="medium")
    ax.set_xlabel("frame")
    ax.set_ylabel("readout (z)")
    ax.legend(frameon=False)
    return ax


def plot_registration_qc(
    registration: xr.Dataset | pd.DataFrame, *, ax: Axes | None = None
) -> Axes:
    """QC: rigid shifts (px) and correlation to the reference image over time.

    Parameters
    ----------
    registration : xarray.Dataset or pandas.DataFrame
        ``registration.nc`` of one session and plane (or a table of it): ``shift_row,
        shift_col, corr_ref`` along ``time`` (s); a DataFrame gives ``time`` as a
        column.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The shift axes (lines "shift_row", "shift_col"); the correlation is drawn on a
        twin axis (line "corr_ref"), reachable as ``ax.figure.axes``.
    """
    names = ["time", "shift_row", "shift_col", "corr_ref"]
    if isinstance(registration, xr.Dataset):
        missing = [n for n in names if n not in registration.variables]
        if missing:
            raise ValueError(f"registration dataset is missing {missing}")
        table = pd.DataFrame({n: np.asarray(registration[n]) for n in names})
    else:
        require_table_columns(registration, names, "registration")
        table = registration
    ax = new_axes(ax, figsize=(6.0, 2.5))
    ax.plot(table["time"], table["shift_row"], lw=0.8, label="shift_row")
    ax.plot(table["time"], table["shift_col"], lw=0.8, label="shift_col")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("shift (px)")
    ax.legend(frameon=False, loc="upper left")
    twin = ax.twinx()
    twin.plot(table["time"], table["corr_ref"], color="0.4", lw=0.6, label="corr_ref")
    twin.set_ylabel("corr. to reference")
    return ax


def plot_pairing_qc(pairs: pd.DataFrame, *, ax: Axes | None = None, bins: int = 20) -> Axes:
    """QC: soma-dendrite activity correlation of accepted vs rejected pairs.

    Parameters
    ----------
    pairs : pandas.DataFrame
        ``results/track/<subject>/pairs.tsv``: ``corr, paired``.
    ax : matplotlib.axes.Axes, optional
    bins : int
        Histogram bins over the correlation range.

    Returns
    -------
    matplotlib.axes.Axes
        Two step histograms ("paired (n)" and "not paired (n)").
    """
    require_table_columns(pairs, ["corr", "paired"], "pairs")
    ax = new_axes(ax)
    corr = pairs["corr"].to_numpy(float)
    paired = pairs["paired"].astype(bool).to_numpy()
    edges = np.linspace(np.nanmin(corr), np.nanmax(corr) + 1e-9, bins + 1)
    for mask, label, color in ((paired, "paired", "C2"), (~paired, "not paired", "0.5")):
        ax.hist(
            corr[mask], bins=edges, histtype="step", color=color, label=f"{label} ({mask.sum()})"
        )
    ax.set_xlabel("soma-dendrite correlation")
    ax.set_ylabel("pairs")
    ax.legend(frameon=False)
    return ax


def plot_no_data(message: str, *, ax: Axes | None = None) -> Axes:
    """An empty panel that says why there is nothing to draw (e.g. too few events)."""
    ax = new_axes(ax)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return ax
