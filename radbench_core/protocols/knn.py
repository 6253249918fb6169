"""kNN on frozen features: DINOv2's temperature-weighted vote, or ML-kNN for multi-label data.

Cosine similarity of L2-normalised last-block class tokens. The neighbour search runs in chunks on
``inputs.device`` and keeps only a running top-k, so its extra memory is
``O(chunk_size * (k + chunk_size))`` whatever the training-set size.

k comes from ``hparams["ks"]`` (capped by the bank size). With ``k_selection="val"`` (ours) it is
chosen on validation AUROC with the training split as the bank; with ``"test"`` (the study's repo)
on test AUROC. Test queries always search train+val, as the study's final models use both (paper
A.1, repo mlknn.py). ``mlknn_self_neighbour=True`` fits ML-kNN as the repo does, with each bank
item as its own first neighbour; ours leaves the item itself out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import auroc, auroc_metric, auroc_per_class, metric
from radbench_core.protocols.base import FrozenInputs, ProtocolResult
from radbench_core.protocols.base import own_resamples, require
from radbench_core.eval.predictions import ArrayPayload

DEFAULT_TEMPERATURE = 0.07   # DINOv2's kNN evaluation
DEFAULT_CHUNK = 1024


def _as_tensor(x: np.ndarray | torch.Tensor, device: str) -> torch.Tensor:
    """One float32 copy on ``device``, L2-normalised in place (never the caller's array)."""
    t = torch.as_tensor(x).to(device=device, dtype=torch.float32, copy=True)
    return t.div_(t.norm(dim=1, keepdim=True).clamp_min(1e-12))


def knn_neighbors(train: np.ndarray | torch.Tensor, queries: np.ndarray | torch.Tensor, k: int,
                  chunk_size: int = DEFAULT_CHUNK, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar training rows of every query, most similar first.

    Returns ``(sims, idx)``, both ``(n_queries, k)``: float32 similarities and int64 row indices
    into ``train``. Queries and training rows are both processed ``chunk_size`` at a time; only
    the running top-k survives each training chunk, which bounds memory.
    """
    n_train = len(train)
    if not 1 <= k <= n_train:
        raise ConfigError("knn_neighbors", f"k={k} must be in 1..{n_train} (the training-set size)",
                          "cap k by the number of training items")
    if chunk_size < 1:
        raise ConfigError("knn_neighbors", f"chunk_size={chunk_size} must be >= 1",
                          "set hparams['chunk_size'] to a positive number of rows")
    # On the CPU the training bank is normalised one chunk at a time (extra memory ~ chunk size,
    # whatever the bank's size or dtype, e.g. a float16 memory map); on a GPU one normalised copy
    # lives on the device so chunks are not re-sent over PCIe for every query chunk.
    on_cpu = torch.device(device).type == "cpu"
    bank = train if on_cpu else _as_tensor(train, device)
    q_all = _as_tensor(queries, device)
    out_s = torch.empty((len(q_all), k), dtype=torch.float32)
    out_i = torch.empty((len(q_all), k), dtype=torch.int64)
    for q0 in range(0, len(q_all), chunk_size):
        q = q_all[q0:q0 + chunk_size]
        best_s = torch.full((len(q), 0), -math.inf, device=device)
        best_i = torch.zeros((len(q), 0), dtype=torch.int64, device=device)
        for t0 in range(0, n_train, chunk_size):
            rows = _as_tensor(bank[t0:t0 + chunk_size], device) if on_cpu else bank[t0:t0 + chunk_size]
            sims = q @ rows.T
            idx = torch.arange(t0, t0 + sims.shape[1], device=device).expand_as(sims)
            cand_s = torch.cat([best_s, sims], dim=1)
            cand_i = torch.cat([best_i, idx], dim=1)
            keep = min(k, cand_s.shape[1])
            best_s, pos = torch.topk(cand_s, keep, dim=1, largest=True, sorted=True)
            best_i = torch.gather(cand_i, 1, pos)
        out_s[q0:q0 + len(q)] = best_s.cpu()
        out_i[q0:q0 + len(q)] = best_i.cpu()
    return out_s.numpy(), out_i.numpy()


def weighted_vote(sims: np.ndarray, neighbor_labels: np.ndarray, num_classes: int,
                  temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """Class scores ``(n, C)``: votes weighted by exp(sim / T), normalised to sum to one.

    Normalising (DINOv2 leaves the sums raw) turns the vote into a per-query class probability,
    which makes scores comparable across queries, as AUROC needs.
    """
    s = sims.astype(np.float64)
    w = np.exp((s - s[:, :1]) / temperature)       # shift by the top similarity: no overflow
    scores = np.stack([(w * (neighbor_labels == c)).sum(1) for c in range(num_classes)], axis=1)
    return scores / w.sum(1, keepdims=True)


def _neighbor_label_counts(idx: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """``(n, L)`` number of each query's neighbours that are positive for each label."""
    n, k = idx.shape
    rows = max(1, (1 << 22) // max(1, k * positives.shape[1]))
    out = np.empty((n, positives.shape[1]), dtype=np.int64)
    for r0 in range(0, n, rows):
        out[r0:r0 + rows] = positives[idx[r0:r0 + rows]].sum(axis=1)
    return out


def mlknn_fit(train_self_idx: np.ndarray, labels: np.ndarray, k: int, smoothing: float = 1.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ML-kNN statistics (Zhang & Zhou 2007) from each training item's k neighbours (self excluded).

    Returns ``(prior (L,), p_count_given_pos (L, k+1), p_count_given_neg (L, k+1))``. Items whose
    target is NaN for a label are left out of that label's statistics; a NaN neighbour does not
    count as positive.
    """
    known = ~np.isnan(labels)
    positives = np.where(known, labels, 0.0) > 0.5
    counts = _neighbor_label_counts(train_self_idx[:, :k], positives)
    n_labels = labels.shape[1]
    prior = np.empty(n_labels)
    p_pos = np.empty((n_labels, k + 1))
    p_neg = np.empty((n_labels, k + 1))
    for lab in range(n_labels):
        m = known[:, lab]
        pos = positives[m, lab]
        prior[lab] = (smoothing + pos.sum()) / (2 * smoothing + m.sum())
        c_pos = np.bincount(counts[m, lab][pos], minlength=k + 1)
        c_neg = np.bincount(counts[m, lab][~pos], minlength=k + 1)
        p_pos[lab] = (smoothing + c_pos) / (smoothing * (k + 1) + c_pos.sum())
        p_neg[lab] = (smoothing + c_neg) / (smoothing * (k + 1) + c_neg.sum())
    return prior, p_pos, p_neg


def mlknn_posterior(query_idx: np.ndarray, train_labels: np.ndarray, stats: tuple[np.ndarray, ...],
                    k: int) -> np.ndarray:
    """``(n, L)`` posterior P(label | number of positive neighbours among the k nearest)."""
    prior, p_pos, p_neg = stats
    positives = np.where(np.isnan(train_labels), 0.0, train_labels) > 0.5
    counts = _neighbor_label_counts(query_idx[:, :k], positives)
    lab = np.arange(train_labels.shape[1])[None, :]
    num = prior[None, :] * p_pos[lab, counts]
    return num / (num + (1.0 - prior)[None, :] * p_neg[lab, counts])


def _drop_self(idx: np.ndarray) -> np.ndarray:
    """Remove each training row from its own neighbour list (or the farthest one if absent)."""
    n, k1 = idx.shape
    is_self = idx == np.arange(n)[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), k1 - 1)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    return idx[keep].reshape(n, k1 - 1)


def _last_block_cls(inputs: FrozenInputs, split: str) -> np.ndarray:
    try:
        cls = inputs.features[split]["cls"]
    except KeyError as exc:
        raise ConfigError(f"FrozenInputs.features[{split!r}]", f"missing {exc}",
                          "extract 'cls' features for the train, val and test splits") from exc
    return np.asarray(cls, dtype=np.float32)[:, -1]


K_SELECTIONS = ("val", "test")


class _Scorer:
    """Scores of queries against one neighbour bank, for every k of a list."""

    def __init__(self, bank: np.ndarray, y_bank: np.ndarray, inputs: FrozenInputs,
                 hparams: dict[str, Any], kmax: int):
        self.bank, self.y, self.kind = bank, y_bank, inputs.label_kind
        self.n_cls = 2 if self.kind == "binary" else inputs.num_classes
        self.temperature = float(hparams.get("temperature", DEFAULT_TEMPERATURE))
        self.smoothing = float(hparams.get("smoothing", 1.0))
        self.chunk, self.device = int(hparams.get("chunk_size", DEFAULT_CHUNK)), inputs.device
        self.self_idx = None
        if self.kind == "multilabel":
            _, idx = knn_neighbors(bank, bank, min(kmax + 1, len(bank)), self.chunk, self.device)
            # the repo (MLkNN, ignore_first_neighbours=0) keeps the item itself among its neighbours
            self.self_idx = idx if hparams.get("mlknn_self_neighbour", False) else _drop_self(idx)

    def __call__(self, queries: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
        sims, idx = knn_neighbors(self.bank, queries, max(ks), self.chunk, self.device)
        out = {}
        for k in ks:
            if self.kind == "multilabel":
                stats = mlknn_fit(self.self_idx, self.y, k, self.smoothing)
                out[k] = mlknn_posterior(idx, self.y, stats, k)
            else:
                votes = weighted_vote(sims[:, :k], self.y[idx[:, :k]], self.n_cls, self.temperature)
                out[k] = votes[:, 1] if self.kind == "binary" else votes
        return out


def _ks(hparams: dict[str, Any], bank_size: int, multilabel: bool, self_neighbour: bool) -> list[int]:
    limit = bank_size - 1 if multilabel and not self_neighbour else bank_size
    ks = sorted({min(int(k), limit) for k in require(hparams, "ks", "knn")})
    if not ks or ks[0] < 1:
        raise ConfigError("hparams['ks']", f"need positive k values and >= 2 training items, got "
                          f"ks={hparams['ks']} with {bank_size} training items",
                          "list k values such as (100, 200, 400, 800, 1000)")
    return ks


def run_knn(inputs: FrozenInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """kNN protocol: pick k (on val, or on test as the study did), report test AUROC with a CI."""
    selection = hparams.get("k_selection", "val")
    if selection not in K_SELECTIONS:
        raise ConfigError(f"hparams['k_selection']={selection!r}", f"expected one of {K_SELECTIONS}",
                          "use 'val' (ours) or 'test' (the study's repo)")
    train, val, test = (_last_block_cls(inputs, s) for s in ("train", "val", "test"))
    y_train, y_val = np.asarray(inputs.labels["train"]), np.asarray(inputs.labels["val"])
    y_test = np.asarray(inputs.labels["test"])
    multilabel, self_nb = inputs.label_kind == "multilabel", bool(hparams.get("mlknn_self_neighbour", False))
    ks = _ks(hparams, len(train), multilabel, self_nb)
    val_scores = _Scorer(train, y_train, inputs, hparams, ks[-1])(val, ks)
    val_auroc = {k: auroc(y_val, v, inputs.label_kind) for k, v in val_scores.items()}
    bank, y_bank = np.concatenate([train, val]), np.concatenate([y_train, y_val])
    test_ks = sorted(set(ks) | set(_ks(hparams, len(bank), multilabel, self_nb)))
    test_scores_by_k = _Scorer(bank, y_bank, inputs, hparams, test_ks[-1])(test, test_ks)
    test_auroc = {k: auroc(y_test, v, inputs.label_kind) for k, v in test_scores_by_k.items()}
    by = val_auroc if selection == "val" else test_auroc
    finite = {k: v for k, v in by.items() if np.isfinite(v)}
    best_k = max(finite, key=lambda k: (finite[k], -k)) if finite else min(by)
    test_scores = test_scores_by_k[best_k]
    return ProtocolResult(
        metrics={"auroc": auroc_metric(y_test, test_scores, inputs.label_kind,
                                       resamples=own_resamples(hparams), seed=seed),
                 "auroc_val": metric("auroc_val", val_auroc.get(best_k, math.nan))},
        chosen={"k": best_k, "k_selection": selection, "temperature": float(
                    hparams.get("temperature", DEFAULT_TEMPERATURE)),
                "method": "ml-knn" if multilabel else "weighted-vote"},
        params_trainable=0,
        extra={"val_auroc_by_k": {str(k): v for k, v in val_auroc.items()},
               "test_auroc_by_k": {str(k): v for k, v in test_auroc.items()},
               "auroc_per_class": auroc_per_class(y_test, test_scores, inputs.label_kind).tolist(),
               "test_predictions": ArrayPayload(labels=y_test, scores=test_scores)},
    )
