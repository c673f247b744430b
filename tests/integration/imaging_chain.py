"""The imaging stages chained in memory as ``workflow/scripts/*.py`` chain them.

Shared by the integration tests; keys are ``(session, plane)``, plane 0 somata, 1 dendrites.
"""

import numpy as np
import xarray as xr

from analysis import extract
from analysis.align_days import AlignDaysSettings, align_days
from analysis.dims import SESSION, TIME
from analysis.register import RegisterSettings, register_movie
from analysis.segment import SegmentSettings, detect_dendrites, detect_somata
from analysis.track import pair_dendrites


def true_mean_shift(motion, shape):
    """FOV-mean true displacement: rigid shift plus the mean nonrigid warp."""
    k = 2 * np.pi / motion["nonrigid_wavelength_px"]
    warp_row = np.sin(k * np.arange(shape[1]) + motion["nonrigid_phase_row"]).mean()
    warp_col = np.sin(k * np.arange(shape[0]) + motion["nonrigid_phase_col"]).mean()
    return (
        motion["shift_row"] + motion["nonrigid_amp_row"] * warp_row,
        motion["shift_col"] + motion["nonrigid_amp_col"] * warp_col,
    )


def register_movies(movies, *, fs_hz):
    """register_movie on each raw movie (int16 in and out, as ingest/register write them);
    returns the registration results and the registered movies by key."""
    reg, registered = {}, {}
    for key, raw in movies.items():
        raw16 = raw.astype(np.int16)
        registered[key] = np.empty_like(raw16)
        reg[key] = register_movie(raw16, registered[key], fs_hz=fs_hz, settings=RegisterSettings())
    return reg, registered


def align_mean_images(regs, sessions):
    """align_days on the registered mean images of ``regs`` (one per session, in order)."""
    mean_images = xr.concat(
        [r["mean_image"] for r in regs], dim=xr.DataArray(sessions, dims=SESSION, name=SESSION)
    )
    return align_days(mean_images, settings=AlignDaysSettings())


def segment_movies(registered, reg, *, fs_hz):
    """Somata on plane 0, dendrites on plane 1, each on its registered movie and mean."""
    settings = SegmentSettings()
    detectors = {0: detect_somata, 1: detect_dendrites}
    return {
        key: detectors[key[1]](
            movie, mean_image=reg[key]["mean_image"].values, fs_hz=fs_hz, settings=settings
        )
        for key, movie in registered.items()
    }


def extract_movies(registered, session_masks, reg, *, fs_hz):
    """Traces (register's bad frames blanked, dF/F, deconvolution) and events by key."""
    settings = extract.ExtractSettings()
    traces, events = {}, {}
    for key, movie in registered.items():
        tr = extract.extract_traces(movie, session_masks[key], fs_hz=fs_hz, settings=settings)
        tr = extract.blank_frames(tr, reg[key]["bad_frame"].values)
        tr = extract.compute_dff(tr, fs_hz=fs_hz, settings=settings)
        traces[key] = xr.merge([tr, extract.deconvolve(tr["dff"], fs_hz=fs_hz, settings=settings)])
        events[key] = extract.detect_events(traces[key]["dff"], fs_hz=fs_hz, settings=settings)
    return traces, events


def pair_over_sessions(traces, sessions, settings):
    """pair_dendrites on the somatic and dendritic dF/F of all sessions end to end."""
    return pair_dendrites(
        xr.concat([traces[(s, 0)]["dff"] for s in sessions], dim=TIME),
        xr.concat([traces[(s, 1)]["dff"] for s in sessions], dim=TIME),
        settings=settings,
        rng=np.random.default_rng(settings.seed),
    )
