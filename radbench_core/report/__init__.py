"""Recorded cells -> the study's tables and figures, results.csv and a self-contained index.html.

``build_report`` is what the session hook and ``radbench report`` call; ``summary_table`` is the
terminal view. Several runs (shards) merge by passing all their records: for a cell recorded more
than once the first record given is kept (pass the newest run first) and a warning names the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from radbench_core.core.atomic import atomic_write_text
from radbench_core.report.citation import citation_bib
from radbench_core.report.clinical import PREFIXES as CLINICAL, clinical_tables
from radbench_core.report.comparison import VS_STUDY, with_comparisons
from radbench_core.report.figures import FIGURES, build_figures
from radbench_core.report.figures_examples import find_file
from radbench_core.report.frame import headline_frame, merge_records, records_frame, summary_table
from radbench_core.report.html import REPORT_FILES, page_banners, render_index
from radbench_core.report.render import latex_document
from radbench_core.report.run_status import report_markdown
from radbench_core.report.table import Table
from radbench_core.report.tables import TABLES, build_tables, to_csv, to_latex, to_markdown
from radbench_core.core.errors import ConfigError, StorageError
from radbench_core.core.results import CellResult, cell_filename

__all__ = ["build_report", "summary_table", "write_tables"]
VERDICT_KEYS = ("cell_id", "metric", "baseline", "now", "delta", "verdict", "tolerance")
CITATION_FILE = "citation.bib"        # the study's and radbench's BibTeX
LATEX_DOCUMENT = "all_tables.tex"     # tables/: a pdflatex document that inputs every .tex table
REPORT_MARKDOWN = "report.md"         # the page's banners, outcomes, machine and links, in Markdown


def build_report(records: Iterable[CellResult], out_dir: str | Path,
                 manifest: dict[str, Any] | None = None, verdicts: list[dict[str, Any]] | None = None,
                 *, run_dirs: Iterable[str | Path] = (), ci_in_tables: bool = False) -> Path:
    """Write results.csv, tables/, figures/, report.md and index.html under ``out_dir``; return
    index.html's path.

    ``ci_in_tables`` adds each entry's 95% CI to the Markdown and LaTeX tables (CSV and HTML
    always have them). ``run_dirs`` are the run directories the records came from (for a merged
    report elsewhere): example arrays and per-cell JSON links are looked up under ``out_dir``
    first, then each of them. Table/figure files of an earlier report in ``out_dir`` that this run
    cannot fill are removed.
    """
    out_dir = Path(out_dir)
    records = merge_records(_checked(records))
    verdicts = _checked_verdicts(verdicts)
    if out_dir.exists() and not out_dir.is_dir():
        raise StorageError(out_dir, "is a file, but the report needs a directory",
                           "pass a directory (new or existing) as the report's output folder")
    roots = [out_dir, *(Path(d) for d in run_dirs)]
    atomic_write_text(out_dir / "results.csv", records_frame(records).to_csv(index=False))

    from radbench_core.report.marks import group_matrices, run_predictions
    predictions = run_predictions(records, roots)              # issue 17: paired significance
    tables = with_comparisons(build_tables(headline_frame(records), predictions=predictions))
    tables.update(clinical_tables(records, predictions))       # per finding, test sets, operating point
    from radbench_core.report.curves import build_curves
    curve_figures, curve_tables = build_curves(records, predictions, out_dir / "figures")
    tables.update(curve_tables)                                # ROC / PR of the best cells
    write_tables(tables, out_dir / "tables", ci=ci_in_tables)
    atomic_write_text(out_dir / CITATION_FILE, citation_bib())

    for stem in FIGURES:
        for ext in ("png", "svg"):
            (out_dir / "figures" / f"{stem}.{ext}").unlink(missing_ok=True)
    figures = build_figures(records, out_dir / "figures", roots=roots)
    figures.update(curve_figures)
    _write_beyond(records, out_dir, predictions)

    links = {}
    for rec in records:
        rel = Path("cells") / cell_filename(rec.cell_id)
        found = find_file(str(rel), roots)
        links[rec.cell_id] = Path(os.path.relpath(found, out_dir)).as_posix() if found else rel.as_posix()
    figure_files = [f"figures/{Path(p).name}" for stem in FIGURES for p in figures.get(stem, [])
                    if Path(p).suffix == ".png"]
    atomic_write_text(out_dir / REPORT_MARKDOWN, report_markdown(
        manifest, [text for text, _ in page_banners(records, manifest)], len(records),
        [f"tables/{key}.md" for key in tables], figure_files,
        [f for f in REPORT_FILES if f != REPORT_MARKDOWN and (out_dir / f).is_file()]))
    html = render_index(records, tables, figures, manifest, verdicts, links,
                        significance=group_matrices(records, predictions) if predictions else None,
                        files=[f for f in REPORT_FILES if (out_dir / f).is_file()])
    return atomic_write_text(out_dir / "index.html", html)


def write_tables(tables: dict[str, Table], folder: Path, ci: bool = False) -> list[Path]:
    """Each table as .md, .csv and .tex under ``folder`` plus LATEX_DOCUMENT (inputs every .tex);
    files of an earlier report that these tables do not fill are removed. Returns the .tex paths."""
    for key in TABLES:
        for ext in ("md", "csv", "tex"):
            (folder / f"{key}.{ext}").unlink(missing_ok=True)
            (folder / f"{key}{VS_STUDY}.{ext}").unlink(missing_ok=True)
    for stale in (p for prefix in CLINICAL for p in folder.glob(f"{prefix}*.*")):
        stale.unlink(missing_ok=True)
    tex = []
    for key, table in tables.items():
        atomic_write_text(folder / f"{key}.md", to_markdown(table, ci=ci))
        atomic_write_text(folder / f"{key}.csv", to_csv(table))
        tex.append(atomic_write_text(folder / f"{key}.tex", to_latex(table, ci=ci)))
    atomic_write_text(folder / LATEX_DOCUMENT, latex_document(list(tables)))
    return tex


def _write_beyond(records: list[CellResult], out_dir: Path, predictions) -> None:
    """Issue 24: beyond_the_study.md + fig1_ranking_extended.csv when the run has a new model."""
    from radbench_core.report.beyond import beyond_markdown
    section = beyond_markdown(records, predictions)
    for name, text in zip(("beyond_the_study.md", "fig1_ranking_extended.csv"), section or ("", "")):
        if section is None:
            (out_dir / name).unlink(missing_ok=True)
        else:
            atomic_write_text(out_dir / name, text)


def _checked(records: Iterable[CellResult]) -> list[CellResult]:
    records = list(records)
    for i, rec in enumerate(records):
        if not isinstance(rec, CellResult):
            raise ConfigError(f"build_report(records[{i}])",
                              f"expected a CellResult, got {type(rec).__name__}",
                              "load records with RunStore(run_dir).load_cells() or "
                              "CellResult.from_dict(json_dict)")
    return records


def _checked_verdicts(verdicts: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    for i, v in enumerate(verdicts or []):
        missing = [k for k in VERDICT_KEYS if not isinstance(v, dict) or k not in v]
        if missing:
            raise ConfigError(f"build_report(verdicts[{i}])", f"missing key(s) {', '.join(missing)}",
                              f"give each verdict as a dict with keys {', '.join(VERDICT_KEYS)}")
    return verdicts
