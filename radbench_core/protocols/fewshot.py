"""Few-shot linear probe: n patients per class, several seeds, mean and spread of test AUROC.

Sampling is by *patient* (all of a chosen patient's images are used), so no patient's images leak
between "seen" and "unseen". Each seed trains the linear heads of :mod:`linear` on its sample,
picks the best (head, epoch) on the full validation split and scores that snapshot on test.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from radbench_core.errors import ConfigError
from radbench_core.metrics import auroc, metric
from radbench_core.protocols.base import FrozenInputs, ProtocolResult
from radbench_core.protocols.hparams import require
from radbench_core.protocols.linear import head_configs, train_heads


def _class_members(labels: np.ndarray, label_kind: str, n_classes: int) -> list[np.ndarray]:
    y = np.asarray(labels)
    if label_kind == "multilabel":
        return [np.nan_to_num(y[:, c]) > 0.5 for c in range(n_classes)]
    return [y == c for c in range(n_classes)]


def sample_fewshot(labels: np.ndarray, patients: Sequence[str], label_kind: str, n: int,
                   seed: int) -> list[int]:
    """Indices (sorted) of every image of ``n`` patients per class, deterministic per seed.

    A patient qualifies for a class when one of its images has that class (multilabel: includes
    it). Classes are served rarest first and each patient is assigned to one class only, so every
    class gets exactly ``n`` patients of its own where enough exist (all of them otherwise).
    """
    if n < 1:
        raise ConfigError("hparams['shots']", f"shots={n}, need at least 1 patient per class",
                          "use a shot count such as 1, 2, 4, 8 or 16")
    y = np.asarray(labels)
    if len(y) != len(patients):
        raise ConfigError("sample_fewshot", f"{len(y)} labels but {len(patients)} patients",
                          "pass one patient id per labelled item")
    if label_kind == "multilabel":
        n_classes = y.shape[1]
    elif label_kind == "binary":
        n_classes = 2
    else:
        n_classes = int(y.max()) + 1 if y.size else 0
    patient_arr = np.asarray(patients, dtype=object)
    rng = np.random.default_rng(seed)
    candidates = [sorted(set(patient_arr[m])) for m in _class_members(y, label_kind, n_classes)]
    taken: set[str] = set()
    for c in sorted(range(n_classes), key=lambda c: (len(candidates[c]), c)):
        free = [p for p in candidates[c] if p not in taken]
        order = rng.permutation(len(free))
        taken.update(free[i] for i in order[:n])
    return [i for i, p in enumerate(patient_arr) if p in taken]


def _subset(features: dict[str, np.ndarray], idx: list[int]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[idx] for k, v in features.items()}


def run_fewshot(inputs: FrozenInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """Mean test AUROC over ``hparams['seeds']`` samples; CI = mean -/+ 1.96 sd / sqrt(seeds)."""
    shots = int(require(hparams, "shots", "fewshot"))
    n_seeds = int(hparams.get("seeds", 5))
    if n_seeds < 1:
        raise ConfigError("hparams['seeds']", f"seeds={n_seeds}, need >= 1", "use e.g. 5 seeds")
    feats, labels, kind = inputs.features, inputs.labels, inputs.label_kind
    configs = head_configs(require(hparams, "lrs", "fewshot"), hparams.get("n_blocks", (1, 4)),
                           hparams.get("avgpool", (False, True)), feats["train"])
    per_seed, chosen_per_seed, sizes = [], [], []
    for s in range(n_seeds):
        sub_seed = int(np.random.SeedSequence([seed, s]).generate_state(1)[0])
        idx = sample_fewshot(labels["train"], inputs.patients["train"], kind, shots, sub_seed)
        sweep = train_heads(_subset(feats["train"], idx), np.asarray(labels["train"])[idx], configs,
                            label_kind=kind, num_classes=inputs.num_classes,
                            epochs=int(require(hparams, "epochs", "fewshot")),
                            batch_size=int(hparams.get("batch_size", 256)), seed=sub_seed,
                            device=inputs.device, momentum=float(hparams.get("momentum", 0.9)),
                            val_features=feats["val"], val_labels=labels["val"])
        head, epoch = sweep.best_index()
        scores = sweep.scores(feats["test"], head, which="best", device=inputs.device)
        per_seed.append(auroc(labels["test"], scores, kind))
        cfg = configs[head]
        chosen_per_seed.append({"lr": cfg.lr, "n_blocks": cfg.n_blocks, "avgpool": cfg.avgpool,
                                "epochs": epoch + 1})
        sizes.append(len(idx))
    values = np.asarray(per_seed)
    finite = values[np.isfinite(values)]
    mean = float(finite.mean()) if finite.size else math.nan
    sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    ci = (mean - 1.96 * sd / math.sqrt(finite.size), mean + 1.96 * sd / math.sqrt(finite.size)) \
        if finite.size > 1 else None
    return ProtocolResult(
        metrics={"auroc": metric("auroc", mean, ci)},
        chosen={"shots": shots, "seeds": n_seeds},
        extra={"per_seed": values.tolist(), "std": sd, "chosen_per_seed": chosen_per_seed,
               "train_items_per_seed": sizes},
    )
