"""Montgomery County chest X-rays: left/right lung segmentation read from the NLM release.

Layout: ``CXR_png/MCUCXR_####_{0,1}.png`` (suffix 1 = tuberculosis, unused here) with one mask per
lung of the same file name in ``ManualMask/leftMask/`` and ``ManualMask/rightMask/`` (0 / 255,
binarised with > 0). Class map: 0 background, 1 left lung, 2 right lung. Every image is its own
patient; train/val/test come from systematic sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radbench_core.data.datasets.base import DatasetSize, DatasetSpec, Item, LoadOptions, phantom_writer
from radbench_core.data.datasets.csvtools import ImageFileIndex, image_shape, list_files
from radbench_core.data.datasets.geometry import check_image_mask_pair, read_mask_2d
from radbench_core.data.datasets import study_splits
from radbench_core.data.datasets.splits import keys_by_group, natural_key, patient_split
from radbench_core.data.datasets.study_splits import mc_study_split
from radbench_core.core.errors import DatasetError

CLASSES: tuple[str, ...] = ("left_lung", "right_lung")
RELEASE_PIXEL_MM = 0.0875                       # NLM release: 4020 x 4892 px, 0.0875 mm pixels
RELEASE_SHAPES = ((4892, 4020), (4020, 4892))
IMAGE_DIR, LEFT_DIR, RIGHT_DIR = "CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"
_FIX = ("download the Montgomery County set (NLM-MontgomeryCXRSet) and unpack it unchanged: "
        "CXR_png/ and ManualMask/{leftMask,rightMask}/")


@dataclass
class MontgomeryIndex(ImageFileIndex):
    """Adds the lung class map: left mask -> 1, right mask -> 2, checked against the image shape."""

    def load_mask(self, item: Item) -> np.ndarray:
        image = self.root / item.images[0]
        out = np.zeros(image_shape(image), dtype=np.int64)
        for value, rel in ((1, item.masks[0]), (2, item.masks[1])):
            check_image_mask_pair(image, self.root / rel)
            mask = read_mask_2d(self.root / rel)
            out[(mask > 0) & (out == 0)] = value
        return out[None]

    def voxel_spacing(self, item: Item) -> tuple[float, float, float] | None:
        """0.0875 mm per pixel for an image at the release's size (Jaeger et al. 2014, the set's
        description); None (pixels) for any other size, e.g. a resized copy or a phantom."""
        shape = tuple(image_shape(self.root / item.images[0]))
        return (1.0, RELEASE_PIXEL_MM, RELEASE_PIXEL_MM) if shape in RELEASE_SHAPES else None

def index(root: Path, options: LoadOptions) -> MontgomeryIndex:
    """Index images and their two lung masks (one listing per folder; nothing decoded)."""
    root = Path(root)
    names = sorted(list_files(root / IMAGE_DIR, (".png",)), key=natural_key)
    if not names:
        raise DatasetError(root / IMAGE_DIR, "no PNG images found; expected CXR_png/MCUCXR_####_*.png",
                           _FIX)
    left, right = set(list_files(root / LEFT_DIR, (".png",))), set(list_files(root / RIGHT_DIR, (".png",)))
    items = []
    for name in names:
        for folder, present in ((LEFT_DIR, left), (RIGHT_DIR, right)):
            if name not in present:
                raise DatasetError(root / folder / name, f"the lung mask of {IMAGE_DIR}/{name} is "
                                                         "missing", _FIX)
        stem = name[:-4]
        items.append(Item(key=stem, patient=stem, images=(f"{IMAGE_DIR}/{name}",),
                          masks=(f"{LEFT_DIR}/{name}", f"{RIGHT_DIR}/{name}")))

    def make() -> dict[str, list[str]]:
        return keys_by_group(items, patient_split([it.patient for it in items]))

    def make_study() -> dict[str, list[str]]:
        return keys_by_group(items, mc_study_split(len(items)))

    splits = study_splits.resolve(root, items, make, make_study, options, SPEC.title)
    return MontgomeryIndex(spec=SPEC, root=root, items=items, splits=splits)


SPEC = DatasetSpec(
    id="mc", title="Montgomery County CXR", modality="xray", task="segmentation",
    label_kind="mask", class_names=CLASSES, folder="montgomery",
    download_hint=("download NLM-MontgomeryCXRSet (https://lhncbc.nlm.nih.gov/LHC-downloads/"
                   "downloads.html#tuberculosis-image-data-sets) and unpack CXR_png/ and ManualMask/"),
    index=index, write_phantom=phantom_writer("radbench_core.data.phantoms.montgomery"),
    size=DatasetSize.dealt(138, note="Table 1's 138 images, dealt 70/10/20 by patient_split"))
