"""Register one plane of one session with suite2p (rigid + nonrigid), streaming."""

from analysis import io
from analysis.register import RegisterSettings, register_movie
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="register", inputs=sm.input):
    settings = RegisterSettings.from_mapping(sm.params.settings)
    raw, header = io.open_movie(sm.input.movie)
    registered = io.create_movie(sm.output.movie, header)
    result = register_movie(
        raw, registered, fs_hz=header.fs_hz, settings=settings, threads=sm.threads
    )
    registered.flush()
    io.write_netcdf(
        result, sm.output.registration, stage="register", settings=settings, inputs=sm.input
    )
