"""Every .tex table compiles with pdflatex and fits the page: from the study's published numbers,
from a demo run and from a real-looking run (CIs, published comparisons, a user's Unicode names).

Compiled for real: skipped only where pdflatex is absent (.ci/run installs it). A table too wide
for a portrait article's text shows as "Overfull \\hbox" in the log and fails the test.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radbench_core.core.results import DEMO_WEIGHTS, CellResult, Metric
from radbench_core.report import LATEX_DOCUMENT, write_tables
from radbench_core.report.clinical import clinical_tables
from radbench_core.report.comparison import with_comparisons
from radbench_core.report.marks import PredictionStore
from radbench_core.report.frame import headline_frame
from radbench_core.report.published import published_records
from radbench_core.report.render import LATEX_PACKAGES, tex_escape
from radbench_core.report.tables import build_tables

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(PDFLATEX is None, reason="pdflatex not installed (.ci/run installs "
                                    "texlive-latex-base, -recommended and -extra)")


def as_run(rec: CellResult, weights: str, shift: float) -> CellResult:
    """A published record re-labelled as a run's: other weights, a shifted value and a 95% CI."""
    metrics = {k: Metric(m.value + shift, m.higher_is_better, m.value + shift - 0.02,
                         m.value + shift + 0.02) for k, m in rec.metrics.items()}
    return dataclasses.replace(rec, weights=weights, metrics=metrics, profile="paper")


def user_cells() -> list[CellResult]:
    """Cells no study table takes, with the names users give: Unicode, LaTeX specials."""
    auroc = {"auroc": Metric(0.71, True, 0.69, 0.73)}
    named = {"auroc_per_class": [0.7, 0.72, None], "class_names": ["Pleural_Thickening", "Ödem",
                                                                    "Mass & Nodule (≥3 cm)"]}
    return [CellResult(cell_id=f"{m}-{d}-fewshot@{v}", model=m, dataset=d, protocol="fewshot",
                       variant=v, task="classification", modality="xray", profile="paper",
                       metrics=auroc, weights="official", extra=named)
            for m, d, v in (("resnet50_α", "nih", "k=8"), ("vit_b16 & co", "my_data%", "Δ≥2 — µ"))]


def compile_tables(folder: Path, tmp_path: Path, standalone: bool) -> str:
    """pdflatex a portrait article that \\input's every .tex table (and, if ``standalone``, the
    report's own LATEX_DOCUMENT); return the article's log."""
    names = sorted(p.stem for p in folder.glob("*.tex") if p.name != LATEX_DOCUMENT)
    doc = tmp_path / "paper.tex"
    doc.write_text("\n".join([r"\documentclass{article}",
                              *(rf"\usepackage{{{p}}}" for p in LATEX_PACKAGES), r"\begin{document}",
                              *(rf"\input{{{folder / n}}}" + "\n\\clearpage" for n in names),
                              r"\end{document}"]) + "\n", encoding="ascii")
    for source in (doc, folder / LATEX_DOCUMENT)[:1 + standalone]:
        run = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error",
                              f"-output-directory={tmp_path}", source.name], cwd=source.parent,
                             capture_output=True, text=True, timeout=120)
        log = (tmp_path / source.with_suffix(".log").name).read_text(errors="replace")
        assert run.returncode == 0, f"{source.name}: " + log[-3000:]
    return (tmp_path / "paper.log").read_text(errors="replace")


RUNS = {"published": lambda: published_records(),
        "demo": lambda: [as_run(r, DEMO_WEIGHTS, -0.2) for r in published_records()],
        "run": lambda: [as_run(r, "official", 0.01) for r in published_records()] + user_cells()}


@needs_pdflatex
@pytest.mark.parametrize("kind, ci", [("published", False), ("demo", False), ("run", True)])
def test_every_latex_table_compiles_and_fits_the_page(kind, ci, tmp_path):
    records = RUNS[kind]()
    tables = {**with_comparisons(build_tables(headline_frame(records))),
              **clinical_tables(records, PredictionStore({}))}
    folder = tmp_path / "tables"
    written = write_tables(tables, folder, ci=ci)
    assert len(written) == len(tables) >= 7
    if kind == "run":
        assert any(k.endswith("_vs_study") for k in tables) and "other_cells" in tables
        assert "perclass_nih" in tables and "perclass_my_data_" in tables
    log = compile_tables(folder, tmp_path, standalone=kind == "run")
    assert "Overfull \\hbox" not in log, log[log.index("Overfull"):][:600]
    assert "Missing character" not in log and (tmp_path / "paper.pdf").stat().st_size > 0
    assert log.count("[") >= len(tables)                    # a page per table ("[1]", "[2]", ...)


@given(st.text(max_size=40))
def test_tex_escape_is_plain_ascii_without_unescaped_specials(text):
    out = tex_escape(text)
    assert out.isascii()
    bare = out.replace("\\\\", "").replace("\\&", "").replace("\\%", "").replace("\\#", "")
    assert "&" not in bare and "%" not in bare and "#" not in bare


def test_tex_escape_translates_the_reports_symbols():
    assert tex_escape("Δ +0.01 ≈ α — µ†") == \
        r"$\Delta$ +0.01 $\approx$ $\alpha$ --- $\mu$\textdagger{}"
    assert tex_escape("Zürich 水") == "Zurich [U+6C34]"
