"""The predictions contract of a user protocol (issue 22): ``test_predictions`` in ``extra`` gives the
runner what compare-models and the "≈" marks pair, exactly as the built-in protocols do."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from sklearn.metrics import roc_auc_score

from radbench_core.eval.predictions import predictions_from_protocol
from radbench_core.eval.significance import pairwise
from radbench_core.protocols.base import FrozenInputs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "examples"))
from my_protocol import run_centroid  # noqa: E402  - the documented example, as a user writes it


def inputs(seed: int, n: int = 60, dim: int = 8) -> FrozenInputs:
    rng = np.random.default_rng(seed)
    labels = {s: rng.integers(0, 2, n) for s in ("train", "test")}
    feats = {s: {"cls": (rng.normal(size=(n, 1, dim)) + labels[s][:, None, None] * 0.8).astype(np.float32)}
             for s in ("train", "test")}
    return FrozenInputs(features=feats, labels=labels, patients={s: [f"p{i}" for i in range(n)] for s in labels},
                        label_kind="multiclass", num_classes=2)


def test_the_example_protocol_returns_predictions_that_pair_like_built_in_ones() -> None:
    hparams = {"temperature": 0.1, "bootstrap_resamples": 20}
    data = inputs(0)
    result = run_centroid(data, hparams, seed=0)
    payload = result.extra["test_predictions"]
    np.testing.assert_array_equal(payload["labels"], data.labels["test"])
    assert payload["scores"].shape == (60, 2)
    # the headline AUROC is the one of these very scores (scikit-learn as the reference)
    assert abs(result.metrics["auroc"].value - roc_auc_score(data.labels["test"], payload["scores"][:, 1])) < 1e-9
    items = [SimpleNamespace(key=f"img{i}", patient=f"p{i // 2}") for i in range(60)]
    preds = predictions_from_protocol(payload, items, "multiclass", "classification")
    assert preds.scores.shape == (1, 60, 2) and list(preds.groups[:3]) == ["p0", "p0", "p1"]
    other = run_centroid(data, {**hparams, "temperature": 10.0}, seed=0)   # a second "model" on the same test set
    second = predictions_from_protocol(other.extra["test_predictions"], items, "multiclass", "classification")
    comparisons = pairwise({"a": preds, "b": second}, "auroc", resamples=50)
    assert len(comparisons) == 1 and 0.0 <= comparisons[0].p_holm <= 1.0
