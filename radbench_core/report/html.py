"""The run's index.html: demo banner, manifest, every table and figure, verdicts, cell records.

Self-contained (inline CSS, PNGs embedded as data URIs, no scripts) so it can be mailed or archived
on its own; every piece of text is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from radbench_core.report.figures import FIGURES
from radbench_core.report.frame import headline
from radbench_core.report.tables import TABLES, Table, column_spans
from radbench_core.results import CellResult

DEMO_BANNER = ("Demo profile: random-init weights on synthetic phantom data — these numbers say "
               "nothing about the models")
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}.banner{background:#b00020;color:#fff;padding:1em;font-size:1.2em;font-weight:bold}
.missing{color:#888;font-style:italic}.caption{max-width:60em}img{max-width:100%;border:1px solid #eee}
.fail{color:#b00020;font-weight:bold}.pass{color:#1b5e20}"""
_MANIFEST_KEYS = ("profile", "seed", "device", "git_sha", "git_dirty", "started", "finished",
                  "interrupted")


def table_html(table: Table, ci: bool = True) -> str:
    """One study table as HTML: grouped header, best per column in <strong>, "—" for absent."""
    head = ""
    groups = column_spans([c.group for c in table.columns])
    if any(g for g, _, _ in groups):
        head += "<tr><th></th>" + "".join(f'<th colspan="{b - a}">{escape(g)}</th>'
                                           for g, a, b in groups) + "</tr>"
    head += (f"<tr><th>{escape(table.row_header)}</th>"
             + "".join(f"<th>{escape(c.label)}</th>" for c in table.columns) + "</tr>")
    body = []
    for r, label in enumerate(table.rows):
        cells = []
        for c in range(len(table.columns)):
            text = escape(table.text(r, c, ci))
            cells.append(f"<td><strong>{text}</strong></td>" if r in table.best_rows(c)
                         else f"<td>{text}</td>")
        body.append(f"<tr><td>{escape(label)}</td>{''.join(cells)}</tr>")
    return (f'<p class="caption"><b>Table {table.number}.</b> {escape(table.caption)}</p>'
            f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")


def _manifest_html(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return '<p class="missing">No run manifest was given.</p>'
    rows = []
    keys = [k for k in _MANIFEST_KEYS if k in manifest] + sorted(k for k in manifest
                                                                 if k not in _MANIFEST_KEYS)
    for key in keys:
        value = manifest[key]
        if isinstance(value, dict):
            text = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            text = json.dumps(value, default=str)
        else:
            text = str(value)
        if key == "git_dirty" and value:
            text += " (uncommitted changes: the sha alone does not reproduce this run)"
        rows.append(f"<tr><th>{escape(str(key))}</th><td>{escape(text)}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


FAILING = ("regressed", "missing", "fail", "failed")   # radbench_core.gating fails on the first two


def _verdicts_html(verdicts: list[dict[str, Any]]) -> str:
    cols = ("cell_id", "metric", "baseline", "now", "delta", "verdict", "tolerance")
    if any(v.get("note") for v in verdicts):
        cols += ("note",)
    rows = []
    for v in verdicts:
        cells = []
        for c in cols:
            value = v.get(c, "")
            text = f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)
            cls = ""
            if c == "verdict":
                cls = ' class="fail"' if text.lower() in FAILING else ' class="pass"'
            cells.append(f"<td{cls}>{escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cells_html(records: list[CellResult], links: dict[str, str]) -> str:
    rows = []
    for rec in sorted(records, key=lambda r: r.cell_id):
        found = headline(rec)
        metric = f"{found[0]} {found[1].value:.3f}" if found else "—"
        href = escape(links.get(rec.cell_id, ""), quote=True)
        rows.append(f'<tr><td><a href="{href}">{escape(rec.cell_id)}</a></td><td>{escape(metric)}</td>'
                    f"<td>{escape(rec.weights)}</td><td>{escape(rec.device)}</td>"
                    f"<td>{rec.wall_time_s:.1f}s</td><td>{escape(rec.status)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("cell", "headline", "weights", "device", "time", "status"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_index(records: list[CellResult], tables: dict[str, Table], figures: dict[str, list[Path]],
                 manifest: dict[str, Any] | None = None,
                 verdicts: list[dict[str, Any]] | None = None,
                 links: dict[str, str] | None = None) -> str:
    """The whole page as a string; figure paths are read to embed the PNGs."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>radbench report</title>", f"<style>{_CSS}</style></head><body>"]
    if any(r.is_demo for r in records):
        parts.append(f'<div class="banner" role="alert">{escape(DEMO_BANNER)}</div>')
    n_demo = sum(r.is_demo for r in records)
    parts.append(f"<h1>radbench report</h1><p>{len(records)} cell(s), {n_demo} on demo weights.</p>")
    parts.append("<h2>Run manifest</h2>" + _manifest_html(manifest))
    parts.append("<h2>Tables</h2>")
    for key, title in TABLES.items():
        if key in tables:
            files = " · ".join(f'<a href="tables/{key}.{ext}">{ext}</a>' for ext in ("md", "csv", "tex"))
            parts.append(f"<h3>{escape(title)}</h3>{table_html(tables[key])}<p>{files}</p>")
        else:
            parts.append(f'<h3>{escape(title)}</h3><p class="missing">not in this run</p>')
    parts.append("<h2>Figures</h2>")
    for stem, title in FIGURES.items():
        parts.append(f"<h3>{escape(title)}</h3>")
        png = next((p for p in figures.get(stem, []) if p.suffix == ".png"), None)
        if png is None:
            parts.append('<p class="missing">not in this run</p>')
            continue
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        parts.append(f'<img alt="{escape(title, quote=True)}" src="data:image/png;base64,{data}">'
                     f'<p><a href="figures/{stem}.svg">svg</a> · <a href="figures/{stem}.png">png</a></p>')
    if verdicts is not None:
        parts.append("<h2>Regression verdicts</h2>" + (_verdicts_html(verdicts) if verdicts else
                                                      '<p class="missing">no metric compared</p>'))
    parts.append("<h2>Cells</h2>" + _cells_html(records, links or {}))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
