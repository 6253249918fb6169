"""Intensity preprocessing shared by all datasets (the study's appendix): everything to [0, 1].

CT is clipped to a fixed Hounsfield window so tissue contrast means the same in every scan; MRI has
no absolute scale, so an image is clipped to its own 5th-95th percentile. The study's code does the
MSD volumes (Heart and Hippocampus MRI, and also Spleen CT) slice by slice: each axial slice clipped
to ITS 5th-95th percentile (:func:`window_percentile_per_slice`; the paper's A.2 says per volume for
MRI, the code we follow does per slice). 8/16-bit and float images are min-max scaled. Resizing, 3 channels and model normalisation happen later (transforms).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.core.errors import DatasetError

CT_WINDOW_HU: tuple[float, float] = (-1024.0, 600.0)
MRI_PERCENTILES: tuple[float, float] = (5.0, 95.0)


def _scale(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and map linearly to [0, 1] as float32; a zero-width range gives zeros."""
    if not hi > lo:
        return np.zeros(arr.shape, dtype=np.float32)
    inverse = 1.0 / (float(hi) - float(lo))
    if inverse > float(np.finfo(np.float32).max):          # a sub-normal range: float32 cannot hold 1/width, use float64
        wide = (np.clip(np.asarray(arr, dtype=np.float64), lo, hi) - lo) / (float(hi) - float(lo))
        return np.clip(wide, 0.0, 1.0).astype(np.float32)
    out = np.clip(np.asarray(arr, dtype=np.float32), np.float32(lo), np.float32(hi))
    out -= np.float32(lo)
    out *= np.float32(inverse)
    return np.clip(out, 0.0, 1.0, out=out)


def window_ct(hu: np.ndarray) -> np.ndarray:
    """Clip Hounsfield units to [-1024, 600] and scale to [0, 1] (float32)."""
    return _scale(hu, *CT_WINDOW_HU)


def window_mri(vol: np.ndarray) -> np.ndarray:
    """Clip to this volume's 5th-95th percentile and scale to [0, 1]; a constant volume gives zeros."""
    arr = np.asarray(vol)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.float32)
    lo, hi = np.percentile(arr, MRI_PERCENTILES)
    return _scale(arr, float(lo), float(hi))


def window_percentile_per_slice(vol: np.ndarray) -> np.ndarray:
    """``(S, H, W)``: each slice clipped to its own 5th-95th percentile and scaled to [0, 1].

    A constant slice (e.g. empty padding) gives zeros; a 2D image is treated as one slice.
    """
    arr = np.asarray(vol)
    if arr.ndim == 2:
        return window_mri(arr)
    if arr.ndim != 3:
        raise DatasetError("preprocess.window_percentile_per_slice", f"expected (S, H, W), got shape {arr.shape}",
                           "pass one volume as a stack of axial slices")
    out = np.empty(arr.shape, dtype=np.float32)
    for k in range(arr.shape[0]):
        out[k] = window_mri(arr[k])
    return out


def to_unit(img: np.ndarray) -> np.ndarray:
    """Min-max scale an 8/16-bit or float image to [0, 1] float32; a constant image gives zeros."""
    arr = np.asarray(img)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.float32)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return _scale(arr, float(arr.min()), float(arr.max()))


def check_finite(arr: np.ndarray, where: str | Path) -> None:
    """Raise a DatasetError naming ``where`` if the array holds NaN or inf (corrupt export)."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.complexfloating):
        return
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        raise DatasetError(where, f"{bad} of {arr.size} values are not finite ({n_nan} NaN, "
                                  f"{bad - n_nan} inf); expected finite intensities",
                           "re-export or re-download this file; radbench does not guess values")
