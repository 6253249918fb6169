"""kNN protocol: neighbours and votes against brute force, ML-kNN by hand, signal vs noise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.core.errors import ConfigError
from radbench_core.protocols.base import FrozenInputs
from synthetic import frozen_features
from radbench_core.protocols.knn import (_drop_self, knn_neighbors, mlknn_fit, mlknn_posterior,
                                         run_knn, weighted_vote)


def synthetic(n: int, signal: float, kind: str, n_classes: int, seed: int = 0, dim: int = 16
              ) -> FrozenInputs:
    return frozen_features(n, signal, kind, n_classes, seed, dim=dim)


def _brute_force(train: np.ndarray, queries: np.ndarray, k: int):
    t = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ t.T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, idx, 1), idx


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_train=st.integers(1, 40), k=st.integers(1, 40),
       chunk=st.integers(1, 50))
def test_neighbors_equal_brute_force_for_any_chunk_size(seed: int, n_train: int, k: int,
                                                        chunk: int) -> None:
    rng = np.random.default_rng(seed)
    train, queries = rng.normal(size=(n_train, 5)), rng.normal(size=(13, 5))
    k = min(k, n_train)
    sims, idx = knn_neighbors(train, queries, k, chunk_size=chunk, device="cpu")
    ref_sims, ref_idx = _brute_force(train, queries, k)
    assert sims.shape == idx.shape == (13, k) and idx.dtype == np.int64
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
    # the same neighbours; only float32-vs-float64 near-ties (< 1e-5 apart) may swap places
    t = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    np.testing.assert_allclose(np.take_along_axis(q @ t.T, idx, 1), ref_sims, atol=1e-5)
    assert all(len(set(row)) == k for row in idx.tolist())
    gaps = np.abs(np.diff(np.sort(q @ t.T, axis=1), axis=1))
    clear = gaps.min(axis=1, initial=np.inf) > 1e-5
    np.testing.assert_array_equal(idx[clear], ref_idx[clear])


def test_neighbor_search_leaves_the_callers_arrays_alone() -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=(20, 4)).astype(np.float32)
    queries = train[:5].copy()
    before = train.copy()
    sims, idx = knn_neighbors(train, queries, 1, chunk_size=3)
    np.testing.assert_array_equal(train, before)                 # normalised on a copy
    np.testing.assert_array_equal(idx[:, 0], np.arange(5))       # each query finds itself
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-6)


def test_weighted_vote_equals_a_loop_over_neighbours() -> None:
    rng = np.random.default_rng(0)
    sims = np.sort(rng.uniform(-1, 1, (6, 5)), axis=1)[:, ::-1]
    labels = rng.integers(0, 3, (6, 5))
    votes = weighted_vote(sims, labels, 3, temperature=0.07)
    for i in range(6):
        ref = np.zeros(3)
        for j in range(5):
            ref[labels[i, j]] += np.exp(sims[i, j] / 0.07)
        np.testing.assert_allclose(votes[i], ref / ref.sum(), rtol=1e-10)


def test_mlknn_statistics_and_posterior_match_a_hand_computed_case() -> None:
    # 4 training items, k = 1; label 0 = [1, 1, 0, 0]; label 1 = [NaN, 1, 1, 0].
    labels = np.array([[1, np.nan], [1, 1], [0, 1], [0, 0]])
    self_idx = np.array([[1], [0], [3], [1]])          # each item's nearest other item
    prior, p_pos, p_neg = mlknn_fit(self_idx, labels, k=1, smoothing=1.0)
    np.testing.assert_allclose(prior, [3 / 6, 3 / 5])
    np.testing.assert_allclose(p_pos, [[1 / 4, 3 / 4], [3 / 4, 1 / 4]])
    np.testing.assert_allclose(p_neg, [[1 / 2, 1 / 2], [1 / 3, 2 / 3]])
    post = mlknn_posterior(np.array([[0], [2]]), labels, (prior, p_pos, p_neg), k=1)
    np.testing.assert_allclose(post[:, 0], [0.375 / 0.625, 0.125 / 0.375])
    np.testing.assert_allclose(post[:, 1], [0.45 / (0.45 + 0.4 / 3), 0.15 / (0.15 + 0.8 / 3)])


def test_drop_self_removes_the_item_itself_or_the_farthest() -> None:
    idx = np.array([[0, 2, 1], [2, 0, 3], [1, 3, 0]])
    np.testing.assert_array_equal(_drop_self(idx), [[2, 1], [2, 0], [1, 3]])


@pytest.mark.parametrize("kind,n_classes", [("multiclass", 3), ("binary", 2), ("multilabel", 3)])
def test_knn_scores_well_on_signal_and_near_chance_on_noise(kind: str, n_classes: int) -> None:
    hp = {"ks": (5, 10, 20), "bootstrap": 100}
    good = run_knn(synthetic(300, 1.0, kind, n_classes), hp, seed=0)
    noise = run_knn(synthetic(400, 0.0, kind, n_classes, seed=1), hp, seed=0)
    assert good.metrics["auroc"].value > 0.85
    assert abs(noise.metrics["auroc"].value - 0.5) < 0.1
    m = good.metrics["auroc"]
    assert m.ci_low <= m.value <= m.ci_high and m.higher_is_better
    assert good.chosen["method"] == ("ml-knn" if kind == "multilabel" else "weighted-vote")
    assert good.chosen["k"] in (5, 10, 20)
    best_val = max(good.extra["val_auroc_by_k"].values())
    assert good.metrics["auroc_val"].value == best_val


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_run_knn_chunked_equals_unchunked_and_caps_k(kind: str) -> None:
    inputs = synthetic(40, 0.7, kind, 3, seed=2)
    small = run_knn(inputs, {"ks": (3, 1000), "chunk_size": 7, "bootstrap": 50}, seed=0)
    big = run_knn(inputs, {"ks": (3, 1000), "chunk_size": 10_000, "bootstrap": 50}, seed=0)
    preds_small, preds_big = small.extra.pop("test_predictions"), big.extra.pop("test_predictions")
    assert small.metrics == big.metrics and small.extra == big.extra
    # scores: the chunked GEMM sums in another order, so equal to float32 rounding, not bit for bit
    assert set(preds_small) == set(preds_big)
    for key in preds_small:
        np.testing.assert_allclose(np.asarray(preds_small[key], dtype=float),
                                   np.asarray(preds_big[key], dtype=float), rtol=1e-5, atol=1e-6)
    cap = 39 if kind == "multilabel" else 40        # ML-kNN leaves each item itself out
    assert set(small.extra["val_auroc_by_k"]) == {"3", str(cap)}


def test_bad_knn_inputs_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"knn_neighbors: k=5 must be in 1\.\.3.*Fix: cap k"):
        knn_neighbors(np.ones((3, 2)), np.ones((1, 2)), 5)
    with pytest.raises(ConfigError, match=r"chunk_size=0 must be >= 1"):
        knn_neighbors(np.ones((3, 2)), np.ones((1, 2)), 1, chunk_size=0)
    inputs = synthetic(20, 1.0, "multiclass", 2)
    with pytest.raises(ConfigError, match=r"hparams\['ks'\]: need positive k"):
        run_knn(inputs, {"ks": (0,)}, seed=0)
    with pytest.raises(ConfigError, match=r"hparams\['ks'\] of protocol 'knn': missing value"):
        run_knn(inputs, {}, seed=0)
    del inputs.features["val"]["cls"]
    with pytest.raises(ConfigError, match=r"features\['val'\]: missing 'cls'"):
        run_knn(inputs, {"ks": (3,)}, seed=0)


# --- the study's settings: k picked on test, an item its own ML-kNN neighbour -----------------------

def test_paper_knn_settings() -> None:
    from radbench_core.config.profiles import get_profile
    hp = get_profile("paper").hparams_for("knn")
    assert tuple(hp["ks"]) == (100, 200, 400, 800, 1000)
    assert (hp["temperature"], hp["smoothing"]) == (0.07, 1.0)
    assert (hp["k_selection"], hp["mlknn_self_neighbour"]) == ("test", True)   # the study, flaws included
    sound = get_profile("sound").hparams_for("knn")
    assert (sound["k_selection"], sound["mlknn_self_neighbour"]) == ("val", False)   # the switches at ours


def _repo_mlknn_proba(bank: np.ndarray, y: np.ndarray, queries: np.ndarray, k: int, s: float = 1.0):
    """ML-kNN as the study's repo fits it (dinov2/eval/utils.py MLkNN, ignore_first_neighbours=0):
    sklearn cosine neighbours of every bank item in the bank itself, so the item is its own first."""
    from sklearn.neighbors import NearestNeighbors
    nn = NearestNeighbors(n_neighbors=k, metric="cosine").fit(bank)
    own = nn.kneighbors(bank, k, return_distance=False)
    n, labels = y.shape
    prior = (s + y.sum(0)) / (2 * s + n)
    c, cn = np.zeros((labels, k + 1)), np.zeros((labels, k + 1))
    for i in range(n):
        deltas = y[own[i]].sum(0).astype(int)
        for lab in range(labels):
            (c if y[i, lab] == 1 else cn)[lab, deltas[lab]] += 1
    p_true = (s + c) / (s * (k + 1) + c.sum(1, keepdims=True))
    p_false = (s + cn) / (s * (k + 1) + cn.sum(1, keepdims=True))
    out = np.zeros((len(queries), labels))
    for q, nb in enumerate(nn.kneighbors(queries, k, return_distance=False)):
        deltas = y[nb].sum(0).astype(int)
        for lab in range(labels):
            t = prior[lab] * p_true[lab, deltas[lab]]
            f = (1 - prior[lab]) * p_false[lab, deltas[lab]]
            out[q, lab] = t / (t + f)
    return out


def test_the_studys_knn_equals_the_repos_mlknn_with_k_picked_on_test() -> None:
    from radbench_core.eval.metrics import auroc
    inputs = frozen_features(60, 0.6, "multilabel", 3, seed=4, dim=8)
    hp = {"ks": (3, 5, 9), "bootstrap": 50, "k_selection": "test", "mlknn_self_neighbour": True}
    result = run_knn(inputs, hp, seed=0)
    cls = {s: np.asarray(inputs.features[s]["cls"], np.float64)[:, -1] for s in ("train", "val", "test")}
    bank = np.concatenate([cls["train"], cls["val"]])         # the repo merges train and val
    y_bank = np.concatenate([inputs.labels["train"], inputs.labels["val"]])
    want = {k: auroc(inputs.labels["test"], _repo_mlknn_proba(bank, y_bank, cls["test"], k), "multilabel")
            for k in (3, 5, 9)}
    assert result.extra["test_auroc_by_k"] == pytest.approx({str(k): v for k, v in want.items()})
    best = max(want, key=lambda k: (want[k], -k))
    assert result.chosen == {"k": best, "k_selection": "test", "temperature": 0.07, "method": "ml-knn"}
    assert result.metrics["auroc"].value == pytest.approx(want[best])
    ours = run_knn(inputs, {**hp, "mlknn_self_neighbour": False}, seed=0)
    assert ours.extra["test_auroc_by_k"] != result.extra["test_auroc_by_k"]


@pytest.mark.parametrize("selection", ["val", "test"])
def test_k_is_picked_on_the_named_split_and_test_searches_train_plus_val(selection: str) -> None:
    from sklearn.metrics import roc_auc_score
    inputs = synthetic(50, 0.5, "binary", 2, seed=5)
    result = run_knn(inputs, {"ks": (1, 4, 16, 40), "bootstrap": 50, "k_selection": selection}, seed=0)
    cls = {s: np.asarray(inputs.features[s]["cls"], np.float64)[:, -1] for s in ("train", "val", "test")}
    y = {s: np.asarray(inputs.labels[s]) for s in ("train", "val", "test")}

    def vote_auroc(bank, y_bank, queries, y_q, k):       # DINOv2: exp(sim / 0.07) over the top k
        sims, idx = _brute_force(bank, queries, k)
        w = np.exp(sims / 0.07)
        return roc_auc_score(y_q, (w * (y_bank[idx] == 1)).sum(1) / w.sum(1))

    val = {k: vote_auroc(cls["train"], y["train"], cls["val"], y["val"], k) for k in (1, 4, 16, 40)}
    bank, y_bank = np.concatenate([cls["train"], cls["val"]]), np.concatenate([y["train"], y["val"]])
    test = {k: vote_auroc(bank, y_bank, cls["test"], y["test"], k) for k in (1, 4, 16, 40)}
    assert result.extra["val_auroc_by_k"] == pytest.approx({str(k): v for k, v in val.items()})
    assert result.extra["test_auroc_by_k"] == pytest.approx({str(k): v for k, v in test.items()})
    by = val if selection == "val" else test
    best = max(by, key=lambda k: (by[k], -k))
    assert result.chosen["k"] == best and result.metrics["auroc"].value == pytest.approx(test[best])
    with pytest.raises(ConfigError, match=r"k_selection'\]='train'"):
        run_knn(inputs, {"ks": (3,), "k_selection": "train"}, seed=0)
