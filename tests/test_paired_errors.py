"""The one-line errors of the paired bootstrap's pairing (eval/paired.py ``align``) and arguments,
word for word, with the counts they report. Written for the mutants of ``make mutants
MUTANT=eval/paired.py`` that rewrote these messages and survived (docs/testing.md)."""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.core.errors import ConfigError
from radbench_core.eval.paired import align, paired_bootstrap
from radbench_core.eval.predictions import Predictions, classification_predictions


def _cls(ids, labels):
    scores = np.linspace(0, 1, len(ids))
    return classification_predictions(ids, [f"p{i}" for i in range(len(ids))], np.asarray(labels), scores, "binary")


def _seg(n):
    dice = np.full((1, n, 1), 0.5)
    return Predictions("segmentation", [f"i{i}" for i in range(n)], [f"p{i}" for i in range(n)],
                       dice=dice, jaccard=dice / (2 - dice), confmats=np.ones((1, n, 2, 2), np.int64))


def _message(call):
    with pytest.raises(ConfigError) as err:
        call()
    return str(err.value)


def test_pairing_a_classification_cell_with_a_segmentation_cell():
    assert _message(lambda: align(_cls(["i0", "i1"], [0, 1]), _seg(2))) == (
        "stats.align: cannot pair classification with segmentation predictions. "
        "Fix: compare cells of the same task.")


def test_different_test_sets_report_both_counts():
    a = _cls(["i0", "i1", "i2", "i3"], [0, 1, 0, 1])
    b = _cls(["i1", "i2", "i3", "i4", "i5"], [1, 0, 1, 0, 1])
    assert _message(lambda: align(a, b)) == (
        "stats.align: different test sets (1 items only in the first, 2 only in the second). "
        "Fix: compare cells of the same dataset, split and load options.")


def test_same_items_with_other_labels():
    a, b = _cls(["i0", "i1", "i2"], [0, 1, 0]), _cls(["i0", "i1", "i2"], [0, 1, 1])
    assert _message(lambda: align(a, b)) == (
        "stats.align: same item ids but different labels. "
        "Fix: compare cells whose test labels come from the same dataset version.")


@pytest.mark.parametrize("resamples,alpha", [(0, 0.05), (10, 0.0), (10, 1.0)])
def test_paired_bootstrap_arguments(resamples, alpha):
    a = _cls(["i0", "i1", "i2", "i3"], [0, 1, 0, 1])
    assert _message(lambda: paired_bootstrap(a, a, "auroc", resamples=resamples, alpha=alpha)) == (
        f"stats.paired_bootstrap: resamples={resamples}, alpha={alpha}. "
        "Fix: use resamples >= 1 and 0 < alpha < 1.")


def test_multilabel_cells_with_unknown_labels_pair_in_any_order():
    """Unknown labels (NaN) are equal to themselves for pairing: the same test set is not refused."""
    labels = np.array([[1, np.nan], [0, 1], [np.nan, 0], [1, 1]])
    scores = np.arange(8, dtype=float).reshape(4, 2)
    ids, groups = ["i0", "i1", "i2", "i3"], ["p0", "p0", "p1", "p2"]
    a = classification_predictions(ids, groups, labels, scores, "multilabel")
    order = np.array([2, 0, 3, 1])
    b = classification_predictions([ids[i] for i in order], [groups[i] for i in order], labels[order],
                                   scores[order] * 2, "multilabel")
    back = align(a, b)
    assert list(back.ids) == ids
    np.testing.assert_array_equal(back.scores[0], scores * 2)
