"""The one geometry check every reader of an image/mask pair goes through.

A mask that does not lie on its image's pixel grid scores a misaligned mask: a wrong number, not an
error, unless it is refused. :func:`check_image_mask_pair` dispatches on the files' formats: NIfTI
pairs compare shape, orientation and affine (:func:`volumes.check_geometry`); 2D pairs (PNG, JPEG,
DICOM image or mask) compare the stored size and what places the pixels (EXIF orientation of a
PNG/JPEG; DICOM's ImageOrientationPatient, ImagePositionPatient and PixelSpacing, where both files
state them); a NIfTI paired with a 2D file is refused. :func:`read_mask_2d` decodes a 2D mask refusing channel layouts whose gray conversion
would change the drawn region (an RGBA mask with the region in the alpha channel becomes a
whole-image mask when flattened; a coloured mask loses its classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.core.errors import DatasetError
from radbench_core.data.datasets.csvtools import check_mask_geometry, check_not_degenerate, image_shape

_VOLUME_SUFFIXES = (".nii", ".nii.gz")
_REGRID = "use the mask exported with this image (same pixel grid), or resample it to the image's grid"
_RESAVE = "re-save the mask as a single-channel (grayscale) image of class indices, 0 = background"


def is_volume(path: str | Path) -> bool:
    return str(path).lower().endswith(_VOLUME_SUFFIXES)


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() == ".dcm"


def _grid_2d(path: Path) -> tuple[tuple[int, int], dict]:
    """A 2D file's stored (H, W) and what places its pixels: DICOM's orientation/position/spacing, or
    the EXIF orientation of a PNG/JPEG (identity = no tag, as a DICOM without orientation)."""
    if _is_dicom(path):
        from radbench_core.data.datasets.dicom_geometry import grid_of, read_header, stored_shape
        ds = read_header(path)
        return stored_shape(ds, path), grid_of(ds, path)
    from radbench_core.data.datasets.csvtools import image_orientation
    tag = image_orientation(path)
    return image_shape(path), {"orientation": None if tag in (None, 1) else f"EXIF tag {tag}"}


def _check_dicom_pair(image: Path, mask: Path) -> None:
    """A DICOM image (or mask) and its mask must share the stored grid: size, orientation, position, spacing.

    A PNG mask of a DICOM image is taken as drawn on the image's stored pixels (it is turned with the
    image to the display), so it must carry no EXIF rotation; a DICOM mask must state its image's
    orientation (a PNG image has none: identity)."""
    shape_img, grid_img = _grid_2d(image)
    shape_mask, grid_mask = _grid_2d(mask)
    if shape_img != shape_mask:
        turned = " (it looks rotated/transposed)" if shape_mask == shape_img[::-1] else ""
        raise DatasetError(mask, f"mask shape {shape_mask} differs from the image {image} with (Rows, Columns) "
                                 f"= {shape_img}{turned}", "use the mask that belongs to this image (same size)")
    a, b = _identity_as_none(grid_img["orientation"]), _identity_as_none(grid_mask["orientation"])
    if _is_dicom(image) and not _is_dicom(mask):
        a = None if b is None else a          # drawn on the stored pixels: any image orientation will do
    if not _same(a, b, 1e-4):
        raise DatasetError(mask, f"mask orientation {_show(b)} differs from its image {image} ({_show(a)})",
                           _REGRID)
    for part, tolerance in (("position", 1e-3), ("spacing", 1e-4)):
        a, b = grid_img.get(part), grid_mask.get(part)
        if a is not None and b is not None and not _same(a, b, tolerance):
            raise DatasetError(mask, f"mask {part} {_show(b)} differs from its image {image} ({_show(a)})",
                               _REGRID)


def _identity_as_none(value):
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    return None if isinstance(value, tuple) and _same(value, identity, 1e-4) else value


def _same(a, b, tolerance: float) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b))
    return a == b


def _show(value) -> str:
    if value is None:
        return "identity"
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:g}" for v in value) + "]"
    return str(value)


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
    if _is_dicom(image) or _is_dicom(mask):
        _check_dicom_pair(image, mask)
        return 1
    check_mask_geometry(image, mask, image_shape(mask))
    return 1


def read_mask_2d(path: Path) -> np.ndarray:
    """A 2D mask's stored values as ``(H, W)``; a layout whose gray conversion moves the region is refused."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.is_file():
        raise DatasetError(path, "the mask file is missing", "restore the mask from the dataset release")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)      # as displayed, like its image (same tag: checked)
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
