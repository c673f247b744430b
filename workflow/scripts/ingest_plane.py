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
    dropped = np.zeros(n_frames, dtype=bool)
    saturated = np.zeros(n_frames, dtype=bool)
    if record["layout"] == "per_plane":
        sources = [
            (
                io.iter_tiff_frames(
                    record["files"][str(plane)], batch_frames=settings.batch_frames
                ),
                1,
                0,
            )
        ]
    else:
        sources, first = [], 0
        for path in record["files"]:
            n_pages, _ = io.tiff_page_shapes(path)
            sources.append(
                (
                    io.iter_tiff_frames(path, batch_frames=settings.batch_frames),
                    record["n_planes"],
                    first,
                )
            )
            first += n_pages
    written = 0
    for batches, n_planes, first in sources:
        for batch_plane, frames in ingest.split_planes(
            batches, n_planes=n_planes, first_frame=first
        ):
            if batch_plane != plane % n_planes or written >= n_frames:
                continue
            frames = frames[: n_frames - written]
            converted = ingest.convert_frames(frames, settings=settings)
            stop = written + len(frames)
            movie[written:stop] = converted["frames"]
            dropped[written:stop] = converted["dropped"]
            saturated[written:stop] = converted["saturated"]
            written = stop
        log.info("plane %d: %d of %d frames written", plane, written, n_frames)
    movie.flush()
    if written != n_frames:
        raise ingest.IngestError(
            f"{record['session_dir']}: plane {plane} yielded {written} frames, expected {n_frames}."
        )
    log.info("dropped frames: %d, saturated frames: %d", dropped.sum(), saturated.sum())
    io.write_tsv(
        pd.DataFrame({"frame": np.arange(n_frames), "dropped": dropped, "saturated": saturated}),
        sm.output.frames,
    )
