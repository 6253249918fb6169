"""Drawing helpers shared by the phantom writers: ellipses, blobs, noise, chest/head backgrounds.

Phantoms must be learnable (a label shows in the pixels) yet never trivially constant, so every
writer composes a per-patient anatomy, a class-specific finding and noise from these pieces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float],
            angle: float = 0.0) -> np.ndarray:
    """Boolean (H, W) mask of a filled ellipse; center/radii in pixels (row, col), angle in radians."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - center[0], xx - center[1]
    c, s = np.cos(angle), np.sin(angle)
    u = (c * dx + s * dy) / max(radii[1], 1e-3)
    v = (-s * dx + c * dy) / max(radii[0], 1e-3)
    return (u * u + v * v) <= 1.0


def blob(shape: tuple[int, int], center: tuple[float, float], sigma: float) -> np.ndarray:
    """A Gaussian bump peaking at 1 (float32): a soft "finding" that survives resizing."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = (yy - center[0]) ** 2 + (xx - center[1]) ** 2
    return np.exp(-d2 / (2.0 * sigma * sigma)).astype(np.float32)


def finding(shape: tuple[int, int], center: tuple[float, float], sigma: float, angle: float,
            period: float) -> np.ndarray:
    """A textured finding: an oriented grating under a Gaussian envelope (peak 1, float32).

    Each class gets its own orientation/period as well as its own place, so the label is visible
    both to position-aware and to pooled, position-invariant features (random-init demo models).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2.0 * np.pi / period)
    return (blob(shape, center, sigma) * (0.5 + 0.5 * np.cos(phase))).astype(np.float32)


def class_texture(c: int, size: int) -> tuple[float, float]:
    """(angle, period) of class ``c``'s grating: 7 orientations x 2 periods."""
    return (c % 7) * np.pi / 7.0, size / (10.0 if c < 7 else 5.0)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: int = 8) -> np.ndarray:
    """Low-frequency noise in [-1, 1] (coarse grid upsampled): texture that varies per image."""
    h, w = shape
    coarse = rng.uniform(-1.0, 1.0, size=(h // scale + 2, w // scale + 2)).astype(np.float32)
    rows = np.minimum(np.arange(h) // scale, coarse.shape[0] - 1)
    cols = np.minimum(np.arange(w) // scale, coarse.shape[1] - 1)
    return coarse[np.ix_(rows, cols)]


def chest(rng: np.random.Generator, size: int,
          anatomy: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frontal chest film: bright body, two dark lungs; returns (image [0,1], left, right lung masks).

    ``anatomy`` holds per-patient jitter (``dx``, ``dy``, ``scale``) so a patient's films look alike
    and different patients differ. The patient's left lung is on the image's right, as on a film.
    """
    shape = (size, size)
    sc = anatomy.get("scale", 1.0)
    cy = size * (0.5 + anatomy.get("dy", 0.0))
    cx = size * (0.5 + anatomy.get("dx", 0.0))
    body = ellipse(shape, (cy, cx), (0.46 * size * sc, 0.40 * size * sc))
    radii = (0.28 * size * sc, 0.12 * size * sc)
    right = ellipse(shape, (cy - 0.02 * size, cx - 0.17 * size * sc), radii, angle=0.08)
    left = ellipse(shape, (cy - 0.02 * size, cx + 0.17 * size * sc), radii, angle=-0.08)
    img = 0.15 + 0.55 * body - 0.35 * (left | right)
    img = img + 0.05 * smooth_noise(rng, shape) + rng.normal(0.0, 0.02, size=shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32), left, right


def patient_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """Per-patient jitter of position and size used by the chest/head drawers."""
    return {"dx": float(rng.uniform(-0.04, 0.04)), "dy": float(rng.uniform(-0.04, 0.04)),
            "scale": float(rng.uniform(0.9, 1.05))}


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float to 8-bit, as the released PNG/JPEG files store it."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: Path, img: np.ndarray) -> None:
    """Write a grayscale PNG (uint8 or uint16 array), creating the folder."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="PNG", compress_level=1)


def save_jpeg(path: Path, img: np.ndarray) -> None:
    """Write a grayscale JPEG (uint8 array), creating the folder."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=95)


def size_of(size: str, tiny: int, small: int, where: str) -> int:
    """Pick the number for a phantom size name; an unknown name is a ConfigError."""
    from radbench_core.core.errors import ConfigError

    table = {"tiny": tiny, "small": small}
    if size not in table:
        raise ConfigError(where, f"unknown phantom size {size!r}", "use 'tiny' or 'small'")
    return table[size]
