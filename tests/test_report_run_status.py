"""Issue 25: an interrupted run's banner, resumed cells counted as resumed, the machine in the manifest
and report, and `--published` tables that print the study's own parameter counts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from radbench_core.core.results import CellResult, Metric, machine_info
from radbench_core.report.frame import headline_frame
from radbench_core.report.html import PUBLISHED_ONLY, render_index
from radbench_core.report.published import published_records
from radbench_core.report.run_status import (interrupted_banner, machine_rows, outcome_counts,
                                             report_markdown, resume_command)
from radbench_core.report.tables import PARAMS_COMPUTED, PARAMS_PRINTED, build_tables


def test_skipped_cells_recorded_earlier_count_as_resumed():
    outcomes = {"benchmarks/test_classification.py::test_cell[a-nih-knn]": "skipped",      # recorded before
                "benchmarks/test_classification.py::test_cell[b-nih-knn]": "skipped",      # no data: skipped
                "benchmarks/test_classification.py::test_cell[c-nih-knn]": "passed",
                "benchmarks/test_segmentation.py::test_cell[d-mc-seg_unet@448]": "skipped",
                "benchmarks/test_segmentation.py::test_cell[e-mc-seg_unet@448]": "failed"}
    got = outcome_counts(outcomes, {"a-nih-knn", "d-mc-seg_unet@448", "c-nih-knn"})
    assert got == {"passed": 1, "resumed": 2, "failed": 1, "skipped": 1}
    assert list(got) == ["passed", "resumed", "failed", "skipped"]
    assert outcome_counts({}, ()) == {"passed": 0, "resumed": 0, "failed": 0, "skipped": 0}


def test_interrupted_banner_names_the_finished_cells_and_the_resume_command():
    manifest = {"interrupted": True, "profile": "my profile.py", "run_dir": "/runs/r 1",
                "data_dir": "/data", "run_id": "r 1"}
    assert resume_command(manifest) == ("pytest benchmarks --radbench-profile 'my profile.py' "
                                        "--radbench-data-dir /data --radbench-resume '/runs/r 1'")
    line = interrupted_banner(manifest, 7)
    assert "interrupted" in line and "7 cell(s) finished" in line and line.endswith(resume_command(manifest))
    assert interrupted_banner({**manifest, "interrupted": False}, 7) is None
    assert interrupted_banner(None, 7) is None
    page = render_index([], {}, {}, manifest)
    assert page.count('class="banner"') == 1 and escape_free(resume_command(manifest)) in page
    assert 'class="banner"' not in render_index([], {}, {}, {**manifest, "interrupted": False})
    md = report_markdown(manifest, [line], 7, [], [], [])
    assert f"> **{line}**" in md


def escape_free(text: str) -> str:
    from html import escape
    return escape(text)


def test_machine_info_matches_the_operating_system():
    info = machine_info()
    assert info["cpu_count"] == os.cpu_count()
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text()).group(1))
        assert info["ram_gib"] == pytest.approx(kib / 2**20, abs=0.15)
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
        found = re.search(r"^Model name:\s+(.+)$", out, re.M)
        if found:
            assert info["cpu_model"] == found.group(1).strip()
    rows = dict(machine_rows({"machine": info, "versions": {"python": "3.11.2", "torch": "2.4.0"}}))
    assert rows["CPU"] == f"{info['cpu_model']} ({os.cpu_count()} cores)"
    assert rows["GPU"] == (", ".join(f"{n} ({m} GiB)" for n, m in zip(info["gpus"], info["gpu_memory_gib"]))
                           if info.get("gpus") else "none")
    assert rows["Software"] == "python 3.11.2, torch 2.4.0"


def rows_of(table) -> dict[str, list[str]]:
    return {table.label(r): [table.text(r, c) for c in range(len(table.columns))] for r in range(len(table.rows))}


def test_published_tables_print_the_studys_parameter_counts():
    tables = build_tables(headline_frame(published_records()))
    t6, t9 = tables["table6_dinov2_vs_scratch"], tables["table9_finetune_lora_bitfit"]
    # as printed in the study (arXiv 2312.02366 Tables 6 and 9)
    assert [rows_of(t6)[k][:2] for k in ("Scratch U-Net", "Scratch TransUnet", "DINOv2 ViT-L/14",
                                         "DINOv2 ViT-g/14")] == \
        [["31M (100%)", "31M"], ["324M (100%)", "324M"], ["17M (5%)", "317M"], ["38M (3%)", "1,138M"]]
    assert [rows_of(t9)[k][0] for k in ("Fine-tuning", "Linear-probing", "LoRA", "BitFit")] == \
        ["1,100M (100%)", "1,500 (1e-6%)", "8M (0.7%)", "0.8M (0.07%)"]
    for t in (t6, t9):
        assert PARAMS_PRINTED in t.caption and PARAMS_COMPUTED not in t.caption
        assert "computed by radbench" not in t.caption and "computed from" not in t.caption
    assert rows_of(t6)["DINOv2 ViT-g/14"][2] == "0.973"                   # metric columns unchanged


def test_a_runs_tables_print_computed_counts_and_say_so():
    run = CellResult(cell_id="dinov2_vitg14-mc-seg_unet@448", model="dinov2_vitg14", dataset="mc",
                     protocol="seg_unet", variant="448", task="segmentation", modality="xray", profile="t",
                     metrics={"dice_jaccard": Metric(0.9)}, weights="official")
    t6 = build_tables(headline_frame([run]))["table6_dinov2_vs_scratch"]
    assert rows_of(t6)["DINOv2 ViT-g/14"][:2] == ["39M (3%)", "1,175M"]     # computed, not the printed 1,138M
    assert PARAMS_COMPUTED in t6.caption and PARAMS_PRINTED not in t6.caption


def test_a_published_only_page_never_says_no_cell_was_published():
    page = render_index(published_records()[:3], {}, {}, None)
    assert "no cell of this run was published" not in page and escape_free(PUBLISHED_ONLY) in page
