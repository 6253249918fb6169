"""SARS-CoV-2 CT phantom: 8-bit axial lung slices, one folder per patient (or the flat release).

COVID volumes carry peripheral ground-glass patches in the lungs; "Others" carry one central dense
consolidation instead (negative, so the label needs the pattern, not just "something is there");
healthy lungs are clean. Some patients have a last slice of a different size, as in the release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.core.errors import ConfigError
from radbench_core.data.phantoms.draw import (blob, ellipse, patient_anatomy, save_png, size_of,
                                         smooth_noise, to_uint8)


def axial_slice(rng: np.random.Generator, shape: tuple[int, int], anatomy: dict[str, float],
                kind: str, z: float) -> np.ndarray:
    """One axial CT slice at relative height z in [0, 1]; kind is "covid", "healthy" or "others"."""
    h, w = shape
    sc = anatomy["scale"] * (0.85 + 0.15 * np.sin(np.pi * z))
    cy, cx = h * (0.5 + anatomy["dy"]), w * (0.5 + anatomy["dx"])
    body = ellipse(shape, (cy, cx), (0.36 * h * sc, 0.46 * w * sc))
    lung_r = (0.26 * h * sc, 0.16 * w * sc)
    lungs = (ellipse(shape, (cy, cx - 0.2 * w * sc), lung_r)
             | ellipse(shape, (cy, cx + 0.2 * w * sc), lung_r))
    img = 0.05 + 0.5 * body - 0.4 * lungs + 0.04 * smooth_noise(rng, shape, scale=4)
    if kind == "covid":
        for side in (-1, 1):
            for _ in range(2):
                py = cy + rng.uniform(-0.18, 0.18) * h * sc
                px = cx + side * (0.28 + rng.uniform(-0.03, 0.03)) * w * sc
                img = img + 0.3 * blob(shape, (py, px), 0.05 * min(h, w)) * lungs
    elif kind == "others":
        img = img + 0.45 * blob(shape, (cy, cx + rng.choice([-1, 1]) * 0.15 * w * sc),
                                0.07 * min(h, w)) * lungs
    img = img + rng.normal(0.0, 0.02, size=shape)
    return np.clip(img, 0.0, 1.0)


def write_phantom(root: Path, size: str = "tiny", seed: int = 0, *, layout: str = "patients") -> None:
    """Write ``root`` as the per-patient release (layout "patients": Covid/, Healthy/, Others/ of
    patient folders) or the flat release (layout "flat": COVID/, non-COVID/ of slice files)."""
    n_covid = size_of(size, 16, 60, "phantom size for sarscov2")
    px = size_of(size, 64, 128, "phantom size for sarscov2")
    if layout not in ("patients", "flat"):
        raise ConfigError("sarscov2 phantom", f"unknown layout {layout!r}", "use 'patients' or 'flat'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    kinds = [("Covid", "covid")] * n_covid + [("Healthy", "healthy")] * (n_covid // 2) \
        + [("Others", "others")] * (n_covid - n_covid // 2)
    counters = {"COVID": 0, "non-COVID": 0}
    for p, (folder, kind) in enumerate(kinds):
        anatomy = patient_anatomy(rng)
        n_slices = int(rng.integers(3, 6)) if layout == "patients" else 1
        patient_no = sum(1 for f, _ in kinds[:p] if f == folder) + 1
        for s in range(n_slices):
            shape = (px, px)
            if layout == "patients" and p % 5 == 4 and s == n_slices - 1:
                shape = (px - px // 8, px)           # a differently sized slice, as in the release
            img = to_uint8(axial_slice(rng, shape, anatomy, kind, (s + 0.5) / n_slices))
            if layout == "patients":
                save_png(root / folder / f"Patient {patient_no}" / f"{s + 1}.png", img)
            else:
                flat = "COVID" if kind == "covid" else "non-COVID"
                counters[flat] += 1
                prefix = "Covid" if flat == "COVID" else "Non-Covid"
                save_png(root / flat / f"{prefix} ({counters[flat]}).png", img)
