"""Stage 9, figures: paper-style and QC panels drawn from saved result tables only.

Every public function is ``plot_<thing>(data, *, ax=None, ...) -> Axes``: it draws one
panel into ``ax`` (or into a new figure when ``ax`` is None) and returns the Axes; the
figure is ``ax.figure``. Inputs are the tables the stats/bci/register/track stages save
(columns listed per function); plots only display them (means across animals for a
curve at most) and never recompute an analysis. New figures are plain
``matplotlib.figure.Figure`` objects, not pyplot figures, so no GUI backend or global
pyplot state is involved (Agg-compatible); saving is ``analysis.io.save_figure``.

Modules: ``paper`` (the paper-style panels), ``qc_panels`` (QC panels), ``draw`` (whole
figures: :func:`draw_paper_figures`, :func:`draw_qc_figures`), ``style`` (colours, orders).
"""

from __future__ import annotations

from analysis.figures.draw import draw_paper_figures, draw_qc_figures
from analysis.figures.paper import (
    RESIDUAL_SIZE_LABELS,
    plot_group_activity,
    plot_learning_by_condition,
    plot_learning_curve,
    plot_network_prediction,
    plot_outcome_residuals,
    plot_residual_by_true_size,
    plot_residual_vs_change,
    plot_residuals_by_group_epoch,
    plot_sd_fit,
    plot_separation_by_condition,
    plot_signed_separation,
)
from analysis.figures.qc_panels import (
    plot_cursor_replay,
    plot_no_data,
    plot_pairing_qc,
    plot_registration_qc,
)
from analysis.figures.style import (
    CONDITION_COLORS,
    EPOCH_ORDER,
    GROUP_COLORS,
    GROUP_ORDER,
    OUTCOME_COLORS,
)

__all__ = [
    "CONDITION_COLORS",
    "EPOCH_ORDER",
    "GROUP_COLORS",
    "GROUP_ORDER",
    "OUTCOME_COLORS",
    "RESIDUAL_SIZE_LABELS",
    "draw_paper_figures",
    "draw_qc_figures",
    "plot_cursor_replay",
    "plot_group_activity",
    "plot_learning_by_condition",
    "plot_learning_curve",
    "plot_network_prediction",
    "plot_no_data",
    "plot_outcome_residuals",
    "plot_pairing_qc",
    "plot_registration_qc",
    "plot_residual_by_true_size",
    "plot_residual_vs_change",
    "plot_residuals_by_group_epoch",
    "plot_sd_fit",
    "plot_separation_by_condition",
    "plot_signed_separation",
]
