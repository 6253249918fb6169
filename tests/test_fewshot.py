"""Few-shot: the study's sampler (hand-computed table, and the repo's pandas rule written out),
our seeded per-patient sampler (exact n, deterministic, all images), and signal vs noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pandas as pd

from radbench_core.core.errors import ConfigError, DatasetError
from radbench_core.protocols.base import FrozenInputs
from synthetic import frozen_features
from radbench_core.protocols.fewshot import run_fewshot, sample_fewshot, study_fewshot


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


HP = {"shots": 4, "sampler": "seeded", "seeds": 3, "lrs": (1e-1, 1e-2), "epochs": 8,
      "batch_size": 32}


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
    assert good.chosen == {"shots": 4, "seeds": 3, "sampler": "seeded"}
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


# --- the study's sampler ---------------------------------------------------------------------------
# columns A, B, C, No Finding; patient ids as the NIH loader gives them (leading zeros stripped)
TABLE = [("10", "A"), ("10", "A|B"), ("2", "B"), ("2", "B"), ("3", "A"), ("3", "C"),
         ("1", "NoF"), ("11", "A"), ("20", "B|C"), ("20", "C"), ("4", "A|B"), ("4", "A|B"),
         ("30", "B")]
COLUMNS = ("A", "B", "C", "NoF")


def _table() -> tuple[np.ndarray, list[str]]:
    y = np.zeros((len(TABLE), len(COLUMNS)), dtype=np.float32)
    for i, (_, names) in enumerate(TABLE):
        for name in names.split("|"):
            y[i, COLUMNS.index(name)] = 1
    return y, [p for p, _ in TABLE]


@pytest.mark.parametrize("n, expected", [
    # patients in id order 1, 2, 3, 4, 10, 11, 20, 30; all-images-carry sets: 1 {NoF}, 2 {B},
    # 3 {} (A on one film, C on the other), 4 {A, B}, 10 {A}, 11 {A}, 20 {C}, 30 {B}
    (1, [10, 11, 2, 3, 8, 9, 6]),                    # A: 4; B: 2; C: 20; NoF: 1
    (2, [10, 11, 0, 1, 2, 3, 8, 9, 6]),              # A: 4, 10; B: 2, (4 taken: skipped, not replaced)
    (3, [10, 11, 0, 1, 7, 2, 3, 12, 8, 9, 6]),       # A: 4, 10, 11; B: 2, (4), 30
])
def test_study_sampler_on_a_hand_computed_table(n: int, expected: list[int]) -> None:
    y, patients = _table()
    assert study_fewshot(y, patients, "multilabel", n) == expected


def test_study_sampler_ignores_nan_and_serves_multiclass_by_column() -> None:
    y, patients = _table()
    y[1, 0] = np.nan                   # patient 10's second film: A unknown -> 10 no longer carries A
    assert study_fewshot(y, patients, "multilabel", 2) == [10, 11, 7, 2, 3, 8, 9, 6]
    labels = np.array([1, 1, 0, 1, 0, 0])
    pts = ["b", "b", "a", "a", "c", "c"]
    # class 0: a has a 1 -> only c qualifies; class 1: b
    assert study_fewshot(labels, pts, "multiclass", 1) == [4, 5, 0, 1]
    with pytest.raises(ConfigError, match=r"shots=0"):
        study_fewshot(labels, pts, "multiclass", 0)


def repo_get_fewshot_in_nih(df: pd.DataFrame, class_names: list[str], shots: int) -> list[int]:
    """dinov2/data/utils.py get_fewshot_in_nih of the study's repo, step by step, on its own table
    (Image Index + Finding Labels as lists), independent of radbench's implementation."""
    df = df.copy()
    indices = []
    df["Patient ID"] = df["Image Index"].apply(lambda x: x.split("_")[0])
    grouped = df.groupby("Patient ID")["Finding Labels"]
    df_new = grouped.apply(lambda x: list(set.intersection(*map(set, x))))
    added = []
    for class_ in class_names:
        patient_ids = df_new[df_new.apply(lambda x: class_ in x)].index.tolist()
        for patient_id in patient_ids[:shots]:
            if patient_id in added:
                continue
            added.append(patient_id)
            indices.extend(df[df["Patient ID"] == patient_id].index.tolist())
    return indices


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shots=st.integers(1, 5))
def test_study_sampler_equals_the_repos_rule(data, shots: int) -> None:
    findings = ["Atelectasis", "Effusion", "Mass"]
    n_patients = data.draw(st.integers(1, 12))
    pids = sorted(data.draw(st.lists(st.integers(1, 30_000), min_size=n_patients,
                                     max_size=n_patients, unique=True)))
    rows = []
    for pid in pids:
        for k in range(data.draw(st.integers(1, 4))):
            chosen = data.draw(st.lists(st.sampled_from(findings), max_size=2, unique=True))
            rows.append((f"{pid:08d}_{k:03d}.png", sorted(chosen) or ["No Finding"]))
    df = pd.DataFrame({"Image Index": [r[0] for r in rows], "Finding Labels": [r[1] for r in rows]})
    classes = sorted(findings + ["No Finding"])       # MultiLabelBinarizer's column order
    y = np.array([[float(c in labels) for c in classes] for _, labels in rows])
    patients = [name.split("_")[0].lstrip("0") for name, _ in rows]
    assert study_fewshot(y, patients, "multilabel", shots) == repo_get_fewshot_in_nih(df, classes, shots)


def test_study_sampler_runs_once_and_records_which_sampler_ran() -> None:
    inputs = synthetic(120, 1.0, "multiclass", 3)
    hp = {**HP, "sampler": "study", "seeds": 1}
    res = run_fewshot(inputs, hp, seed=0)
    expected = study_fewshot(inputs.labels["train"], inputs.patients["train"], "multiclass", 4)
    assert res.chosen == {"shots": 4, "seeds": 1, "sampler": "study"}
    assert res.extra["sampler"] == "study" and res.extra["train_items_per_seed"] == [len(expected)]
    assert res.extra["train_patients_per_seed"] == [12]            # 4 patients x 3 classes
    assert res.metrics["auroc"].ci_low is None and res.metrics["auroc"].value > 0.8
    no_seeds = {k: v for k, v in hp.items() if k != "seeds"}
    assert run_fewshot(inputs, no_seeds, seed=0).metrics == res.metrics
    with pytest.raises(ConfigError, match=r"seeds=3 with the study's sampler.*Fix: set seeds=1"):
        run_fewshot(inputs, {**hp, "seeds": 3}, seed=0)
    with pytest.raises(ConfigError, match=r"unknown few-shot sampler 'random'"):
        run_fewshot(inputs, {**hp, "sampler": "random"}, seed=0)
    with pytest.raises(ConfigError, match=r"hparams\['sampler'\].*missing value"):
        run_fewshot(inputs, {k: v for k, v in hp.items() if k != "sampler"}, seed=0)


def test_study_sampler_with_no_qualifying_patient_is_a_dataset_error() -> None:
    inputs = synthetic(40, 1.0, "multiclass", 2)
    train = inputs.labels["train"].copy()
    train[::2], train[1::2] = 0, 1                   # each patient: one film of each class
    inputs.labels["train"] = train
    with pytest.raises(DatasetError, match=r"no patient qualifies for any class \(study sampler\)"):
        run_fewshot(inputs, {**HP, "sampler": "study", "seeds": 1}, seed=0)
