"""The QC pages as self-contained HTML: data, images, style and script all inline.

A page opens from disk with no server and no network: figures are data URIs, the
subject's data is one JSON blob, and the viewer script (``viewer.js``, plain JS with no
library) and style (``viewer.css``) are read from this package and inlined.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import NamedTuple

import pandas as pd

from analysis import __version__

# Rows of a statistics table shown inline; longer tables say where the full one is.
MAX_TABLE_ROWS = 40

# Collects script errors on the index page, which has no viewer, for the browser test.
INDEX_SCRIPT = """
const errors = [];
window.addEventListener("error", (e) => errors.push(String(e.message || e)));
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("qc-selftest").textContent = JSON.stringify({ errors });
});
"""


class Figure(NamedTuple):
    """A saved figure shown on a page: title, PNG bytes and its report caption."""

    title: str
    png: bytes
    caption: str


def render_caption(text: str, **wildcards: str) -> str:
    """A ``workflow/report/*.rst`` caption with its ``{{ snakemake.wildcards.x }}`` filled."""
    pattern = r"\{\{\s*snakemake\.wildcards\.(\w+)\s*\}\}"
    return re.sub(pattern, lambda m: str(wildcards.get(m.group(1), m.group(0))), text).strip()


def _asset(name: str) -> str:
    return resources.files("analysis.qc").joinpath(name).read_text()


def _page(title: str, body: str, script: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('viewer.css')}</style>\n"
        f"</head>\n<body>\n{body}\n"
        '<pre id="qc-selftest"></pre>\n'
        f"<script>\n{script}</script>\n</body>\n</html>\n"
    )


def _figures_html(figures: Sequence[Figure]) -> str:
    return "\n".join(
        f'<figure class="result"><h3>{html.escape(f.title)}</h3>'
        f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,'
        f'{base64.b64encode(f.png).decode()}">'
        f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
        for f in figures
    )


def _table_html(table: pd.DataFrame, *, source: str) -> str:
    shown = table.head(MAX_TABLE_ROWS)
    note = (
        f"<p>First {MAX_TABLE_ROWS} of {len(table)} rows; the full table is {source}.</p>"
        if len(table) > MAX_TABLE_ROWS
        else ""
    )
    return shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}") + note


def render_subject_page(view: Mapping, *, figures: Sequence[Figure] = ()) -> str:
    """The QC page of one subject (``results/qc/<subject>.html``).

    Parameters
    ----------
    view : dict
        From :func:`analysis.qc.compute_subject_view`.
    figures : sequence of Figure
        Saved QC figures shown at the end, with their captions.
    """
    subject = html.escape(view["subject"])
    roles = view["roles"]
    behaviour = pd.DataFrame(view["behaviour"])
    layers = "".join(
        f'<label><input type="checkbox" data-layer="{layer}" checked> {text}</label>'
        for layer, text in (
            ("soma", "somata"),
            ("dendrite", "dendrites"),
            ("targets", "online targets"),
            ("pairs", "soma-dendrite pairs"),
        )
    )
    legend = "".join(
        f'<span style="background:{color}"></span>{text}'
        for color, text in (
            ("#ff4d4d", "P+ target"),
            ("#4da6ff", "P- target"),
            ("#f2f2f2", "other soma"),
            ("#ffd23f", "dendrite"),
            ("#3fffa0", "pairing line"),
        )
    )
    overlays = "".join(
        f'<div class="overlay"><img id="overlay-{role}" alt="cross-day overlay, {role} plane">'
        f'<div id="overlay-{role}-text"></div></div>'
        for role in ("soma", "dendrite")
    )
    registration = "".join(
        f'<canvas class="wide" id="shift-{role}"></canvas><canvas class="wide" id="corr-{role}">'
        "</canvas>"
        for role in ("soma", "dendrite")
    )
    body = f"""
<header><p><a href="index.html">&larr; all subjects</a></p>
<h1>Subject {subject}</h1>
<p>{len(view["sessions"])} sessions; soma plane {roles["soma"]}, dendrite plane
{roles["dendrite"]}. Choose a day, then click or hover an ROI.</p></header>
<nav id="days"></nav>
<section id="fov"><h2>Fields of view</h2>
<div class="controls"><label>image <select id="image-kind"><option value="enhanced">enhanced
</option><option value="mean">mean</option></select></label>{layers}</div>
<p class="legend">{legend}; dashed: online target polygons with their ids.</p>
<div id="hover"></div>
<div id="fov-panels"></div></section>
<section id="roi"><h2 id="roi-title">ROI</h2>
<div id="roi-traces"></div><div id="roi-aligned"></div></section>
<section id="behaviour"><h2>Behaviour over days</h2>
<canvas class="small" id="behaviour-hit_rate"></canvas>
<canvas class="small" id="behaviour-rewards_per_min"></canvas>
{_table_html(behaviour, source="results/stats/behaviour.tsv")}</section>
<section id="replay"><h2>Cursor replay against the logged readout</h2>
<canvas class="wide" id="replay-plot"></canvas></section>
<section id="registration"><h2>Registration and cross-day alignment</h2>
{registration}{overlays}</section>
<section id="figures"><h2>QC figures</h2>{_figures_html(figures)}</section>
<script type="application/json" id="qc-data">{_json_for_script(view)}</script>
"""
    return _page(f"QC {view['subject']}", body, _asset("viewer.js"))


def _json_for_script(data: Mapping) -> str:
    # "</" would end the script element early
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def render_index_page(
    subjects: Sequence[Mapping],
    *,
    summary: str,
    summary_caption: str,
    tables: Mapping[str, pd.DataFrame],
    figures: Sequence[Figure],
) -> str:
    """The QC index (``results/qc/index.html``): subjects, statistics, figures.

    Parameters
    ----------
    subjects : sequence of dict
        Per subject ``subject``, ``page`` (file name), ``sessions``, ``n_soma``,
        ``n_dendrite``, ``n_target`` (outlines drawn on its page) and ``page_bytes``.
    summary : str
        ``results/stats/summary.txt``, shown with ``summary_caption``.
    tables : mapping of str to DataFrame
        Statistics tables by name (``results/stats/<name>.tsv``).
    figures : sequence of Figure
        Paper-style figures with their captions.
    """
    rows = "".join(
        f'<tr><td><a href="{html.escape(s["page"])}">{html.escape(s["subject"])}</a></td>'
        f"<td>{s['sessions']}</td><td>{s['n_soma']}</td><td>{s['n_dendrite']}</td>"
        f"<td>{s['n_target']}</td><td>{s['page_bytes'] / 1e6:.1f} MB</td></tr>"
        for s in subjects
    )
    table_sections = "".join(
        f"<h3>{html.escape(name)}</h3>{_table_html(table, source=f'results/stats/{name}.tsv')}"
        for name, table in tables.items()
    )
    body = f"""
<header><h1>BCI pipeline QC</h1>
<p>Built from saved results by analysis {html.escape(__version__)}. Outlines counted over
all days.</p></header>
<section id="subjects"><h2>Subjects</h2><table><tr><th>subject</th><th>sessions</th>
<th>soma outlines</th><th>dendrite outlines</th><th>target outlines</th><th>page</th></tr>
{rows}</table></section>
<section id="statistics"><h2>Statistics</h2><p>{html.escape(summary_caption)}</p>
<pre>{html.escape(summary)}</pre></section>
<section id="paper-figures"><h2>Figures</h2>{_figures_html(figures)}</section>
<section id="tables"><h2>Statistics tables</h2>{table_sections}</section>
"""
    return _page("BCI pipeline QC", body, INDEX_SCRIPT)
