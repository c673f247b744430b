"""Stage 9, figures: paper-style and QC panels drawn from saved result tables only.

Every public function is ``plot_<thing>(data, *, ax=None, ...) -> Axes``: it draws one
panel into ``ax`` (or into a new figure when ``ax`` is None) and returns the Axes; the
figure is ``ax.figure``. Inputs are the tables the stats/bci/register/track stages save
(columns listed per function); plots only display them (means across animals for a
curve at most) and never recompute an analysis. New figures are plain
``matplotlib.figure.Figure`` objects, not pyplot figures, so no GUI backend or global
pyplot state is involved (Agg-compatible); saving is ``analysis.io.save_figure``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.tables import require_columns
from analysis.vocabulary import DEFAULT_CONDITION, NON_TARGET

log = logging.getLogger(__name__)

GROUP_COLORS = {"P+": "#d62728", "P-": "#1f77b4", NON_TARGET: "#7f7f7f"}
OUTCOME_COLORS = {"hit": "#2ca02c", "failure": "#9467bd"}
EPOCH_ORDER = ("reduction", "increase", "none")
GROUP_ORDER = ("P+", "P-", "non-target")
#: Conditions in order (control first, then by name).
CONDITION_COLORS = ("#4d4d4d", "#e08214", "#8073ac", "#1b7837")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (4.0, 3.0)) -> Axes:
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _require_columns(table: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    require_columns(table, columns, name)
    if table.empty:
        raise ValueError(f"{name} table is empty; nothing to plot")


def _sem(values: pd.Series) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def plot_learning_curve(
    behaviour: pd.DataFrame, *, metric: str = "hit_rate", ax: Axes | None = None
) -> Axes:
    """Behaviour over days: one thin line per animal and the cohort mean.

    Parameters
    ----------
    behaviour : pandas.DataFrame
        ``results/stats/behaviour.tsv``: ``subject, day_index`` and ``metric``.
    metric : str
        Column to plot, e.g. ``hit_rate`` or ``rewards_per_min``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line per subject plus one mean line (label "mean").
    """
    _require_columns(behaviour, ["subject", "day_index", metric], "behaviour")
    ax = _axes(ax)
    for subject, grp in behaviour.sort_values("day_index").groupby("subject"):
        ax.plot(grp["day_index"] + 1, grp[metric], color="0.7", lw=0.8, label=str(subject))
    mean = behaviour.groupby("day_index")[metric].mean()
    ax.plot(mean.index + 1, mean.to_numpy(), color="k", lw=2, marker="o", label="mean")
    ax.set_xlabel("day")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric.replace("_", " "))
    return ax


def plot_group_activity(
    group_activity: pd.DataFrame, *, value: str = "mean_dff", ax: Axes | None = None
) -> Axes:
    """P+ and P- target activity over days: mean +- SEM across animals.

    Parameters
    ----------
    group_activity : pandas.DataFrame
        ``results/stats/group_activity.tsv``: ``subject, group, day_index`` and ``value``
        (e.g. ``mean_dff`` or ``change_mean_dff``, dF/F).
    value : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line (labelled with the group) and one SEM band per group.
    """
    _require_columns(group_activity, ["subject", "group", "day_index", value], "group_activity")
    ax = _axes(ax)
    for group in [g for g in GROUP_ORDER if g in set(group_activity["group"])]:
        by_day = group_activity[group_activity["group"] == group].groupby("day_index")[value]
        mean, sem = by_day.mean(), by_day.agg(_sem)
        days = mean.index.to_numpy() + 1
        color = GROUP_COLORS[group]
        ax.plot(days, mean.to_numpy(), color=color, marker="o", label=group)
        ax.fill_between(days, mean - sem, mean + sem, color=color, alpha=0.25, lw=0)
    ax.set_xlabel("day")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{value.replace('_', ' ')} (dF/F)")
    ax.legend(frameon=False)
    return ax


def plot_sd_fit(
    events: pd.DataFrame, fit: pd.Series | pd.DataFrame, *, ax: Axes | None = None
) -> Axes:
    """Dendritic vs somatic response of one soma-dendrite pair, with its fitted curve.

    Parameters
    ----------
    events : pandas.DataFrame
        Rows of ``results/stats/sd_events.tsv`` for one pair: ``soma_roi,
        dendrite_roi, soma_amplitude, dendrite_amplitude`` (dF/F).
    fit : pandas.Series or one-row DataFrame
        The pair's row of ``results/stats/sd_fits.tsv``: ``slope, intercept, r2``
        (optional ``curvature``, ``model``).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One scatter collection (the events) and one line (label "<model> fit").
    """
    _require_columns(
        events, ["soma_roi", "dendrite_roi", "soma_amplitude", "dendrite_amplitude"], "events"
    )
    if events[["soma_roi", "dendrite_roi"]].drop_duplicates().shape[0] != 1:
        raise ValueError(
            "plot_sd_fit draws one soma-dendrite pair; filter events to one pair first"
        )
    if isinstance(fit, pd.DataFrame):
        if len(fit) != 1:
            raise ValueError(f"fit must be one row, got {len(fit)}")
        fit = fit.iloc[0]
    ax = _axes(ax)
    x = events["soma_amplitude"].to_numpy(float)
    y = events["dendrite_amplitude"].to_numpy(float)
    ax.scatter(x, y, s=8, color="0.3", alpha=0.6)
    xs = np.linspace(min(0.0, np.nanmin(x)), np.nanmax(x), 50)
    curve = fit["intercept"] + fit["slope"] * xs + fit.get("curvature", 0.0) * xs**2
    ax.plot(xs, curve, color="C3", label=f"{fit.get('model', 'linear')} fit")
    ax.set_xlabel("somatic response (dF/F)")
    ax.set_ylabel("dendritic response (dF/F)")
    soma, dend = events[["soma_roi", "dendrite_roi"]].iloc[0]
    ax.set_title(f"soma {soma} / dendrite {dend}: R² = {fit['r2']:.2f}", fontsize="medium")
    return ax


def plot_residuals_by_group_epoch(contrasts: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Residual z by group and task epoch: bars = mean across animals, dots = animals.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        ``results/stats/contrasts.tsv``: ``subject, group, epoch, mean_residual_z``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One bar container per group present (labelled with the group), with one bar
        per epoch present (reduction, increase, none order).
    """
    _require_columns(contrasts, ["subject", "group", "epoch", "mean_residual_z"], "contrasts")
    ax = _axes(ax)
    epochs = [e for e in EPOCH_ORDER if e in set(contrasts["epoch"])]
    groups = [g for g in GROUP_ORDER if g in set(contrasts["group"])]
    width = 0.8 / len(groups)
    for k, group in enumerate(groups):
        sub = contrasts[contrasts["group"] == group]
        pos = np.arange(len(epochs)) + (k - (len(groups) - 1) / 2) * width
        by_epoch = sub.groupby("epoch")["mean_residual_z"]
        means = by_epoch.mean().reindex(epochs)
        sems = by_epoch.agg(_sem).reindex(epochs)
        ax.bar(pos, means.to_numpy(), width, yerr=sems.to_numpy(), color=GROUP_COLORS[group],
               alpha=0.7, label=group, capsize=2)  # fmt: skip
        for p, epoch in zip(pos, epochs, strict=True):
            vals = sub.loc[sub["epoch"] == epoch, "mean_residual_z"].to_numpy()
            ax.plot(np.full(vals.size, p), vals, "o", color="k", ms=2.5)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(epochs)), [f"error {e}" if e != "none" else "none" for e in epochs])
    ax.set_ylabel("SD residual (z)")
    ax.legend(frameon=False)
    return ax


def plot_outcome_residuals(timecourse: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Residual z around trial outcome (reward vs failure), mean +- SEM across animals.

    Parameters
    ----------
    timecourse : pandas.DataFrame
        ``results/stats/outcome_timecourse.tsv``: ``outcome, lag_s, mean_residual_z,
        sem_residual_z``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line per outcome (labelled "hit"/"failure"), SEM bands, a line at lag 0.
    """
    _require_columns(
        timecourse, ["outcome", "lag_s", "mean_residual_z", "sem_residual_z"], "timecourse"
    )
    ax = _axes(ax)
    for outcome in [o for o in OUTCOME_COLORS if o in set(timecourse["outcome"])]:
        sub = timecourse[timecourse["outcome"] == outcome].sort_values("lag_s")
        mean = sub["mean_residual_z"].to_numpy(float)
        sem = np.nan_to_num(sub["sem_residual_z"].to_numpy(float))
        color = OUTCOME_COLORS[outcome]
        ax.plot(sub["lag_s"], mean, color=color, marker="o", ms=3, label=outcome)
        ax.fill_between(sub["lag_s"], mean - sem, mean + sem, color=color, alpha=0.25, lw=0)
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("time from outcome (s)")
    ax.set_ylabel("SD residual (z)")
    ax.legend(frameon=False)
    return ax


def plot_signed_separation(separation: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Per-animal signed separation of residuals (P+ - P-, reduction - increase).

    Parameters
    ----------
    separation : pandas.DataFrame
        ``results/stats/separation.tsv``: ``subject, separation`` (residual z).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One bar per animal (positive red, negative blue), a zero line, and the title
        "k of n animals positive".
    """
    _require_columns(separation, ["subject", "separation"], "separation")
    ax = _axes(ax)
    sep = separation.sort_values("subject")
    values = sep["separation"].to_numpy(float)
    colors = [GROUP_COLORS["P+"] if v > 0 else GROUP_COLORS["P-"] for v in values]
    ax.bar(np.arange(values.size), values, color=colors)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(values.size), [str(s) for s in sep["subject"]], rotation=45, ha="right")
    ax.set_ylabel("signed separation (z)")
    ax.set_title(f"{int(np.sum(values > 0))} of {values.size} animals positive", fontsize="medium")
    return ax


def plot_separation_by_condition(separation: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Per-animal signed separation split by condition: dots = animals, bar = mean +- SEM.

    Parameters
    ----------
    separation : pandas.DataFrame
        ``results/stats/condition_separation.tsv``: ``subject, condition, separation``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One bar per condition (tick label = condition), one dot per animal x condition.
    """
    _require_columns(separation, ["subject", "condition", "separation"], "separation")
    ax = _axes(ax)
    names = sorted(separation["condition"].unique(), key=lambda c: (c != DEFAULT_CONDITION, c))
    for k, name in enumerate(names):
        values = separation.loc[separation["condition"] == name, "separation"]
        ax.bar(k, values.mean(), 0.6, yerr=_sem(values), color=CONDITION_COLORS[k % 4],
               alpha=0.6, capsize=3)  # fmt: skip
        ax.plot(np.full(len(values), k), values, "o", color="k", ms=3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("signed separation (z)")
    return ax


def plot_learning_by_condition(
    behaviour: pd.DataFrame, *, metric: str = "hit_rate", ax: Axes | None = None
) -> Axes:
    """A behaviour metric over days per condition: mean +- SEM across animals.

    Parameters
    ----------
    behaviour : pandas.DataFrame
        ``results/stats/behaviour.tsv``: ``subject, condition, day_index`` and ``metric``.
    metric : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One line per condition (labelled with it and its number of animals).
    """
    _require_columns(behaviour, ["subject", "condition", "day_index", metric], "behaviour")
    ax = _axes(ax)
    names = sorted(behaviour["condition"].unique(), key=lambda c: (c != DEFAULT_CONDITION, c))
    for k, name in enumerate(names):
        rows = behaviour[behaviour["condition"] == name]
        by_day = rows.groupby("day_index")[metric]
        mean, sem = by_day.mean(), np.nan_to_num(by_day.agg(_sem).to_numpy(float))
        color = CONDITION_COLORS[k % 4]
        label = f"{name} ({rows['subject'].nunique()} animals)"
        ax.plot(mean.index + 1, mean.to_numpy(), color=color, marker="o", label=label)
        ax.fill_between(mean.index + 1, mean - sem, mean + sem, color=color, alpha=0.25, lw=0)
    ax.set_xlabel("day")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(frameon=False, fontsize="small")
    return ax


RESIDUAL_SIZE_LABELS = {
    "old_design": "replaced design (OLS, epoch at onset), exponent 1.15",
    "linear": "errors-in-variables, linear coupling",
    "supralinear_1.15": "errors-in-variables, exponent 1.15",
}


def plot_residual_by_true_size(table: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Null residual z against the true somatic size, one line per calibration variant.

    Parameters
    ----------
    table : pandas.DataFrame
        ``results/validation/residual_by_true_size.tsv``: ``variant, true_size,
        mean_residual_z, sem_residual_z``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One error-bar line per variant (labelled), a zero line.
    """
    _require_columns(
        table, ["variant", "true_size", "mean_residual_z", "sem_residual_z"], "residual_size"
    )
    ax = _axes(ax, figsize=(5.5, 3.5))
    for variant, rows in table.groupby("variant", sort=True):
        ax.errorbar(
            rows["true_size"], rows["mean_residual_z"], yerr=rows["sem_residual_z"],
            marker="o", ms=3, capsize=2, label=RESIDUAL_SIZE_LABELS.get(variant, variant),
        )  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("true somatic event size (dF/F)")
    ax.set_ylabel("mean residual (z)")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_residual_vs_change(neurons: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Early error-reduction residual vs later activity change, one dot per neuron.

    Parameters
    ----------
    neurons : pandas.DataFrame
        ``results/stats/early_residual_change.tsv``: ``subject, early_residual_z,
        activity_change`` (dF/F).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One scatter collection per animal (labelled with the subject).
    """
    _require_columns(neurons, ["subject", "early_residual_z", "activity_change"], "neurons")
    ax = _axes(ax)
    for subject, grp in neurons.groupby("subject"):
        ax.scatter(grp["early_residual_z"], grp["activity_change"], s=10, label=str(subject))
    ax.axhline(0, color="0.5", lw=0.5)
    ax.axvline(0, color="0.5", lw=0.5)
    ax.set_xlabel("early residual, error reduction (z)")
    ax.set_ylabel("later activity change (dF/F)")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_network_prediction(network: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Cross-validated network prediction of residuals vs its shuffled-residual null.

    Parameters
    ----------
    network : pandas.DataFrame
        ``results/stats/network.tsv``: ``subject, session, r_cv, null_mean, null_sd``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One errorbar container (null mean +- SD, label "shuffled") and one scatter
        (observed r, label "observed"), one x position per session.
    """
    _require_columns(network, ["subject", "session", "r_cv", "null_mean", "null_sd"], "network")
    ax = _axes(ax)
    net = network.sort_values(["subject", "session"])
    x = np.arange(len(net))
    ax.errorbar(x, net["null_mean"], yerr=net["null_sd"], fmt="_", color="0.5", label="shuffled")
    ax.scatter(x, net["r_cv"], color="k", s=14, zorder=3, label="observed")
    ax.set_xticks(x, [f"{s} {d}" for s, d in zip(net["subject"], net["session"], strict=True)],
                  rotation=90, fontsize="small")  # fmt: skip
    ax.set_ylabel("cross-validated r")
    ax.legend(frameon=False)
    return ax


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
    _require_columns(replay, ["frame", "logged", "replayed"], "replay")
    ax = _axes(ax, figsize=(6.0, 2.5))
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
        _require_columns(registration, names, "registration")
        table = registration
    ax = _axes(ax, figsize=(6.0, 2.5))
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
    _require_columns(pairs, ["corr", "paired"], "pairs")
    ax = _axes(ax)
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
    ax = _axes(ax)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return ax


def _panel(draw, table: pd.DataFrame, ax: Axes, what: str, **kwargs) -> None:
    if table is None or table.empty:
        plot_no_data(f"no {what} in this dataset", ax=ax)
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
    _panel(plot_learning_curve, tables["behaviour"], axes[0], "behaviour", metric="hit_rate")
    _panel(plot_learning_curve, tables["behaviour"], axes[1], "behaviour", metric="rewards_per_min")
    _panel(plot_group_activity, tables["group_activity"], axes[2], "target activity")
    figures["fig1_learning"] = axes[0].figure

    fits = tables["sd_fits"]
    examples = fits.nlargest(n_example_pairs, "n_events") if not fits.empty else fits
    axes = _grid(
        max(1, len(examples)),
        n_cols=min(n_example_pairs, max(1, len(examples))),
        panel_size=(3.5, 3.0),
    )
    if examples.empty:
        plot_no_data("no soma-dendrite pair had enough coincident events", ax=axes[0])
    events = tables["sd_events"]
    if "kind" in events:
        events = events[events["kind"] != "dendrite_only"]
    for ax, (_, fit) in zip(axes, examples.iterrows(), strict=False):
        pair = events[
            (events["subject"] == fit["subject"])
            & (events["soma_roi"] == fit["soma_roi"])
            & (events["dendrite_roi"] == fit["dendrite_roi"])
        ]
        plot_sd_fit(pair, fit, ax=ax)
    figures["fig2_sd_fits"] = axes[0].figure

    axes = _grid(1, n_cols=1, panel_size=(4.5, 3.5))
    _panel(plot_residuals_by_group_epoch, tables["contrasts"], axes[0], "residual contrasts")
    figures["fig3_residuals_group_epoch"] = axes[0].figure

    axes = _grid(1, n_cols=1, panel_size=(4.5, 3.5))
    _panel(plot_outcome_residuals, tables["outcome_timecourse"], axes[0], "outcome-aligned events")
    figures["fig4_outcome_residuals"] = axes[0].figure

    axes = _grid(3, n_cols=3, panel_size=(4.0, 3.2))
    _panel(plot_signed_separation, tables["separation"], axes[0], "signed separation")
    _panel(plot_residual_vs_change, tables["early_residual_change"], axes[1], "early residuals")
    _panel(plot_network_prediction, tables["network"], axes[2], "network prediction")
    figures["ed13_signed_separation"] = axes[0].figure
    figures["fig5_conditions"] = _conditions_figure(tables)
    return figures


def _conditions_figure(tables: dict[str, pd.DataFrame]) -> Figure:
    """Separation per animal by condition, learning by condition, and the residual by group
    x epoch of each condition (one panel per condition)."""
    contrasts = tables["condition_contrasts"]
    names = sorted(contrasts["condition"].unique(), key=lambda c: (c != DEFAULT_CONDITION, c))
    axes = _grid(3 + len(names), n_cols=3, panel_size=(4.0, 3.2))
    _panel(plot_separation_by_condition, tables["condition_separation"], axes[0], "separation")
    _panel(plot_learning_by_condition, tables["behaviour"], axes[1], "behaviour")
    _panel(plot_learning_by_condition, tables["behaviour"], axes[2], "behaviour",
           metric="rewards_per_min")  # fmt: skip
    for ax, name in zip(axes[3:], names, strict=False):
        plot_residuals_by_group_epoch(contrasts[contrasts["condition"] == name], ax=ax)
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
        plot_registration_qc(registration, ax=ax)
        ax.set_title(name, fontsize="medium")
    for ax in axes[len(registrations) :]:
        ax.set_axis_off()
    figures["registration"] = axes[0].figure
    axes = _grid(len(replays), n_cols=1, panel_size=(8.0, 2.2))
    for ax, (session, replay) in zip(axes, replays.items(), strict=False):
        _panel(plot_cursor_replay, replay, ax, "replayed readout")
        ax.set_title(f"{session}: {ax.get_title()}", fontsize="medium")
    figures["cursor_replay"] = axes[0].figure
    axes = _grid(1, n_cols=1, panel_size=(4.5, 3.2))
    _panel(plot_pairing_qc, pairs, axes[0], "soma-dendrite candidate pairs")
    figures["pairing"] = axes[0].figure
    return figures
