"""Figure 5's "All" points are the Table 3 / 5 / 6 cells (the study re-ran none), no point twice.

The values are the study's own (Table 5: DINOv2 ViT-L/14 MC 0.966 at 224 px, MAE 0.969; Table 6:
DINOv2 ViT-L/14 0.974 at 448 px), so each curve's last point can be checked against the table.
"""

from __future__ import annotations

import numpy as np

from radbench_core.core.results import CellResult, Metric
from radbench_core.report.figure5_all import table_cell, with_all_points
from radbench_core.report.figures import plot_fewshot
from radbench_core.report.frame import headline_frame, model_label

A, MAE, UNET, R152 = "dinov2_vitl14", "mae_vitl16", "unet", "resnet152"
SHOTS = ("1", "2", "4", "8", "16")


def rec(model, dataset, protocol, variant="", value=0.5) -> CellResult:
    task = "segmentation" if dataset == "mc" else "classification"
    name = "dice_jaccard" if task == "segmentation" else "auroc"
    return CellResult(cell_id=f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else ""),
                      model=model, dataset=dataset, protocol=protocol, variant=variant, task=task,
                      modality="xray", profile="paper", metrics={name: Metric(value, True)}, weights="official")


def paper_records() -> list[CellResult]:
    recs = [rec(m, "nih", "fewshot", n, 0.6 + 0.01 * i) for m in (A, R152) for i, n in enumerate(SHOTS)]
    recs += [rec(A, "nih", "linear", "", 0.81), rec(R152, "nih", "linear", "", 0.77)]      # Table 3
    recs += [rec(m, "mc", "seg_fewshot", n, 0.8 + 0.01 * i) for m in (A, MAE) for i, n in enumerate(SHOTS)]
    recs += [rec(UNET, "mc", "scratch_fewshot", n, 0.7 + 0.01 * i) for i, n in enumerate(SHOTS)]
    recs += [rec(A, "mc", "seg_unet", "224", 0.966), rec(MAE, "mc", "seg_unet", "224", 0.969),   # Table 5
             rec(A, "mc", "seg_unet", "448", 0.974), rec(UNET, "mc", "scratch", "448", 0.95)]    # Table 6
    return recs


def _line(ax, model):
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    return ax.lines[labels.index(model_label(model))]


def test_each_curve_ends_at_its_table_cell():
    nih_top, mc_top, nih_bottom, mc_bottom = plot_fewshot(headline_frame(paper_records())).axes
    for ax in (nih_top, mc_top, nih_bottom, mc_bottom):
        assert [t.get_text() for t in ax.get_xticklabels()] == [*SHOTS, "all"]
    assert _line(nih_top, A).get_ydata()[-1] == 0.81 and _line(nih_bottom, R152).get_ydata()[-1] == 0.77
    # top row: Table 5 at 224 px (MAE above DINOv2, as paper 4.3 says); bottom row: Table 6 at 448 px
    assert _line(mc_top, A).get_ydata()[-1] == 0.966 and _line(mc_top, MAE).get_ydata()[-1] == 0.969
    assert _line(mc_bottom, A).get_ydata()[-1] == 0.974 and _line(mc_bottom, UNET).get_ydata()[-1] == 0.95
    assert list(_line(mc_bottom, UNET).get_xdata()) == [0, 1, 2, 3, 4, 5]


def test_a_rerun_all_cell_is_dropped_where_the_table_cell_exists():
    extra = [rec(A, "mc", "seg_fewshot", "all", 0.5), rec(MAE, "mc", "seg_fewshot", "all", 0.4)]
    hf = headline_frame(paper_records() + extra)
    _, mc_top, _, mc_bottom = plot_fewshot(hf).axes
    for ax, want in ((mc_top, 0.966), (mc_bottom, 0.974)):
        line = _line(ax, A)
        assert len(line.get_xdata()) == 6 and line.get_ydata()[-1] == want    # one "All" point, the table's
    # without MAE's table cell its own @all cell is the point
    hf = headline_frame([r for r in paper_records() if r.cell_id != "mae_vitl16-mc-seg_unet@224"] + extra)
    cells = hf[hf["protocol"] == "seg_fewshot"]
    panel = with_all_points(cells, hf, "mc", (A, MAE), "weakly-/self-supervised")
    alls = panel[panel["variant"] == "all"].set_index("model")["value"]
    assert alls.to_dict() == {A: 0.966, MAE: 0.4}
    assert np.isclose(_line(plot_fewshot(hf).axes[1], MAE).get_ydata()[-1], 0.4)


def test_the_table_each_point_comes_from():
    assert table_cell("nih", R152, "supervised") == ("linear", "")
    assert table_cell("mc", A, "weakly-/self-supervised") == ("seg_unet", "224")
    assert table_cell("mc", A, "supervised") == ("seg_unet", "448")
    assert table_cell("mc", "transunet", "supervised") == ("scratch", "448")
    assert table_cell("mc", "vit_l16_in21k", "supervised") == ("seg_unet", "224")      # Table 7
