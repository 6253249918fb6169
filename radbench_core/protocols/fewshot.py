"""Few-shot linear probe: n patients per class, linear heads, test AUROC (the study's Figure 5).

Sampling is by *patient* (all of a chosen patient's images are used), so no patient's images leak
between "seen" and "unseen". ``hparams['sampler']`` picks the sample:

* ``"study"`` (the paper profile): the study's rule (repo dinov2/data/utils.py ``get_fewshot_in_nih``)
  -- for each label column in order, the first n patients (natural id order) whose images *all*
  carry that label, a patient already taken for an earlier label being skipped, not replaced; one
  deterministic sample, so one run.
* ``"seeded"``: ours -- n patients per class drawn at random (rarest class first, no patient
  shared), ``hparams['seeds']`` draws, mean and spread over them.

Each run trains the linear heads of :mod:`linear` on its sample, picks the best (head, epoch) on
the full validation split and scores that snapshot on test. Two switches give the study's way:
``hparams['fewshot_selection']="final_refit_val"`` picks the best head after the last epoch and
refits it on the sample + the whole val split (its linear.py:535-601), and
``hparams['fewshot_grid']`` = a dict of ``lrs``, ``epochs``, ``batch_size`` replaces the profile's
own few-shot grid with the study's (its linear probe's), and ``hparams['features']="augmented"``
trains the heads on a fresh augmentation of the sample's images every epoch (its train transform).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from radbench_core.data.datasets.splits import natural_key
from radbench_core.core.errors import ConfigError, DatasetError
from radbench_core.eval.metrics import auroc, metric
from radbench_core.protocols.base import FrozenInputs, ProtocolResult
from radbench_core.protocols.base import require
from radbench_core.protocols.linear import FEATURE_SOURCES, head_configs, train_heads
from radbench_core.eval.predictions import ArrayPayload


SAMPLERS = ("study", "seeded")
SELECTIONS = ("best_val", "final_refit_val")   # switch fewshot_select_on_val_no_refit
GRID_KEYS = ("lrs", "epochs", "batch_size")    # switch fewshot_own_grid: "own" or a dict of these


def head_grid(hparams: dict[str, Any]) -> dict[str, Any]:
    """lrs, epochs and batch size of the heads: the profile's own, or the ``fewshot_grid`` dict."""
    own = {"lrs": require(hparams, "lrs", "fewshot"), "epochs": require(hparams, "epochs", "fewshot"),
           "batch_size": hparams.get("batch_size", 256)}
    grid = hparams.get("fewshot_grid", "own")
    if grid == "own":
        return own
    if not isinstance(grid, dict) or set(grid) != set(GRID_KEYS):
        raise ConfigError(f"hparams['fewshot_grid']={grid!r}", f"expected 'own' or a dict of exactly "
                          f"{', '.join(GRID_KEYS)}", "use 'own', or e.g. {'lrs': (1e-2,), 'epochs': "
                          "10, 'batch_size': 128}")
    return dict(grid)


def _class_members(labels: np.ndarray, label_kind: str, n_classes: int) -> list[np.ndarray]:
    y = np.asarray(labels)
    if label_kind == "multilabel":
        return [np.nan_to_num(y[:, c]) > 0.5 for c in range(n_classes)]
    return [y == c for c in range(n_classes)]


def _n_classes(y: np.ndarray, label_kind: str) -> int:
    if label_kind == "multilabel":
        return int(y.shape[1])
    if label_kind == "binary":
        return 2
    return int(y.max()) + 1 if y.size else 0


def _check(y: np.ndarray, patients: Sequence[str], n: int) -> None:
    if n < 1:
        raise ConfigError("hparams['shots']", f"shots={n}, need at least 1 patient per class",
                          "use a shot count such as 1, 2, 4, 8 or 16")
    if len(y) != len(patients):
        raise ConfigError("sample_fewshot", f"{len(y)} labels but {len(patients)} patients",
                          "pass one patient id per labelled item")


def study_fewshot(labels: np.ndarray, patients: Sequence[str], label_kind: str, n: int) -> list[int]:
    """The study's sample: per label column in order, the first ``n`` patients whose images all
    carry it; a patient already taken is skipped (that label then gets fewer than ``n``).

    Indices come in the study's order: label by label, patient by patient, images in item order.
    Patients are ordered by natural id order (the repo sorted zero-padded NIH ids as text, which is
    the same order). A NaN (ignored) label counts as not carried.
    """
    y = np.asarray(labels)
    _check(y, patients, n)
    members = _class_members(y, label_kind, _n_classes(y, label_kind))
    images: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        images.setdefault(p, []).append(i)
    order = sorted(images, key=natural_key)
    taken: set[str] = set()
    out: list[int] = []
    for member in members:
        carriers = [p for p in order if all(member[i] for i in images[p])]
        for p in carriers[:n]:
            if p in taken:
                continue
            taken.add(p)
            out.extend(images[p])
    return out


def sample_fewshot(labels: np.ndarray, patients: Sequence[str], label_kind: str, n: int,
                   seed: int) -> list[int]:
    """Indices (sorted) of every image of ``n`` patients per class, deterministic per seed.

    A patient qualifies for a class when one of its images has that class (multilabel: includes
    it). Classes are served rarest first and each patient is assigned to one class only, so every
    class gets exactly ``n`` patients of its own where enough exist (all of them otherwise).
    """
    y = np.asarray(labels)
    _check(y, patients, n)
    n_classes = _n_classes(y, label_kind)
    patient_arr = np.asarray(patients, dtype=object)
    rng = np.random.default_rng(seed)
    candidates = [sorted(set(patient_arr[m])) for m in _class_members(y, label_kind, n_classes)]
    taken: set[str] = set()
    for c in sorted(range(n_classes), key=lambda c: (len(candidates[c]), c)):
        free = [p for p in candidates[c] if p not in taken]
        order = rng.permutation(len(free))
        taken.update(free[i] for i in order[:n])
    return [i for i, p in enumerate(patient_arr) if p in taken]


def _samples(inputs: FrozenInputs, hparams: dict[str, Any], shots: int, seed: int
             ) -> tuple[str, list[tuple[int, list[int]]]]:
    """(sampler, [(training seed, item indices)] one per run)."""
    sampler = str(require(hparams, "sampler", "fewshot"))
    if sampler not in SAMPLERS:
        raise ConfigError("hparams['sampler']", f"unknown few-shot sampler {sampler!r}",
                          f"use one of {SAMPLERS}")
    labels, patients, kind = inputs.labels["train"], inputs.patients["train"], inputs.label_kind
    n_runs = int(hparams.get("seeds", 1 if sampler == "study" else 5))
    if n_runs < 1:
        raise ConfigError("hparams['seeds']", f"seeds={n_runs}, need >= 1", "use e.g. 5 seeds")
    if sampler == "study" and n_runs != 1:
        raise ConfigError("hparams['seeds']", f"seeds={n_runs} with the study's sampler, which draws "
                                              "one deterministic sample", "set seeds=1, or "
                                              "sampler='seeded' for several random draws")
    runs = []
    for s in range(n_runs):
        sub_seed = int(np.random.SeedSequence([seed, s]).generate_state(1)[0])
        idx = (study_fewshot(labels, patients, kind, shots) if sampler == "study"
               else sample_fewshot(labels, patients, kind, shots, sub_seed))
        if not idx:
            raise DatasetError("few-shot sample of the train split", f"no patient qualifies for "
                                                                     f"any class ({sampler} sampler)",
                               "use sampler='seeded' (one image with the class is enough), or a "
                               "dataset whose patients' images share a label")
        runs.append((sub_seed, idx))
    return sampler, runs


def _subset(features: dict[str, np.ndarray], idx: list[int]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[idx] for k, v in features.items()}


def _head_images(inputs: FrozenInputs, hparams: dict[str, Any]):
    """(train features of a sample, + the whole val split) -> what the heads train on: the cached
    features, or (switch fewshot_cached_features, the study's) a fresh augmentation of the sample's
    images (and, in the refit, of the val images) every epoch."""
    source = hparams.get("features", "cached")
    feats = inputs.features
    if source not in FEATURE_SOURCES:
        raise ConfigError(f"hparams['features']={source!r}", f"expected one of {FEATURE_SOURCES}",
                          "use 'augmented' (the study's) or 'cached' (ours)")
    if source == "cached":
        return (lambda idx: _subset(feats["train"], idx),
                lambda idx: {k: np.concatenate([np.asarray(feats["train"][k])[idx], np.asarray(feats["val"][k])])
                             for k in feats["train"] if k in feats["val"]})
    aug = inputs.augmented
    if not aug or "train" not in aug or "val" not in aug:
        raise ConfigError("FrozenInputs.augmented", "hparams['features']='augmented' but no augmented "
                          "train/val features were provided",
                          "run the cell through radbench_core.run.runner.run_cell, or set features='cached'")

    def merged(idx):
        def at(epoch: int) -> dict[str, np.ndarray]:
            a, b = aug["train"](epoch, idx), aug["val"](epoch)
            return {k: np.concatenate([np.asarray(a[k]), np.asarray(b[k])]) for k in a if k in b}
        return at
    return (lambda idx: (lambda epoch: aug["train"](epoch, idx))), merged


def run_fewshot(inputs: FrozenInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """Mean test AUROC over the runs; with several runs CI = mean -/+ 1.96 sd / sqrt(runs)."""
    shots = int(require(hparams, "shots", "fewshot"))
    feats, labels, kind = inputs.features, inputs.labels, inputs.label_kind
    grid = head_grid(hparams)
    selection = str(hparams.get("fewshot_selection", "best_val"))
    if selection not in SELECTIONS:
        raise ConfigError(f"hparams['fewshot_selection']={selection!r}", "unknown few-shot selection",
                          f"use one of {', '.join(SELECTIONS)}")
    configs = head_configs(grid["lrs"], hparams.get("n_blocks", (1, 4)),
                           hparams.get("avgpool", (False, True)), feats["train"])
    sampler, runs = _samples(inputs, hparams, shots, seed)
    sample_features, sample_and_val = _head_images(inputs, hparams)
    per_seed, chosen_per_seed, sizes, n_patients, run_scores = [], [], [], [], []
    train_patients = np.asarray(inputs.patients["train"], dtype=object)
    for sub_seed, idx in runs:
        common = dict(label_kind=kind, num_classes=inputs.num_classes, epochs=int(grid["epochs"]),
                      batch_size=int(grid["batch_size"]), seed=sub_seed, device=inputs.device,
                      momentum=float(hparams.get("momentum", 0.9)),
                      loss_reduction=str(hparams.get("multilabel_loss", "mean")))
        sweep = train_heads(sample_features(idx), np.asarray(labels["train"])[idx], configs,
                            val_features=feats["val"], val_labels=labels["val"], **common)
        if selection == "best_val":
            head, epoch = sweep.best_index()
            scores = sweep.scores(feats["test"], head, which="best", device=inputs.device)
        else:            # the study: best head after the last epoch, refit on sample + whole val
            head, epoch = sweep.best_final_index()
            refit = train_heads(sample_and_val(idx), np.concatenate([np.asarray(labels["train"])[idx],
                                                        np.asarray(labels["val"])]),
                                [configs[head]], **common)
            scores = refit.scores(feats["test"], 0, which="final", device=inputs.device)
        per_seed.append(auroc(labels["test"], scores, kind))
        run_scores.append(np.asarray(scores, dtype=np.float32))
        cfg = configs[head]
        chosen_per_seed.append({"lr": cfg.lr, "n_blocks": cfg.n_blocks, "avgpool": cfg.avgpool,
                                "epochs": epoch + 1})
        sizes.append(len(idx))
        n_patients.append(len(set(train_patients[idx])))
    values = np.asarray(per_seed)
    finite = values[np.isfinite(values)]
    mean = float(finite.mean()) if finite.size else math.nan
    sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    ci = (mean - 1.96 * sd / math.sqrt(finite.size), mean + 1.96 * sd / math.sqrt(finite.size)) \
        if finite.size > 1 else None
    return ProtocolResult(
        metrics={"auroc": metric("auroc", mean, ci)},
        chosen={"shots": shots, "seeds": len(runs), "sampler": sampler},
        extra={"per_seed": values.tolist(), "std": sd, "chosen_per_seed": chosen_per_seed,
               "train_items_per_seed": sizes, "train_patients_per_seed": n_patients,
               "sampler": sampler,
               "test_predictions": ArrayPayload(labels=labels["test"], scores=np.stack(run_scores),
                                                 runs=True)},
    )
