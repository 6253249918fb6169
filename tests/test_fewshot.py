"""Few-shot: per-patient sampling (exact n, deterministic, all images) and signal vs noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.errors import ConfigError
from radbench_core.protocols.base import FrozenInputs
from synthetic import frozen_features
from radbench_core.protocols.fewshot import run_fewshot, sample_fewshot


def patients_with_images(n_patients: int, n_classes: int, seed: int):
    """Each patient has 1-3 images, all with the patient's class."""
    rng = np.random.default_rng(seed)
    labels, patients = [], []
    for p in range(n_patients):
        cls = int(rng.integers(0, n_classes))
        for _ in range(int(rng.integers(1, 4))):
            labels.append(cls)
            patients.append(f"pat{p:03d}")
    return np.asarray(labels), patients


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), n_classes=st.integers(2, 4),
       sample_seed=st.integers(0, 2**31))
def test_exactly_n_patients_per_class_with_all_their_images(seed: int, n: int, n_classes: int,
                                                             sample_seed: int) -> None:
    labels, patients = patients_with_images(60, n_classes, seed)
    idx = sample_fewshot(labels, patients, "multiclass", n, sample_seed)
    assert idx == sorted(set(idx))
    chosen = {patients[i] for i in idx}
    assert idx == [i for i, p in enumerate(patients) if p in chosen]        # all their images
    for c in range(n_classes):
        available = len({p for p, y in zip(patients, labels) if y == c})
        got = len({patients[i] for i in idx if labels[i] == c})
        assert got == min(n, available)
    assert sample_fewshot(labels, patients, "multiclass", n, sample_seed) == idx


def test_sampling_depends_on_the_seed_and_is_reproducible() -> None:
    labels, patients = patients_with_images(80, 3, seed=0)
    draws = {tuple(sample_fewshot(labels, patients, "multiclass", 2, s))
             for s in range(6)}
    assert len(draws) >= 5
    assert sample_fewshot(labels, patients, "multiclass", 2, 9) == sample_fewshot(
        labels, patients, "multiclass", 2, 9)


def test_multilabel_sampling_gives_each_class_n_patients_of_its_own() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((90, 4)) < 0.3).astype(np.float32)
    y[:, 3] = 0
    y[:3, 3] = 1                                   # a rare class: 3 images, 3 patients
    y[rng.random(y.shape) < 0.05] = np.nan
    patients = [f"p{i // 2}" for i in range(90)]   # two images per patient
    idx = sample_fewshot(y, patients, "multilabel", 2, seed=1)
    chosen = sorted({patients[i] for i in idx})
    assert len(chosen) == 2 * 4                    # n per class, no patient shared
    for c in range(4):
        with_c = {patients[i] for i in idx if y[i, c] == 1}
        assert len(with_c) >= 2
    assert {patients[i] for i in idx if y[i, 3] == 1} <= {"p0", "p1"}
    assert len(idx) == 2 * len(chosen)


def test_too_few_patients_takes_all_of_them_and_bad_input_is_named() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    patients = ["a", "a", "b", "c", "d"]
    idx = sample_fewshot(labels, patients, "binary", 3, seed=0)
    assert idx == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match=r"hparams\['shots'\]: shots=0.*Fix:"):
        sample_fewshot(labels, patients, "binary", 0, seed=0)
    with pytest.raises(ConfigError, match=r"5 labels but 4 patients"):
        sample_fewshot(labels, patients[:4], "binary", 1, seed=0)


def synthetic(n: int, signal: float, kind: str, n_classes: int, seed: int = 0, dim: int = 12
              ) -> FrozenInputs:
    """Two images per patient."""
    return frozen_features(n, signal, kind, n_classes, seed, dim=dim, per_patient=2)


HP = {"shots": 4, "seeds": 3, "lrs": (1e-1, 1e-2), "epochs": 8, "batch_size": 32}


@pytest.mark.parametrize("kind,n_classes", [("multiclass", 3), ("multilabel", 3)])
def test_fewshot_scores_well_on_signal_and_near_chance_on_noise(kind: str, n_classes: int) -> None:
    good = run_fewshot(synthetic(200, 1.0, kind, n_classes), HP, seed=0)
    noise = run_fewshot(synthetic(400, 0.0, kind, n_classes, seed=1), HP, seed=0)
    assert good.metrics["auroc"].value > 0.85
    assert abs(noise.metrics["auroc"].value - 0.5) < 0.15
    per_seed = np.asarray(good.extra["per_seed"])
    assert len(per_seed) == 3 and len(set(good.extra["train_items_per_seed"])) >= 1
    assert good.metrics["auroc"].value == pytest.approx(per_seed.mean())
    half = 1.96 * per_seed.std(ddof=1) / math.sqrt(3)
    assert good.metrics["auroc"].ci_low == pytest.approx(per_seed.mean() - half)
    assert good.metrics["auroc"].ci_high == pytest.approx(per_seed.mean() + half)
    assert good.chosen == {"shots": 4, "seeds": 3}
    # exactly 4 patients x 2 images per class for multiclass
    if kind == "multiclass":
        assert good.extra["train_items_per_seed"] == [24, 24, 24]


def test_fewshot_is_deterministic_and_one_seed_has_no_ci() -> None:
    inputs = synthetic(80, 1.0, "multiclass", 2)
    hp = {**HP, "seeds": 1}
    first, second = run_fewshot(inputs, hp, seed=5), run_fewshot(inputs, hp, seed=5)
    assert first.metrics == second.metrics and first.extra == second.extra
    assert first.metrics["auroc"].ci_low is None
    with pytest.raises(ConfigError, match=r"hparams\['seeds'\]: seeds=0"):
        run_fewshot(inputs, {**HP, "seeds": 0}, seed=0)
