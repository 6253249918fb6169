"""Synthetic, learnable data in a generic dataset's own layout (demo profile, tests, examples).

Why: a user dataset described by ``generic.csv_dataset``/``mask_dataset`` must run in the demo
profile like the study's datasets, with the same code path. Classification: class ``k`` (or label
``k`` present) draws a bright square in its own place; segmentation: class ``c`` fills a disk whose
mask pixels hold ``c``. Two images per patient, so patient-grouped splits are exercised. PNG only.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = {"tiny": (36, 40), "small": (90, 64), "medium": (240, 96)}      # items, image side


def _canvas(rng: np.random.Generator, side: int) -> np.ndarray:
    return rng.normal(60.0, 12.0, (side, side))


def _mark(img: np.ndarray, k: int, n: int, value: float = 200.0) -> tuple[slice, slice]:
    side = img.shape[0]
    cell = side // max(2, int(np.ceil(np.sqrt(n))) + 1)
    row, col = divmod(k, max(1, side // cell - 1))
    where = (slice(cell // 2 + row * cell, cell // 2 + row * cell + cell - 2),
             slice(cell // 2 + col * cell, cell // 2 + col * cell + cell - 2))
    img[where] = value
    return where


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L").save(path)


def write_generic_phantom(root: Path, size: str = "tiny", seed: int = 0, *, spec_ref: list,
                          layout: dict) -> None:
    """Write ``size`` items of the spec's layout under ``root`` (CSV + PNGs, or images + masks)."""
    spec = spec_ref[0]
    n_items, side = SIZES.get(size, SIZES["tiny"])
    rng = np.random.default_rng(seed)
    root = Path(root)
    n = spec.num_classes
    if spec.task == "segmentation":
        for i in range(n_items):
            img, mask = _canvas(rng, side), np.zeros((side, side), np.uint8)
            for c in range(1, n + 1):
                if rng.random() < 0.8 or c == 1 + i % n:
                    where = _mark(img, (c - 1 + i) % (n + 1), n + 1, 160.0 + 60.0 * c / n)
                    mask[where] = c
            name = f"case_{i:03d}.png"
            _save(root / layout["images_dir"] / name, img)
            _save(root / layout["masks_dir"] / name, mask)
        return
    rows = []
    for i in range(n_items):
        img = _canvas(rng, side)
        if spec.label_kind == "multiclass":
            k = i % n
            _mark(img, k, n)
            labels = [spec.class_names[k]]
        else:
            present = [int(rng.random() < 0.4) or int(j == i % n) for j in range(n)]
            for j in (j for j in range(n) if present[j]):
                _mark(img, j, n)
            labels = [str(p) for p in present]
        name = f"img_{i:04d}.png"
        _save(root / layout["images_dir"] / name if layout["images_dir"] else root / name, img)
        row = [name, *labels] + ([f"p{i // 2:03d}"] if layout["patient_column"] else [])
        rows.append(row)
    header = [layout["image_column"], *([layout["label_column"]] if layout["label_column"]
                                        else layout["label_columns"])]
    header += [layout["patient_column"]] if layout["patient_column"] else []
    with open(root / layout["csv"], "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
