"""The headline test: SD residuals by group x epoch, signed separation per animal."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from analysis.inference import (
    InsufficientDataError,
    one_sample_across_animals,
    permutation_p,
    result_row,
)
from analysis.stats.common import require_input_columns
from analysis.stats.names import GROUP_EPOCH_NEURON_TEST, GROUP_EPOCH_TEST
from analysis.stats.settings import StatsSettings
from analysis.vocabulary import GROUPS

log = logging.getLogger(__name__)


def compute_group_epoch_contrasts(events: pd.DataFrame) -> pd.DataFrame:
    """Mean residual z per subject x group x epoch (descriptive; all events).

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z`` (from :func:`fit_sd_residuals`).

    Returns
    -------
    pandas.DataFrame
        ``subject, group, epoch, mean_residual_z`` (mean of per-neuron means),
        ``sem_residual_z`` (across neurons), ``n_neurons, n_events``.
    """
    require_input_columns(events, ["subject", "soma_roi", "group", "epoch", "residual_z"], "events")
    ev = events[np.isfinite(events["residual_z"])]
    per_neuron = ev.groupby(["subject", "group", "epoch", "soma_roi"], as_index=False).agg(
        residual_z=("residual_z", "mean"), n_events=("residual_z", "size")
    )
    return per_neuron.groupby(["subject", "group", "epoch"], as_index=False).agg(
        mean_residual_z=("residual_z", "mean"),
        sem_residual_z=(
            "residual_z",
            lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan,
        ),
        n_neurons=("soma_roi", "size"),
        n_events=("n_events", "sum"),
    )


def _neuron_epoch_table(events: pd.DataFrame) -> pd.DataFrame:
    """Per target neuron: mean residual z in reduction and increase epochs, and its group.

    Neurons without events in both epochs are dropped so that every neuron contributes
    a within-neuron difference (reduction minus increase).
    """
    require_input_columns(events, ["subject", "soma_roi", "group", "epoch", "residual_z"], "events")
    ev = events[
        events["group"].isin(GROUPS)
        & events["epoch"].isin(("reduction", "increase"))
        & np.isfinite(events["residual_z"])
    ]
    labels = ev.groupby(["subject", "soma_roi"])["group"].nunique()
    if (labels > 1).any():
        bad = labels[labels > 1].index.tolist()
        raise ValueError(
            f"neurons {bad} (subject, soma_roi) have both P+ and P- labels across sessions"
        )
    table = ev.pivot_table(
        index=["subject", "soma_roi", "group"],
        columns="epoch",
        values="residual_z",
        aggfunc=["mean", "size"],
    )
    table.columns = [f"{stat}_{epoch}" for stat, epoch in table.columns]
    table = table.reset_index()
    for epoch in ("reduction", "increase"):
        for stat in ("mean", "size"):
            if f"{stat}_{epoch}" not in table:
                table[f"{stat}_{epoch}"] = np.nan
    table = table.dropna(subset=["mean_reduction", "mean_increase"])
    table["difference"] = table["mean_reduction"] - table["mean_increase"]
    table["n_events"] = (table["size_reduction"] + table["size_increase"]).astype(int)
    return table


def compute_signed_separation(events: pd.DataFrame) -> pd.DataFrame:
    """Per-animal signed separation of residuals by group and task epoch.

    ``separation = (P+ - P-) in error reduction - (P+ - P-) in error increase`` where each
    term is a mean over neurons of per-neuron mean residual z; only target neurons with
    events in both epochs are used (so separation = mean_P+(red - inc) - mean_P-(red - inc)).
    Positive = vectorized instructive signal with the paper's sign.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z``.

    Returns
    -------
    pandas.DataFrame
        ``subject, pplus_reduction, pminus_reduction, pplus_increase, pminus_increase,
        separation, n_pplus, n_pminus, n_events``; animals lacking a P+ or P- neuron with
        both epochs are left out.
    """
    table = _neuron_epoch_table(events)
    rows = []
    for subject, grp in table.groupby("subject", sort=True):
        plus, minus = grp[grp["group"] == "P+"], grp[grp["group"] == "P-"]
        if plus.empty or minus.empty:
            log.info("subject %s lacks P+ or P- neurons with both epochs; left out", subject)
            continue
        row = dict(
            subject=subject,
            pplus_reduction=plus["mean_reduction"].mean(),
            pminus_reduction=minus["mean_reduction"].mean(),
            pplus_increase=plus["mean_increase"].mean(),
            pminus_increase=minus["mean_increase"].mean(),
        )
        row["separation"] = plus["difference"].mean() - minus["difference"].mean()
        row.update(n_pplus=len(plus), n_pminus=len(minus), n_events=int(grp["n_events"].sum()))
        rows.append(row)
    columns = [
        "subject",
        "pplus_reduction",
        "pminus_reduction",
        "pplus_increase",
        "pminus_increase",
        "separation",
        "n_pplus",
        "n_pminus",
        "n_events",
    ]
    return pd.DataFrame(rows, columns=columns)


def run_group_epoch_test(events: pd.DataFrame, *, settings: StatsSettings) -> pd.DataFrame:
    """The headline test: is the signed separation positive across animals?

    The animal is the unit (DESIGN.md): each animal contributes one number, its signed
    separation (:func:`compute_signed_separation`), and the test is a one-sample t-test
    of those numbers against 0 (df = animals - 1; 'two-sided' or 'greater'), the
    animal-level form of a mixed model with a random group x epoch effect per animal. It
    claims that animals like these show the pattern; it needs at least 2 animals. The
    exact sign-flip p over all ``2^n`` sign patterns is reported beside it
    (``p_sign_flip``; distribution-free, but its smallest value is ``2 / 2^n``
    two-sided, ``min_attainable_p``: 0.031 with 6 animals, 0.25 with 3).

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z``.
    settings : StatsSettings

    Returns
    -------
    pandas.DataFrame
        One row, :data:`TEST_COLUMNS` plus ``n_positive_animals``, ``t_statistic``,
        ``p_sign_flip`` and ``min_attainable_p``.
    """
    separation = compute_signed_separation(events)
    values = separation["separation"].to_numpy(float)
    if values.size < 2:
        raise InsufficientDataError(
            f"{values.size} animal(s) with P+ and P- neurons that have residuals in both "
            "epochs; the animal-level test needs at least 2 (the neuron-level test below is "
            "secondary)"
        )
    result = one_sample_across_animals(values, alternative=settings.alternative, seed=settings.seed)
    return result_row(
        GROUP_EPOCH_TEST,
        statistic=result["statistic"],
        p_value=result["p_value"],
        alternative=settings.alternative,
        n_animals=values.size,
        n_neurons=int((separation["n_pplus"] + separation["n_pminus"]).sum()),
        n_events=int(separation["n_events"].sum()),
        n_permutations=result["n_permutations"],
        n_positive_animals=result["n_positive_animals"],
        t_statistic=result["t_statistic"],
        p_sign_flip=result["p_sign_flip"],
        min_attainable_p=result["min_attainable_p"],
    )


def run_group_epoch_neuron_test(
    events: pd.DataFrame, *, settings: StatsSettings, rng: np.random.Generator
) -> pd.DataFrame:
    """Secondary, neuron-level test of the group x epoch pattern (within animals).

    Statistic: mean over animals of the per-animal signed separation
    (:func:`compute_signed_separation`). Null: P+/P- labels of the target neurons are
    permuted within each animal (group sizes kept), independently per animal,
    ``n_permutations`` times; p = (1 + #|null| >= |obs|) / (1 + n) (two-sided) or with
    null >= obs ('greater'). Neurons are the units: it can say that these animals' P+ and
    P- neurons differ, not that animals in general do (that is :func:`run_group_epoch_test`),
    and it relies on causal epochs and an unbiased fit for the labels to be exchangeable
    under the null.

    Parameters
    ----------
    events : pandas.DataFrame
        ``subject, soma_roi, group, epoch, residual_z``.
    settings : StatsSettings
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        One row, :data:`TEST_COLUMNS` plus ``n_positive_animals``, ``null_mean`` and
        ``min_attainable_p`` (the smallest p the permutation test can give with these
        neurons: 1 / number of distinct within-animal label arrangements, x2 two-sided).
    """
    table = _neuron_epoch_table(events)
    per_animal = []
    n_events = 0
    for _, grp in table.groupby("subject", sort=True):
        labels = (grp["group"] == "P+").to_numpy()
        if labels.all() or not labels.any():
            continue
        per_animal.append((grp["difference"].to_numpy(float), labels))
        n_events += int(grp["n_events"].sum())
    if not per_animal:
        raise InsufficientDataError(
            "no animal has both P+ and P- neurons with coincident events in both the "
            "reduction and increase epochs; the group x epoch test cannot run"
        )
    n_perm = settings.n_permutations
    observed = np.array([d[lab].mean() - d[~lab].mean() for d, lab in per_animal])
    null = np.zeros(n_perm)
    for diff, labels in per_animal:
        perm = rng.permuted(np.tile(labels, (n_perm, 1)), axis=1)
        n_plus = labels.sum()
        plus_mean = (perm @ diff) / n_plus
        minus_mean = ((~perm) @ diff) / (labels.size - n_plus)
        null += plus_mean - minus_mean
    null /= len(per_animal)
    stat = float(observed.mean())
    n_neurons = sum(lab.size for _, lab in per_animal)
    arrangements = np.prod([float(math.comb(lab.size, int(lab.sum()))) for _, lab in per_animal])
    tails = 2 if settings.alternative == "two-sided" else 1
    return result_row(
        GROUP_EPOCH_NEURON_TEST,
        statistic=stat,
        p_value=permutation_p(null, stat, settings.alternative),
        alternative=settings.alternative,
        n_animals=len(per_animal),
        n_neurons=n_neurons,
        n_events=n_events,
        n_permutations=n_perm,
        n_positive_animals=int(np.sum(observed > 0)),
        null_mean=float(null.mean()),
        min_attainable_p=min(1.0, tails / arrangements),
    )
