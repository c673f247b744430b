"""Split one plane out of a raw session into an int16 binary movie, streaming."""

import numpy as np
import pandas as pd

from analysis import ingest, io, readers
from analysis.ingest import IngestSettings
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="ingest_plane", inputs=sm.input) as log:
    settings = IngestSettings.from_mapping(sm.params.settings)
    record = io.read_json(sm.input.session)
    plane = int(sm.wildcards.plane)
    n_frames = record["n_frames"]
    header = io.MovieHeader(n_frames, *record["shape"], dtype="int16", fs_hz=record["fs_hz"])
    movie = io.create_movie(sm.output.movie, header)
    source = record["imaging"]["planes"][str(plane)]
    flags = ingest.fill_plane(
        readers.iter_plane(source, batch_frames=settings.batch_frames),
        movie,
        settings=settings,
        source=f"{record['session_dir']} ({record['imaging']['format']}, plane {plane})",
    )
    movie.flush()
    log.info(
        "plane %d: %d frames, %d dropped, %d saturated",
        plane,
        n_frames,
        flags["dropped"].sum(),
        flags["saturated"].sum(),
    )
    io.write_tsv(pd.DataFrame({"frame": np.arange(n_frames), **flags}), sm.output.frames)
