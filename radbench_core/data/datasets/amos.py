"""AMOS 2022 abdominal multi-organ CT (15 organs), read from the released dataset.json layout.

``amos22/dataset.json`` lists ``training`` (imagesTr/labelsTr) and ``validation``
(imagesVa/labelsVa) cases named ``amos_XXXX.nii.gz``; ids up to 500 are CT, higher ids MRI. Only CT
cases are used. The official validation set is our test split; the training cases are split into
train/val by systematic patient sampling (each case is one patient). ``LoadOptions.subset`` keeps a
fixed number of cases (the study used 150), shared proportionally between the splits.
"""

from __future__ import annotations

import re
from pathlib import Path

from radbench_core.data.datasets.base import DatasetSize, DatasetSpec, LoadOptions
from radbench_core.data.datasets.msd import labelled_cases, read_dataset_json
from radbench_core.data.datasets.preprocess import window_ct
from radbench_core.data.datasets.splits import (cap_splits, keys_by_group, load_or_create_splits,
                                           patient_split, restrict_items, subset_splits)
from radbench_core.data.datasets.volumes import NiftiIndex
from radbench_core.core.errors import DatasetError
from radbench_core.data.phantoms.nifti import AMOS_LABELS, write_amos_phantom

CT_MAX_ID = 500                       # AMOS numbering: 1..500 CT, 501..600 MRI
TRAIN_VAL_FRACTIONS = (0.8, 0.2)      # of the official training cases
_CASE = re.compile(r"amos_(\d+)")


def is_ct_case(case_id: str, json_path: Path | str = "dataset.json") -> bool:
    """AMOS ids above 500 are MRI scans; the benchmark uses the CT ones."""
    match = _CASE.fullmatch(case_id)
    if match is None:
        raise DatasetError(json_path, f"entry {case_id!r}: expected AMOS case files named "
                           "amos_XXXX.nii.gz", "use the dataset.json and files of the AMOS 2022 release")
    return int(match.group(1)) <= CT_MAX_ID


def index_amos(root: Path, options: LoadOptions) -> NiftiIndex:
    """Index the CT cases: official validation -> test, training -> train/val by patient."""
    root = Path(root)
    meta = read_dataset_json(root, num_classes=len(AMOS_LABELS) - 1)
    def keep(case_id: str) -> bool:
        return is_ct_case(case_id, root / "dataset.json")
    training = labelled_cases(root, meta, "training", keep=keep)
    validation = labelled_cases(root, meta, "validation", keep=keep)
    if not training or not validation:
        raise DatasetError(root / "dataset.json", f"found {len(training)} CT training and "
                           f"{len(validation)} CT validation cases, expected both to be non-empty",
                           "extract the whole amos22 archive (imagesTr/labelsTr and imagesVa/labelsVa)")
    items = training + validation

    def make() -> dict[str, list[str]]:
        out = keys_by_group(training, patient_split([it.patient for it in training],
                                                    TRAIN_VAL_FRACTIONS, ("train", "val")))
        out["test"] = [it.key for it in validation]
        return out

    splits = load_or_create_splits(root, items, make, options.split_file, options.splits_dir)
    items, splits = restrict_items(items, subset_splits(splits, options.subset))
    return NiftiIndex(spec=SPEC, root=root, items=items, splits=cap_splits(splits, options.max_items),
                      window=window_ct)


SPEC = DatasetSpec(
    id="amos", title="AMOS 2022 (CT)", modality="ct", task="segmentation", label_kind="mask",
    class_names=tuple(name.replace(" ", "_").replace("/", "_") for name in AMOS_LABELS[1:]),
    folder="amos22", volumetric=True,
    download_hint=("download amos22.zip (AMOS 2022, https://zenodo.org/records/7262581) and extract "
                   "it so that <data dir>/amos22/ holds dataset.json, imagesTr/, labelsTr/, "
                   "imagesVa/ and labelsVa/"),
    index=index_amos, write_phantom=write_amos_phantom,
    size=DatasetSize.dealt(150, slices_per_item=100,
                           note="the study's 150-case subset (LoadOptions.subset); the split shares "
                                "and 100 slices per case are ESTIMATES"))
