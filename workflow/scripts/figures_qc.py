"""Draw one subject's QC figures (registration, cursor replay, pairing)."""

from pathlib import Path

from analysis import figures, io
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="figures_qc", inputs=sm.input):
    drawn = figures.draw_qc_figures(
        registrations={
            n: io.read_netcdf(p)
            for n, p in zip(sm.params.names, sm.input.registrations, strict=True)
        },
        replays={
            s: io.read_tsv(p) for s, p in zip(sm.params.sessions, sm.input.replays, strict=True)
        },
        pairs=io.read_tsv(sm.input.pairs),
    )
    for name, fig in drawn.items():
        io.save_figure(fig, Path(sm.output[name]).with_suffix(""))
