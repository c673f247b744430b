"""The conclusion: one line per claim from the tests table."""

from __future__ import annotations

import pandas as pd

from analysis import conditions
from analysis.inference import (
    TEST_COLUMNS,
)
from analysis.stats import names
from analysis.stats.common import require_input_columns
from analysis.stats.settings import StatsSettings

CLAIMS = {
    names.GROUP_EPOCH_TEST: (
        "Headline. Can claim: animals like these show the vectorized pattern (P+ residuals "
        "amplified over P- when the task error was falling before the event, relative to "
        "rising). Cannot claim: which neurons or sessions carry it, or that it is causal for "
        "learning. Guards: epochs from the error trend before each event, every somatic "
        "event's soma-locked dendritic response, an errors-in-variables fit, the animal as "
        "the unit (calibrated in results/validation/calibration.tsv)."
    ),
    names.GROUP_EPOCH_NEURON_TEST: (
        "Secondary. Can claim: in these animals, P+ and P- neurons differ in the pattern. "
        "Cannot claim: anything about other animals (neurons are the units)."
    ),
    names.OUTCOME_TEST: (
        "Can claim: in these sessions, residuals after hits differ from those after failures "
        "with the group's sign (P+ up, P- down; both aligned to the decision frame; trial "
        "labels permuted within session). Cannot claim: that the difference is instructive "
        "rather than a response to the outcome cue, or anything beyond these animals."
    ),
    names.EARLY_CHANGE_TEST: (
        "Can claim: within animals, neurons with larger early reduction-epoch residuals "
        "changed their activity more later. Cannot claim: that the residual caused the change."
    ),
    names.NETWORK_TEST: (
        "Can claim: non-target somata's activity around an event predicts its residual better "
        "than residuals shuffled within each neuron (targets, which drive the cursor, are not "
        "predictors). Cannot claim: which neurons carry the prediction, or more than the "
        "neuropil control below rules out."
    ),
    names.NETWORK_NEUROPIL_TEST: (
        "Control. If neuropil alone predicts residuals, the network prediction may be shared "
        "contamination or slow drive; a network effect is credible only well above this one."
    ),
}


def summarize(tests: pd.DataFrame, *, settings: StatsSettings, reference: str | None = None) -> str:
    """The printed conclusion of the analysis.

    Parameters
    ----------
    tests : pandas.DataFrame
        Concatenated test rows (:data:`TEST_COLUMNS`); must contain the
        :data:`names.GROUP_EPOCH_TEST` row.
    settings : StatsSettings
        ``alpha``.
    reference : str, optional
        The reference condition, when the sessions have several: the per-claim tests ran
        on its sessions, and the condition tests' lines follow (:mod:`analysis.conditions`).

    Returns
    -------
    str
        Multi-line text: the headline (animal-level) test with its statistic, n and p,
        then "vectorized instructive signal found" (p < alpha and separation > 0) or
        "no vectorized signal found", then one line per secondary test; each test is
        followed by what it can and cannot claim (:data:`CLAIMS`).
    """
    require_input_columns(tests, TEST_COLUMNS, "tests")
    main = tests[tests["test"] == names.GROUP_EPOCH_TEST]
    if len(main) != 1:
        raise ValueError(
            f"tests must contain exactly one '{names.GROUP_EPOCH_TEST}' row, found {len(main)}"
        )
    m = main.iloc[0]
    if pd.isna(m["p_value"]):
        lines = [
            f"Test: {m['test']} could not run: {m.get('note', 'too few data')}.",
            f"Conclusion at alpha = {settings.alpha:g}: no vectorized signal found "
            "(not testable on these data).",
        ]
    else:
        found = m["p_value"] < settings.alpha and m["statistic"] > 0
        verdict = "vectorized instructive signal found" if found else "no vectorized signal found"
        lines = [
            f"Test: {m['test']} ({m['alternative']}; one-sample t across animals, "
            f"df = {int(m['n_animals']) - 1}).",
            "Signed separation (P+ - P-, error falling - rising before the event, residual z)"
            f" = {m['statistic']:.3f} (mean over animals); n = {int(m['n_animals'])} animals, "
            f"{int(m['n_neurons'])} neurons, {int(m['n_events'])} events; p = "
            f"{m['p_value']:.4g}.",
            f"Separation positive in {int(m['n_positive_animals'])} of {int(m['n_animals'])} "
            f"animals; exact sign-flip p = {m['p_sign_flip']:.4g} (smallest possible with "
            f"{int(m['n_animals'])} animals: {m['min_attainable_p']:.3g}).",
            f"Conclusion at alpha = {settings.alpha:g}: {verdict}.",
        ]
    if reference is not None:
        lines.append(
            f"Condition: this test and those below up to 'Conditions compared' ran on the "
            f"'{reference}' sessions only (stats.reference_condition)."
        )
    lines.append(f"  {CLAIMS[names.GROUP_EPOCH_TEST]}")
    per_claim = ~tests["test"].isin([names.GROUP_EPOCH_TEST, *conditions.CLAIMS])
    for r in tests[per_claim].itertuples(index=False):
        if pd.isna(r.p_value):
            lines.append(f"{r.test}: not testable ({getattr(r, 'note', 'too few data')}).")
        else:
            lines.append(
                f"{r.test}: statistic = {r.statistic:.3f}, p = {r.p_value:.4g} "
                f"({r.alternative}), n = {int(r.n_animals)} animals, {int(r.n_neurons)} "
                f"neurons, {int(r.n_events)} events."
            )
        if r.test in CLAIMS:
            lines.append(f"  {CLAIMS[r.test]}")
    if tests["test"].isin(list(conditions.CLAIMS)).any():
        compared = f"reference '{reference}'; " if reference is not None else ""
        lines.append(f"Conditions compared ({compared}animals are the units):")
        lines += conditions.condition_lines(tests, alpha=settings.alpha)
    return "\n".join(lines)
