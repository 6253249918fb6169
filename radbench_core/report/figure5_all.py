"""Figure 5's "All" points are the study's table cells, not cells of their own.

The study drew the last point of each few-shot curve ("All Images") from its tables and ran no
full-data few-shot cell (its repo's dinov2/visualization/few-shot_mc.png: DINOv2 ViT-L/14's MC
"All" point is Table 6's 448 px value, 0.974; the top row's ends at Table 5's 224 px cells):

- NIH (few-shot classification): the linear probe on NIH (Table 3 / Figure 3);
- MC, a frozen backbone: the U-Net decoder at 224 px (Table 5; ViT-L/16: Table 7), except DINOv2
  ViT-L/14 in the bottom row (vs the scratch models), whose curve is Table 6's: 448 px;
- MC, U-Net / TransUNet from scratch: Table 6 (``scratch@448``).

A run that has the table cell draws it; a full-data few-shot cell (``@all``, e.g. the demo's) is
drawn only where the run has no such table cell, so no point is drawn twice. DINOv2 ViT-L/14's
bottom-row MC curve is its 448 px few-shot cells (``seg_fewshot@N_448px``), the top row's the
224 px ones.
"""

from __future__ import annotations

import pandas as pd

from radbench_core.core.cells import shots_and_size

ALL = "all"
SCRATCH = ("unet", "transunet")
SUPERVISED_ROW = "supervised"
REFERENCE = "dinov2_vitl14"


def table_cell(dataset: str, model: str, row: str) -> tuple[str, str] | None:
    """(protocol, variant) of the table cell that is ``model``'s "All" point in a Figure 5 panel."""
    if dataset == "nih":
        return "linear", ""
    if dataset == "mc":
        if model in SCRATCH:
            return "scratch", "448"
        if model == REFERENCE and row == SUPERVISED_ROW:
            return "seg_unet", "448"
        return "seg_unet", "224"
    return None


def row_curves(cells: pd.DataFrame, row: str) -> pd.DataFrame:
    """The curve each model draws in a row: sized few-shot cells (``@4_448px``, DINOv2 ViT-L/14's
    bottom-row MC curve) in the supervised row, instead of that model's default-size cells, with
    their variant set to the shot count; the other row draws the default-size cells only."""
    sizes = cells["variant"].map(lambda v: shots_and_size(str(v))[1])
    sized, plain = cells[sizes.notna()], cells[sizes.isna()]
    if row != SUPERVISED_ROW or sized.empty:
        return plain
    sized = sized.assign(variant=sized["variant"].map(lambda v: shots_and_size(str(v))[0]))
    return pd.concat([plain[~plain["model"].isin(set(sized["model"]))], sized], ignore_index=True)


def with_all_points(cells: pd.DataFrame, hf: pd.DataFrame, dataset: str, models: tuple[str, ...],
                    row: str) -> pd.DataFrame:
    """The few-shot ``cells`` of one panel with each model's "All" point taken from its table cell
    in ``hf`` (variant set to ``"all"``); a model's own ``@all`` cell stays only without one. A model
    with no few-shot cell gets no lone "All" point (it has no curve to end)."""
    cells = row_curves(cells, row)
    points, drop = [], []
    present = set(cells["model"])
    for model in models:
        source = table_cell(dataset, model, row) if model in present else None
        if source is None:
            continue
        protocol, variant = source
        hit = hf[(hf["model"] == model) & (hf["dataset"] == dataset) & (hf["protocol"] == protocol)
                 & (hf["variant"] == variant)]
        if hit.empty:
            continue
        points.append(hit.iloc[:1].assign(variant=ALL))
        drop.append(model)
    kept = cells[~((cells["variant"] == ALL) & cells["model"].isin(drop))]
    return pd.concat([kept, *points], ignore_index=True) if points else kept
