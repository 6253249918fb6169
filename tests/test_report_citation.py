"""How to cite: citation.bib in every report (the study, then radbench at its version), shown in
the HTML; CITATION.cff at the repo root is valid YAML at the package's version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from radbench_core.report import build_report
from radbench_core.report.citation import STUDY_KEY, citation_bib, radbench_bibtex

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_is_valid_and_names_the_study_and_our_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and str(cff["version"]) == version
    study = cff["references"][0]
    assert study["authors"][0]["family-names"] == "Baharoon" and study["year"] == 2023
    assert study["identifiers"][0]["value"] == "arXiv:2312.02366"


def test_bibtex_entries_are_balanced_and_cite_the_study():
    bib = citation_bib("9.9.9")
    assert bib.count("{") == bib.count("}") and bib.startswith(f"@article{{{STUDY_KEY},")
    assert re.search(r"version = \{9\.9\.9\}", radbench_bibtex("9.9.9"))
    assert "arXiv:2312.02366" in bib and "@software{radbench," in bib


def test_report_writes_citation_bib_and_shows_it(tmp_path):
    html = build_report([], tmp_path).read_text()
    assert (tmp_path / "citation.bib").read_text() == citation_bib()
    assert "<h2>How to cite</h2>" in html and 'href="citation.bib"' in html and STUDY_KEY in html
