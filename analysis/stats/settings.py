"""The stats stage's settings (config section ``stats``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from analysis import residuals
from analysis.settings import StageSettings, require
from analysis.vocabulary import DEFAULT_CONDITION


@dataclass(frozen=True)
class StatsSettings(StageSettings):
    """Settings of the ``stats`` stage (config section ``stats``).

    Attributes
    ----------
    coincidence_window_s : float
        A somatic event is 'coupled' (bAP-coupled) when a paired dendrite event's onset
        lies within this many seconds; otherwise 'soma_only'. Both are fitted: the
        dendritic response is read in a soma-locked window either way.
    response_window_s, response_baseline_s : float
        The response of soma and dendrite to a somatic event: mean dF/F over
        ``response_window_s`` from onset minus the mean over ``response_baseline_s``
        before it (linear, so trace noise stays additive and measurable).
    epoch_reference : {'pre_onset', 'at_onset'}
        'pre_onset': an event's epoch is the sign of the task error's slope over
        ``epoch_window_s`` ending ``epoch_gap_s`` before its onset, which the event cannot
        have caused. 'at_onset': the per-frame epoch at onset (a centred window the event
        moves through the closed loop; biased, kept only to show that bias).
    epoch_window_s, epoch_gap_s : float
        The pre-onset window; the gap must cover the indicator's rise and the response
        baseline (``epoch_gap_s >= response_baseline_s``) so no frame's noise enters both
        the epoch and the somatic response.
    own_event_exclusion_s : float
        An event whose soma had another event starting less than this before it gets
        epoch 'none' (that event moved the cursor over the window); also how long before a
        frame the soma must be quiet for the noise estimate.
    sd_fit : {'errors_in_variables', 'ols'}
        'errors_in_variables': adjusted least squares with the soma response's measured
        noise variance (no regression dilution); 'ols': plain least squares (diluted).
    sd_model : {'auto', 'linear', 'quadratic'}
        'auto': linear unless a monotone quadratic lowers the AIC by more than 2.
    min_soma_reliability : float
        Pairs whose somatic responses are mostly noise (true / measured variance below
        this) are not fitted.
    n_permutations : int
        Permutations (or shuffles) per test; p-values are ``(1 + k) / (1 + n)``.
    alpha : float
        Significance level used by :func:`summarize`.
    seed : int
        Seed for the ``np.random.default_rng`` that callers pass as ``rng``.
    min_events_per_neuron : int
        Coincident events a soma-dendrite pair needs for its SD fit.
    alternative : {'two-sided', 'greater'}
        Alternative of the group x epoch test; 'greater' tests the paper's predicted sign
        (P+ amplified over P- during error reduction relative to error increase).
    early_fraction : float
        The first ``max(1, floor(early_fraction * n))`` of a subject's n sessions are
        "early" (a fraction, so 3-day and 14-day experiments both work).
    late_fraction : float
        The last ``max(1, floor(late_fraction * n))`` sessions are "late" (activity
        change = late minus early mean dF/F); they never overlap the early ones.
    outcome_window_s : tuple of float
        Window (start, stop) in seconds around the outcome frame (reward TTL for hits,
        white-noise onset for failures) within which events are outcome-aligned.
    outcome_bin_s : float
        Lag bin width of the outcome-aligned residual time course.
    network_window_s : tuple of float
        Window (start, stop) in seconds relative to the soma event onset over which the
        other neurons' dF/F is averaged as predictors.
    ridge_alpha : float
        L2 penalty of the network ridge regression (on z-scored predictors).
    n_folds : int
        Cross-validation folds of the network prediction.
    n_network_shuffles : int
        Shuffled-residual refits forming the network prediction null.
    min_events_network : int
        Sessions with fewer coincident events are not used for network prediction.
    reference_condition : str
        With several conditions in the sessions table (column ``condition``), the one the
        headline and the other per-claim tests run on and the others are compared with
        (:mod:`analysis.conditions`); with one condition, that one.
    """

    section: ClassVar[str] = "stats"

    coincidence_window_s: float = 0.2
    response_window_s: float = 0.5
    response_baseline_s: float = 0.2
    epoch_reference: Literal["pre_onset", "at_onset"] = "pre_onset"
    epoch_window_s: float = 1.0
    epoch_gap_s: float = 0.3
    own_event_exclusion_s: float = 2.0
    sd_fit: Literal["errors_in_variables", "ols"] = "errors_in_variables"
    sd_model: Literal["auto", "linear", "quadratic"] = "auto"
    min_soma_reliability: float = 0.3
    n_permutations: int = 2000
    alpha: float = 0.05
    seed: int = 0
    min_events_per_neuron: int = 5
    alternative: Literal["two-sided", "greater"] = "two-sided"
    early_fraction: float = 0.34
    late_fraction: float = 0.34
    outcome_window_s: tuple[float, ...] = (-2.0, 3.0)
    outcome_bin_s: float = 0.5
    network_window_s: tuple[float, ...] = (-1.0, 0.0)
    ridge_alpha: float = 10.0
    n_folds: int = 5
    n_network_shuffles: int = 200
    min_events_network: int = 20
    reference_condition: str = DEFAULT_CONDITION

    def __post_init__(self) -> None:
        require(
            0 < self.coincidence_window_s <= 5,
            "stats.coincidence_window_s must be in (0, 5] seconds",
        )
        require(self.response_window_s > 0, "stats.response_window_s must be > 0 seconds")
        require(self.response_baseline_s > 0, "stats.response_baseline_s must be > 0 seconds")
        require(
            self.epoch_reference in residuals.EPOCH_REFERENCES,
            f"stats.epoch_reference must be one of {list(residuals.EPOCH_REFERENCES)}",
        )
        require(self.epoch_window_s > 0, "stats.epoch_window_s must be > 0 seconds")
        require(
            self.epoch_gap_s >= self.response_baseline_s,
            "stats.epoch_gap_s must be >= stats.response_baseline_s: otherwise the same "
            "frames' noise sets both the epoch and the somatic response",
        )
        require(self.own_event_exclusion_s >= 0, "stats.own_event_exclusion_s must be >= 0")
        require(
            self.sd_fit in residuals.SD_FITS,
            f"stats.sd_fit must be one of {list(residuals.SD_FITS)}",
        )
        require(
            self.sd_model in residuals.SD_MODELS,
            f"stats.sd_model must be one of {list(residuals.SD_MODELS)}",
        )
        require(0 <= self.min_soma_reliability < 1, "stats.min_soma_reliability must be in [0, 1)")
        require(self.n_permutations >= 19, "stats.n_permutations must be >= 19")
        require(0 < self.alpha < 1, "stats.alpha must be in (0, 1)")
        require(self.seed >= 0, "stats.seed must be >= 0")
        require(self.min_events_per_neuron >= 4, "stats.min_events_per_neuron must be >= 4")
        require(0 < self.early_fraction < 1, "stats.early_fraction must be in (0, 1)")
        require(0 < self.late_fraction < 1, "stats.late_fraction must be in (0, 1)")
        for name in ("outcome_window_s", "network_window_s"):
            win = getattr(self, name)
            require(
                len(win) == 2 and win[0] < win[1],
                f"stats.{name} must be two numbers [start, stop] with start < stop",
            )
        require(self.outcome_bin_s > 0, "stats.outcome_bin_s must be > 0 seconds")
        require(self.ridge_alpha > 0, "stats.ridge_alpha must be > 0")
        require(self.n_folds >= 2, "stats.n_folds must be >= 2")
        require(self.n_network_shuffles >= 19, "stats.n_network_shuffles must be >= 19")
        require(self.min_events_network >= 10, "stats.min_events_network must be >= 10")
