"""The extract stage in blocks of ROIs (bounded memory) and the NetCDF block writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import signal

from analysis import io
from analysis.extract import (
    ExtractSettings,
    blank_frames,
    compute_dff,
    deconvolve,
    detect_events,
    extract_plane,
    extract_traces,
    roi_blocks,
)
from analysis.extract.settings import BLOCK_BYTES_PER_ROI_FRAME
from analysis.masks import from_dense

FS_HZ = 15.0
N_TIME = 400


def _session(rng: np.random.Generator):
    """A 48 x 48 px movie with 5 ROIs (ROI 13's mask empty), NaN and excluded frames."""
    masks = np.zeros((5, 48, 48), np.float32)
    for k, (r, c) in enumerate([(4, 4), (4, 30), (20, 16), (30, 4), (36, 34)]):
        masks[k, r : r + 6, c : c + 6] = 1.0
    masks[0, 6:8, 6:8] = 2.0  # unequal weights
    masks[3] = 0.0  # a tracked neuron outside this day's field of view
    neuropil = 100 + 10 * np.sin(np.arange(N_TIME) / 15)
    movie = rng.normal(neuropil[:, None, None], 2.0, (N_TIME, 48, 48)).astype(np.float32)
    for k in range(5):
        spikes = (rng.random(N_TIME) < 0.02) * rng.uniform(0.5, 1.5, N_TIME)
        calcium = signal.lfilter([1.0], [1.0, -np.exp(-1 / (0.7 * FS_HZ))], spikes)
        movie[:, masks[k] > 0] += (80 * (1 + calcium))[:, None].astype(np.float32)
    movie[[0, 150, 151]] = np.nan  # dropped frames
    exclude = np.zeros(N_TIME, bool)
    exclude[[40, 41, 42, 399]] = True  # bad frames flagged by register
    rois = xr.DataArray(masks, dims=("roi", "row", "col"), coords={"roi": [3, 5, 8, 13, 21]})
    return movie, from_dense(rois), exclude


def _all_at_once(movie, masks, exclude, settings, path):
    """What the extract rule did before it worked in blocks."""
    traces = extract_traces(movie, masks, fs_hz=FS_HZ, settings=settings)
    traces = blank_frames(traces, exclude)
    traces = compute_dff(traces, fs_hz=FS_HZ, settings=settings)
    traces = xr.merge([traces, deconvolve(traces["dff"], fs_hz=FS_HZ, settings=settings)])
    events = detect_events(traces["dff"], fs_hz=FS_HZ, settings=settings)
    io.write_netcdf(
        traces.astype(np.float32), path, stage="extract", settings=settings, inputs=["m.bin"]
    )
    return events


def test_roi_block_follows_the_memory_budget():
    per_roi = BLOCK_BYTES_PER_ROI_FRAME * 54_000
    assert ExtractSettings(max_memory_gb=1.0).roi_block(54_000) == int(1e9 // per_roi)
    assert ExtractSettings(max_memory_gb=1e-9).roi_block(54_000) == 1  # at least one ROI
    with pytest.raises(ValueError, match="extract.max_memory_gb must be > 0"):
        ExtractSettings(max_memory_gb=0.0)
    assert roi_blocks(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert roi_blocks(0, 2) == [slice(0, 0)]


def test_blocks_give_the_all_at_once_result(tmp_path):
    movie, masks, exclude = _session(np.random.default_rng(3))
    budget = 2.5 * BLOCK_BYTES_PER_ROI_FRAME * N_TIME / 1e9  # 2 ROIs per block: 3 blocks
    settings = ExtractSettings(baseline_window_s=10.0, max_memory_gb=budget)
    assert settings.roi_block(N_TIME) == 2
    expected = _all_at_once(movie, masks, exclude, settings, tmp_path / "all.nc")
    out = tmp_path / "plane" / "traces.nc"
    events = extract_plane(movie, masks, exclude=exclude, fs_hz=FS_HZ, settings=settings,
                           path=out, inputs=["m.bin"])  # fmt: skip
    assert sorted(p.name for p in out.parent.iterdir()) == ["traces.nc"]  # no scratch left
    old, new = io.read_netcdf(tmp_path / "all.nc"), io.read_netcdf(out)
    assert new.identical(old)
    assert list(new.variables) == list(old.variables)
    for name in old.variables:
        assert new[name].dtype == old[name].dtype, name
    assert np.isnan(new["dff"].sel(roi=13)).all() and int(new["n_pixels"].sel(roi=13)) == 0
    assert np.isnan(new["F"].values[:, [0, 40, 150, 399]]).all()
    assert len(events) > 0 and set(events["roi"]) > {3, 5}
    pd.testing.assert_frame_equal(events, expected)
