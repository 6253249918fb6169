"""CheXpert phantom in the release's own layout: ``CheXpert-v1.0-small/{train,valid}.csv`` + JPEGs,
plus the official test labels as the study read them (``test.csv``, paths ``test/patientNNNNN/...``).

The five competition labels each add a blob at their own position (an uncertain -1 label adds a
faint one); lateral views are written too and must be left out by the loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.data.datasets.chexpert import CLASSES, OBSERVATIONS, TEST_LABEL_FILES
from radbench_core.data.phantoms.draw import (class_texture, finding, chest, ellipse, patient_anatomy, save_jpeg, size_of,
                                         smooth_noise, to_uint8)

FOLDER = "CheXpert-v1.0-small"
HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + list(OBSERVATIONS)
TEST_HEADER = ["Path"] + list(OBSERVATIONS)        # the test labels carry no view columns
TEST_FIRST_PATIENT = 64741                         # the official test patients' first id
CENTERS = {"Atelectasis": (0.35, 0.3), "Cardiomegaly": (0.6, 0.55), "Consolidation": (0.3, 0.72),
           "Edema": (0.72, 0.3), "Pleural Effusion": (0.78, 0.72)}


def _observations(rng: np.random.Generator, uncertain: bool) -> dict[str, str]:
    """One study's 14 observation cells as the CSV writes them ("1.0", "0.0", "-1.0", "")."""
    choices = ["1.0", "0.0", "-1.0", ""] if uncertain else ["1.0", "0.0"]
    probs = [0.3, 0.25, 0.15, 0.3] if uncertain else [0.35, 0.65]
    obs = {name: str(rng.choice(choices, p=probs)) for name in OBSERVATIONS[1:]}
    obs["No Finding"] = "" if any(v == "1.0" for v in obs.values()) else "1.0"
    return obs


def _frontal(rng: np.random.Generator, px: int, anatomy: dict[str, float],
             obs: dict[str, str]) -> np.ndarray:
    img, _, _ = chest(rng, px, anatomy)
    for name in CLASSES:
        strength = {"1.0": 0.45, "-1.0": 0.2}.get(obs[name], 0.0)
        if strength:
            cy, cx = CENTERS[name]
            texture = class_texture(2 * sorted(CLASSES).index(name), px)
            img = img + strength * finding((px, px), (cy * px, cx * px), 0.09 * px, *texture)
    return np.clip(img, 0.0, 1.0)


def _lateral(rng: np.random.Generator, px: int) -> np.ndarray:
    body = ellipse((px, px), (px * 0.5, px * 0.5), (px * 0.45, px * 0.3))
    img = 0.1 + 0.6 * body + 0.05 * smooth_noise(rng, (px, px))
    return np.clip(img, 0.0, 1.0)


def write_phantom(root: Path, size: str = "tiny", seed: int = 0, *, test_labels: bool = True) -> None:
    """Write ``root/CheXpert-v1.0-small`` with train.csv (3 studies per patient, some lateral views
    and uncertain labels), valid.csv (2 frontal studies per patient, certain labels only) and, unless
    ``test_labels`` is False, test.csv with test/ (1 study per patient, certain labels, some laterals)."""
    n_train = size_of(size, 12, 100, "phantom size for chexpert")
    n_valid = size_of(size, 6, 30, "phantom size for chexpert")
    n_test = size_of(size, 8, 30, "phantom size for chexpert")
    px = size_of(size, 64, 128, "phantom size for chexpert")
    root = Path(root)
    rng = np.random.default_rng(seed)
    plan = [("train", n_train, 1, 3), ("valid", n_valid, 64541, 2)]
    if test_labels:
        plan.append(("test", n_test, TEST_FIRST_PATIENT, 1))
    for split, n_patients, first, studies in plan:
        rows = [",".join(TEST_HEADER if split == "test" else HEADER)]
        for p in range(n_patients):
            patient = f"patient{first + p:05d}"
            anatomy = patient_anatomy(rng)
            sex, age = ("Male" if rng.random() < 0.5 else "Female"), int(rng.integers(18, 90))
            for s in range(1, studies + 1):
                obs = _observations(rng, uncertain=split == "train")
                views = [("view1_frontal.jpg", "Frontal")]
                if (p + s) % 3 == 0:
                    views.append(("view2_lateral.jpg", "Lateral"))
                for fname, kind in views:
                    rel = f"{split}/{patient}/study{s}/{fname}"
                    img = _frontal(rng, px, anatomy, obs) if kind == "Frontal" else _lateral(rng, px)
                    save_jpeg(root / FOLDER / rel, to_uint8(img))
                    labels = [obs[o] or "0.0" for o in OBSERVATIONS] if split == "test" else \
                        [obs[o] for o in OBSERVATIONS]
                    if split == "test":             # as the study's test file: no release prefix
                        rows.append(",".join([rel] + labels))
                        continue
                    appa = ("AP" if rng.random() < 0.6 else "PA") if kind == "Frontal" else ""
                    rows.append(",".join([f"{FOLDER}/{rel}", sex, str(age), kind, appa] + labels))
        name = TEST_LABEL_FILES[0] if split == "test" else f"{split}.csv"
        (root / FOLDER).mkdir(parents=True, exist_ok=True)
        (root / FOLDER / name).write_text("\n".join(rows) + "\n")
