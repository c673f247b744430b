"""Unit tests for analysis.figures: each panel draws the expected artists from tiny tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import io

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from analysis import figures


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def _renders(ax) -> None:
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png")
    assert buf.tell() > 0


def test_plot_learning_curve():
    beh = pd.DataFrame(
        dict(
            subject=["a", "a", "b", "b"],
            day_index=[0, 1, 0, 1],
            hit_rate=[0.2, 0.6, 0.4, 0.8],
            rewards_per_min=[1.0, 2.0, 1.0, 3.0],
        )
    )
    ax = figures.plot_learning_curve(beh)
    assert _labels(ax) == ["a", "b", "mean"]
    np.testing.assert_allclose(ax.get_lines()[-1].get_ydata(), [0.3, 0.7])
    assert ax.get_ylabel() == "hit rate"
    ax2 = figures.plot_learning_curve(beh, metric="rewards_per_min")
    assert ax2.get_ylabel() == "rewards per min"
    _renders(ax)
    with pytest.raises(ValueError, match="missing column"):
        figures.plot_learning_curve(beh, metric="dprime")


def test_plot_group_activity_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    table = pd.DataFrame(
        dict(
            subject=["a", "b"] * 4,
            group=["P+"] * 4 + ["P-"] * 4,
            day_index=[0, 0, 1, 1] * 2,
            mean_dff=[1.0, 1.2, 1.1, 1.1, 1.0, 1.0, 0.5, 0.7],
        )
    )
    out = figures.plot_group_activity(table, ax=ax)
    assert out is ax
    assert _labels(ax) == ["P+", "P-"]
    assert len(ax.collections) == 2  # SEM bands
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [1.0, 0.6])
    _renders(ax)


def test_plot_sd_fit():
    ev = pd.DataFrame(
        dict(
            soma_roi=1,
            dendrite_roi=11,
            soma_amplitude=[1.0, 2.0, 3.0],
            dendrite_amplitude=[1.1, 2.0, 3.2],
        )
    )
    fit = pd.DataFrame(dict(slope=[1.0], intercept=[0.05], r2=[0.99]))
    ax = figures.plot_sd_fit(ev, fit)
    assert len([c for c in ax.collections if isinstance(c, PathCollection)]) == 1
    assert _labels(ax) == ["linear fit"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata()[[0, -1]], [0.05, 3.05])
    assert "R² = 0.99" in ax.get_title()
    with pytest.raises(ValueError, match="one soma-dendrite pair"):
        figures.plot_sd_fit(pd.concat([ev, ev.assign(soma_roi=2)]), fit)


def test_plot_residuals_by_group_epoch():
    rows = [
        (s, g, e, v)
        for s, off in (("a", 0.0), ("b", 0.2))
        for g, sign in (("P+", 1), ("P-", -1))
        for e, esign in (("reduction", 1), ("increase", -1))
        for v in [off + sign * esign * 0.5]
    ]
    contrasts = pd.DataFrame(rows, columns=["subject", "group", "epoch", "mean_residual_z"])
    ax = figures.plot_residuals_by_group_epoch(contrasts)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == ["P+", "P-"]
    heights = [p.get_height() for p in bars[0].patches]
    np.testing.assert_allclose(heights, [0.6, -0.4])  # P+: reduction, increase
    assert [t.get_text() for t in ax.get_xticklabels()] == ["error reduction", "error increase"]
    _renders(ax)


def test_plot_outcome_residuals():
    tc = pd.DataFrame(
        dict(
            outcome=["hit"] * 3 + ["failure"] * 3,
            lag_s=[-0.5, 0.5, 1.5] * 2,
            mean_residual_z=[0, 0.5, 0.3, 0, -0.2, -0.1],
            sem_residual_z=[0.1] * 5 + [np.nan],
        )
    )
    ax = figures.plot_outcome_residuals(tc)
    assert _labels(ax)[:2] == ["hit", "failure"]
    assert len(ax.get_lines()) == 4  # two outcomes + lag-0 and zero reference lines
    _renders(ax)


def test_plot_signed_separation():
    sep = pd.DataFrame(dict(subject=["m2", "m1", "m3"], separation=[0.4, -0.1, 0.2]))
    ax = figures.plot_signed_separation(sep)
    assert len(ax.patches) == 3
    assert ax.get_title() == "2 of 3 animals positive"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["m1", "m2", "m3"]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [-0.1, 0.4, 0.2])


def test_plot_separation_and_learning_by_condition():
    sep = pd.DataFrame(
        dict(
            subject=["a", "b", "c", "d", "e"],
            condition=["ndnf_opto", "control", "control", "ndnf_opto", "ndnf_opto"],
            separation=[0.1, 3.0, 2.0, -0.2, 0.4],
        )
    )
    ax = figures.plot_separation_by_condition(sep)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["control", "ndnf_opto"]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [2.5, 0.1])
    behaviour = pd.DataFrame(
        dict(
            subject=["a", "a", "b", "b"],
            condition=["control", "control", "ndnf_opto", "ndnf_opto"],
            day_index=[0, 1, 0, 1],
            hit_rate=[0.3, 0.6, 0.3, 0.35],
        )
    )
    ax = figures.plot_learning_by_condition(behaviour)
    assert _labels(ax) == ["control (1 animals)", "ndnf_opto (1 animals)"]
    _renders(ax)


def test_plot_residual_vs_change_and_network():
    neurons = pd.DataFrame(
        dict(
            subject=["a", "a", "b"],
            early_residual_z=[0.1, -0.2, 0.3],
            activity_change=[0.0, 1.0, 2.0],
        )
    )
    ax = figures.plot_residual_vs_change(neurons)
    assert len(ax.collections) == 2
    net = pd.DataFrame(
        dict(
            subject=["a", "b"],
            session=["day01", "day01"],
            r_cv=[0.3, 0.1],
            null_mean=[0.0, 0.01],
            null_sd=[0.05, 0.05],
        )
    )
    ax = figures.plot_network_prediction(net)
    assert len(ax.containers) == 1 and len(ax.collections) >= 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a day01", "b day01"]
    _renders(ax)


def test_plot_cursor_replay():
    frames = np.arange(50)
    logged = np.sin(frames / 5.0)
    replay = pd.DataFrame(
        dict(frame=frames, logged=logged, replayed=logged + 0.01 * np.cos(frames))
    )
    ax = figures.plot_cursor_replay(replay)
    assert _labels(ax) == ["logged", "replayed"]
    r = float(ax.get_title().split("= ")[1])
    assert r > 0.99
    with pytest.raises(ValueError, match="empty"):
        figures.plot_cursor_replay(replay.iloc[:0])


def test_plot_registration_qc_from_dataset():
    t = np.arange(20) / 10.0
    ds = xr.Dataset(
        dict(
            shift_row=("time", np.zeros(20)),
            shift_col=("time", np.ones(20)),
            corr_ref=("time", np.full(20, 0.9)),
        ),
        coords=dict(time=t, frame=("time", np.arange(20))),
    )
    ax = figures.plot_registration_qc(ds)
    assert _labels(ax) == ["shift_row", "shift_col"]
    assert len(ax.figure.axes) == 2 and _labels(ax.figure.axes[1]) == ["corr_ref"]
    table = ds.to_dataframe().reset_index()
    assert _labels(figures.plot_registration_qc(table)) == ["shift_row", "shift_col"]
    with pytest.raises(ValueError, match="corr_ref"):
        figures.plot_registration_qc(ds.drop_vars("corr_ref"))
    _renders(ax)


def test_plot_pairing_qc():
    rng = np.random.default_rng(0)
    pairs = pd.DataFrame(
        dict(
            corr=np.r_[rng.uniform(0.5, 0.9, 6), rng.uniform(0, 0.3, 10)],
            paired=[True] * 6 + [False] * 10,
        )
    )
    ax = figures.plot_pairing_qc(pairs)
    assert ax.get_legend_handles_labels()[1] == ["paired (6)", "not paired (10)"]
    assert len(ax.patches) == 2
    with pytest.raises(TypeError, match="DataFrame"):
        figures.plot_pairing_qc(pairs.to_dict())


def test_plot_residual_by_true_size():
    table = pd.DataFrame(
        dict(
            variant=["linear"] * 3 + ["old_design"] * 3,
            true_size=[0.3, 0.6, 1.2] * 2,
            mean_residual_z=[0.0, 0.01, -0.02, -0.2, 0.0, 0.3],
            sem_residual_z=0.01,
        )
    )
    ax = figures.plot_residual_by_true_size(table)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [figures.RESIDUAL_SIZE_LABELS[v] for v in ("linear", "old_design")]
    _renders(ax)
    with pytest.raises(ValueError, match="missing column"):
        figures.plot_residual_by_true_size(table.drop(columns="variant"))
