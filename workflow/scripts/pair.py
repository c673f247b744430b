"""Pair a subject's somata with tuft dendrites by bAP coupling over all its sessions."""

import numpy as np
import xarray as xr

from analysis import io
from analysis.dims import TIME
from analysis.runlog import rule_log
from analysis.track import TrackSettings, pair_dendrites

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="pair", inputs=sm.input):
    settings = TrackSettings.from_mapping(sm.params.settings)
    soma = xr.concat([io.read_netcdf(p)["dff"] for p in sm.input.soma], dim=TIME)
    dendrite = xr.concat([io.read_netcdf(p)["dff"] for p in sm.input.dendrite], dim=TIME)
    pairs = pair_dendrites(
        soma, dendrite, settings=settings, rng=np.random.default_rng(settings.seed)
    )
    io.write_tsv(pairs, sm.output.pairs)
