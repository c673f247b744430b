"""Segment one registered plane: somata (suite2p sparsery) or tuft dendrites, by role."""

from analysis import io
from analysis.runlog import rule_log
from analysis.segment import SegmentSettings, detect_dendrites, detect_somata

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="segment", inputs=sm.input) as log:
    settings = SegmentSettings.from_mapping(sm.params.settings)
    movie, header = io.open_movie(sm.input.movie)
    mean_image = io.read_netcdf(sm.input.registration)["mean_image"].values
    if sm.params.role == "soma":
        masks = detect_somata(
            movie, mean_image=mean_image, fs_hz=header.fs_hz, settings=settings, threads=sm.threads
        )
    else:
        masks = detect_dendrites(
            movie, mean_image=mean_image, fs_hz=header.fs_hz, settings=settings
        )
    log.info("%s plane: %d ROIs", sm.params.role, masks.sizes["roi"])
    io.write_netcdf(masks, sm.output.rois, stage="segment", settings=settings, inputs=sm.input)
