"""NIfTI volumes served as axial slice stacks, each decoded once per process (bounded LRU cache).

Orientation (documented, tested): the volume is reoriented to the closest canonical RAS+ frame
(``nibabel.as_closest_canonical``) and returned as ``(S, H, W)``: slices from inferior to superior,
rows from anterior (top) to posterior, columns from the patient's right to left (radiological
display), i.e. ``out[s, h, w] = ras[X - 1 - w, Y - 1 - h, s]``. Image and mask use the same
mapping, so they align voxel for voxel.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import io_orientation

from radbench_core.data.datasets.base import DatasetIndex, Item
from radbench_core.data.datasets.preprocess import check_finite, window_ct
from radbench_core.core.errors import DatasetError

_DECODE_ERRORS = (EOFError, zlib.error, OSError, ValueError, ImageFileError)
_REDOWNLOAD = "re-download or re-extract this file (it is truncated or not a NIfTI file)"


def _open(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        raise DatasetError(path, "the NIfTI file is missing", "restore the file from the download")
    try:
        img = nib.load(str(path))
    except _DECODE_ERRORS as exc:
        raise DatasetError(path, f"cannot read the NIfTI header ({type(exc).__name__}: {exc})",
                           _REDOWNLOAD) from exc
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DatasetError(path, f"expected a 3D volume, the header says shape {img.shape}",
                           "use the single-channel 3D volumes of the release")
    if min(shape) < 1 or min(sorted(shape)[1:]) < 2:
        raise DatasetError(path, f"degenerate volume of shape {tuple(img.shape)}; expected at least "
                                 "one slice of 2 x 2 voxels",
                           "re-export this file; an empty or 1-voxel volume cannot be scored")
    return img


def axial_shape(path: str | Path) -> tuple[int, int, int]:
    """``(S, H, W)`` the volume will have, from the header alone (no voxel data is decoded)."""
    img = _open(Path(path))
    ornt = io_orientation(img.affine)
    canon = [0, 0, 0]
    for axis in range(3):
        canon[int(ornt[axis, 0])] = int(img.shape[axis])
    return canon[2], canon[1], canon[0]


def axial_spacing(path: str | Path) -> tuple[float, float, float]:
    """Voxel size in mm along ``(S, H, W)``, from the header's affine (no voxel data is decoded)."""
    img = _open(Path(path))
    sizes = np.sqrt((np.asarray(img.affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    canon = [1.0, 1.0, 1.0]
    for axis, (target, _) in enumerate(io_orientation(img.affine)):
        canon[int(target)] = float(sizes[axis])
    return canon[2], canon[1], canon[0]


def ras_to_axial(ras: np.ndarray) -> np.ndarray:
    """Canonical RAS+ ``(X, Y, Z)`` array -> ``(S, H, W)`` radiological slice stack (contiguous)."""
    return np.ascontiguousarray(ras.transpose(2, 1, 0)[:, ::-1, ::-1])


def _decode(path: Path, as_label: bool) -> np.ndarray:
    img = _open(path)
    try:
        canon = nib.as_closest_canonical(img)
        data = np.asanyarray(canon.dataobj) if as_label else canon.get_fdata(dtype=np.float32)
    except _DECODE_ERRORS as exc:
        raise DatasetError(path, f"the voxel data cannot be decoded ({type(exc).__name__}: {exc})",
                           _REDOWNLOAD) from exc
    if data.ndim == 4:
        data = data[..., 0]
    check_finite(data, path)
    if as_label and not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise DatasetError(path, "label volume holds non-integer values, expected class indices",
                               "use the label files of the release (integer class maps)")
        data = rounded
    return ras_to_axial(np.asarray(data, dtype=np.int64 if as_label else np.float32))


class VolumeCache:
    """Per-process LRU of decoded volumes bounded in bytes (the newest entry is always kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.decodes = 0

    def get(self, key: tuple, load: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            if key in self._entries:
                self.hits += 1
                self._entries.move_to_end(key)
                return self._entries[key]
            self.misses += 1
        arr = load()
        arr.setflags(write=False)                 # shared by every caller: nobody may edit it
        with self._lock:
            self.decodes += 1
            self._entries[key] = arr
            self._entries.move_to_end(key)
            while len(self._entries) > 1 and self.nbytes > self.max_bytes:
                self._entries.popitem(last=False)
        return arr

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = self.decodes = 0

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "decodes": self.decodes,
                "entries": len(self._entries), "bytes": self.nbytes, "max_bytes": self.max_bytes}


VOLUME_CACHE = VolumeCache(int(float(os.environ.get("RADBENCH_VOLUME_CACHE_MB", "2048")) * 2**20))


def _key(path: Path, what: str) -> tuple:
    st = path.stat() if path.exists() else None
    return (str(path.resolve()), st.st_mtime_ns if st else 0, st.st_size if st else -1, what)


def load_image(path: str | Path, window: Callable[[np.ndarray], np.ndarray] = window_ct) -> np.ndarray:
    """Windowed ``(S, H, W)`` float32 in [0, 1], decoded once and then served from the cache.

    The array is read-only (it is shared); copy it before modifying it in place.
    """
    path = Path(path)
    name = f"image:{getattr(window, '__module__', '')}.{getattr(window, '__qualname__', repr(window))}"

    def load() -> np.ndarray:
        return np.asarray(window(_decode(path, as_label=False)), dtype=np.float32)

    return VOLUME_CACHE.get(_key(path, name), load)


def load_label(path: str | Path, num_classes: int) -> np.ndarray:
    """``(S, H, W)`` int64 class map with values checked to lie in ``0..num_classes`` (cached, read-only)."""
    path = Path(path)

    def load() -> np.ndarray:
        labels = _decode(path, as_label=True)
        values = np.unique(labels)
        bad = values[(values < 0) | (values > num_classes)]
        if bad.size:
            raise DatasetError(path, f"label values {bad.tolist()[:10]} are outside the declared "
                                     f"0..{num_classes} (0 = background)",
                               "use the label files of this dataset's release; other label sets "
                               "need their own dataset spec")
        return labels

    return VOLUME_CACHE.get(_key(path, f"label:{num_classes}"), load)


AFFINE_TOLERANCE_MM = 1e-3       # voxel-to-world disagreement allowed between image and label


def check_geometry(image: Path, label: Path, tol_mm: float = AFFINE_TOLERANCE_MM) -> tuple[int, int, int]:
    """Header-only check that image and label share shape, orientation and affine; returns (S, H, W).

    A label with the right shape but another orientation (flipped axis, swapped axes) or another
    voxel grid would score a misaligned mask: that is a wrong number, so it is refused here.
    The affines are compared where it matters: the world position of the volume's corners.
    """
    img, lbl = _open(Path(image)), _open(Path(label))
    shape_img, shape_lbl = axial_shape(image), axial_shape(label)
    if shape_img != shape_lbl:
        raise DatasetError(label, f"label shape (S, H, W) = {shape_lbl} does not match its image "
                                  f"{image} with {shape_img}",
                           "pair each image with its own label file from the same release")
    codes_img = "".join(nib.aff2axcodes(img.affine))
    codes_lbl = "".join(nib.aff2axcodes(lbl.affine))
    if codes_img != codes_lbl:
        raise DatasetError(label, f"label orientation {codes_lbl} differs from its image {image} "
                                  f"({codes_img})",
                           "use the label file of the release (same orientation as its image), or "
                           "reorient it to the image's grid")
    corners = np.array([[i, j, k, 1.0] for i in (0, img.shape[0] - 1) for j in (0, img.shape[1] - 1)
                        for k in (0, img.shape[2] - 1)])
    world_img = corners @ np.asarray(img.affine, dtype=np.float64).T
    world_lbl = corners @ np.asarray(lbl.affine, dtype=np.float64).T
    if not (np.all(np.isfinite(world_img)) and np.all(np.isfinite(world_lbl))):
        raise DatasetError(label if not np.all(np.isfinite(world_lbl)) else image,
                           "the NIfTI affine holds NaN/inf", _REDOWNLOAD)
    gap = float(np.max(np.abs(world_img - world_lbl)))
    scale = max(1.0, float(np.max(np.abs(world_img))))
    if gap > max(tol_mm, 1e-6 * scale):
        raise DatasetError(label, f"label affine differs from its image {image} by up to "
                                  f"{gap:.3g} mm at the volume corners (tolerance {tol_mm:g} mm)",
                           "use the label file of the release, resampled to its image's voxel grid")
    return shape_img


def check_pair(image: Path, label: Path) -> int:
    """Header-only check that image and label agree (shape, orientation, affine); returns slices."""
    return check_geometry(image, label)[0]


@dataclass
class NiftiIndex(DatasetIndex):
    """A DatasetIndex whose items are NIfTI cases: one image and (when labelled) one label file."""
    window: Callable[[np.ndarray], np.ndarray] = window_ct

    def load_slices(self, item: Item) -> np.ndarray:
        """``(S, H, W)`` float32 in [0, 1] (read-only, cached); see the module doc for orientation."""
        return load_image(self.root / item.images[0], self.window)

    def load_mask(self, item: Item) -> np.ndarray:
        """``(S, H, W)`` int64 in 0..num_classes (read-only, cached), aligned with load_slices."""
        if not item.masks:
            raise DatasetError(self.root / item.images[0], "this case has no label file",
                               "use labelled cases (imagesTr/labelsTr) for segmentation")
        return load_label(self.root / item.masks[0], self.spec.num_classes)

    def voxel_spacing(self, item: Item) -> tuple[float, float, float] | None:
        """The label file's voxel size in mm along ``(S, H, W)`` (header only)."""
        return axial_spacing(self.root / (item.masks or item.images)[0])
