"""Build the QC index page: subjects, statistics summary, tables and figures."""

from pathlib import Path

from analysis import io, qc
from analysis.runlog import rule_log

sm = snakemake  # noqa: F821 (injected by Snakemake)

with rule_log(sm.log[0], rule="qc", inputs=sm.input):
    captions = {name: Path(p).read_text() for name, p in sm.params.captions.items()}
    figures = [
        qc.Figure(Path(p).stem, Path(p).read_bytes(), qc.render_caption(captions[Path(p).stem]))
        for p in sm.input.figures
    ]
    page = qc.render_index_page(
        [io.read_json(p) for p in sm.input.subjects],
        summary=Path(sm.input.summary).read_text(),
        summary_caption=qc.render_caption(captions["summary"]),
        tables={Path(p).stem: io.read_tsv(p) for p in sm.input.tables},
        figures=figures,
    )
    io.write_text(page, sm.output.index)
