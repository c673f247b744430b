"""Register every plane of one session with suite2p (rigid + nonrigid), streaming: each
plane is read from the raw files into its output movie (int16, dropped and saturated
frames flagged) and registered there in place. The planes run in parallel threads (torch
releases the GIL in its kernels)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from analysis import ingest, io, readers
from analysis.config import rule_settings
from analysis.register import register_movie
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)


def register_plane(index: int) -> None:
    plane = planes[index]
    threading.current_thread().name = f"plane{plane}"  # tags its log lines
    n_frames = record["n_frames"]
    header = io.MovieHeader(n_frames, *record["shape"], dtype="int16", fs_hz=record["fs_hz"])
    movie = io.create_movie(sm.output.movies[index], header)
    flags = ingest.fill_plane(
        readers.iter_plane(
            record["imaging"]["planes"][str(plane)], batch_frames=ingest_settings.batch_frames
        ),
        movie,
        settings=ingest_settings,
        source=f"{record['session_dir']} ({record['imaging']['format']}, plane {plane})",
    )
    log.info(
        "plane %d: %d frames read, %d dropped, %d saturated",
        plane,
        n_frames,
        flags["dropped"].sum(),
        flags["saturated"].sum(),
    )
    io.write_tsv(pd.DataFrame({"frame": np.arange(n_frames), **flags}), sm.output.frames[index])
    result = register_movie(
        movie, movie, fs_hz=header.fs_hz, settings=settings, threads=threads_per_plane
    )
    movie.flush()
    io.write_netcdf(
        result,
        sm.output.registrations[index],
        stage="register",
        settings=settings,
        inputs=[sm.input.session],
    )


with rule_log(sm.log[0], rule="register", inputs=sm.input) as log:
    settings = rule_settings("register", sm.params.settings, sm.config)
    ingest_settings = rule_settings("ingest", sm.params.ingest_settings, sm.config)
    record = io.read_json(sm.input.session)
    planes = sm.params.planes
    workers = max(1, min(sm.threads, len(planes)))
    threads_per_plane = max(1, sm.threads // len(planes))
    log.info("planes %s: %d at a time, %d torch threads each", planes, workers, threads_per_plane)
    with ThreadPoolExecutor(workers) as pool:
        # list() re-raises the first plane's error here
        list(pool.map(register_plane, range(len(planes))))
