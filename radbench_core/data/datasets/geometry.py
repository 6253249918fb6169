"""The one geometry check every reader of an image/mask pair goes through.

A mask that does not lie on its image's pixel grid scores a misaligned mask: a wrong number, not an
error, unless it is refused. :func:`check_image_mask_pair` dispatches on the files' formats: NIfTI
pairs compare shape, orientation and affine (:func:`volumes.check_geometry`); 2D pairs (PNG, JPEG,
DICOM image with a PNG mask) compare size and EXIF orientation; a NIfTI paired with a 2D file is
refused. :func:`read_mask_2d` decodes a 2D mask refusing channel layouts whose gray conversion
would change the drawn region (an RGBA mask with the region in the alpha channel becomes a
whole-image mask when flattened; a coloured mask loses its classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets.csvtools import check_mask_geometry, check_not_degenerate, image_shape

_VOLUME_SUFFIXES = (".nii", ".nii.gz")
_RESAVE = "re-save the mask as a single-channel (grayscale) image of class indices, 0 = background"


def is_volume(path: str | Path) -> bool:
    return str(path).lower().endswith(_VOLUME_SUFFIXES)


def _dicom_shape(path: Path) -> tuple[int, int]:
    try:
        import pydicom
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        return int(ds.Rows), int(ds.Columns)
    except Exception as exc:  # noqa: BLE001 - any header failure means an unreadable file
        raise DatasetError(path, f"cannot read the DICOM header ({exc})", "re-export or re-download it") from exc


def check_image_mask_pair(image: Path, mask: Path) -> int:
    """Refuse a mask that is not on its image's grid; returns the number of slices of the pair."""
    image, mask = Path(image), Path(mask)
    if is_volume(image) and is_volume(mask):
        from radbench_core.data.datasets.volumes import check_geometry
        return check_geometry(image, mask)[0]
    if is_volume(image) or is_volume(mask):
        raise DatasetError(mask, f"a {'NIfTI' if is_volume(mask) else '2D'} mask for the "
                                 f"{'NIfTI' if is_volume(image) else '2D'} image {image}",
                           "store the mask in its image's format (a NIfTI label for a NIfTI volume)")
    if image.suffix.lower() == ".dcm":
        shape = _dicom_shape(image)
        if image_shape(mask) != shape:
            raise DatasetError(mask, f"mask shape {image_shape(mask)} differs from the DICOM image "
                                     f"{image} with (Rows, Columns) = {shape}",
                               "use the mask that belongs to this image (same size)")
        return 1
    check_mask_geometry(image, mask, image_shape(mask))
    return 1


def read_mask_2d(path: Path) -> np.ndarray:
    """A 2D mask's stored values as ``(H, W)``; a layout whose gray conversion moves the region is refused."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(path, "the mask file is missing", "restore the mask from the dataset release")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img.convert("RGBA") if mode in ("P", "PA") else img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(path, f"cannot decode the mask ({exc}); expected a readable PNG",
                           "re-download this file; a truncated download is the usual cause") from exc
    if arr.ndim == 3:
        colour, alpha = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1], None
        if arr.shape[2] in (2, 4):
            alpha = arr[..., -1]
        if alpha is not None and alpha.min() != alpha.max():
            raise DatasetError(path, f"the mask ({mode}) draws its region in the alpha channel "
                                     f"({int((alpha > 0).sum())} of {alpha.size} pixels opaque); "
                                     "flattened to gray it would cover another region", _RESAVE)
        if colour.shape[2] == 3 and not (np.array_equal(colour[..., 0], colour[..., 1])
                                         and np.array_equal(colour[..., 0], colour[..., 2])):
            raise DatasetError(path, f"the mask ({mode}) is coloured (its channels differ); class "
                                     "indices cannot be read from colours", _RESAVE)
        arr = colour[..., 0]
    check_not_degenerate(arr.shape, path)
    return arr
