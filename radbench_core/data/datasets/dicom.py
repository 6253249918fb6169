"""Reading one DICOM image the way a DICOM viewer shows it, then windowing it like radbench's other formats.

Why: a DICOM file stores raw detector/scanner values plus the instructions to display them; reading
``pixel_array`` and min-max scaling it (what radbench did first) silently inverts MONOCHROME1 chest
X-rays and gives a CT slice a different contrast than the same slice stored as NIfTI. The standard's
pipeline (PS3.3 C.11 / C.7.6.3.1.2), applied here in order:

1. Modality LUT: ``RescaleSlope``/``RescaleIntercept`` (or a Modality LUT Sequence) -> physical values
   (Hounsfield units for CT).
2. By the dataset's ``modality``:
   * ``"ct"``: the fixed HU window of every CT in radbench (``preprocess.window_ct``), so a DICOM slice
     and the same slice in NIfTI give the same model input; the file's display window is ignored.
   * ``"mri"``: the 5th-95th percentile window of NIfTI MRI (``preprocess.window_mri``).
   * otherwise (projection X-ray, ...): the file's VOI LUT Sequence or its first window
     (``WindowCenter``/``WindowWidth``, LINEAR, LINEAR_EXACT or SIGMOID) where present, else min-max.
3. ``MONOCHROME1`` (low values shown bright, common in CR/DX exports) is inverted back so bright means
   dense in every image, except for CT whose Hounsfield units already mean that.
4. ``ImageOrientationPatient``: a slice stored flipped or transposed is turned to the axial display of
   NIfTI volumes; another plane or an oblique slice is refused (``dicom_geometry.py``). A mask of a
   DICOM image is turned the same way (:func:`read_mask_of_dicom`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.data.datasets.csvtools import check_not_degenerate
from radbench_core.data.datasets.dicom_geometry import display_of, read_header
from radbench_core.data.datasets.preprocess import check_finite, to_unit, window_ct, window_mri
from radbench_core.core.errors import DatasetError

GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


def read_dicom(path: Path, modality: str = "xray") -> np.ndarray:
    """One DICOM image -> (H, W) float32 in [0, 1], displayed as the standard says (module docstring)."""
    ds, stored = _decode(path)
    display = display_of(ds, path)
    values = _modality_lut(ds, stored, path)
    check_finite(values, path)
    if modality == "ct":
        return display.apply(window_ct(values))
    shown = window_mri(values) if modality == "mri" else _voi(ds, values, path)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        shown = np.float32(1.0) - shown
    return display.apply(np.asarray(shown, dtype=np.float32))


def read_mask_of_dicom(image: Path, mask: np.ndarray) -> np.ndarray:
    """A mask drawn on a DICOM image's stored pixel grid, turned to that image's display."""
    return display_of(read_header(image), image).apply(mask)


def read_dicom_mask(path: Path) -> np.ndarray:
    """A mask stored as DICOM: its stored class values (no LUT, no window), turned to the display."""
    ds, stored = _decode(path)
    return display_of(ds, path).apply(stored)


def _decode(path: Path):
    """The dataset and its stored pixels; not-installed, unreadable, colour or multi-frame are DatasetErrors."""
    try:
        import pydicom
    except ImportError as exc:
        raise DatasetError(path, "a DICOM file, but pydicom is not installed",
                           "pip install 'radbench[dicom]' (or pip install pydicom)") from exc
    if not path.is_file():
        raise DatasetError(path, "the image file is missing",
                           "download the complete dataset (all image files) into this folder")
    try:
        ds = pydicom.dcmread(str(path))
        stored = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means an unreadable file
        raise DatasetError(path, f"cannot decode the DICOM file ({type(exc).__name__}: {exc})",
                           "re-export it uncompressed, or install the decoder its transfer syntax needs "
                           "(pylibjpeg / gdcm)") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric not in GRAYSCALE:
        raise DatasetError(path, f"PhotometricInterpretation {photometric!r}; expected a grayscale image "
                                 f"({' or '.join(GRAYSCALE)})", "export the image as grayscale DICOM")
    if stored.ndim != 2:
        raise DatasetError(path, f"{int(ds.get('NumberOfFrames', 1) or 1)} frames (pixel array shape "
                                 f"{stored.shape}); expected one 2D frame per file",
                           "export one frame per file, or convert the series to one NIfTI volume")
    check_not_degenerate(stored.shape, path)
    return ds, stored


def _modality_lut(ds, stored: np.ndarray, path: Path) -> np.ndarray:
    """Stored values -> physical values (rescale slope/intercept, or the Modality LUT Sequence)."""
    from pydicom.pixels import apply_modality_lut

    try:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - a malformed LUT is an unreadable file
        raise DatasetError(path, f"cannot apply the modality LUT / rescale ({type(exc).__name__}: {exc})",
                           "re-export the file; its RescaleSlope/Intercept or Modality LUT is malformed") from exc


def _voi(ds, values: np.ndarray, path: Path) -> np.ndarray:
    """The file's VOI LUT or first window -> [0, 1]; min-max when the file has neither."""
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        return _voi_lut_sequence(ds.VOILUTSequence[0], values, path)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return to_unit(values)
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
    return window_linear(values, center, width, function)


def window_linear(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """PS3.3 C.11.2.1.2 window (LINEAR, LINEAR_EXACT, SIGMOID) mapped to [0, 1] float32."""
    x = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT":
        out = (x - center) / width + 0.5
    elif width <= 1:                        # LINEAR of width 1: a threshold
        out = (x > center - 0.5).astype(np.float64)
    else:                                   # LINEAR: the window's edges are offset by half a value
        out = (x - (center - 0.5)) / (width - 1.0) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _voi_lut_sequence(item, values: np.ndarray, path: Path) -> np.ndarray:
    """A VOI LUT (descriptor: entries, first mapped value, bits) applied by table look-up, scaled to [0, 1]."""
    try:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
        table = np.asarray(item.LUTData, dtype=np.float64).ravel()
    except (AttributeError, TypeError, ValueError) as exc:
        raise DatasetError(path, f"malformed VOI LUT Sequence ({exc})",
                           "re-export the file; its VOI LUT has no valid LUTDescriptor/LUTData") from exc
    entries = entries or 65536
    if table.size < entries or bits < 1:
        raise DatasetError(path, f"VOI LUT holds {table.size} entries for a descriptor of {entries} "
                                 f"({bits} bits)", "re-export the file with a complete VOI LUT")
    position = np.clip(np.rint(values).astype(np.int64) - first, 0, entries - 1)
    return np.clip(table[position] / float(2 ** bits - 1), 0.0, 1.0).astype(np.float32)


def _first(value) -> float | None:
    """A DICOM multi-valued window attribute's first value (files may list several windows)."""
    if value is None or value == "":
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
