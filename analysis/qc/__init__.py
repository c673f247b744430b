"""Stage qc: self-contained HTML pages to look at a run's results, per subject and cohort.

Input: saved results only (register, align_days, track, extract, bci, stats, figures).
Output: ``results/qc/<subject>.html`` (fields of view with ROI, target and pairing
outlines, per-ROI traces, events, spikes and trial-aligned rasters, behaviour, cursor
replay, registration and cross-day alignment) and ``results/qc/index.html`` (subjects,
statistics summary, tables and figures with captions). Pages open from disk: no server,
no network, no JavaScript library (``viewer.js`` is plain JS written for this page).
"""

from __future__ import annotations

import dataclasses

from analysis.qc.data import SubjectResults, compute_subject_view, count_outlines
from analysis.qc.html import Figure, render_caption, render_index_page, render_subject_page
from analysis.settings import StageSettings, require

__all__ = [
    "Figure",
    "QcSettings",
    "SubjectResults",
    "compute_subject_view",
    "count_outlines",
    "render_caption",
    "render_index_page",
    "render_subject_page",
]


@dataclasses.dataclass(frozen=True)
class QcSettings(StageSettings):
    """Settings of the qc stage (config section ``qc``).

    Attributes
    ----------
    max_trace_points : int
        Points per ROI and session for dF/F, shifts and the cursor replay: longer series
        are reduced to each bin's min and max (events stay visible); OASIS spikes get a
        quarter as many bin sums. Bounds the page size.
    max_lag_points : int
        Lag bins of the trial-aligned rasters (means over neighbouring frames).
    jpeg_quality : int
        JPEG quality (1-95) of the mean, enhanced and overlay images.
    """

    section = "qc"

    max_trace_points: int = 2000
    max_lag_points: int = 30
    jpeg_quality: int = 85

    def __post_init__(self) -> None:
        require(self.max_trace_points >= 4, "qc.max_trace_points must be >= 4")
        require(self.max_lag_points >= 1, "qc.max_lag_points must be >= 1")
        require(1 <= self.jpeg_quality <= 95, "qc.jpeg_quality must be in 1..95")
