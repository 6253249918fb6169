"""Synthetic frozen features for the protocol tests: class-dependent Gaussians, or pure noise."""

from __future__ import annotations

import numpy as np
import torch

from radbench_core.protocols.base import FrozenInputs


def frozen_features(n: int, signal: float, kind: str, n_classes: int, seed: int = 0, dim: int = 12,
                    blocks: int = 4, patch: bool = True, per_patient: int = 1,
                    uncertain: float = 0.0) -> FrozenInputs:
    """Features whose mean depends on the label (signal > 0) or not at all (signal = 0).

    ``per_patient`` images share a patient and a label; ``uncertain`` is the fraction of
    multi-label targets set to NaN (to be ignored by losses and metrics).
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, dim)) * signal
    feats, labels, patients = {}, {}, {}
    for split, m in (("train", n), ("val", n // 2), ("test", n)):
        count = m // per_patient
        if kind == "multilabel":
            y = (rng.random((count, n_classes)) < 0.4).astype(np.float32).repeat(per_patient, axis=0)
            centre = y @ means
            if uncertain:
                y[rng.random(y.shape) < uncertain] = np.nan
        else:
            y = rng.integers(0, n_classes, count).repeat(per_patient)
            centre = means[y]
        feats[split] = {"cls": (centre[:, None] + rng.normal(size=(len(y), blocks, dim))).astype(np.float16)}
        if patch:
            feats[split]["patch_mean"] = (centre + rng.normal(size=(len(y), dim))).astype(np.float16)
        labels[split] = y
        patients[split] = [f"{split}{i // per_patient}" for i in range(len(y))]
    return FrozenInputs(feats, labels, patients, kind, n_classes)


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (norms and layer scales too), so no identity hides a wrong mapping."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
