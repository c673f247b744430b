"""The track stage's settings (config section ``track``) and its error."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from analysis.settings import StageSettings, require


class TargetMatchError(ValueError):
    """An online target ROI matches no detected soma well enough."""

    __module__ = "analysis.track"  # its public home, as tracebacks and logs name it


@dataclasses.dataclass(frozen=True)
class TrackSettings(StageSettings):
    """Settings of the track stage (config section ``track``).

    Tracking across days
        iou_threshold: minimum IoU (reference coords) for a session ROI to join a track.
        min_sessions: tracks detected on fewer sessions are dropped (capped at the number
        of sessions, so a single session keeps all its ROIs); a false positive of one day
        rarely recurs at the same place, a real soma does.
        merge_iou_threshold: two tracks whose consensus masks overlap with at least this
        IoU and that never hold ROIs of the same session are joined (one neuron whose
        mask moved on one day, which would otherwise start a duplicate track).
        consensus_fraction: a pixel belongs to the consensus mask when it lies in at least
        this fraction of the track's detected masks.
        cells_only: keep only ROIs whose ``is_cell`` coordinate is True (when present).
    Target mapping
        target_metric: "iou" or "overlap" (fraction of target pixels inside the soma).
        target_min_score: minimum score of an accepted target-soma match.
    Soma-dendrite pairing
        highpass_window_s: running-mean window removed from each trace (slow drift).
        event_threshold_sd: activity below this many robust SDs is set to 0 (events only).
        n_shuffles: circular-shift shuffles per dendrite.
        min_shift_s: smallest circular shift used by the shuffle (beyond the event time).
        alpha: pairs with p < alpha (and positive corr) are candidates.
        min_corr: candidates also need at least this correlation.
        seed: seed of the shuffle lags (results are reproducible run to run).
    """

    section: ClassVar[str] = "track"

    iou_threshold: float = 0.3
    min_sessions: int = 2
    merge_iou_threshold: float = 0.2
    consensus_fraction: float = 0.5
    cells_only: bool = True
    target_metric: Literal["iou", "overlap"] = "overlap"
    target_min_score: float = 0.3
    highpass_window_s: float = 10.0
    event_threshold_sd: float = 2.0
    n_shuffles: int = 1000
    min_shift_s: float = 5.0
    alpha: float = 0.01
    min_corr: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        require(0 < self.iou_threshold <= 1, "track.iou_threshold must be in (0, 1]")
        require(self.min_sessions >= 1, "track.min_sessions must be >= 1")
        require(0 < self.merge_iou_threshold <= 1, "track.merge_iou_threshold must be in (0, 1]")
        require(0 < self.consensus_fraction <= 1, "track.consensus_fraction must be in (0, 1]")
        require(0 < self.target_min_score <= 1, "track.target_min_score must be in (0, 1]")
        require(self.highpass_window_s > 0, "track.highpass_window_s must be > 0 s")
        require(self.event_threshold_sd >= 0, "track.event_threshold_sd must be >= 0")
        require(self.n_shuffles >= 10, "track.n_shuffles must be >= 10")
        require(self.min_shift_s >= 0, "track.min_shift_s must be >= 0 s")
        require(0 < self.alpha < 1, "track.alpha must be in (0, 1)")
        require(-1 <= self.min_corr <= 1, "track.min_corr must be in [-1, 1]")
