"""Shared helpers of the 2D dataset readers: metadata CSVs, safe relative paths, image decoding.

Every reader goes through these so a missing column, a path that escapes the dataset folder or a
corrupt PNG/JPEG fails the same way: a DatasetError naming the file, what was expected and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from radbench_core.data.datasets.base import DatasetIndex, Item
from radbench_core.data.datasets.preprocess import to_unit
from radbench_core.core.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_csv(path: Path, required: Sequence[str], fix: str) -> pd.DataFrame:
    """Read a metadata CSV as strings; missing file or any missing required column is a DatasetError.

    ``index_col=False`` keeps a trailing comma (the original NIH file has one on every row) from
    shifting the columns; every value is read as text so blanks stay blanks ("" not NaN).
    """
    if not path.is_file():
        raise DatasetError(path, "the metadata CSV is missing", fix)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(path, f"cannot parse the CSV ({exc})", fix) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DatasetError(path, f"required column(s) {missing} not found (columns present: "
                                 f"{list(frame.columns)[:12]})", fix)
    return frame


def safe_relpath(rel: str, where: str | Path) -> str:
    """Normalise a path read from metadata to a POSIX path inside the dataset root, or refuse it.

    Metadata is untrusted input: an absolute path or a ``..`` component could make radbench read
    (or a phantom writer write) outside the dataset folder.
    """
    text = str(rel).strip().replace("\\", "/")
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or (len(text) > 1 and text[1] == ":") or ".." in pure.parts:
        raise DatasetError(where, f"the path {rel!r} is absolute or escapes the dataset folder; "
                                  "expected a path relative to the dataset root",
                           "restore the original metadata file from the dataset download")
    return pure.as_posix()


def list_files(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[str]:
    """Names of the files in one folder (one ``os.scandir``, no per-file stat), hidden files skipped."""
    suffixes = tuple(s.lower() for s in suffixes)
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries
                    if not e.name.startswith(".") and e.name.lower().endswith(suffixes)]
    except FileNotFoundError:
        return []


def list_dirs(folder: Path) -> list[str]:
    """Names of the subfolders of one folder (hidden ones skipped); empty if it does not exist."""
    try:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
    except FileNotFoundError:
        return []


def read_gray(path: Path) -> np.ndarray:
    """Decode one PNG/JPEG to an (H, W) float32 image in [0, 1]; unreadable files are DatasetErrors."""
    return to_unit(read_raw(path))


def read_raw(path: Path) -> np.ndarray:
    """Decode one PNG/JPEG to its 2D array as displayed (EXIF orientation applied; masks keep their raw
    values to binarise)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(path, "the image file is missing",
                           "download the complete dataset (all image archives) into this folder")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)      # an EXIF-rotated file is read as it is displayed
            if img.mode not in ("L", "1", "I;16", "I;16B", "I;16L", "I", "F"):
                img = img.convert("L")
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(path, f"cannot decode the image ({exc}); expected a readable PNG or JPEG",
                           "re-download this file; a truncated download is the usual cause") from exc
    if arr.ndim != 2:
        raise DatasetError(path, f"expected a 2D grayscale image, got shape {arr.shape}",
                           "re-download this file from the official release")
    check_not_degenerate(arr.shape, path)
    return arr


def check_not_degenerate(shape: Sequence[int], path: str | Path) -> None:
    """An empty or 1-pixel-wide image cannot be resized or scored: refuse it naming the file."""
    if len(shape) < 2 or min(shape) < 2:
        raise DatasetError(path, f"degenerate image of shape {tuple(shape)}; expected at least 2 x 2 "
                                 "pixels", "re-download or re-export this file; it is empty or cut")


EXIF_ORIENTATION = 0x0112
_ORIENTATION_NAMES = {1: "normal", 2: "mirrored", 3: "rotated 180", 4: "flipped", 5: "transposed",
                      6: "rotated 90 CW", 7: "transverse", 8: "rotated 90 CCW"}


def image_orientation(path: Path) -> int:
    """The EXIF orientation tag of an image (1 = stored as displayed); header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (UnidentifiedImageError, OSError, ValueError):
        return 1


def check_mask_geometry(image: Path, mask: Path, mask_shape: Sequence[int]) -> None:
    """A 2D mask must have its image's size and orientation, else it scores a misaligned mask."""
    shape = image_shape(image)
    if tuple(mask_shape) != tuple(shape):
        turned = tuple(mask_shape) == tuple(shape)[::-1]
        raise DatasetError(mask, f"mask shape {tuple(mask_shape)} differs from the image shape "
                                 f"{tuple(shape)} of {image}" + (" (it looks rotated/transposed)"
                                                                 if turned else ""),
                           "use the masks that belong to this image (same release)")
    o_img, o_mask = image_orientation(image), image_orientation(mask)
    if o_img != o_mask:
        raise DatasetError(mask, f"mask orientation ({_ORIENTATION_NAMES.get(o_mask, o_mask)}, EXIF "
                                 f"tag {o_mask}) differs from its image {image} "
                                 f"({_ORIENTATION_NAMES.get(o_img, o_img)}, EXIF tag {o_img})",
                           "re-save the mask without an EXIF orientation (or with its image's)")


def image_shape(path: Path) -> tuple[int, int]:
    """(H, W) from the file header only (no pixel decode): cheap shape checks for image/mask pairs."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except FileNotFoundError as exc:
        raise DatasetError(path, "the image file is missing",
                           "download the complete dataset into this folder") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(path, f"cannot read the image header ({exc})",
                           "re-download this file; a truncated download is the usual cause") from exc


@dataclass
class ImageFileIndex(DatasetIndex):
    """Index of a 2D dataset whose item is one PNG/JPEG: ``load_slices`` gives ``(1, H, W)``."""

    def load_slices(self, item: Item) -> np.ndarray:
        return read_gray(self.root / item.images[0])[None]
