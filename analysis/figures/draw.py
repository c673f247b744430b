"""Whole figures from the saved tables: the paper figures and each subject's QC figures."""

from __future__ import annotations

import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.figures import paper, qc_panels
from analysis.vocabulary import DEFAULT_CONDITION


def _panel(draw, table: pd.DataFrame, ax: Axes, what: str, **kwargs) -> None:
    if table is None or table.empty:
        qc_panels.plot_no_data(f"no {what} in this dataset", ax=ax)
    else:
        draw(table, ax=ax, **kwargs)


def _grid(n_panels: int, *, n_cols: int, panel_size: tuple[float, float]) -> list[Axes]:
    n_rows = max(1, -(-n_panels // n_cols))
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    return list(fig.subplots(n_rows, n_cols, squeeze=False).ravel())


def draw_paper_figures(
    tables: dict[str, pd.DataFrame], *, n_example_pairs: int = 4
) -> dict[str, Figure]:
    """Compose the paper-style figures from the saved stats tables.

    Parameters
    ----------
    tables : dict
        ``results/stats/<name>.tsv`` tables by name (behaviour, group_activity, sd_events,
        sd_fits, contrasts, outcome_timecourse, separation, early_residual_change, network,
        condition_separation, condition_contrasts).
    n_example_pairs : int
        Soma-dendrite pairs (those with most events) shown with their fits.

    Returns
    -------
    dict of figure name -> Figure: ``fig1_learning``, ``fig2_sd_fits``,
    ``fig3_residuals_group_epoch``, ``fig4_outcome_residuals``,
    ``ed13_signed_separation``, ``fig5_conditions``.
    """
    figures = {}
    axes = _grid(3, n_cols=3, panel_size=(4.0, 3.0))
    _panel(paper.plot_learning_curve, tables["behaviour"], axes[0], "behaviour", metric="hit_rate")
    _panel(
        paper.plot_learning_curve,
        tables["behaviour"],
        axes[1],
        "behaviour",
        metric="rewards_per_min",
    )
    _panel(paper.plot_group_activity, tables["group_activity"], axes[2], "target activity")
    figures["fig1_learning"] = axes[0].figure

    fits = tables["sd_fits"]
    examples = fits.nlargest(n_example_pairs, "n_events") if not fits.empty else fits
    axes = _grid(
        max(1, len(examples)),
        n_cols=min(n_example_pairs, max(1, len(examples))),
        panel_size=(3.5, 3.0),
    )
    if examples.empty:
        qc_panels.plot_no_data("no soma-dendrite pair had enough coincident events", ax=axes[0])
    events = tables["sd_events"]
    if "kind" in events:
        events = events[events["kind"] != "dendrite_only"]
    for ax, (_, fit) in zip(axes, examples.iterrows(), strict=False):
        pair = events[
            (events["subject"] == fit["subject"])
            & (events["soma_roi"] == fit["soma_roi"])
            & (events["dendrite_roi"] == fit["dendrite_roi"])
        ]
        paper.plot_sd_fit(pair, fit, ax=ax)
    figures["fig2_sd_fits"] = axes[0].figure

    axes = _grid(1, n_cols=1, panel_size=(4.5, 3.5))
    _panel(paper.plot_residuals_by_group_epoch, tables["contrasts"], axes[0], "residual contrasts")
    figures["fig3_residuals_group_epoch"] = axes[0].figure

    axes = _grid(1, n_cols=1, panel_size=(4.5, 3.5))
    _panel(
        paper.plot_outcome_residuals,
        tables["outcome_timecourse"],
        axes[0],
        "outcome-aligned events",
    )
    figures["fig4_outcome_residuals"] = axes[0].figure

    axes = _grid(3, n_cols=3, panel_size=(4.0, 3.2))
    _panel(paper.plot_signed_separation, tables["separation"], axes[0], "signed separation")
    _panel(
        paper.plot_residual_vs_change, tables["early_residual_change"], axes[1], "early residuals"
    )
    _panel(paper.plot_network_prediction, tables["network"], axes[2], "network prediction")
    figures["ed13_signed_separation"] = axes[0].figure
    figures["fig5_conditions"] = _conditions_figure(tables)
    return figures


def _conditions_figure(tables: dict[str, pd.DataFrame]) -> Figure:
    """Separation per animal by condition, learning by condition, and the residual by group
    x epoch of each condition (one panel per condition)."""
    contrasts = tables["condition_contrasts"]
    names = sorted(contrasts["condition"].unique(), key=lambda c: (c != DEFAULT_CONDITION, c))
    axes = _grid(3 + len(names), n_cols=3, panel_size=(4.0, 3.2))
    _panel(
        paper.plot_separation_by_condition, tables["condition_separation"], axes[0], "separation"
    )
    _panel(paper.plot_learning_by_condition, tables["behaviour"], axes[1], "behaviour")
    _panel(paper.plot_learning_by_condition, tables["behaviour"], axes[2], "behaviour",
           metric="rewards_per_min")  # fmt: skip
    for ax, name in zip(axes[3:], names, strict=False):
        paper.plot_residuals_by_group_epoch(contrasts[contrasts["condition"] == name], ax=ax)
        ax.set_title(name, fontsize="medium")
    for ax in axes[3 + len(names) :]:
        ax.set_axis_off()
    return axes[0].figure


def draw_qc_figures(
    *,
    registrations: dict[str, xr.Dataset],
    replays: dict[str, pd.DataFrame],
    pairs: pd.DataFrame,
) -> dict[str, Figure]:
    """Compose one subject's QC figures.

    Parameters
    ----------
    registrations : dict
        ``"<session> plane<k>" -> registration.nc`` Dataset.
    replays : dict
        ``session -> replay.tsv`` table.
    pairs : pandas.DataFrame
        The subject's ``pairs.tsv``.

    Returns
    -------
    dict with ``registration``, ``cursor_replay`` and ``pairing`` figures.
    """
    figures = {}
    axes = _grid(len(registrations), n_cols=2, panel_size=(6.0, 2.5))
    for ax, (name, registration) in zip(axes, registrations.items(), strict=False):
        qc_panels.plot_registration_qc(registration, ax=ax)
        ax.set_title(name, fontsize="medium")
    for ax in axes[len(registrations) :]:
        ax.set_axis_off()
    figures["registration"] = axes[0].figure
    axes = _grid(len(replays), n_cols=1, panel_size=(8.0, 2.2))
    for ax, (session, replay) in zip(axes, replays.items(), strict=False):
        _panel(qc_panels.plot_cursor_replay, replay, ax, "replayed readout")
        ax.set_title(f"{session}: {ax.get_title()}", fontsize="medium")
    figures["cursor_replay"] = axes[0].figure
    axes = _grid(1, n_cols=1, panel_size=(4.5, 3.2))
    _panel(qc_panels.plot_pairing_qc, pairs, axes[0], "soma-dendrite candidate pairs")
    figures["pairing"] = axes[0].figure
    return figures
