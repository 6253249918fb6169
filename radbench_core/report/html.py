"""The run's index.html: demo banner, manifest, reproduction, deviations, tables, figures, verdicts, cells.

Self-contained (inline CSS, PNGs embedded as data URIs, no scripts) so it can be mailed or archived
on its own; every piece of text is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from radbench_core.report.citation import citation_bib
from radbench_core.report.clinical import PREFIXES as CLINICAL
from radbench_core.report.comparison import VS_STUDY
from radbench_core.report.figures import FIGURES
from radbench_core.report.frame import METRIC_LABEL, PUBLISHED_WEIGHTS, headline, headline_frame
from radbench_core.report.published import compare_to_published, published_index
from radbench_core.report.render import SUBSCRIPT, column_spans, grouped_labels
from radbench_core.report.run_status import interrupted_banner, machine_rows, outcome_text
from radbench_core.report.tables import TABLES, Table
from radbench_core.core.results import CellResult

DEMO_BANNER = ("Demo profile: random-init weights on synthetic phantom data — these numbers say "
               "nothing about the models")
SMOKE_BANNER = ("Smoke check: random-init tiny models on your own data folder — these numbers check the "
                "folder, its splits and loaders, and say nothing about the models")
PUBLISHED_BANNER = ("The study's published numbers (Baharoon et al. 2023, Tables 3-9) laid out by radbench: "
                    "no model was run")
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}.banner{background:#b00020;color:#fff;padding:1em;font-size:1.2em;font-weight:bold}
.missing{color:#888;font-style:italic}.caption{max-width:60em}img{max-width:100%;border:1px solid #eee}
.fail{color:#b00020;font-weight:bold}.pass{color:#1b5e20}.kv td,td.l{text-align:left}
td:not(:first-child) a{color:inherit;text-decoration:none}td:not(:first-child) a:hover{text-decoration:underline dotted}"""
_MANIFEST_KEYS = ("profile", "seed", "device", "git_sha", "git_dirty", "started", "finished",
                  "interrupted")
_MANIFEST_APART = ("failed_cells", "machine")          # own sections: Failed cells, Machine
PUBLISHED_ONLY = ("This report lays out the study's own published numbers: nothing was run, so nothing "
                  "is compared with them. A run's report compares each of its cells with these.")
# files of the report folder the page links when they exist, with what each holds
REPORT_FILES = {"report.md": "this page's summary in Markdown, with links to every table and figure",
                "results.csv": "every metric of every cell, one row each, with 95% CIs",
                "tables/all_tables.tex": "a pdflatex document of every table",
                "citation.bib": "BibTeX of the study and of radbench",
                "beyond_the_study.md": "Beyond the study: models the study never ran beside DINOv2 ViT-L/14 "
                                       "and ViT-g/14, each dataset's difference to ViT-g/14",
                "fig1_ranking_extended.csv": "Figure 1's ranking recomputed over the extended model set"}
BEYOND = ("beyond_the_study.md", "fig1_ranking_extended.csv")


def _label_html(text: str) -> str:
    return SUBSCRIPT.sub(r"<sub>\1</sub>", escape(text))


def table_html(table: Table, ci: bool = True, links: dict[str, str] | None = None) -> str:
    """One table as HTML: grouped header, best <strong>, second best <u>, "—" for absent; an entry
    of a run cell links to that cell's record (``links``: cell id -> relative path)."""
    k = len(table.row_header)
    head = ""
    groups = column_spans([c.group for c in table.columns])
    if any(g for g, _, _ in groups):
        head += "<tr>" + "<th></th>" * k + "".join(f'<th colspan="{b - a}">{escape(g)}</th>'
                                                   for g, a, b in groups) + "</tr>"
    head += ("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.row_header)
             + "".join(f"<th>{escape(c.label)}</th>" for c in table.columns) + "</tr>")
    body = []
    for r, labels in enumerate(grouped_labels(table)):
        best, second = zip(*(table.ranked_rows(c) for c in range(len(table.columns)))) \
            if table.columns else ((), ())
        cells = []
        for c in range(len(table.columns)):
            text = escape(table.text(r, c, ci, compare=False))
            entry = table.entries.get((r, c))
            if entry is not None and entry.cell_id and (links or {}).get(entry.cell_id):
                text = (f'<a href="{escape(links[entry.cell_id], quote=True)}" '
                        f'title="{escape(entry.cell_id, quote=True)}">{text}</a>')
            cells.append(f"<td><strong>{text}</strong></td>" if r in best[c] else
                         f"<td><u>{text}</u></td>" if r in second[c] else f"<td>{text}</td>")
        body.append("<tr>" + "".join(f'<td class="l">{_label_html(x)}</td>' for x in labels)
                    + "".join(cells) + "</tr>")
    return (f'<p class="caption"><b>{table.heading}.</b> {_label_html(table.caption)}</p>'
            f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")


def reproduction_html(comparison: pd.DataFrame, demo_shared: int = 0) -> str:
    """How many run cells the study published reproduce (its value inside our 95% CI), and which not.

    ``demo_shared``: demo cells whose ids the study published; they are never compared (say so).
    """
    demo_note = (f'<p class="missing">{demo_shared} demo cell(s) share cell ids with the study but run '
                 "random-init weights on phantoms: they are not compared with the published "
                 "numbers.</p>" if demo_shared else "")
    if comparison.empty:
        return demo_note or '<p class="missing">no cell of this run was published by the study</p>'
    inside = int((comparison["inside_ci"] == True).sum())            # noqa: E712 - None is neither
    outside = int((comparison["inside_ci"] == False).sum())          # noqa: E712
    no_ci = len(comparison) - inside - outside
    text = (f"<p>{len(comparison)} cell(s) of this run were published by the study: <b>{inside}</b> "
            f"reproduce (the published value lies inside our 95% bootstrap CI), <b>{outside}</b> do "
            f"not, {no_ci} have no CI to judge by. Segmentation compares the study's metric "
            f"({escape(METRIC_LABEL['dice_jaccard_study'])}) where the record has it.</p>")
    rows = []
    order = comparison.assign(_k=comparison["inside_ci"].map({False: 0, None: 1, True: 2}).fillna(1),
                              _a=-comparison["delta"].abs()).sort_values(["_k", "_a", "cell_id"])
    for row in order.to_dict("records"):
        verdict = {True: "reproduces", False: "does not reproduce"}.get(row["inside_ci"], "no CI")
        cls = {True: "pass", False: "fail"}.get(row["inside_ci"], "missing")
        ci = (f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if row["ci_low"] is not None
              and row["ci_high"] is not None and not pd.isna(row["ci_low"]) else "—")
        rows.append(f"<tr><td>{escape(row['cell_id'])}</td><td>{escape(row['metric'])}</td>"
                    f"<td>{row['ours']:.3f}</td><td>{escape(ci)}</td><td>{row['published']:.3f}</td>"
                    f"<td>{row['delta']:+.3f}</td><td class=\"{cls}\">{verdict}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("cell", "metric", "ours", "95% CI", "study", "ours − study",
                                             "verdict"))
    return (demo_note + text
            + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def deviations_html(records: list[CellResult]) -> str:
    """The named deviations from the study in effect in this run, with the study's value and source."""
    from radbench_core.config.fidelity import deviations
    counts: dict[str, int] = {}
    for rec in records:
        for dev in getattr(rec, "deviations", None) or []:
            counts[dev] = counts.get(dev, 0) + 1
    if not counts:
        return '<p class="missing">no recorded deviation from the study in this run</p>'
    known = deviations()
    rows = []
    for dev in sorted(counts):
        s = known.get(dev)
        cells = ((f"{s.area}: {s.name}", f"{s.study} ({s.source})", s.ours, s.why) if s else
                 ("(unknown id: not in this radbench's fidelity registry)", "—", "—", "—"))
        rows.append(f"<tr><td>{escape(dev)}</td>" + "".join(f"<td>{escape(str(x))}</td>" for x in cells)
                    + f"<td>{counts[dev]}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("id", "setting", "study (source)", "ours", "why", "cells"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _manifest_html(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return '<p class="missing">No run manifest was given.</p>'
    rows = []
    keys = [k for k in _MANIFEST_KEYS if k in manifest] + sorted(
        k for k in manifest if k not in _MANIFEST_KEYS and k not in _MANIFEST_APART)
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
    return f'<table class="kv">{"".join(rows)}</table>'


FAILING = ("regressed", "missing", "fail", "failed")   # radbench_core.gate.compare fails on the first two


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
                    f"<td>{rec.wall_time_s:.1f}s</td><td>{escape(rec.status)}</td>"
                    f"<td>{escape(_chosen(rec.hparams))}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("cell", "headline", "weights", "device", "time", "status",
                                              "selected hyperparameters"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _chosen(chosen: dict[str, Any] | None) -> str:
    """The hyperparameters a cell selected (on validation), as "k 20, lr 0.001"; "—" if none."""
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in sorted((chosen or {}).items())) or "—"


def significance_html(groups: list[dict[str, Any]]) -> str:
    """The significance view: per (dataset, protocol), row minus column with its Holm p-value;
    significant cells (p < 0.05) in bold."""
    if not groups:
        return '<p class="missing">no two cells with recorded test predictions share a test set</p>'
    from radbench_core.report.marks import comparison_lookup
    parts = ["<p>Paired bootstrap of the difference (row − column) over test patients, both cells "
             "resampled together; p-values Holm-corrected over each block's pairs. "
             "<strong>Bold</strong>: p &lt; 0.05. Tables mark entries not significantly different "
             "from their column's best with ≈.</p>"]
    for g in groups:
        lookup = comparison_lookup(g["comparisons"])
        head = "<th>cell</th><th>" + escape(g["metric"]) + "</th>" + "".join(
            f"<th>{j + 1}</th>" for j in range(len(g["order"])))
        rows = []
        for i, a in enumerate(g["order"]):
            cells = []
            for b in g["order"]:
                if a == b:
                    cells.append("<td>—</td>")
                    continue
                diff, p = lookup[(a, b)]
                text = f"{diff:+.4f} (p={p:.3f})"
                cells.append(f"<td><strong>{text}</strong></td>" if p < 0.05 else f"<td>{text}</td>")
            rows.append(f"<tr><td>{i + 1}. {escape(a)}</td><td>{g['values'][a]:.4f}</td>{''.join(cells)}</tr>")
        parts.append(f"<h3>{escape(g['dataset'])} · {escape(g['protocol'])}</h3>"
                     f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return "".join(parts)


def on_user_data(record: CellResult) -> bool:
    """Whether the cell read a data folder (its provenance names one) rather than a synthetic phantom."""
    return bool(record.dataset_provenance) and not record.dataset_provenance.startswith("phantom")


def data_banners(records: list[CellResult]) -> list[str]:
    """What the random-init cells' data really was: phantoms (demo), the user's folder (smoke), or both."""
    demo = [r for r in records if r.is_demo]
    return ([DEMO_BANNER] if any(not on_user_data(r) for r in demo) else []) + \
        ([SMOKE_BANNER] if any(on_user_data(r) for r in demo) else [])


def page_banners(records: list[CellResult], manifest: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(text, ARIA role) of every banner atop the page (and report.md): data, published, interrupted."""
    out = [(b, "alert") for b in data_banners(records)]
    if records and all(r.weights == PUBLISHED_WEIGHTS for r in records):
        out.append((PUBLISHED_BANNER, "note"))
    if (line := interrupted_banner(manifest, len(records))) is not None:
        out.append((line, "alert"))
    return out


def _machine_html(manifest: dict[str, Any] | None) -> str:
    rows = machine_rows(manifest)
    if not rows:
        return '<p class="missing">the manifest names no machine</p>'
    return ('<table class="kv">' + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
            + "</table>")


def _files_html(files: list[str]) -> str:
    items = "".join(f'<li><a href="{escape(f, quote=True)}">{escape(f)}</a>: {escape(REPORT_FILES[f])}</li>'
                    for f in REPORT_FILES if f in files)
    return f"<ul>{items}</ul>" if items else '<p class="missing">none</p>'


def render_index(records: list[CellResult], tables: dict[str, Table], figures: dict[str, list[Path]],
                 manifest: dict[str, Any] | None = None,
                 verdicts: list[dict[str, Any]] | None = None,
                 links: dict[str, str] | None = None,
                 significance: list[dict[str, Any]] | None = None,
                 files: list[str] | None = None) -> str:
    """The whole page as a string; figure paths are read to embed the PNGs; ``files``: the report
    folder's files (relative paths) to link, of :data:`REPORT_FILES`."""
    report_files = list(files or [])             # (``files`` is reused below for each table's links)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>radbench report</title>", f"<style>{_CSS}</style></head><body>"]
    for banner, role in page_banners(records, manifest):
        parts.append(f'<div class="banner" role="{role}">{escape(banner)}</div>')
    n_demo = sum(r.is_demo for r in records)
    outcomes = outcome_text(manifest)
    parts.append(f"<h1>radbench report</h1><p>{len(records)} cell(s), {n_demo} on demo weights."
                 + (f" Last session: {escape(outcomes)}." if outcomes else "") + "</p>")
    parts.append("<h2>Run manifest</h2>" + _manifest_html(manifest))
    parts.append("<h2>Machine</h2>" + _machine_html(manifest))
    published_only = bool(records) and all(r.weights == PUBLISHED_WEIGHTS for r in records)
    parts.append("<h2>Reproduction of the study's published numbers</h2>"
                 + (f"<p>{escape(PUBLISHED_ONLY)}</p>" if published_only else
                    reproduction_html(compare_to_published(headline_frame(records)),
                                      demo_shared=len({r.cell_id for r in records if r.is_demo}
                                                      & set(published_index())))))
    parts.append("<h2>Deviations from the study</h2>" + deviations_html(records))
    parts.append("<h2>Tables</h2>")
    for key, title in TABLES.items():
        if key in tables:
            files = " · ".join(f'<a href="tables/{key}.{ext}">{ext}</a>' for ext in ("md", "csv", "tex"))
            parts.append(f"<h3>{escape(title)}</h3>{table_html(tables[key], links=links)}<p>{files}</p>")
            if (companion := tables.get(f"{key}{VS_STUDY}")) is not None:
                parts.append(f"<details><summary>Run vs study ({len(companion.rows)} entries)</summary>"
                             f"{table_html(companion)}</details>")
        elif not key.endswith("_extended") and key != "other_cells":
            parts.append(f'<h3>{escape(title)}</h3><p class="missing">not in this run</p>')
    clinical = [key for key in tables if key.startswith(CLINICAL)]
    if clinical:
        parts.append("<h2>Clinical detail</h2>")
    for key in clinical:
        files = " · ".join(f'<a href="tables/{key}.{ext}">{ext}</a>' for ext in ("md", "csv", "tex"))
        parts.append(f"<h4>{escape(tables[key].heading)}</h4>{table_html(tables[key], links=links)}"
                     f"<p>{files}</p>")
    for stem in (s for s in figures if s.startswith(("roc_", "pr_"))):     # report/curves.py
        png = next((p for p in figures[stem] if p.suffix == ".png"), None)
        if png is not None:
            data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
            title = f"{'ROC' if stem.startswith('roc_') else 'Precision-recall'} curves, {stem.split('_', 1)[1]}"
            parts.append(f'<h4>{escape(title)}</h4><img alt="{escape(title, quote=True)}" '
                         f'src="data:image/png;base64,{data}"><p><a href="figures/{stem}.svg">svg</a> · '
                         f'<a href="figures/{stem}.png">png</a></p>')
    if significance is not None:
        parts.append("<h2>Significance</h2>" + significance_html(significance))
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
    failed = {c: r for c, r in ((manifest or {}).get("failed_cells") or {}).items()
              if c not in {rec.cell_id for rec in records}}        # a cell that passed on resume is not failed
    if failed:
        rows = "".join(f"<tr><td>{escape(c)}</td><td>{escape(str(r))}</td></tr>" for c, r in sorted(failed.items()))
        parts.append(f"<h2>Failed cells ({len(failed)})</h2><table><tr><th>cell</th><th>reason</th></tr>"
                     f"{rows}</table>")
    if any(f in report_files for f in BEYOND):
        parts.append("<h2>Beyond the study</h2><p>Models the study never ran, beside its best: "
                     + " · ".join(f'<a href="{f}">{f}</a>' for f in BEYOND if f in report_files) + "</p>")
    parts.append("<h2>Files of this report</h2>" + _files_html(report_files))
    parts.append('<h2>How to cite</h2><p>The study this report reproduces, and radbench '
                 '(<a href="citation.bib">citation.bib</a>):</p>'
                 f"<pre>{escape(citation_bib())}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
