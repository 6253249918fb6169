"""Phantom AMOS and MSD tasks in their native layout: dataset.json + gzip NIfTI volumes.

Organs are ellipsoids with distinct intensities (CT in Hounsfield units stored as int16, MRI as
float32 / uint16 under a smooth bias field), jittered per case in position, size and contrast, on
top of smooth noise, so a model can learn the masks from the pixels. Volumes are drawn in RAS
order and stored with the axis flips real scans have (CT: negative x/y axes), so readers that skip
reorientation get mirrored masks. MSD tasks also get the macOS ``._*`` files their tarballs carry.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from radbench_core.core.errors import ConfigError

AMOS_LABELS = ("background", "spleen", "right kidney", "left kidney", "gallbladder", "esophagus",
               "liver", "stomach", "aorta", "postcava", "pancreas", "right adrenal gland",
               "left adrenal gland", "duodenum", "bladder", "prostate/uterus")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"cases": 10, "va": 3, "mri": 1, "tests": 2, "xy": (32, 32), "hippo_xy": (36, 28), "z": 6},
    "small": {"cases": 18, "va": 6, "mri": 2, "tests": 3, "xy": (64, 64), "hippo_xy": (64, 48), "z": 8},
}
# organ: (label, centre (R, A, S) as a fraction of the field of view, radii fractions, intensity)
_AMOS_ORGANS = [(6, (0.68, 0.55, 0.50), (0.20, 0.20, 0.40), 130.0),    # liver
                (1, (0.27, 0.42, 0.55), (0.09, 0.11, 0.30), 230.0),    # spleen
                (2, (0.66, 0.28, 0.40), (0.07, 0.08, 0.30), 330.0),    # right kidney
                (3, (0.34, 0.28, 0.40), (0.07, 0.08, 0.30), 380.0),    # left kidney
                (7, (0.37, 0.64, 0.60), (0.11, 0.09, 0.25), -250.0),   # stomach (gas and contents)
                (8, (0.48, 0.36, 0.50), (0.05, 0.05, 0.60), 480.0)]    # aorta
_TASKS: dict[str, dict[str, Any]] = {
    "Task09_Spleen": {"name": "Spleen", "prefix": "spleen", "modality": "CT", "dtype": np.int16,
                      "labels": ("background", "spleen"), "spacing": (0.8, 0.8, 5.0), "ct": True,
                      "ring": 700.0,     # ribs: the repo windows MSD Spleen per slice (5th-95th pct)
                      "organs": [(0, (0.68, 0.55, 0.5), (0.2, 0.2, 0.4), 120.0),
                                 (1, (0.28, 0.42, 0.5), (0.1, 0.12, 0.35), 240.0)]},
    "Task04_Hippocampus": {"name": "Hippocampus", "prefix": "hippocampus", "modality": "MRI",
                           "dtype": np.float32, "labels": ("background", "Anterior", "Posterior"),
                           "spacing": (1.0, 1.0, 1.0), "ct": False,
                           "organs": [(1, (0.5, 0.62, 0.5), (0.12, 0.14, 0.35), 650.0),
                                      (2, (0.5, 0.38, 0.5), (0.10, 0.12, 0.35), 850.0)]},
    "Task02_Heart": {"name": "LeftAtrium", "prefix": "la", "modality": "MRI", "dtype": np.uint16,
                     "labels": ("background", "left atrium"), "spacing": (1.25, 1.25, 1.37),
                     "ct": False,
                     "organs": [(0, (0.45, 0.6, 0.5), (0.12, 0.1, 0.4), 650.0),
                                (1, (0.55, 0.4, 0.5), (0.11, 0.09, 0.35), 900.0)]},
}
_FORK = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(50)


def _upsample(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    pos = np.linspace(0.0, a.shape[axis] - 1.0, n)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, a.shape[axis] - 1)
    w = (pos - i0).reshape([-1 if k == axis else 1 for k in range(a.ndim)])
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i1, axis=axis) * w


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], cells: int = 4) -> np.ndarray:
    """Trilinearly interpolated coarse noise in [-1, 1]: texture with no voxel-level pattern."""
    out = rng.uniform(-1.0, 1.0, size=tuple(min(cells, s) + 1 for s in shape))
    for axis, n in enumerate(shape):
        out = _upsample(out, n, axis)
    return out.astype(np.float32)


def ellipsoid(shape: tuple[int, int, int], centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    """Boolean RAS-ordered ellipsoid; centre and radii are fractions of the field of view."""
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij", sparse=True)
    return sum(((g - c) / max(r, 1e-3)) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


def draw_case(rng: np.random.Generator, shape: tuple[int, int, int], organs: list, ct: bool,
              ring: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One case in RAS order: (intensities float32, labels uint8), organs jittered per case.

    ``ring``: intensity of a bright outer ring (T1 subcutaneous fat; the rib cage on CT). It holds
    the top 5 % of a slice, so a per-slice 5th-95th percentile window keeps the organs' contrast.
    """
    body_level, outside = (20.0, -1000.0) if ct else (400.0, 60.0)
    z_body = ellipsoid(shape, (0.5, 0.5, 0.5), (0.45, 0.38, 10.0))
    img = np.where(z_body, body_level, outside).astype(np.float32)
    ring = 1300.0 if ring is None and not ct else ring
    if ring is not None:
        img[z_body & ~ellipsoid(shape, (0.5, 0.5, 0.5), (0.38, 0.31, 10.0))] = ring
    labels = np.zeros(shape, dtype=np.uint8)
    shift = rng.uniform(-0.03, 0.03, size=3)
    for label, centre, radii, level in organs:
        scale = rng.uniform(0.85, 1.15)
        region = ellipsoid(shape, tuple(np.add(centre, shift)), tuple(np.multiply(radii, scale))) & z_body
        img[region] = level + rng.uniform(-15.0, 15.0) * (1 if ct else 2)
        labels[region] = label
    if ct:
        img += 25.0 * smooth_noise(rng, shape) + rng.normal(0.0, 8.0, size=shape).astype(np.float32)
    else:
        img = img * (1.0 + 0.15 * smooth_noise(rng, shape)) + rng.normal(0.0, 15.0, size=shape)
    return img.astype(np.float32), labels


def save_nifti(path: Path, ras: np.ndarray, spacing: tuple[float, float, float], dtype: Any,
               flip_xy: bool) -> None:
    """Store a RAS array as .nii.gz; ``flip_xy`` stores it as scanners do (x, y axes negative)."""
    sx, sy, sz = spacing
    data = ras[::-1, ::-1, :] if flip_xy else ras
    affine = np.diag([-sx if flip_xy else sx, -sy if flip_xy else sy, sz, 1.0])
    affine[:3, 3] = [(ras.shape[0] - 1) * sx / 2 * (1 if flip_xy else -1),
                     (ras.shape[1] - 1) * sy / 2 * (1 if flip_xy else -1), -(ras.shape[2] - 1) * sz / 2]
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    img = nib.Nifti1Image(np.ascontiguousarray(data).astype(dtype), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _rng(seed: int, task: str, case: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task.encode()), case])


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=4) + "\n")


def _size(size: str) -> dict[str, Any]:
    if size not in SIZES:
        raise ConfigError("phantom size", f"got {size!r}, expected one of {sorted(SIZES)}",
                          "use size=\"tiny\" (tests) or size=\"small\" (demo profile)")
    return SIZES[size]


def write_msd_phantom(root: Path, size: str = "tiny", seed: int = 0, *, task: str = "Task09_Spleen") -> None:
    """Write an MSD task folder: dataset.json, imagesTr/labelsTr, imagesTs and ``._*`` forks."""
    root, cfg, spec = Path(root), _size(size), _TASKS[task]
    xy = cfg["hippo_xy"] if task == "Task04_Hippocampus" else cfg["xy"]
    shape = (xy[0], xy[1], cfg["z"])
    root.mkdir(parents=True, exist_ok=True)
    training, test = [], []
    for n in range(cfg["cases"] + cfg["tests"]):
        name = f"{spec['prefix']}_{2 * n + 1}.nii.gz"
        img, lab = draw_case(_rng(seed, task, n), shape, spec["organs"], spec["ct"], spec.get("ring"))
        if n < cfg["cases"]:
            save_nifti(root / "imagesTr" / name, img, spec["spacing"], spec["dtype"], spec["ct"])
            save_nifti(root / "labelsTr" / name, lab, spec["spacing"], np.uint8, spec["ct"])
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            save_nifti(root / "imagesTs" / name, img, spec["spacing"], spec["dtype"], spec["ct"])
            test.append(f"./imagesTs/{name}")
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        first = sorted(p.name for p in (root / folder).iterdir())[0]
        (root / folder / f"._{first}").write_bytes(_FORK)
    (root / "._dataset.json").write_bytes(_FORK)
    _write_json(root / "dataset.json", {
        "name": spec["name"], "description": "radbench phantom (synthetic, not patient data)",
        "reference": "synthetic", "licence": "CC-BY-SA 4.0", "release": "1.0 (phantom)",
        "tensorImageSize": "3D", "modality": {"0": spec["modality"]},
        "labels": {str(i): name for i, name in enumerate(spec["labels"])},
        "numTraining": len(training), "numTest": len(test), "training": training, "test": test})


def write_amos_phantom(root: Path, size: str = "tiny", seed: int = 0) -> None:
    """Write an AMOS 2022 folder: dataset.json, imagesTr/labelsTr, imagesVa/labelsVa, CT + MRI ids."""
    root, cfg = Path(root), _size(size)
    shape = (cfg["xy"][0], cfg["xy"][1], cfg["z"])
    n_tr = cfg["cases"] - cfg["va"]
    ct_ids = [3 * n + 1 for n in range(n_tr)] + [3 * n + 2 for n in range(cfg["va"])]
    mri_ids = [507 + n for n in range(2 * cfg["mri"])]
    sections: dict[str, list[dict[str, str]]] = {"training": [], "validation": []}
    for n, case in enumerate(ct_ids + mri_ids):
        is_mri = case > 500
        va = (n >= n_tr and not is_mri) or (is_mri and case % 2 == 0)
        sub = "Va" if va else "Tr"
        name = f"amos_{case:04d}.nii.gz"
        img, lab = draw_case(_rng(seed, "amos22", case), shape, _AMOS_ORGANS, ct=not is_mri)
        if is_mri:
            img = np.clip(img, 0, None)
        dtype = np.uint16 if is_mri else np.int16
        save_nifti(root / f"images{sub}" / name, img, (0.7, 0.7, 5.0), dtype, flip_xy=not is_mri)
        save_nifti(root / f"labels{sub}" / name, lab, (0.7, 0.7, 5.0), np.uint8, flip_xy=not is_mri)
        sections["validation" if va else "training"].append(
            {"image": f"./images{sub}/{name}", "label": f"./labels{sub}/{name}"})
    _write_json(root / "dataset.json", {
        "name": "AMOS", "description": "radbench phantom of AMOS 2022 (synthetic)",
        "tensorImageSize": "3D", "modality": {"0": "CT"},
        "labels": {str(i): name for i, name in enumerate(AMOS_LABELS)},
        "numTraining": len(sections["training"]), "numValidation": len(sections["validation"]),
        "numTest": 0, "training": sections["training"], "validation": sections["validation"],
        "test": []})
