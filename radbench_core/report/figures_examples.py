"""Figures 2 and 6, drawn from the example arrays segmentation cells save next to their record.

A cell's ``extra["examples"]`` names an ``.npz`` (relative to its run directory) holding ``image``
(n,R,R) in [0,1], ``truth`` and ``pred`` (n,R,R) int, and optionally ``features`` (n,h,w,D), the last
patch-token map. A missing or unreadable file skips the figure (with a warning), never the report.
A figure drawn from a demo cell carries the demo watermark (``figure_style.mark_demo``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from radbench_core.report.frame import (MODEL_ORDER, dataset_label, model_label, order_key,
                                        variant_key)
from radbench_core.report.figure_style import mark_demo, new_figure
from radbench_core.core.results import CellResult

MODALITY_ORDER = ("xray", "ct", "mri")


def find_file(rel: str, roots: list[Path]) -> Path | None:
    """The first existing ``root/rel`` (or ``rel`` itself when absolute)."""
    path = Path(rel)
    if path.is_absolute():
        return path if path.is_file() else None
    return next((root / path for root in roots if (root / path).is_file()), None)


def load_examples(rec: CellResult, roots: list[Path]) -> dict[str, np.ndarray] | None:
    """The record's example arrays, or None (with a warning if the file is there but unreadable)."""
    rel = rec.extra.get("examples") if isinstance(rec.extra, dict) else None
    if not rel:
        return None
    path = find_file(str(rel), roots)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable example arrays ({exc}); figure skipped", stacklevel=2)
        return None
    if not {"image", "truth", "pred"} <= set(arrays):
        warnings.warn(f"{path}: expected arrays image, truth, pred; figure skipped", stacklevel=2)
        return None
    return arrays


def _flip(components: np.ndarray) -> np.ndarray:
    """Deterministic signs: each component's largest-magnitude loading is positive."""
    idx = np.argmax(np.abs(components), axis=1)
    return components * np.sign(components[np.arange(len(components)), idx])[:, None]


def pca_rgb(features: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Patch features (n,h,w,D) -> (RGB (n,h,w,3) in [0,1], foreground mask (n,h,w)).

    As in the DINOv2 paper: a first PCA over all patches of all n images; patches whose first
    component is at or below ``threshold`` are background (black). PC1's sign is chosen so the image
    border (mostly background in radiology) scores lower than the interior. A second PCA over the
    foreground patches gives 3 components, each min-max scaled to [0,1] over the foreground.
    """
    n, h, w, d = features.shape
    x = features.reshape(-1, d).astype(np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    pc1 = (x @ vt[0]).reshape(n, h, w)
    border = np.zeros((h, w), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    if h > 2 and w > 2 and pc1[:, border].mean() > pc1[:, ~border].mean():
        pc1 = -pc1
    fg = pc1 > threshold
    if fg.sum() < 3:
        fg = np.ones_like(fg)
    xf = features.reshape(-1, d)[fg.reshape(-1)].astype(np.float64)
    xf = xf - xf.mean(axis=0)
    _, _, vt2 = np.linalg.svd(xf, full_matrices=False)
    comps = _flip(vt2[:3])
    proj = xf @ comps.T
    proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    span = proj.max(axis=0) - proj.min(axis=0)
    proj = (proj - proj.min(axis=0)) / np.where(span > 0, span, 1.0)
    rgb = np.zeros((n * h * w, 3))
    rgb[fg.reshape(-1)] = proj
    return rgb.reshape(n, h, w, 3), fg


def _sorted(records: list[CellResult]) -> list[CellResult]:
    return sorted(records, key=lambda r: (order_key(MODALITY_ORDER)(r.modality),
                                          order_key(MODEL_ORDER)(r.model), r.dataset,
                                          variant_key(r.variant)[0], -variant_key(r.variant)[1]))


def plot_pca_from(records: list[CellResult], roots: list[Path], per_modality: int = 2) -> Figure | None:
    """Figure 2: image over its patch-feature PCA, up to ``per_modality`` images per modality."""
    panels: list[tuple[str, np.ndarray, np.ndarray]] = []
    done: set[str] = set()
    demo = False
    for rec in _sorted([r for r in records if r.task == "segmentation"]):
        if rec.modality in done:
            continue
        arrays = load_examples(rec, roots)
        if arrays is None or "features" not in arrays or arrays["features"].ndim != 4:
            continue
        k = min(per_modality, len(arrays["features"]))
        rgb, _ = pca_rgb(arrays["features"][:k])
        for i in range(k):
            panels.append((f"{dataset_label(rec.dataset)} ({rec.modality})\n{model_label(rec.model)}",
                           arrays["image"][i], rgb[i]))
        done.add(rec.modality)
        demo = demo or rec.is_demo
    if not panels:
        return None
    fig = new_figure(2.4 * len(panels), 5.0)
    axes = fig.subplots(2, len(panels), squeeze=False)
    for j, (title, image, rgb) in enumerate(panels):
        axes[0, j].imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(title, fontsize=8)
        axes[1, j].imshow(rgb, interpolation="nearest")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("Image")
    axes[1, 0].set_ylabel("PCA of patch features")
    return mark_demo(fig) if demo else fig


def plot_masks_from(records: list[CellResult], roots: list[Path], n_rows: int = 3) -> Figure | None:
    """Figure 6: the first model/dataset/resolution with both decoders' examples, side by side."""
    by_key = {(r.model, r.dataset, r.variant, r.protocol): r for r in records}
    for rec in _sorted([r for r in records if r.protocol == "seg_unet"]):
        lin = by_key.get((rec.model, rec.dataset, rec.variant, "seg_linear"))
        if lin is None:
            continue
        unet, linear = load_examples(rec, roots), load_examples(lin, roots)
        if unet is None or linear is None or unet["pred"].shape[1:] != linear["pred"].shape[1:]:
            continue
        k = min(n_rows, len(unet["pred"]), len(linear["pred"]))
        if k == 0:
            continue
        title = f"{model_label(rec.model)} on {dataset_label(rec.dataset)}" + (
            f" @{rec.variant}" if rec.variant else "")
        fig = plot_masks(unet["image"][:k], unet["truth"][:k], linear["pred"][:k], unet["pred"][:k],
                         title)
        return mark_demo(fig) if rec.is_demo or lin.is_demo else fig
    return None


def plot_masks(image: np.ndarray, truth: np.ndarray, linear: np.ndarray, unet: np.ndarray,
               title: str) -> Figure:
    """Rows of image / ground truth / linear decoder / U-Net decoder, masks over the image."""
    classes = int(max(truth.max(), linear.max(), unet.max(), 1))
    fig = new_figure(8.0, 2.2 * len(image) + 0.4)
    axes = fig.subplots(len(image), 4, squeeze=False)
    for i in range(len(image)):
        for j, (name, mask) in enumerate((("Image", None), ("Ground truth", truth[i]),
                                          ("Linear decoder", linear[i]), ("U-Net decoder", unet[i]))):
            ax = axes[i, j]
            ax.imshow(image[i], cmap="gray", vmin=0, vmax=1)
            if mask is not None:
                ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="tab10", vmin=0, vmax=max(classes, 9),
                          alpha=0.6, interpolation="nearest")
            if i == 0:
                ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return fig
