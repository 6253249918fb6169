"""Where a DICOM slice's pixels lie in the patient, and how to turn them to radbench's axial display.

Why: a CT or MR slice may be stored with its rows running from posterior to anterior, its columns
from left to right, or transposed; ``ImageOrientationPatient`` (IOP, PS3.3 C.7.6.2.1.1) says so. Read
as stored, the same anatomy would reach the model mirrored or turned depending on the scanner, and
the same volume would give another input from DICOM than from NIfTI. radbench shows every axial
slice as ``volumes.py`` shows a NIfTI slice (rows anterior -> posterior, columns the patient's right
-> left), which in DICOM's LPS frame is IOP ``[1, 0, 0, 0, 1, 0]``: columns grow toward +x (left),
rows toward +y (posterior). Any axis-aligned IOP is brought there by a transpose and flips (as NIfTI
volumes are brought to their closest canonical frame); a sagittal or coronal slice, or one tilted more
than :data:`OBLIQUE_DEGREES` from the scanner axes, is refused in one line (no resampling is guessed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from radbench_core.core.errors import DatasetError

OBLIQUE_DEGREES = 10.0     # tilt from the nearest scanner axis still read as that axis (gantry tilt)
_PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}


class Display(NamedTuple):
    """What turns a stored slice into the display: transpose first, then the flips."""
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, arr: np.ndarray) -> np.ndarray:
        out = arr.T if self.transpose else arr
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def orientation_of(ds, path: Path) -> tuple[float, ...] | None:
    """The six IOP direction cosines as floats, or None when the file has none (projection X-ray)."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) == 0:
        return None
    try:
        values = tuple(float(v) for v in iop)
    except (TypeError, ValueError) as exc:
        raise DatasetError(path, f"ImageOrientationPatient {list(iop)} is not six numbers ({exc})",
                           "re-export the file; its orientation attribute is malformed") from exc
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise DatasetError(path, f"ImageOrientationPatient {list(values)} is not six finite numbers",
                           "re-export the file; its orientation attribute is malformed")
    return values


def display_of(ds, path: Path) -> Display:
    """The transpose/flips that bring this slice to the axial display; refuses other planes and tilts."""
    iop = orientation_of(ds, path)
    if iop is None:
        return Display()
    along_row, along_col = np.asarray(iop[:3]), np.asarray(iop[3:])    # column index grows / row index grows
    if np.linalg.norm(along_row) < 1e-6 or np.linalg.norm(along_col) < 1e-6:
        raise DatasetError(path, f"ImageOrientationPatient {list(iop)} has a zero direction",
                           "re-export the file; its orientation attribute is malformed")
    normal = np.cross(along_row, along_col)
    shown = ", ".join(f"{v:g}" for v in iop)
    plane = int(np.argmax(np.abs(normal)))
    if plane != 2:
        raise DatasetError(path, f"a {_PLANES[plane]} slice (ImageOrientationPatient [{shown}]); radbench "
                                 "reads axial slices, as it reslices NIfTI volumes",
                           "export the series as axial slices, or as one NIfTI volume")
    tilt = max(_degrees_off_axis(along_row), _degrees_off_axis(along_col))
    if tilt > OBLIQUE_DEGREES:
        raise DatasetError(path, f"an oblique slice, {tilt:.1f} degrees off the scanner axes "
                                 f"(ImageOrientationPatient [{shown}]; up to {OBLIQUE_DEGREES:g} read as "
                                 "axis-aligned)", "resample the series onto an axial grid first")
    transpose = int(np.argmax(np.abs(along_row))) == 1                 # columns run along y: swap axes
    if transpose:
        along_row, along_col = along_col, along_row
    return Display(transpose=transpose, flip_rows=bool(along_col[1] < 0), flip_cols=bool(along_row[0] < 0))


def _degrees_off_axis(direction: np.ndarray) -> float:
    cosine = float(np.max(np.abs(direction)) / np.linalg.norm(direction))
    return math.degrees(math.acos(min(1.0, cosine)))


def read_header(path: Path):
    """The file's attributes without pixels (cheap, for geometry checks)."""
    try:
        import pydicom
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except ImportError as exc:
        raise DatasetError(path, "a DICOM file, but pydicom is not installed",
                           "pip install 'radbench[dicom]' (or pip install pydicom)") from exc
    except FileNotFoundError as exc:
        raise DatasetError(path, "the file is missing", "restore it from the dataset release") from exc
    except Exception as exc:  # noqa: BLE001 - any header failure means an unreadable file
        raise DatasetError(path, f"cannot read the DICOM header ({type(exc).__name__}: {exc})",
                           "re-export or re-download it") from exc


def stored_shape(ds, path: Path) -> tuple[int, int]:
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DatasetError(path, "the DICOM header has no Rows/Columns (not an image)",
                           "use DICOM image files") from exc


def grid_of(ds, path: Path) -> dict[str, tuple[float, ...] | None]:
    """Orientation, position and spacing of the pixel grid (None where the file does not say)."""
    def numbers(name: str) -> tuple[float, ...] | None:
        value = ds.get(name)
        try:
            return None if value is None or len(value) == 0 else tuple(float(v) for v in value)
        except (TypeError, ValueError):
            return None
    return {"orientation": orientation_of(ds, path), "position": numbers("ImagePositionPatient"),
            "spacing": numbers("PixelSpacing")}
