"""Split one plane out of a raw session into an int16 binary movie, streaming."""

import numpy as np
import pandas as pd

from analysis import ingest, io
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
    if record["layout"] == "per_plane":
        path = record["files"][str(plane)]
        sources = [(io.iter_tiff_frames(path, batch_frames=settings.batch_frames), 0)]
        flags = ingest.fill_plane(
            sources, movie, plane=0, n_planes=1, settings=settings, source=path
        )
    else:
        first_frames = np.cumsum([0] + [io.tiff_page_shapes(p)[0] for p in record["files"]])
        sources = [
            (io.iter_tiff_frames(path, batch_frames=settings.batch_frames), int(first))
            for path, first in zip(record["files"], first_frames, strict=False)
        ]
        flags = ingest.fill_plane(
            sources,
            movie,
            plane=plane,
            n_planes=record["n_planes"],
            settings=settings,
            source=record["session_dir"],
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
