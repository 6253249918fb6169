"""build_report end to end: files, demo banner iff demo, escaping, verdicts, links, merging, errors."""

from __future__ import annotations

import io
import re
import warnings
from html import escape

import pandas as pd
import pytest

from radbench_core.core.errors import ConfigError, StorageError
from radbench_core.report import build_report, summary_table
from radbench_core.report.frame import model_label
from radbench_core.report.figures import FIGURES
from radbench_core.report.html import DEMO_BANNER
from radbench_core.report.tables import TABLES
from radbench_core.core.results import DEMO_WEIGHTS, CellResult, Metric, RunStore

SEG = {"mc": "xray", "amos": "ct"}


def rec(model, dataset, protocol, variant="", value=0.5, weights="official", **kw) -> CellResult:
    task = "segmentation" if dataset in SEG else "classification"
    metrics = ({"dice_jaccard": Metric(value, True, value - 0.01, value + 0.01),
                "dice": Metric(value + 0.05), "jaccard": Metric(value - 0.05)}
               if task == "segmentation" else {"auroc": Metric(value, True, value - 0.02, value + 0.02)})
    return CellResult(cell_id=f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else ""),
                      model=model, dataset=dataset, protocol=protocol, variant=variant, task=task,
                      modality=SEG.get(dataset, "xray"), profile="t", metrics=metrics,
                      weights=weights, **kw)


def grid() -> list[CellResult]:
    recs = [rec(m, d, "linear", value=v) for m, d, v in
            (("dinov2_vitl14", "nih", 0.8), ("resnet152", "nih", 0.7), ("dinov2_vitl14", "chexpert", 0.85),
             ("resnet152", "chexpert", 0.75))]
    recs += [rec(m, d, "seg_unet", "448", v, params_trainable=1_000_000, params_total=300_000_000)
             for m, d, v in (("dinov2_vitl14", "mc", 0.9), ("clip_vitl14", "mc", 0.8),
                             ("dinov2_vitl14", "amos", 0.7), ("clip_vitl14", "amos", 0.6))]
    recs += [rec("clip_vitl14", d, "linear", value=0.6) for d in ("nih", "chexpert")]
    recs.append(rec("unet", "amos", "scratch", "224", 0.65, params_trainable=31_000_000,
                    params_total=31_000_000))
    return recs


def figures_built(out, stem: str) -> bool:
    return (out / "figures" / f"{stem}.png").exists()


MANIFEST = {"profile": "paper", "seed": 0, "device": "cuda:0", "git_sha": "abc1234", "git_dirty": True,
            "versions": {"torch": "2.4.0", "timm": "1.0.9"}, "started": "2024-01-01T00:00:00",
            "finished": "2024-01-01T01:00:00", "interrupted": False}


def test_full_report_files_and_content(tmp_path):
    recs = grid()
    RunStore(tmp_path).write_cell(recs[0])
    verdicts = [{"cell_id": "dinov2_vitl14-nih-linear", "metric": "auroc", "baseline": 0.81,
                 "now": 0.8, "delta": -0.01, "verdict": "regressed", "tolerance": "auroc:0.005"},
                {"cell_id": "resnet152-nih-linear", "metric": "auroc", "baseline": None, "now": 0.7,
                 "delta": None, "verdict": "new", "tolerance": "auroc:0.005", "note": "not in baseline"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index = build_report(recs, tmp_path, MANIFEST, verdicts)
    assert index == tmp_path / "index.html"
    html = index.read_text()
    assert DEMO_BANNER not in html
    for needle in ("abc1234", "uncommitted changes", "cuda:0", "torch 2.4.0", "interrupted",
                   "Regression verdicts", "auroc:0.005", '<td class="fail">regressed</td>',
                   '<td class="pass">new</td>', "<td>not in baseline</td>", "<td>-0.0100</td>",
                   'href="cells/dinov2_vitl14-nih-linear.json"', 'href="cells/resnet152-nih-linear.json"',
                   "data:image/png;base64,", 'href="figures/fig1_ranking.svg"',
                   'href="tables/table3_linear_probing.tex"'):
        assert needle in html, needle
    assert "<script" not in html and "stylesheet" not in html and "http" not in html
    for key in TABLES:                                   # every study table, even where all "—"
        if not key.endswith("_extended") and key != "other_cells":
            assert f'href="tables/{key}.md"' in html, key
    assert html.count("not in this run") == sum(1 for s in FIGURES if not figures_built(tmp_path, s))
    # 8 cells the study published: only ResNet152 on NIH (0.700 [0.680, 0.720] vs 0.718) reproduces
    assert "<b>1</b> reproduce" in html and "<b>7</b> do not" in html
    assert ("<tr><td>resnet152-nih-linear</td><td>auroc</td><td>0.700</td><td>[0.680, 0.720]</td>"
            '<td>0.718</td><td>-0.018</td><td class="pass">reproduces</td></tr>') in html
    assert "<td>0.800</td><td>[0.780, 0.820]</td><td>0.763</td><td>+0.037</td>" in html
    assert "no recorded deviation from the study" in html
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(df.columns)[:9] == ["cell_id", "model", "dataset", "protocol", "variant", "task",
                                    "modality", "metric", "value"]
    assert len(df) == sum(len(r.metrics) for r in recs)
    row = df[(df.cell_id == "dinov2_vitl14-mc-seg_unet@448") & (df.metric == "dice")].iloc[0]
    assert row.value == pytest.approx(0.95) and row.params_total == 300_000_000
    for stem in ("table3_linear_probing", "table4_knn_linear_finetune", "table6_dinov2_vs_scratch"):
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / "tables" / f"{stem}.{ext}").stat().st_size > 0
    assert "—" in (tmp_path / "tables" / "table9_finetune_lora_bitfit.md").read_text()
    assert (tmp_path / "figures" / "fig1_ranking.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_banner_iff_demo_record(tmp_path):
    recs = grid()
    html = build_report(recs, tmp_path / "real").read_text()
    assert DEMO_BANNER not in html and 'class="banner"' not in html
    recs[3] = rec("resnet152", "chexpert", "linear", value=0.75, weights=DEMO_WEIGHTS)
    html = build_report(recs, tmp_path / "demo").read_text()
    body = html.split("<body>", 1)[1]
    assert body.lstrip().startswith('<div class="banner"') and DEMO_BANNER in body
    assert "random-init (demo) weights — not a real result" in \
        (tmp_path / "demo" / "tables" / "table3_linear_probing.md").read_text()


def test_half_the_cells_missing_still_reports(tmp_path):
    full = grid()
    build_report(full, tmp_path)
    assert (tmp_path / "tables" / "table6_dinov2_vs_scratch.csv").exists()
    half = [r for i, r in enumerate(full) if i not in (1, 2, 5, 6, 8)]      # 6 of 11 cells
    html = build_report(half, tmp_path).read_text()
    extended = len(list((tmp_path / "tables").glob("*_extended.md"))) + \
        (tmp_path / "tables" / "other_cells.md").exists()
    assert "—" in html and html.count("<h3>") == 7 + extended + len(FIGURES)
    t3 = (tmp_path / "tables" / "table3_linear_probing.csv").read_text()
    df = pd.read_csv(io.StringIO(t3), comment="#", dtype=str, keep_default_na=False)
    df = df.set_index(df["Method"] + " " + df["Architecture"])
    assert df.loc["DINOv2 ViT-L/14"].tolist()[2:4] == ["0.800 [0.780, 0.820]", "—"]
    assert df.loc["Supervised ResNet152"].tolist()[2:4] == ["—", "0.750 [0.730, 0.770]"]
    vs = (tmp_path / "tables" / "table3_linear_probing_vs_study.csv").read_text()
    assert "DINOv2,ViT-L/14,NIH Chest X-ray,0.800,\"[0.780, 0.820]\",0.763,+0.037,no" in vs
    assert "Run vs study (" in html
    # an extended table the smaller run cannot fill is removed, not left over from the earlier report
    assert (tmp_path / "tables" / "table6_dinov2_vs_scratch_extended.csv").exists()
    assert build_report(half[:1], tmp_path).exists()
    assert not (tmp_path / "tables" / "table6_dinov2_vs_scratch_extended.csv").exists()
    assert (tmp_path / "tables" / "table6_dinov2_vs_scratch.csv").exists()     # study tables stay
    empty = build_report([], tmp_path / "empty").read_text()
    assert "no cell of this run was published by the study" in empty
    assert all(f"<h3>{title}</h3>" in empty for key, title in TABLES.items()
               if "extended" not in key and key != "other_cells")


def test_deviations_and_published_banner(tmp_path):
    from radbench_core.config.fidelity import deviations
    from radbench_core.report.html import PUBLISHED_BANNER
    from radbench_core.report.published import published_records
    dev = sorted(deviations())[0]
    setting = deviations()[dev]
    recs = grid()
    recs[0].deviations = [dev, "no_such_deviation"]
    recs[1].deviations = [dev]
    html = build_report(recs, tmp_path / "run").read_text()
    section = html.split("<h2>Deviations from the study</h2>", 1)[1].split("<h2>", 1)[0]
    assert f"<td>{dev}</td>" in section and section.count("<tr>") == 3      # header + 2 ids
    assert escape(setting.why) in section and escape(setting.source) in section
    assert "unknown id" in section and "<td>2</td>" in section               # cells it affects
    assert escape(PUBLISHED_BANNER) not in html
    pub = build_report(published_records(), tmp_path / "pub").read_text()
    assert escape(PUBLISHED_BANNER) in pub and escape(DEMO_BANNER) not in pub
    assert "no cell of this run was published" not in pub                     # issue 25: it all was
    assert "nothing is compared with them" in pub                               # never compared to itself


def test_escaping(tmp_path):
    evil = "<img src=x onerror=alert(1)>"
    recs = [rec("evil&model", "nih", "linear", value=0.5, device=evil)]
    html = build_report(recs, tmp_path, {"profile": "<script>alert(1)</script>"},
                        [{"cell_id": evil, "metric": "auroc", "baseline": 1.0, "now": 0.5, "delta": -0.5,
                          "verdict": "fail", "tolerance": "<marquee>"}]).read_text()
    assert evil not in html and "<script>alert" not in html and "<marquee>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "evil&amp;model" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_merging_shards_keeps_first_and_warns(tmp_path):
    shard_a, shard_b = tmp_path / "a", tmp_path / "b"
    first, dup = rec("resnet152", "nih", "linear", value=0.7), rec("resnet152", "nih", "linear", value=0.1)
    other = rec("dinov2_vitl14", "nih", "linear", value=0.8)
    RunStore(shard_a).write_cell(first)
    RunStore(shard_b).write_cell(other)
    with pytest.warns(UserWarning, match=r"1 duplicate cell record.*resnet152-nih-linear"):
        html = build_report([first, other, dup], tmp_path / "merged",
                            run_dirs=[shard_a, shard_b]).read_text()
    df = pd.read_csv(tmp_path / "merged" / "results.csv")
    assert df.set_index("cell_id").loc["resnet152-nih-linear", "value"] == 0.7
    assert 'href="../a/cells/resnet152-nih-linear.json"' in html
    assert 'href="../b/cells/dinov2_vitl14-nih-linear.json"' in html


def test_bad_input_messages(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("build_report(records[1]): expected a CellResult, "
                                                    "got dict. Fix: load records with RunStore")):
        build_report([rec("resnet152", "nih", "linear"), {"cell_id": "x"}], tmp_path)
    with pytest.raises(ConfigError, match=r"verdicts\[0\]\): missing key\(s\) now, delta.*Fix: give each"):
        build_report([], tmp_path, verdicts=[{"cell_id": "x", "metric": "auroc", "baseline": 1,
                                              "verdict": "ok", "tolerance": "auroc:0.01"}])
    a_file = tmp_path / "report.html"
    a_file.write_text("x")
    with pytest.raises(StorageError, match="is a file, but the report needs a directory. Fix: pass a"):
        build_report([], a_file)


def test_summary_table_reexported():
    text = summary_table(grid()[:1])
    assert "dinov2_vitl14-nih-linear" in text and "0.800" in text and "[0.780, 0.820]" in text


def test_demo_cells_are_never_compared_with_the_published_numbers():
    """A random-init demo value "inside the CI" of a published number would read as a reproduction."""
    from radbench_core.report.frame import headline_frame
    from radbench_core.report.html import reproduction_html
    from radbench_core.report.published import compare_to_published
    from radbench_core.report.tables import build_tables
    from radbench_core.core.results import CellResult, Metric
    demo = CellResult(cell_id="dinov2_vitl14-nih-linear", model="dinov2_vitl14", dataset="nih",
                      protocol="linear", variant="", task="classification", modality="xray",
                      profile="demo", metrics={"auroc": Metric(0.763, True, 0.70, 0.80)})
    hf = headline_frame([demo])
    assert compare_to_published(hf).empty
    table = build_tables(hf)["table3_linear_probing"]
    assert all(e.published is None for e in table.entries.values())
    assert "study 0.763" not in "".join(table.text(r, c) for (r, c) in table.entries)
    assert "not compared with the published" in reproduction_html(compare_to_published(hf), demo_shared=1)


def test_banner_says_what_the_data_really_was(tmp_path):
    """Issue 22: a smoke run over the user's folder said "synthetic phantom data"."""
    from dataclasses import replace

    from radbench_core.report.html import SMOKE_BANNER
    recs = grid()
    recs[3] = replace(rec("resnet152", "chexpert", "linear", value=0.75, weights=DEMO_WEIGHTS),
                      dataset_provenance="CheXpert at /data/chexpert")
    html = build_report(recs, tmp_path / "smoke").read_text()
    assert SMOKE_BANNER in html and DEMO_BANNER not in html
    recs[0] = replace(rec("dinov2_vitl14", "nih", "linear", value=0.8, weights=DEMO_WEIGHTS),
                      dataset_provenance="phantom (demo, synthetic tiny, abc) of NIH ChestX-ray14")
    html = build_report(recs, tmp_path / "both").read_text()
    assert SMOKE_BANNER in html and DEMO_BANNER in html


def test_failed_cells_appear_with_their_one_line_reason(tmp_path):
    """Issue 22: failed cells were missing from the HTML report."""
    from types import SimpleNamespace

    from fixtures.session import cell_of, failure_line
    reason = ("<tmp>/ward/labels.csv: row of 3.png: label 'efusion' is not one of ['normal', 'effusion']. "
              "Fix: fix the label or the class_names.")
    crash = SimpleNamespace(reprcrash=SimpleNamespace(message="radbench_core.core.errors.DatasetError: " + reason
                                                       + "\n\nmore detail"))
    assert failure_line(crash) == "radbench_core.core.errors.DatasetError: " + reason
    assert failure_line("Traceback\n  line\nValueError: boom\n") == "ValueError: boom"
    assert cell_of("benchmarks/test_classification.py::test_cell[dinov2_vits14-ward-knn@224]") == \
        "dinov2_vits14-ward-knn@224"
    recs = grid()
    manifest = {"profile": "mine", "failed_cells": {"dinov2_vits14-ward-knn@224": reason,
                                                    recs[0].cell_id: "failed before resume"}}
    html = build_report(recs, tmp_path, manifest=manifest).read_text()
    assert "Failed cells (1)" in html and "dinov2_vits14-ward-knn@224" in html
    assert "label &#x27;efusion&#x27; is not one of" in html and "failed before resume" not in html
def test_table_entries_link_to_their_cell_records_and_cells_show_selected_hyperparameters(tmp_path):
    recs = grid()
    recs[0] = CellResult.from_dict({**recs[0].to_dict(), "hparams": {"lr": 0.001, "n_blocks": 4}})
    store = RunStore(tmp_path)
    store.write_cell(recs[0])
    html = build_report(recs, tmp_path).read_text()
    href = f'href="cells/{recs[0].cell_id}.json" title="{recs[0].cell_id}">'
    tables = html.split("<h2>Tables</h2>")[1].split("<h2>Figures</h2>")[0]
    assert tables.count(href) >= 2                    # Table 3 and its run-vs-study companion
    assert "<td>lr 0.001, n_blocks 4</td>" in html and "selected hyperparameters" in html
