"""The 95th-percentile Hausdorff distance (HD95) per foreground class, with the voxel spacing.

Convention: MONAI's ``compute_hausdorff_distance(percentile=95, include_background=False,
directed=False)``, which the tests check this module against. Per class, the surface of a mask is
its voxels that a binary erosion (face connectivity, outside the volume counts as background)
removes; every surface voxel of the prediction gets its Euclidean distance (in mm when the spacing
is given) to the nearest surface voxel of the reference and vice versa; HD95 is the larger of the
two directed 95th percentiles (linear interpolation). Empty masks: a class absent from both gives
NaN (as MONAI); a class present in only one of them gives inf, MONAI's value for the plain Hausdorff
distance (its HD95 there is NaN only because ``torch.quantile`` interpolates inf - inf; inf keeps
"missed" apart from "absent"). Aggregation per class: the mean over the volumes where both hold the
class (finite HD95), with the count of those and of the one-sided volumes beside it. A 2D image
is scored in 2D (a single slice ``(1, H, W)`` is squeezed: scored as 3D, every one of its voxels
would lie on the surface).

Implementation: scipy's exact Euclidean distance transform on the union bounding box of the class
in the two masks (plus one voxel), one bounding-box pass (``find_objects``) for all classes.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy import ndimage

from radbench_core.core.errors import ConfigError

PERCENTILE = 95.0
CONVENTION = ("HD95 as MONAI compute_hausdorff_distance(percentile=95): the larger of the two directed "
              "95th percentiles of surface-voxel distances; per organ the mean over the test volumes "
              "where prediction and reference both hold it (a volume where only one does is counted "
              "apart, HD95 = inf)")


def _spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    s = np.asarray(spacing, dtype=np.float64).ravel()
    if s.size == 3 and ndim == 2:
        s = s[1:]                                   # a single slice: keep the in-plane spacing
    if s.size != ndim or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ConfigError("surface_distance(spacing)", f"spacing {list(np.atleast_1d(spacing))} for a "
                          f"{ndim}D mask", f"give {ndim} positive voxel sizes in the array's axis order")
    return s


def _squeezed(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ConfigError("surface_distance", f"prediction {p.shape} and reference {r.shape} differ in shape",
                          "resample the prediction to the reference's grid before scoring")
    if p.ndim == 3 and p.shape[0] == 1:
        p, r = p[0], r[0]
    if p.ndim not in (2, 3):
        raise ConfigError("surface_distance", f"masks of shape {p.shape}",
                          "pass a 2D image (H, W) or a volume (S, H, W)")
    return p, r


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask ^ ndimage.binary_erosion(mask)       # border_value 0: the volume's edge is surface


def _directed(from_surface: np.ndarray, to_surface: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance of every voxel of ``from_surface`` to the nearest voxel of ``to_surface``."""
    if not to_surface.any():
        return np.full(int(from_surface.sum()), np.inf)
    return ndimage.distance_transform_edt(~to_surface, sampling=spacing)[from_surface]


def _hd_in_box(p: np.ndarray, r: np.ndarray, spacing: np.ndarray, percentile: float) -> float:
    if not p.any() and not r.any():
        return math.nan
    if not p.any() or not r.any():
        return math.inf
    sp, sr = _surface(p), _surface(r)
    return float(max(np.percentile(_directed(sp, sr, spacing), percentile),
                     np.percentile(_directed(sr, sp, spacing), percentile)))


def hausdorff(pred_mask: np.ndarray, ref_mask: np.ndarray, spacing: Sequence[float] | None = None,
              percentile: float = PERCENTILE) -> float:
    """HD (``percentile``, default 95) between two binary masks; NaN both empty, inf one empty."""
    p, r = _squeezed(np.asarray(pred_mask).astype(bool), np.asarray(ref_mask).astype(bool))
    return _hd_in_box(p, r, _spacing(spacing, p.ndim), percentile)


def _box(a: slice | None, b: slice | None, shape: tuple[int, ...]) -> tuple[slice, ...]:
    boxes = [x for x in (a, b) if x is not None]
    return tuple(slice(max(0, min(x[d].start for x in boxes) - 1), min(n, max(x[d].stop for x in boxes) + 1))
                 for d, n in enumerate(shape))


def hd95_per_class(pred: np.ndarray, target: np.ndarray, num_classes: int,
                   spacing: Sequence[float] | None = None, percentile: float = PERCENTILE) -> np.ndarray:
    """HD95 of each foreground class 1..num_classes-1 of two integer label maps ``(C-1,)``."""
    p, t = _squeezed(pred, target)
    if not (np.issubdtype(p.dtype, np.integer) and np.issubdtype(t.dtype, np.integer)):
        raise ConfigError("surface_distance.hd95_per_class", f"label maps must be integer, got {p.dtype} "
                          f"and {t.dtype}", "argmax the logits into class indices first")
    s = _spacing(spacing, p.ndim)
    out = np.full(num_classes - 1, np.nan)
    objects_p = ndimage.find_objects(np.clip(p, 0, None), max_label=num_classes - 1)
    objects_t = ndimage.find_objects(np.clip(t, 0, None), max_label=num_classes - 1)
    for c in range(1, num_classes):
        bp, bt = objects_p[c - 1], objects_t[c - 1]
        if bp is None and bt is None:
            continue
        box = _box(bp, bt, p.shape)
        out[c - 1] = _hd_in_box(p[box] == c, t[box] == c, s, percentile)
    return out


def per_item_hd95(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], num_classes: int,
                  spacings: Sequence[Sequence[float] | None] | None = None) -> np.ndarray:
    """``(items, C-1)`` HD95 of each test volume at its own spacing (None: 1 per voxel)."""
    spacings = list(spacings) if spacings is not None else [None] * len(preds)
    if not (len(preds) == len(targets) == len(spacings)):
        raise ConfigError("surface_distance.per_item_hd95", f"{len(preds)} predictions, {len(targets)} "
                          f"references and {len(spacings)} spacings", "pass one of each per test item")
    rows = [hd95_per_class(p, t, num_classes, s) for p, t, s in zip(preds, targets, spacings)]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), num_classes - 1)


def summarise_hd95(hd: np.ndarray, class_names: Sequence[str]) -> dict[str, object]:
    """Per class the mean over volumes where both prediction and reference hold it (finite HD95),
    the number of such volumes and of volumes where only one holds it; the mean over classes."""
    hd = np.asarray(hd, dtype=np.float64).reshape(-1, len(class_names))
    finite = np.isfinite(hd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(np.where(finite, hd, np.nan), axis=0)
        overall = float(np.nanmean(means)) if np.isfinite(means).any() else math.nan
    return {"per_class": {c: float(m) for c, m in zip(class_names, means)},
            "volumes_scored": {c: int(n) for c, n in zip(class_names, finite.sum(axis=0))},
            "volumes_one_empty": {c: int(n) for c, n in zip(class_names, np.isinf(hd).sum(axis=0))},
            "mean": overall}
