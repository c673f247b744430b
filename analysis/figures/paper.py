"""The paper-style panels: learning, activity, SD fits, residuals by group x epoch and
outcome, signed separation, conditions, calibration, prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from analysis.figures.style import (
    CONDITION_COLORS,
    EPOCH_ORDER,
    GROUP_COLORS,
    GROUP_ORDER,
    OUTCOME_COLORS,
    new_axes,
    require_table_columns,
    standard_error,
)
from analysis.vocabulary import DEFAULT_CONDITION


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
    require_table_columns(behaviour, ["subject", "day_index", metric], "behaviour")
    ax = new_axes(ax)
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
    require_table_columns(
        group_activity, ["subject", "group", "day_index", value], "group_activity"
    )
    ax = new_axes(ax)
    for group in [g for g in GROUP_ORDER if g in set(group_activity["group"])]:
        by_day = group_activity[group_activity["group"] == group].groupby("day_index")[value]
        mean, sem = by_day.mean(), by_day.agg(standard_error)
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
    require_table_columns(
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
    ax = new_axes(ax)
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
    require_table_columns(contrasts, ["subject", "group", "epoch", "mean_residual_z"], "contrasts")
    ax = new_axes(ax)
    epochs = [e for e in EPOCH_ORDER if e in set(contrasts["epoch"])]
    groups = [g for g in GROUP_ORDER if g in set(contrasts["group"])]
    width = 0.8 / len(groups)
    for k, group in enumerate(groups):
        sub = contrasts[contrasts["group"] == group]
        pos = np.arange(len(epochs)) + (k - (len(groups) - 1) / 2) * width
        by_epoch = sub.groupby("epoch")["mean_residual_z"]
        means = by_epoch.mean().reindex(epochs)
        sems = by_epoch.agg(standard_error).reindex(epochs)
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
    require_table_columns(
        timecourse, ["outcome", "lag_s", "mean_residual_z", "sem_residual_z"], "timecourse"
    )
    ax = new_axes(ax)
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
    require_table_columns(separation, ["subject", "separation"], "separation")
    ax = new_axes(ax)
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
    require_table_columns(separation, ["subject", "condition", "separation"], "separation")
    ax = new_axes(ax)
    names = sorted(separation["condition"].unique(), key=lambda c: (c != DEFAULT_CONDITION, c))
    for k, name in enumerate(names):
        values = separation.loc[separation["condition"] == name, "separation"]
        ax.bar(k, values.mean(), 0.6, yerr=standard_error(values), color=CONDITION_COLORS[k % 4],
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
    require_table_columns(behaviour, ["subject", "condition", "day_index", metric], "behaviour")
    ax = new_axes(ax)
    names = sorted(behaviour["condition"].unique(), key=lambda c: (c != DEFAULT_CONDITION, c))
    for k, name in enumerate(names):
        rows = behaviour[behaviour["condition"] == name]
        by_day = rows.groupby("day_index")[metric]
        mean, sem = by_day.mean(), np.nan_to_num(by_day.agg(standard_error).to_numpy(float))
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
    require_table_columns(
        table, ["variant", "true_size", "mean_residual_z", "sem_residual_z"], "residual_size"
    )
    ax = new_axes(ax, figsize=(5.5, 3.5))
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
    require_table_columns(neurons, ["subject", "early_residual_z", "activity_change"], "neurons")
    ax = new_axes(ax)
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
    require_table_columns(
        network, ["subject", "session", "r_cv", "null_mean", "null_sd"], "network"
    )
    ax = new_axes(ax)
    net = network.sort_values(["subject", "session"])
    x = np.arange(len(net))
    ax.errorbar(x, net["null_mean"], yerr=net["null_sd"], fmt="_", color="0.5", label="shuffled")
    ax.scatter(x, net["r_cv"], color="k", s=14, zorder=3, label="observed")
    ax.set_xticks(x, [f"{s} {d}" for s, d in zip(net["subject"], net["session"], strict=True)],
                  rotation=90, fontsize="small")  # fmt: skip
    ax.set_ylabel("cross-validated r")
    ax.legend(frameon=False)
    return ax
