"""Figshare Brain Tumor phantom written as real MATLAB v7.3 files (HDF5 + 512-byte MATLAB header).

A v7.3 file is HDF5 with a 512-byte user block whose first 128 bytes are MATLAB's header: 116 bytes
of text, 8 bytes of subsystem offset, version 0x0200 and the endian mark "IM". Arrays are stored
column-major (so an (H, W) image is an HDF5 dataset of shape (W, H)) with a MATLAB_class attribute.
Classes differ by tumour site and shape: meningioma at the skull edge, glioma a large irregular mass
inside a hemisphere, pituitary a small mass at the sella (centre bottom).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from radbench_core.data.datasets.splits import patient_split
from radbench_core.data.phantoms.draw import blob, ellipse, size_of, smooth_noise

USERBLOCK = 512


def matlab_header(created: _dt.datetime | None = None) -> bytes:
    """The 128-byte MATLAB 7.3 header, zero-padded to the 512-byte user block."""
    when = (created or _dt.datetime(2015, 4, 2, 12, 0, 0)).strftime("%a %b %d %H:%M:%S %Y")
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {when} HDF5 schema 1.00 ."
    head = text.encode("ascii").ljust(116, b" ") + bytes(8) + b"\x00\x02" + b"IM"
    return head.ljust(USERBLOCK, b"\x00")


def _put(group, name: str, value: np.ndarray, matlab_class: str) -> None:
    """Store ``value`` as MATLAB does: at least 2D, column-major (transposed), classed."""
    arr = np.asarray(value)
    arr = arr.reshape(1, -1) if arr.ndim < 2 else arr
    ds = group.create_dataset(name, data=arr.T, track_times=False)   # byte-identical per seed
    ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    if matlab_class in ("char", "logical"):
        ds.attrs["MATLAB_int_decode"] = np.int32(2 if matlab_class == "char" else 1)


def write_mat73(path: Path, variables: dict[str, dict[str, tuple[np.ndarray, str]]]) -> None:
    """Write a v7.3 .mat: ``{"cjdata": {"image": (array, "int16"), ...}}`` for a struct, or
    ``{"cvind": {"": (array, "double")}}`` for a plain top-level variable."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=USERBLOCK, libver="earliest") as handle:
        for var, fields in variables.items():
            if set(fields) == {""}:
                _put(handle, var, *fields[""])
                continue
            group = handle.create_group(var)
            group.attrs["MATLAB_class"] = np.bytes_("struct")
            for name, (value, cls) in fields.items():
                _put(group, name, value, cls)
    with open(path, "r+b") as fh:
        fh.write(matlab_header())


def write_brain_mat(path: Path, image: np.ndarray, label: int, pid: str, mask: np.ndarray) -> None:
    """One figshare-style file: cjdata with image (int16), label 1..3, PID, tumorBorder, tumorMask."""
    ys, xs = np.nonzero(mask)
    border = np.stack([ys, xs], axis=1)[:: max(1, len(ys) // 8)].astype(np.float64).ravel()
    write_mat73(path, {"cjdata": {
        "image": (image.astype(np.int16), "int16"),
        "label": (np.array([[float(label)]]), "double"),
        "PID": (np.array([[ord(c) for c in pid]], dtype=np.uint16), "char"),
        "tumorBorder": (border.reshape(1, -1), "double"),
        "tumorMask": (mask.astype(np.uint8), "logical"),
    }})


def draw_slice(rng: np.random.Generator, shape: tuple[int, int], label: int) -> tuple[np.ndarray, np.ndarray]:
    """An axial T1-CE-like slice (int16 range) and its tumour mask; label is 1..3."""
    h, w = shape
    cy, cx = h * rng.uniform(0.47, 0.53), w * rng.uniform(0.47, 0.53)
    head = ellipse(shape, (cy, cx), (0.44 * h, 0.38 * w))
    brain = ellipse(shape, (cy, cx), (0.39 * h, 0.33 * w))
    img = 300.0 * head - 120.0 * brain + 60.0 * smooth_noise(rng, shape, scale=4) * brain
    side = rng.choice([-1.0, 1.0])
    if label == 1:      # meningioma: extra-axial, at the skull edge
        angle = rng.uniform(0, 2 * np.pi)
        center, radii = (cy + 0.33 * h * np.sin(angle), cx + 0.28 * w * np.cos(angle)), (0.07 * h, 0.07 * w)
    elif label == 2:    # glioma: large irregular mass in one hemisphere
        center, radii = (cy + rng.uniform(-0.1, 0.1) * h, cx + side * 0.15 * w), (0.13 * h, 0.09 * w)
    else:               # pituitary: small mass at the sella, centre bottom
        center, radii = (cy + 0.2 * h, cx), (0.05 * h, 0.05 * w)
    mask = ellipse(shape, center, radii, angle=rng.uniform(0, np.pi)) & brain
    sigma = 0.05 * min(h, w) if label == 2 else 0.03 * min(h, w)
    img = img + 350.0 * mask + 150.0 * blob(shape, center, sigma) * brain
    img = img + rng.normal(0.0, 15.0, size=shape)
    return np.clip(img, 0, 32000).astype(np.int16), mask


def write_phantom(root: Path, size: str = "tiny", seed: int = 0, *, cvind: bool = True) -> None:
    """Write numbered v7.3 .mat files in two ``brainTumorDataPublic_*`` folders (3 slices per
    patient, one tumour type per patient), plus ``cvind.mat`` unless ``cvind=False``."""
    n_patients = size_of(size, 15, 50, "phantom size for brain_tumor")
    px = size_of(size, 64, 128, "phantom size for brain_tumor")
    root = Path(root)
    rng = np.random.default_rng(seed)
    total = 3 * n_patients
    half = total // 2
    pids = [f"{100000 + 37 * p + seed}" for p in range(n_patients)]
    labels = {}
    for members in patient_split(pids).values():     # every split sees every class it can
        for rank, i in enumerate(members):
            labels[pids[i]] = 1 + (rank + seed) % 3
    number = 0
    for pid in pids:
        label = labels[pid]
        for _ in range(3):
            number += 1
            folder = f"brainTumorDataPublic_1-{half}" if number <= half else \
                f"brainTumorDataPublic_{half + 1}-{total}"
            image, mask = draw_slice(rng, (px, px), label)
            write_brain_mat(root / folder / f"{number}.mat", image, label, pid, mask)
    if cvind:
        folds = (np.arange(total) // 3 % 5 + 1).astype(np.float64)
        write_mat73(root / "cvind.mat", {"cvind": {"": (folds.reshape(1, -1), "double")}})
