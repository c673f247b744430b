"""Tracking across days, soma-dendrite pairing and target mapping compared with truth."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.validate.common import f1_score, ratio


def compare_tracking(matches: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Are tracked ROIs the same true neuron on every day?

    Parameters
    ----------
    matches : pandas.DataFrame
        ``session, detected_roi, true_roi``: per session, the tracked ROI ids (stable
        across days) matched to true units (e.g. :func:`compare_rois` hits of each
        session's tracked masks, concatenated).

    Returns
    -------
    per_roi : pandas.DataFrame
        ``detected_roi, n_sessions, n_true_units, true_roi`` (the most frequent unit),
        ``correct`` (matched in >= 2 sessions, always to one unit).
    metrics : dict
        ``n_tracked`` (ROIs matched in >= 2 sessions), ``n_correct``, ``fraction_correct``,
        ``n_split_units`` (true units claimed by more than one tracked ROI in a session
        set, i.e. one neuron tracked as several).
    """
    missing = {"session", "detected_roi", "true_roi"} - set(matches.columns)
    if missing:
        raise ValueError(f"compare_tracking: matches lacks columns {sorted(missing)}")
    if matches.duplicated(["session", "detected_roi"]).any():
        raise ValueError("compare_tracking: a detected_roi is matched twice in one session")
    grouped = matches.groupby("detected_roi")["true_roi"]
    per_roi = pd.DataFrame(
        {
            "n_sessions": grouped.size(),
            "n_true_units": grouped.nunique(),
            "true_roi": grouped.agg(lambda s: s.mode().iloc[0]),
        }
    ).reset_index()
    per_roi["correct"] = (per_roi["n_sessions"] >= 2) & (per_roi["n_true_units"] == 1)
    tracked = per_roi[per_roi["n_sessions"] >= 2]
    split = tracked[tracked["n_true_units"] == 1].groupby("true_roi").size()
    metrics = {
        "n_tracked": int(len(tracked)),
        "n_correct": int(tracked["correct"].sum()),
        "fraction_correct": ratio(tracked["correct"].sum(), len(tracked)),
        "n_split_units": int((split > 1).sum()),
    }
    return per_roi, metrics


def compare_pairing(
    pairs: pd.DataFrame,
    *,
    soma_units: Mapping[int, int],
    dendrite_units: Mapping[int, int],
    tuft_neuron: Mapping[int, int],
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Soma-dendrite pairs (``track.pair_dendrites``) against the true tuft owners.

    A (soma ROI, dendrite ROI) pair is true when the dendrite ROI's true tuft belongs to
    the soma ROI's true neuron. Only ROIs with a true unit (keys of ``soma_units`` /
    ``dendrite_units``) are scored.

    Parameters
    ----------
    pairs : pandas.DataFrame
        ``soma_roi, dendrite_roi, paired`` (bool).
    soma_units : mapping of int to int
        Soma ROI id -> true neuron id.
    dendrite_units : mapping of int to int
        Dendrite ROI id -> true tuft id.
    tuft_neuron : mapping of int to int
        True tuft id -> owning neuron id (-1 for distractor tufts; ``dendrites.tsv``).

    Returns
    -------
    scored : pandas.DataFrame
        The scored rows of ``pairs`` plus ``true_neuron``, ``true_tuft``, ``true_pair``.
    metrics : dict
        ``n_paired``, ``n_true_pairs`` (scorable true pairs), ``precision`` (paired that
        are true), ``recall`` (true pairs that are paired), ``f1``, ``accuracy``
        (fraction of scored rows whose ``paired`` equals ``true_pair``).
    """
    missing = {"soma_roi", "dendrite_roi", "paired"} - set(pairs.columns)
    if missing:
        raise ValueError(f"compare_pairing: pairs lacks columns {sorted(missing)}")
    scored = pairs[
        pairs["soma_roi"].isin(list(soma_units)) & pairs["dendrite_roi"].isin(list(dendrite_units))
    ].copy()
    scored["true_neuron"] = scored["soma_roi"].map(dict(soma_units)).astype(int)
    scored["true_tuft"] = scored["dendrite_roi"].map(dict(dendrite_units)).astype(int)
    owner = scored["true_tuft"].map(dict(tuft_neuron))
    if owner.isna().any():
        unknown = sorted(scored.loc[owner.isna(), "true_tuft"].unique().tolist())
        raise ValueError(f"compare_pairing: tufts {unknown} are missing from tuft_neuron")
    scored["true_pair"] = owner.astype(int).to_numpy() == scored["true_neuron"].to_numpy()
    paired = scored["paired"].astype(bool)
    tp = int((paired & scored["true_pair"]).sum())
    precision = ratio(tp, paired.sum())
    recall = ratio(tp, scored["true_pair"].sum())
    metrics = {
        "n_paired": int(paired.sum()),
        "n_true_pairs": int(scored["true_pair"].sum()),
        "precision": precision,
        "recall": recall,
        "f1": f1_score(np.nan_to_num(precision), np.nan_to_num(recall)),
        "accuracy": ratio((paired == scored["true_pair"]).sum(), len(scored)),
    }
    return scored, metrics


def compare_targets(
    mapped: pd.DataFrame, *, roi_units: Mapping[int, int], true_targets: pd.DataFrame
) -> dict[str, float]:
    """Online targets (``track.map_targets``) against the neurons they really are.

    Parameters
    ----------
    mapped : pandas.DataFrame
        ``target_id, group, roi`` (one session's mapping).
    roi_units : mapping of int to int
        Soma ROI id -> true neuron id (ROIs without a true unit are absent).
    true_targets : pandas.DataFrame
        ``target_id, neuron, group`` (``neurons.tsv`` rows with ``target_id >= 0``).

    Returns
    -------
    dict
        ``n_targets`` (true targets), ``n_mapped``, ``n_correct`` (mapped to an ROI
        whose true neuron is the target's neuron), ``recall`` (n_correct / n_targets),
        ``group_agreement`` (fraction of mapped targets whose group matches the truth).
    """
    for name, table, cols in (
        ("mapped", mapped, {"target_id", "group", "roi"}),
        ("true_targets", true_targets, {"target_id", "neuron", "group"}),
    ):
        missing = cols - set(table.columns)
        if missing:
            raise ValueError(f"compare_targets: {name} lacks columns {sorted(missing)}")
    truth = true_targets[true_targets["target_id"] >= 0].set_index("target_id")
    merged = mapped.merge(truth, left_on="target_id", right_index=True, how="inner",
                          suffixes=("", "_true"))  # fmt: skip
    unit = merged["roi"].map(dict(roi_units))
    correct = unit.notna() & (unit == merged["neuron"])
    return {
        "n_targets": int(len(truth)),
        "n_mapped": int(len(merged)),
        "n_correct": int(correct.sum()),
        "recall": ratio(correct.sum(), len(truth)),
        "group_agreement": ratio((merged["group"] == merged["group_true"]).sum(), len(merged)),
    }
