"""Few-shot cells that name their input size (``seg_fewshot@4_448px``): Figure 5's MC bottom row.

The id parses back to the same cell, the runner reads 4 shots at 448 px from it (the hyperparameters
and the resolution the protocol gets), the paper profile holds the five points, and the figure draws
them as DINOv2 ViT-L/14's bottom-row curve (the top row keeps the 224 px one).
"""

from __future__ import annotations

from radbench_core.config.profiles import get_profile
from radbench_core.core.cells import Cell, parse_cell_id, shots_and_size, shots_variant
from radbench_core.core.results import CellResult, Metric
from radbench_core.protocols import get_protocol
from radbench_core.report.figures import plot_fewshot
from radbench_core.report.frame import headline_frame, model_label
from radbench_core.run.identity import cell_hparams, resolution_of

A = "dinov2_vitl14"


def test_the_id_grammar_carries_shots_and_size():
    cell = parse_cell_id("dinov2_vitl14-mc-seg_fewshot@4_448px")
    assert cell == Cell(A, "mc", "seg_fewshot", "4_448px") and cell.id == "dinov2_vitl14-mc-seg_fewshot@4_448px"
    assert shots_and_size("4_448px") == ("4", 448) and shots_and_size("16") == ("16", None)
    assert shots_and_size("all") == ("all", None) and shots_and_size("448") == ("448", None)
    assert shots_variant(4, 448) == "4_448px" and shots_variant("all") == "all"


def test_the_runner_reads_shots_and_size_from_the_cell():
    paper = get_profile("paper")
    spec = get_protocol("seg_fewshot")
    sized, plain = Cell(A, "mc", "seg_fewshot", "4_448px"), Cell(A, "mc", "seg_fewshot", "4")
    assert cell_hparams(sized, spec, paper)["shots"] == 4 == cell_hparams(plain, spec, paper)["shots"]
    assert resolution_of(sized, spec, paper) == 448 and resolution_of(plain, spec, paper) == 224
    assert resolution_of(Cell("mae_vitl16", "mc", "seg_fewshot", "2_448px"), spec, paper) == 448


def test_paper_holds_the_five_448_px_points():
    ids = {c.id for c in get_profile("paper").cells()}
    assert {f"{A}-mc-seg_fewshot@{n}_448px" for n in (1, 2, 4, 8, 16)} <= ids
    assert not any(i.endswith("px") and not i.startswith(f"{A}-mc-seg_fewshot@") for i in ids)


def _rec(model, protocol, variant, value):
    return CellResult(cell_id=f"{model}-mc-{protocol}@{variant}", model=model, dataset="mc", protocol=protocol,
                      variant=variant, task="segmentation", modality="xray", profile="paper",
                      metrics={"dice_jaccard": Metric(value, True)}, weights="official")


def test_the_bottom_row_draws_the_448_px_curve_and_the_top_row_the_224_px_one():
    shots = ("1", "2", "4", "8", "16")
    recs = [_rec(A, "seg_fewshot", n, 0.80 + 0.01 * i) for i, n in enumerate(shots)]
    recs += [_rec(A, "seg_fewshot", shots_variant(n, 448), 0.90 + 0.01 * i) for i, n in enumerate(shots)]
    recs += [_rec("unet", "scratch_fewshot", n, 0.7) for n in shots]
    recs += [_rec(A, "seg_unet", "224", 0.966), _rec(A, "seg_unet", "448", 0.974)]
    _, mc_top, _, mc_bottom = plot_fewshot(headline_frame(recs)).axes
    line = lambda ax: ax.lines[[t.get_text() for t in ax.get_legend().get_texts()].index(model_label(A))]  # noqa: E731
    assert [round(y, 3) for y in line(mc_top).get_ydata()] == [0.80, 0.81, 0.82, 0.83, 0.84, 0.966]
    assert [round(y, 3) for y in line(mc_bottom).get_ydata()] == [0.90, 0.91, 0.92, 0.93, 0.94, 0.974]
    assert [t.get_text() for t in mc_bottom.get_xticklabels()] == [*shots, "all"]
