"""Figure 1's numbers: per-dataset scores M..1, averaged per task type, then ranked (1 = best).

Which cells are compared (documented choice): on a classification dataset, the ``linear`` probe at
the default resolution (variant ""); on a segmentation dataset, ``seg_unet`` at the input resolution
that the most models of the run were measured at on that dataset (ties: the highest resolution), so a
few extra high-resolution cells never shrink the comparison to those few models. On each dataset the M compared models score M (best)
down to 1 by the headline metric, ties sharing the mean score (``scipy.stats.rankdata`` "average").
A model's classification score is the mean of its scores over the classification datasets it was
measured on (likewise segmentation); models are then ranked by score, 1 = best, ties sharing the
mean rank. A model missing from a task type gets NaN there; it is ranked among the others of the
task type it has.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from radbench_core.report.frame import MODEL_ORDER, headline_frame, order_key, variant_key
from radbench_core.results import CellResult

RANK_COLUMNS = ["model", "cls_score", "seg_score", "cls_rank", "seg_rank"]


def _compared(hf: pd.DataFrame) -> pd.DataFrame:
    """The cells Figure 1 compares: linear (classification), seg_unet at top resolution (segmentation)."""
    cls = hf[(hf["task"] == "classification") & (hf["protocol"] == "linear") & (hf["variant"] == "")]
    parts = [cls]
    seg = hf[(hf["task"] == "segmentation") & (hf["protocol"] == "seg_unet")]
    for _, group in seg.groupby("dataset", sort=True):
        counts = group["variant"].value_counts()
        top = max(counts.index, key=lambda v: (counts[v], variant_key(v)))
        parts.append(group[group["variant"] == top])
    return pd.concat(parts, ignore_index=True) if parts else hf.iloc[0:0]


def dataset_scores(records: Iterable[CellResult]) -> pd.DataFrame:
    """Per compared cell: dataset, task, model, variant, value and its score (M = best ... 1)."""
    hf = headline_frame(records).drop_duplicates("cell_id")
    cells = _compared(hf)
    out = []
    for _, group in cells.groupby("dataset", sort=True):
        values = group["value"].to_numpy(dtype=float)
        signed = values if bool(group["higher_is_better"].iloc[0]) else -values
        group = group.assign(score=rankdata(signed, method="average"))
        out.append(group[["dataset", "task", "model", "variant", "value", "score"]])
    if not out:
        return pd.DataFrame(columns=["dataset", "task", "model", "variant", "value", "score"])
    return pd.concat(out, ignore_index=True)


def rank_models(records: Iterable[CellResult]) -> pd.DataFrame:
    """One row per compared model: mean classification/segmentation score and rank (1 = best)."""
    scores = dataset_scores(records)
    models = sorted(set(scores["model"]), key=order_key(MODEL_ORDER))
    frame = pd.DataFrame({"model": models})
    for task, short in (("classification", "cls"), ("segmentation", "seg")):
        mean = scores[scores["task"] == task].groupby("model")["score"].mean()
        frame[f"{short}_score"] = frame["model"].map(mean).astype(float)
        rank = np.full(len(frame), np.nan)
        present = frame[f"{short}_score"].notna().to_numpy()
        if present.any():
            rank[present] = rankdata(-frame.loc[present, f"{short}_score"].to_numpy(), method="average")
        frame[f"{short}_rank"] = rank
    return frame[RANK_COLUMNS]
