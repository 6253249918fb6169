"""NIH ChestX-ray14 phantom in the release's own layout: CSV, official lists, PNGs.

Each of the 14 findings adds a bright blob at its own position on the film, so labels are learnable;
patients have several follow-up films with their own anatomy, so patient grouping is exercised.
Every fourth patient is healthy (all films "No Finding"); the others carry two chronic findings on
every film plus occasional extra ones, so the study's few-shot rule (patients whose films all show
the class) finds patients for every one of the 15 labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.data.datasets.nih import CLASSES, TEST_LIST, TRAIN_VAL_LIST
from radbench_core.core.errors import ConfigError
from radbench_core.data.phantoms.draw import (chest, class_texture, finding, patient_anatomy, save_png, size_of,
                                         to_uint8)

HEADER_2017 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
               "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
HEADER_V2020 = HEADER_2017.rstrip(",")
IMAGES_PER_PATIENT = 4
CHRONIC_OFFSET = 5          # a sick patient's second chronic finding, this many classes on
EXTRA_FINDING_P = 0.08      # chance of each other finding on one film


def chronic_findings(patient: int) -> list[int]:
    """Findings on every film of 0-based ``patient``: none for every fourth, else two."""
    if patient % 4 == 3:
        return []
    k = patient - patient // 4                  # index among the sick patients
    return sorted({k % len(CLASSES), (k + CHRONIC_OFFSET) % len(CLASSES)})


def finding_centers(size: int) -> list[tuple[float, float]]:
    """Where each finding's blob goes: a 4x4 grid over the chest, one cell per class."""
    grid = [(r, c) for r in range(4) for c in range(4)][:len(CLASSES)]
    return [(size * (0.22 + 0.18 * r), size * (0.22 + 0.18 * c)) for r, c in grid]


def draw_film(rng: np.random.Generator, size: int, anatomy: dict[str, float],
              positives: list[int]) -> np.ndarray:
    """One film: the patient's chest plus a blob per positive finding."""
    img, _, _ = chest(rng, size, anatomy)
    centers = finding_centers(size)
    for c in positives:
        img = img + 0.5 * finding((size, size), centers[c], 0.09 * size, *class_texture(c, size))
    return np.clip(img, 0.0, 1.0)


def write_phantom(root: Path, size: str = "tiny", seed: int = 0, *, layout: str = "archives",
                  csv: str = "2017") -> None:
    """Write ``root`` as the NIH release. layout: "archives" (images_0NN/images/) or "flat" (images/);
    csv: "2017" (trailing comma, ages like 058Y) or "v2020"."""
    n_patients = size_of(size, 14, 100, "phantom size for nih")
    px = size_of(size, 64, 128, "phantom size for nih")
    if layout not in ("archives", "flat") or csv not in ("2017", "v2020"):
        raise ConfigError("nih phantom", f"unknown layout {layout!r} or csv {csv!r}",
                          "use layout 'archives' or 'flat' and csv '2017' or 'v2020'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = [HEADER_2017 if csv == "2017" else HEADER_V2020]
    train_val, test = [], []
    n = 0
    for p in range(n_patients):
        pid = p + 1
        anatomy = patient_anatomy(rng)
        age = int(rng.integers(20, 85))
        sex = "M" if rng.random() < 0.5 else "F"
        chronic = chronic_findings(p)
        for fu in range(IMAGES_PER_PATIENT):
            extra = rng.random(len(CLASSES)) < EXTRA_FINDING_P
            positives = sorted(set(chronic) | {c for c in range(len(CLASSES)) if extra[c] and chronic})
            name = f"{pid:08d}_{fu:03d}.png"
            archive = 1 + n * 2 // (n_patients * IMAGES_PER_PATIENT)       # two archives
            folder = "images" if layout == "flat" else f"images_{archive:03d}/images"
            save_png(root / folder / name, to_uint8(draw_film(rng, px, anatomy, positives)))
            findings = "|".join(CLASSES[c] for c in positives) or "No Finding"
            age_text = f"{age:03d}Y" if csv == "2017" else str(age)
            view = "PA" if (pid + fu) % 3 else "AP"
            row = f"{name},{findings},{fu},{pid},{age_text},{sex},{view},{px},{px},0.143,0.143"
            rows.append(row + ("," if csv == "2017" else ""))
            (test if p % 5 == 2 else train_val).append(name)
            n += 1
    csv_name = "Data_Entry_2017.csv" if csv == "2017" else "Data_Entry_2017_v2020.csv"
    (root / csv_name).write_text("\n".join(rows) + "\n")
    (root / TRAIN_VAL_LIST).write_text("\n".join(train_val) + "\n")
    (root / TEST_LIST).write_text("\n".join(test) + "\n")
