"""Draw the paper-style figures from the saved stats tables."""

from pathlib import Path

from analysis import figures, io
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="figures", inputs=sm.input.tables):
    tables = {Path(p).stem: io.read_tsv(p) for p in sm.input.tables if p.endswith(".tsv")}
    for name, fig in figures.draw_paper_figures(tables).items():
        io.save_figure(fig, Path(sm.output[name]).with_suffix(""))
