"""Montgomery County phantom: ``CXR_png/`` films and ``ManualMask/{left,right}Mask/`` lung masks.

The masks are exactly the two dark lung ellipses of the film (patient's left = image right), so a
segmenter can learn them; anatomy, size and noise vary per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.data.datasets.montgomery import IMAGE_DIR, LEFT_DIR, RIGHT_DIR
from radbench_core.data.phantoms.draw import chest, patient_anatomy, save_png, size_of, to_uint8


def write_phantom(root: Path, size: str = "tiny", seed: int = 0) -> None:
    """Write ``root`` as the Montgomery release: one film + left/right masks per patient."""
    n_images = size_of(size, 30, 64, "phantom size for mc")
    px = size_of(size, 64, 128, "phantom size for mc")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for i in range(1, n_images + 1):
        name = f"MCUCXR_{i:04d}_{int(i % 3 == 0)}.png"
        img, left, right = chest(rng, px, patient_anatomy(rng))
        save_png(root / IMAGE_DIR / name, to_uint8(img))
        save_png(root / LEFT_DIR / name, (left * 255).astype(np.uint8))
        save_png(root / RIGHT_DIR / name, (right * 255).astype(np.uint8))
