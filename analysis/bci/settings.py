"""The bci stage's settings (config section ``bci``) and the checks of its inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.settings import StageSettings, require
from analysis.vocabulary import BCI_META_REQUIRED, BCI_REQUIRED_COLUMNS

FRAME_COLUMNS = BCI_REQUIRED_COLUMNS
META_KEYS = BCI_META_REQUIRED


@dataclasses.dataclass(frozen=True)
class BciSettings(StageSettings):
    """Settings of the bci stage (config section ``bci``).

    Attributes
    ----------
    grating_step_deg : float
        Angle between adjacent grating positions, degrees: one error step.
    error_smoothing_s : float
        Width of the centred moving mean applied to the error before differentiating,
        seconds (odd number of frames; computed within each trial's active frames).
    derivative_tolerance_steps_per_s : float
        ``|d error / dt|`` at or below this is flat (epoch 'none'), steps/s.
    epoch_min_duration_s : float
        Reduction/increase runs shorter than this become 'none', seconds.
    aligned_pre_s : float
        Seconds before each event in trial-aligned arrays.
    aligned_post_s : float
        Seconds after each event in trial-aligned arrays.
    """

    section = "bci"

    grating_step_deg: float = 15.0
    error_smoothing_s: float = 0.5
    derivative_tolerance_steps_per_s: float = 1e-6
    epoch_min_duration_s: float = 0.0
    aligned_pre_s: float = 2.0
    aligned_post_s: float = 4.0

    def __post_init__(self) -> None:
        require(self.grating_step_deg > 0, "bci.grating_step_deg must be > 0 degrees")
        require(self.error_smoothing_s >= 0, "bci.error_smoothing_s must be >= 0 seconds")
        require(
            self.derivative_tolerance_steps_per_s >= 0,
            "bci.derivative_tolerance_steps_per_s must be >= 0",
        )
        require(self.epoch_min_duration_s >= 0, "bci.epoch_min_duration_s must be >= 0 seconds")
        require(self.aligned_pre_s >= 0, "bci.aligned_pre_s must be >= 0 seconds")
        require(self.aligned_post_s > 0, "bci.aligned_post_s must be > 0 seconds")

    @property
    def window_s(self) -> tuple[float, float]:
        """``(start, stop)`` of trial-aligned windows relative to the event, seconds."""
        return (-self.aligned_pre_s, self.aligned_post_s)


def check_frames(frames: pd.DataFrame) -> None:
    if not isinstance(frames, pd.DataFrame):
        raise ValueError("BCI frames must be a pandas.DataFrame (bci_frames.tsv)")
    missing = [c for c in FRAME_COLUMNS if c not in frames.columns]
    if missing:
        raise ValueError(f"BCI frames table lacks columns {missing}; required: {FRAME_COLUMNS}")
    frame = frames["frame"].to_numpy()
    if not np.array_equal(frame, np.arange(frame.size)):
        raise ValueError("BCI frames: 'frame' must be 0, 1, 2, ... (one row per volume, in order)")
    trial = frames["trial"].to_numpy()
    if not np.all(np.isfinite(trial.astype(np.float64))) or np.any(trial < -1):
        raise ValueError("BCI frames: 'trial' must be integers >= -1 (-1 outside trials)")


def check_meta(meta: Mapping[str, Any]) -> None:
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"BCI meta lacks keys {missing}; required: {META_KEYS}")
    if not float(meta["threshold"]) > float(meta["failure_bound"]):
        raise ValueError(
            f"BCI meta: threshold ({meta['threshold']}) must exceed failure_bound "
            f"({meta['failure_bound']})"
        )
    require(int(meta["max_trial_frames"]) >= 1, "BCI meta: max_trial_frames must be >= 1")
