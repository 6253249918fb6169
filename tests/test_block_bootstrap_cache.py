"""A block's significance from each cell's bootstrap values computed once (``paired_bootstrap``'s
``cache``): every pair equals the pair computed on its own, whatever the cells' item order, and each
cell's resampled values are computed once per block instead of once per pair.

The patient draw is a multinomial over the sorted distinct patients, so two cells of one test set get
the same draw for one seed; the cached path differences per-cell values instead of recomputing both.
"""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.eval import paired
from radbench_core.eval.paired import paired_bootstrap
from radbench_core.eval.predictions import classification_predictions
from radbench_core.eval.significance import pairwise, tied_with_best

B = 300


def _block(kind: str, n_cells: int = 4, n: int = 60, patients: int = 17, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.array([f"img{i}" for i in range(n)])
    groups = rng.integers(0, patients, n).astype(str)
    if kind == "binary":
        labels = rng.integers(0, 2, n)
    elif kind == "multiclass":
        labels = rng.integers(0, 3, n)
    else:
        labels = (rng.random((n, 3)) < 0.35).astype(np.float64)
    out = {}
    for c in range(n_cells):
        signal = 0.3 * c
        if kind == "binary":
            scores = labels * signal + rng.normal(size=n)
        elif kind == "multiclass":
            scores = rng.random((n, 3)) + signal * np.eye(3)[labels]
        else:
            scores = labels * signal + rng.normal(size=(n, 3))
        pred = classification_predictions(ids, groups, labels, np.round(scores, 1), kind)
        order = rng.permutation(n) if c % 2 else np.arange(n)      # cells store items in other orders
        out[f"m{c}"] = pred.take(order)
    return out


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_each_cached_pair_equals_the_pair_computed_alone(kind):
    block = _block(kind)
    names = list(block)
    cache: dict = {}
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            alone = paired_bootstrap(block[x], block[y], "auroc", resamples=B, seed=3)
            cached = paired_bootstrap(block[x], block[y], "auroc", resamples=B, seed=3, cache=cache)
            for field in ("value_a", "value_b", "diff", "ci_low", "ci_high", "p_value", "p_normal"):
                assert getattr(cached, field) == pytest.approx(getattr(alone, field), abs=1e-12), field
            assert (cached.resamples, cached.n_items, cached.n_groups) == \
                (alone.resamples, alone.n_items, alone.n_groups)


def test_the_matrix_and_the_ties_compute_each_cell_once(monkeypatch):
    block = _block("multilabel", n_cells=5)
    calls: list[int] = []
    real = paired.weighted_values

    def counting(pred, metric, weights, *args, **kwargs):
        calls.append(len(np.atleast_2d(weights)))
        return real(pred, metric, weights, *args, **kwargs)
    monkeypatch.setattr(paired, "weighted_values", counting)
    matrix = pairwise(block, "auroc", resamples=B, seed=0)
    assert len(matrix) == 10 and calls.count(B) == 5            # 5 cells, not 2 x 10 pairs
    calls.clear()
    ties = tied_with_best("m4", block, "auroc", resamples=B, seed=0)
    assert set(ties) == {"m0", "m1", "m2", "m3"} and calls.count(B) == 5
    monkeypatch.setattr(paired, "weighted_values", real)
    alone = {y: paired_bootstrap(block["m4"], block[y], "auroc", resamples=B, seed=0).p_value
             for y in ("m0", "m1", "m2", "m3")}
    from radbench_core.eval.multiple import holm
    expected = dict(zip(alone, holm(list(alone.values()))))
    assert ties == pytest.approx(expected, abs=1e-12)


def test_cells_whose_patients_differ_are_not_served_from_the_cache():
    block = _block("binary", n_cells=2)
    other = block["m1"]
    relabelled = classification_predictions(other.ids, np.array([f"x{g}" for g in other.groups]),
                                             other.labels, other.scores[0], "binary")
    cache: dict = {}
    cached = paired_bootstrap(block["m0"], relabelled, "auroc", resamples=B, seed=1, cache=cache)
    alone = paired_bootstrap(block["m0"], relabelled, "auroc", resamples=B, seed=1)
    assert cached.p_value == alone.p_value and cached.ci_low == alone.ci_low and not cache
