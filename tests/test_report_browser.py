"""Issue 25 item 4: the HTML report opened in headless Chromium (Debian's package, driven by Playwright):
no console or page error, every table the report wrote is on the page, every figure decodes at its PNG's
width, every local link resolves, a screenshot is saved. Also the page's interrupted banner, its
"Beyond the study" link (issue 24) and report.md, from the same small report.

Without a browser the browser tests skip here, but fail under CI=true (.ci/run installs chromium).
"""

from __future__ import annotations

import os
import re

import pytest
from PIL import Image

from radbench_core.core.results import RunStore, cell_filename
from radbench_core.report import build_report
from radbench_core.report.browser import PAGE_SHOT, check_report, local_target, missing_browser
from test_report_beyond import RECORDS          # 13 cells: the study's DINOv2s, RAD-DINO, MedSigLIP, CLIP

MANIFEST = {"profile": "paper", "run_id": "20260101-000000", "run_dir": "reports/runs/20260101-000000",
            "interrupted": True, "outcomes": {"passed": 9, "resumed": 4, "failed": 0, "skipped": 1},
            "machine": {"cpu_model": "AMD EPYC 9654", "cpu_count": 16, "ram_gib": 125.7,
                        "platform": "Linux-6.1-x86_64", "gpus": ["NVIDIA H200"], "gpu_memory_gib": [139.8]},
            "versions": {"python": "3.11.2", "torch": "2.4.0", "timm": "1.0.9"}}


def needs_browser() -> None:
    why = missing_browser()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must check the report in a browser: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of 13 recorded cells (cells/ written, so the page's cell links resolve)."""
    out = tmp_path_factory.mktemp("report")
    store = RunStore(out)
    for rec in RECORDS:
        store.write_cell(rec)
    return build_report(RECORDS, out, manifest=MANIFEST)


def test_report_renders_in_chromium_with_every_table_figure_and_link(report):
    needs_browser()
    out = report.parent
    check = check_report(report, out / "screenshots")
    assert check.console_errors == [] and check.page_errors == []
    # every table the report wrote (one .md each) is on the page under its caption
    written = sorted(p.stem for p in (out / "tables").glob("*.md"))
    assert len(written) >= 10 and check.captioned_tables == len(written)
    assert check.tables > check.captioned_tables            # + manifest, machine, reproduction, cells
    # every figure the report drew is shown, decoded at the PNG's own width
    pngs = sorted(Image.open(p).size[0] for p in (out / "figures").glob("*.png"))
    assert len(pngs) == 3 and sorted(w for _, w in check.images) == pngs
    # every local link resolves to a file of the report folder; every table file is linked
    local = [h for h in check.links if local_target(report, h) is not None]
    assert local and all((out / h).is_file() for h in local), [h for h in local if not (out / h).is_file()]
    assert check.broken_links == [] and check.problems == []
    assert {f"tables/{stem}.{ext}" for stem in written if "_vs_study" not in stem
            for ext in ("md", "csv", "tex")} <= set(check.links)
    assert {"beyond_the_study.md", "fig1_ranking_extended.csv", "report.md", "results.csv",
            "citation.bib"} <= set(check.links)
    assert {h for h in check.links if h.startswith("cells/")} == {f"cells/{cell_filename(r.cell_id)}"
                                                                   for r in RECORDS}   # each cell's record
    assert "Beyond the study" in check.sections and "Machine" in check.sections
    assert len(check.banners) == 1 and check.banners[0].startswith("This run was interrupted")
    # the screenshot: the whole page at the viewport's width, one PNG per section
    shot = out / "screenshots" / PAGE_SHOT
    assert check.screenshots["page"] == shot and shot.read_bytes()[:4] == b"\x89PNG"
    width, height = Image.open(shot).size
    assert width == 1280 and height > 2000
    assert len(check.screenshots) == 1 + len(check.sections)
    assert all(p.is_file() for p in check.screenshots.values())


def test_the_check_finds_a_console_error_a_broken_image_and_a_missing_file(tmp_path):
    needs_browser()
    (tmp_path / "there.csv").write_text("a\n")
    page = tmp_path / "index.html"
    page.write_text('<!DOCTYPE html><html><body><h2>One</h2><table><tr><td>1</td></tr></table>'
                    '<img alt="broken" src="data:image/png;base64,AAAA"><a href="there.csv">ok</a>'
                    '<a href="gone.md">gone</a><a href="https://example.org/x">web</a>'
                    '<script>console.error("planted")</script></body></html>')
    check = check_report(page)
    assert check.tables == 1 and check.captioned_tables == 0 and check.sections == ["One"]
    assert check.images == [("broken", 0)] and check.broken_links == ["gone.md"]
    assert any("planted" in e for e in check.console_errors)
    assert "image not shown: broken" in check.problems and "link to a missing file: gone.md" in check.problems


def test_interrupted_banner_in_the_page_and_in_report_md(report):
    html = report.read_text()
    md = (report.parent / "report.md").read_text()
    command = "pytest benchmarks --radbench-profile paper --radbench-resume reports/runs/20260101-000000"
    for text in (html, md):
        assert "This run was interrupted" in text and "13 cell(s) finished" in text and command in text
        assert "9 passed, 4 resumed, 0 failed, 1 skipped" in text
    banner = re.search(r'<div class="banner" role="alert">([^<]*)</div>', html).group(1)
    assert "interrupted" in banner
    assert md.index("This run was interrupted") < md.index("## Machine") < md.index("## Tables")
    assert "| GPU | NVIDIA H200 (139.8 GiB) |" in md and "| CPU | AMD EPYC 9654 (16 cores) |" in md
    machine = html.split("<h2>Machine</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<th>RAM</th><td>125.7 GiB</td>" in machine and "torch 2.4.0, timm 1.0.9" in machine
    for line in re.findall(r"\]\(([^)]+)\)", md):                          # every link of report.md
        assert (report.parent / line).is_file(), line


def test_beyond_the_study_is_linked_from_the_page(report):
    html = report.read_text()
    section = html.split("<h2>Beyond the study</h2>", 1)[1].split("<h2>", 1)[0]
    assert '<a href="beyond_the_study.md">' in section and '<a href="fig1_ranking_extended.csv">' in section
    assert (report.parent / "beyond_the_study.md").read_text().startswith("# Beyond the study")


def test_radbench_report_screenshot(report, tmp_path, capsys, monkeypatch):
    """`radbench report RUN --screenshot`: the report, its screenshots and "0 problem(s)"; one line
    and status 0 on a machine without a browser."""
    import shutil
    from radbench_core.cli.app import main
    import radbench_core.report.browser as browser
    run = tmp_path / "run"
    shutil.copytree(report.parent / "cells", run / "cells")
    monkeypatch.setattr(browser, "missing_browser", lambda: "no Chromium on PATH (planted)")
    assert main(["report", str(run), "--screenshot"]) == 0
    assert "--screenshot skipped: no Chromium on PATH (planted)" in capsys.readouterr().err
    assert (run / "index.html").is_file() and not (run / "screenshots").exists()
    monkeypatch.undo()
    needs_browser()
    assert main(["report", str(run), "--screenshot"]) == 0
    out = capsys.readouterr().out
    assert "screenshots (" in out and "0 problem(s)" in out and "report tables, 3 figures" in out
    assert (run / "screenshots" / PAGE_SHOT).read_bytes()[:4] == b"\x89PNG"
