"""One plane of one session, end to end, in blocks of ROIs: memory bounded by a setting."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from analysis import io
from analysis.dims import ROI, TRACE_DIMS
from analysis.extract.dff import compute_dff
from analysis.extract.events import deconvolve, detect_events
from analysis.extract.settings import ExtractSettings
from analysis.extract.traces import blank_frames, extract_traces

log = logging.getLogger(__name__)


def extract_plane(
    movie: np.ndarray,
    masks: xr.Dataset,
    *,
    exclude: np.ndarray,
    fs_hz: float,
    settings: ExtractSettings,
    path: str | os.PathLike,
    inputs: Sequence[str | os.PathLike] = (),
) -> pd.DataFrame:
    """Traces of one plane written to ``path`` (NetCDF), block by block; returns the events.

    The result is the same as :func:`extract_traces`, :func:`blank_frames`,
    :func:`compute_dff`, :func:`deconvolve` and :func:`detect_events` run on all ROIs at
    once and written with :func:`analysis.io.write_netcdf` (float32), but memory does
    not grow with ROIs x frames: ``F``/``Fneu`` go to a scratch file beside ``path``
    (deleted at the end), the per-ROI steps run on blocks of
    ``settings.roi_block(n_frames)`` ROIs (``max_memory_gb``), and each block is written
    to ``path`` (:class:`analysis.io.NetcdfWriter`, atomic) as soon as it is done.

    Parameters
    ----------
    movie : array-like (time, row, col)
        Registered movie, read in batches of frames.
    masks : xarray.Dataset
        Sparse ROI masks on the movie's field.
    exclude : bool array (time,)
        Frames set to NaN in every trace (see :func:`blank_frames`).
    fs_hz : float
    settings : ExtractSettings
    path : path
        The traces file; its provenance attrs name stage ``extract``, ``settings`` and
        ``inputs``.

    Returns
    -------
    pandas.DataFrame
        The events of every ROI (:func:`detect_events`), sorted by ROI then frame.
    """
    n_roi, n_time = masks.sizes[ROI], movie.shape[0]
    block = settings.roi_block(n_time)
    log.info("%d ROIs x %d frames: per-ROI steps in %d block(s) of up to %d ROIs "
             "(max_memory_gb %g)", n_roi, n_time, len(roi_blocks(n_roi, block)),
             min(block, n_roi), settings.max_memory_gb)  # fmt: skip
    tables = []
    with io.scratch_array(path, (2 * n_roi, n_time), np.float32) as scratch:
        layout = extract_traces(movie, masks, fs_hz=fs_hz, settings=settings, out=scratch)
        writer = io.NetcdfWriter(
            path, layout, dim=ROI, stage="extract", settings=settings, inputs=inputs
        )
        with writer:
            for traces in _scratch_blocks(scratch, layout, block):
                traces, events = process_block(traces, exclude, fs_hz=fs_hz, settings=settings)
                writer.write(traces)
                tables.append(events)
    events = concat_events(tables)
    log.info("%d ROIs, %d events", n_roi, len(events))
    return events


def process_block(
    traces: xr.Dataset, exclude: np.ndarray, *, fs_hz: float, settings: ExtractSettings
) -> tuple[xr.Dataset, pd.DataFrame]:
    """The per-ROI steps on ``F``/``Fneu`` of some ROIs (from :func:`extract_traces`):
    blank ``exclude`` frames, dF/F, deconvolution (merged in) and events.

    Returns the traces as float32 (what the extract stage writes) and the events.
    """
    traces = blank_frames(traces, exclude)
    traces = compute_dff(traces, fs_hz=fs_hz, settings=settings)
    traces = xr.merge([traces, deconvolve(traces["dff"], fs_hz=fs_hz, settings=settings)])
    events = detect_events(traces["dff"], fs_hz=fs_hz, settings=settings)
    return traces.astype(np.float32), events


def concat_events(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Event tables of consecutive ROI blocks as one (the first one when all are empty)."""
    found = [table for table in tables if len(table)]
    if not found:
        return tables[0]
    return found[0] if len(found) == 1 else pd.concat(found, ignore_index=True)


def roi_blocks(n_roi: int, block: int) -> list[slice]:
    """Consecutive slices of at most ``block`` ROIs (one empty slice for no ROI)."""
    return [slice(a, min(a + block, n_roi)) for a in range(0, n_roi, block)] or [slice(0, 0)]


def _scratch_blocks(scratch: io.DiskArray, layout: xr.Dataset, block: int) -> Iterator[xr.Dataset]:
    """``F``/``Fneu`` of each block of ROIs, read from ``scratch`` (see extract_traces)."""
    n_roi = layout.sizes[ROI]
    for rois in roi_blocks(n_roi, block):
        f = scratch[rois]
        fneu = scratch[rois.start + n_roi : rois.stop + n_roi]
        yield xr.Dataset(
            {"F": (TRACE_DIMS, f), "Fneu": (TRACE_DIMS, fneu)},
            coords=layout.isel({ROI: rois}).coords,
            attrs=layout.attrs,
        )
