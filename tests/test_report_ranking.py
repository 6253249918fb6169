"""Figure 1's scores and ranks against hand-computed values, ties included."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.report.ranking import RANK_COLUMNS, dataset_scores, rank_models
from radbench_core.results import CellResult, Metric

SEG = {"mc": "xray", "amos": "ct"}


def rec(model: str, dataset: str, protocol: str, variant: str = "", value: float = 0.5,
        higher_is_better: bool = True) -> CellResult:
    task = "segmentation" if dataset in SEG else "classification"
    name = "dice_jaccard" if task == "segmentation" else "auroc"
    cell_id = f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else "")
    return CellResult(cell_id=cell_id, model=model, dataset=dataset, protocol=protocol,
                      variant=variant, task=task, modality=SEG.get(dataset, "xray"), profile="t",
                      metrics={name: Metric(value, higher_is_better)})


A, B, C, D = "dinov2_vitl14", "clip_vitl14", "resnet152", "sam_vitl16"
RECORDS = [
    # nih: A 0.9, B = C 0.8 -> scores A 3, B 1.5, C 1.5
    rec(A, "nih", "linear", value=0.9), rec(B, "nih", "linear", value=0.8),
    rec(C, "nih", "linear", value=0.8),
    # chexpert: B 0.9 > C 0.8 > A 0.7 -> B 3, C 2, A 1
    rec(A, "chexpert", "linear", value=0.7), rec(B, "chexpert", "linear", value=0.9),
    rec(C, "chexpert", "linear", value=0.8),
    # not compared: other protocol / non-default variant
    rec(C, "nih", "knn", value=0.99), rec(A, "nih", "linear", "1024", value=0.1),
    # amos at 448 (the top resolution): D 0.6 > A = B 0.5 -> D 3, A 1.5, B 1.5; C's 224 is ignored
    rec(A, "amos", "seg_unet", "448", 0.5), rec(B, "amos", "seg_unet", "448", 0.5),
    rec(D, "amos", "seg_unet", "448", 0.6), rec(C, "amos", "seg_unet", "224", 0.99),
    # mc: A 0.8 > B 0.7 -> A 2, B 1; a linear decoder cell is not compared
    rec(A, "mc", "seg_unet", "448", 0.8), rec(B, "mc", "seg_unet", "448", 0.7),
    rec(D, "mc", "seg_linear", "448", 0.95),
]


def test_scores_per_dataset_with_ties():
    s = dataset_scores(RECORDS)
    got = {(r.dataset, r.model): r.score for r in s.itertuples()}
    assert got == {("nih", A): 3.0, ("nih", B): 1.5, ("nih", C): 1.5,
                   ("chexpert", A): 1.0, ("chexpert", B): 3.0, ("chexpert", C): 2.0,
                   ("amos", A): 1.5, ("amos", B): 1.5, ("amos", D): 3.0,
                   ("mc", A): 2.0, ("mc", B): 1.0}


def test_rank_models_hand_computed():
    r = rank_models(RECORDS).set_index("model")
    assert list(rank_models(RECORDS).columns) == RANK_COLUMNS
    # cls scores: A (3+1)/2 = 2.0, B (1.5+3)/2 = 2.25, C (1.5+2)/2 = 1.75 -> ranks B 1, A 2, C 3
    assert r.loc[[A, B, C], "cls_score"].tolist() == [2.0, 2.25, 1.75]
    assert r.loc[[A, B, C], "cls_rank"].tolist() == [2.0, 1.0, 3.0]
    # seg scores: A (1.5+2)/2 = 1.75, B (1.5+1)/2 = 1.25, D 3 -> ranks D 1, A 2, B 3
    assert r.loc[[A, B, D], "seg_score"].tolist() == [1.75, 1.25, 3.0]
    assert r.loc[[A, B, D], "seg_rank"].tolist() == [2.0, 3.0, 1.0]
    assert math.isnan(r.loc[C, "seg_rank"]) and math.isnan(r.loc[D, "cls_rank"])


def test_tied_mean_scores_share_the_mean_rank_and_lower_is_better():
    recs = [rec(A, "nih", "linear", value=0.9), rec(B, "nih", "linear", value=0.8),
            rec(A, "chexpert", "linear", value=0.8), rec(B, "chexpert", "linear", value=0.9),
            rec(C, "nih", "linear", value=0.1)]
    r = rank_models(recs).set_index("model")
    # nih: A 3, B 2, C 1; chexpert: B 2, A 1 -> A 2.0, B 2.0, C 1.0 -> A and B share rank 1.5
    assert r["cls_score"].to_dict() == {A: 2.0, B: 2.0, C: 1.0}
    assert r["cls_rank"].to_dict() == {A: 1.5, B: 1.5, C: 3.0}
    low = [rec(A, "nih", "linear", value=0.1, higher_is_better=False),
           rec(B, "nih", "linear", value=0.2, higher_is_better=False)]
    assert dataset_scores(low).set_index("model")["score"].to_dict() == {A: 2.0, B: 1.0}


def test_empty_run_gives_empty_ranking():
    assert rank_models([]).empty and list(rank_models([]).columns) == RANK_COLUMNS


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=4, max_size=4),
                min_size=1, max_size=3))
def test_rank_properties(table):
    models = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")
    datasets = ("nih", "chexpert", "sarscov2")
    recs = [rec(m, datasets[d], "linear", value=v) for d, row in enumerate(table)
            for m, v in zip(models, row)]
    r = rank_models(recs)
    n = len(models)
    assert math.isclose(r["cls_rank"].sum(), n * (n + 1) / 2)               # average ranks sum
    assert math.isclose(r["cls_score"].sum(), n * (n + 1) / 2)              # each dataset sums too
    best = r["cls_score"].max()
    ties = int((r["cls_score"] == best).sum())
    assert np.allclose(r.loc[r["cls_score"] == best, "cls_rank"], (1 + ties) / 2)


def test_segmentation_compares_the_resolution_most_models_have():
    # mc: three models at 112, only two of them also at 224 -> the 112 cells are compared
    records = [rec(A, "mc", "seg_unet", "112", 0.7), rec(B, "mc", "seg_unet", "112", 0.8),
               rec(D, "mc", "seg_unet", "112", 0.6), rec(A, "mc", "seg_unet", "224", 0.9),
               rec(B, "mc", "seg_unet", "224", 0.1)]
    scores = dataset_scores(records).set_index("model")
    assert set(scores["variant"]) == {"112"}
    assert scores.loc[B, "score"] == 3.0 and scores.loc[A, "score"] == 2.0 and scores.loc[D, "score"] == 1.0
    # equal counts: the higher resolution wins
    tie = dataset_scores([rec(A, "mc", "seg_unet", "112", 0.7), rec(A, "mc", "seg_unet", "224", 0.9)])
    assert list(tie["variant"]) == ["224"]
