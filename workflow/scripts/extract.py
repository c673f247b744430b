"""Extract one plane's traces: F, neuropil, dF/F, OASIS deconvolution and events.

The per-ROI steps run on blocks of ROIs sized by ``extract.max_memory_gb`` and each block
is written to traces.nc as it is done (``extract.extract_plane``), so memory does not
grow with the session's length times its ROIs.
"""

from analysis import extract, io, masks
from analysis.config import rule_settings
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="extract", inputs=sm.input) as log:
    settings = rule_settings("extract", sm.params.settings, sm.config)
    movie, header = io.open_movie(sm.input.movie)
    rois = masks.select_session(io.read_netcdf(sm.input.rois), sm.wildcards.session)
    dropped = io.read_tsv(sm.input.frames)["dropped"].to_numpy(bool)
    if len(dropped) != header.n_frames:
        raise ValueError(
            f"{sm.input.frames} lists {len(dropped)} frames but the registered movie "
            f"{sm.input.movie} has {header.n_frames}: one of them is stale; rerun both with "
            "`snakemake --forcerun register`."
        )
    bad = io.read_netcdf(sm.input.registration)["bad_frame"].to_numpy().astype(bool)
    log.info("%d dropped and %d bad (register) frames", dropped.sum(), bad.sum())
    events = extract.extract_plane(
        movie,
        rois,
        exclude=dropped | bad,
        fs_hz=header.fs_hz,
        settings=settings,
        path=sm.output.traces,
        inputs=sm.input,
    )
    io.write_tsv(events, sm.output.events)
