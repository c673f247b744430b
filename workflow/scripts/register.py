"""Register every plane of one session with suite2p (rigid + nonrigid), streaming; the
planes run in parallel threads (torch releases the GIL in its kernels)."""

import threading
from concurrent.futures import ThreadPoolExecutor

from analysis import io
from analysis.register import RegisterSettings, register_movie
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)


def register_plane(index: int) -> None:
    threading.current_thread().name = f"plane{planes[index]}"  # tags its log lines
    raw, header = io.open_movie(sm.input.movies[index])
    registered = io.create_movie(sm.output.movies[index], header)
    result = register_movie(
        raw, registered, fs_hz=header.fs_hz, settings=settings, threads=threads_per_plane
    )
    registered.flush()
    inputs = [sm.input.movies[index], sm.input.headers[index]]
    io.write_netcdf(
        result, sm.output.registrations[index], stage="register", settings=settings, inputs=inputs
    )


with rule_log(sm.log[0], rule="register", inputs=sm.input) as log:
    settings = RegisterSettings.from_mapping(sm.params.settings)
    planes = sm.params.planes
    workers = max(1, min(sm.threads, len(planes)))
    threads_per_plane = max(1, sm.threads // len(planes))
    log.info("planes %s: %d at a time, %d torch threads each", planes, workers, threads_per_plane)
    with ThreadPoolExecutor(workers) as pool:
        # list() re-raises the first plane's error here
        list(pool.map(register_plane, range(len(planes))))
