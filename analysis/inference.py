"""Shared pieces of the stats stage's tests: result rows, permutation and sign-flip p-values,
and the animal-level one- and two-sample tests.

Every test returns one row of :data:`TEST_COLUMNS` (plus test-specific numeric columns);
a test the data cannot support raises :class:`InsufficientDataError`, which the stage turns
into an :func:`untestable_row` naming the reason.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

TEST_COLUMNS = (
    "test",
    "statistic",
    "p_value",
    "alternative",
    "n_animals",
    "n_neurons",
    "n_events",
    "n_permutations",
)


class InsufficientDataError(ValueError):
    """A test cannot run on these data (too few animals, neurons or events)."""


def permutation_p(null: np.ndarray, observed: float, alternative: str) -> float:
    """Permutation p-value with the +1 correction.

    Phipson & Smyth 2010, doi 10.2202/1544-6115.1585.
    """
    null = np.asarray(null, dtype=float)
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        k = np.sum(null >= observed - tol)
    else:
        k = np.sum(np.abs(null) >= abs(observed) - tol)
    return float((1 + k) / (1 + null.size))


def result_row(
    test: str,
    *,
    statistic: float,
    p_value: float,
    alternative: str,
    n_animals: int,
    n_neurons: int,
    n_events: int,
    n_permutations: int,
    **extra: float,
) -> pd.DataFrame:
    """One test's row: :data:`TEST_COLUMNS` plus ``extra`` numeric columns."""
    row = dict(
        test=test,
        statistic=float(statistic),
        p_value=float(p_value),
        alternative=alternative,
        n_animals=int(n_animals),
        n_neurons=int(n_neurons),
        n_events=int(n_events),
        n_permutations=int(n_permutations),
    )
    row.update({k: float(v) for k, v in extra.items()})
    return pd.DataFrame([row])


def untestable_row(test: str, reason: str, *, alternative: str) -> pd.DataFrame:
    """A test row for a test the data cannot support: NaN statistic and p, with the reason."""
    return pd.DataFrame(
        [
            dict(
                test=test,
                statistic=np.nan,
                p_value=np.nan,
                alternative=alternative,
                n_animals=0,
                n_neurons=0,
                n_events=0,
                n_permutations=0,
                note=reason,
            )
        ]
    )


def sign_patterns(n: int, *, max_exact: int, n_random: int, rng: np.random.Generator) -> np.ndarray:
    """(pattern, n) signs +-1: all 2^n patterns (identity first) for n <= ``max_exact``,
    else ``n_random`` random ones."""
    if n <= max_exact:
        return 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    return rng.choice([-1, 1], size=(n_random, n))


def sign_flip_greater(
    values: np.ndarray, *, n_random: int, rng: np.random.Generator
) -> tuple[float, float, int]:
    """Mean of ``values`` and its one-sided sign-flip p (exact for up to 12 values)."""
    n = values.size
    signs = sign_patterns(n, max_exact=12, n_random=n_random, rng=rng)
    null = (signs * values).mean(1)
    stat = float(values.mean())
    # Exact enumeration includes the identity, so count it directly instead of adding 1.
    p = float(np.mean(null >= stat - 1e-12)) if n <= 12 else permutation_p(null, stat, "greater")
    return stat, p, len(null)


def _t_ratio(effect: float, standard_error: float) -> float:
    """effect / SE; with no spread, +-inf for an effect and 0 for none."""
    if standard_error > 0:
        return effect / standard_error
    return float(np.sign(effect) * np.inf) if effect != 0 else 0.0


def one_sample_across_animals(values: np.ndarray, *, alternative: str, seed: int) -> dict:
    """One number per animal tested against 0: t-test and exact sign-flip p beside it.

    Returns ``statistic`` (mean), ``p_value`` (t, df = n - 1), ``t_statistic``,
    ``p_sign_flip`` (over all ``2^n`` sign patterns up to 16 animals, else 65,536 random
    ones), ``min_attainable_p`` (the smallest sign-flip p: ``2 / 2^n`` two-sided),
    ``n_positive_animals`` and ``n_permutations``.
    """
    values = np.asarray(values, dtype=float)
    n = values.size
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    t = _t_ratio(mean, sd / np.sqrt(n))
    tails = 2 if alternative == "two-sided" else 1
    if alternative == "greater":
        p = float(scipy_stats.t.sf(t, df=n - 1))
    else:
        p = float(2 * scipy_stats.t.sf(abs(t), df=n - 1))
    signs = sign_patterns(n, max_exact=16, n_random=65536, rng=np.random.default_rng(seed))
    null = (signs * values).mean(axis=1)
    tol = 1e-12 * max(1.0, abs(mean))
    extreme = null >= mean - tol if tails == 1 else np.abs(null) >= abs(mean) - tol
    return dict(
        statistic=mean,
        p_value=p,
        t_statistic=t,
        p_sign_flip=float(np.mean(extreme)),
        min_attainable_p=min(1.0, tails / 2.0**n),
        n_positive_animals=int(np.sum(values > 0)),
        n_permutations=len(null),
    )


def two_sample_across_animals(
    values: np.ndarray, reference: np.ndarray, *, n_random: int, seed: int
) -> dict:
    """Animals of one group against the reference group's (two-sided): Welch's t-test of
    ``mean(values) - mean(reference)``, and the exact label-permutation p beside it.

    Group labels are permuted across the pooled animals: every arrangement when there are
    at most 20,000, else ``n_random`` random ones. Returns ``statistic``, ``p_value``
    (Welch), ``t_statistic``, ``df``, ``p_permutation``, ``min_attainable_p`` (2 /
    arrangements), ``n_permutations``.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    t = _t_ratio(diff, se)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else np.inf
    p = float(2 * scipy_stats.t.sf(abs(t), df=df)) if se > 0 else float(diff == 0)
    pooled = np.concatenate([a, b])
    arrangements = math.comb(pooled.size, a.size)
    if arrangements <= 20000:
        members = np.zeros((arrangements, pooled.size), dtype=bool)
        for k, chosen in enumerate(itertools.combinations(range(pooled.size), a.size)):
            members[k, list(chosen)] = True
    else:
        rng = np.random.default_rng(seed)
        members = rng.permuted(np.tile(np.arange(pooled.size) < a.size, (n_random, 1)), axis=1)
    null = (members @ pooled) / a.size - (~members @ pooled) / b.size
    tol = 1e-12 * max(1.0, abs(diff))
    exact = arrangements <= 20000
    extreme = np.abs(null) >= abs(diff) - tol
    return dict(
        statistic=diff,
        p_value=p,
        t_statistic=t,
        df=df,
        p_permutation=float(extreme.mean()) if exact else permutation_p(null, diff, "two-sided"),
        min_attainable_p=min(1.0, 2 / arrangements),
        n_permutations=len(null),
    )
