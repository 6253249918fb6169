"""From a [0, 1] slice to what a backbone eats, and the study's training augmentations.

``ModelTransform`` does the model-specific part of preprocessing (grayscale -> 3 channels, bilinear
antialiased resize to the model's resolution, the model's own mean/std). Augmentations act on the
slice at its original size before that, with an explicit ``torch.Generator`` so a (seed, epoch,
index) triple always gives the same sample; the mask gets exactly the same geometry (nearest).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from radbench_core.core.errors import ConfigError

Pair = tuple[torch.Tensor, "torch.Tensor | None"]


def _as_2d(x: "np.ndarray | torch.Tensor", dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dtype)
    if t.ndim != 2:
        raise ValueError(f"expected a 2D (H, W) slice, got shape {tuple(t.shape)}")
    return t


def resize_image(image: "np.ndarray | torch.Tensor", resolution: int) -> torch.Tensor:
    """(H, W) float -> (R, R) float32 by bilinear interpolation with antialiasing (as PIL does)."""
    t = _as_2d(image, torch.float32)
    if tuple(t.shape) == (resolution, resolution):
        return t.clone()
    out = F.interpolate(t[None, None], size=(resolution, resolution), mode="bilinear",
                        align_corners=False, antialias=True)
    return out[0, 0]


EVAL_RESIZES = ("bilinear_antialias", "bicubic")     # switch cls_eval_resize_antialiased


def study_resize(image: "np.ndarray | torch.Tensor", resolution: int) -> torch.Tensor:
    """(H, W) -> (R, R) float32 as the study's classification eval transform resized its tensors:
    torchvision ``Resize((R, R), BICUBIC)`` on a tensor, which in its torchvision 0.15 means no
    antialiasing (repo dinov2/data/transforms.py:100-115; conda.yaml)."""
    t = _as_2d(image, torch.float32)
    return F.interpolate(t[None, None], size=(resolution, resolution), mode="bicubic",
                         align_corners=False, antialias=False)[0, 0]


def rescale_to_unit(t: torch.Tensor) -> torch.Tensor:
    """The study's RescaleImage after the resize: min-max of the resized image (a constant stays)."""
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if float(hi - lo) > 0 else t


def mask_to(mask: "np.ndarray | torch.Tensor", resolution: int) -> torch.Tensor:
    """(H, W) integer class map -> (R, R) int64 by nearest-neighbour (pixel centres, as PIL does)."""
    t = _as_2d(mask, torch.int64)
    if tuple(t.shape) == (resolution, resolution):
        return t.clone()
    out = F.interpolate(t[None, None].float(), size=(resolution, resolution), mode="nearest-exact")
    return out[0, 0].round().long()


def center_crop(t: torch.Tensor, size: int) -> torch.Tensor:
    """The central (size, size) window of ``(..., H, W)``, offsets rounded as torchvision's CenterCrop."""
    h, w = t.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return t[..., top:top + size, left:left + size]


class ModelTransform:
    """Slice in [0, 1] -> normalised (3, R, R) float32 tensor for one backbone.

    ``crop_from=S`` resizes to (S, S) first and keeps the central (R, R) window (the study's kNN
    input: Resize 256, CenterCrop 224, scaled to R; switch ``knn_plain_resize``). ``resize="bicubic"``
    is the study's eval resize (bicubic without antialiasing, then its per-image min-max of the
    resized and cropped image; switch ``cls_eval_resize_antialiased``); ours is bilinear antialiased.
    """

    def __init__(self, resolution: int, mean: Sequence[float], std: Sequence[float],
                 crop_from: int | None = None, resize: str = "bilinear_antialias"):
        if not isinstance(resolution, int) or resolution < 1:
            raise ConfigError("ModelTransform(resolution)", f"resolution {resolution!r} is not a "
                                                            "positive integer", "pass e.g. 224")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ConfigError("ModelTransform(mean, std)", f"mean {tuple(mean)} / std {tuple(std)} "
                                                           "must be 3 values each, std > 0",
                              "pass the model's RGB normalisation, e.g. the ImageNet mean and std")
        if crop_from is not None and crop_from < resolution:
            raise ConfigError("ModelTransform(crop_from)", f"crop_from {crop_from} is below the "
                              f"resolution {resolution}", "pass crop_from >= resolution, or None")
        if resize not in EVAL_RESIZES:
            raise ConfigError(f"hparams['eval_resize']={resize!r}", "unknown resize",
                              f"use one of {', '.join(EVAL_RESIZES)}")
        self.resolution, self.crop_from, self.resize = resolution, crop_from, resize
        self.mean = torch.tensor([float(m) for m in mean], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor([float(s) for s in std], dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: "np.ndarray | torch.Tensor") -> torch.Tensor:
        resize = study_resize if self.resize == "bicubic" else resize_image
        if self.crop_from is None:
            resized = resize(image, self.resolution)
        else:
            resized = center_crop(resize(image, self.crop_from), self.resolution)
        if self.resize == "bicubic":
            resized = rescale_to_unit(resized)
        return (resized.expand(3, -1, -1) - self.mean) / self.std

    def mask(self, mask: "np.ndarray | torch.Tensor") -> torch.Tensor:
        return mask_to(mask, self.resolution)

    def __repr__(self) -> str:
        return (f"ModelTransform(resolution={self.resolution}, mean={tuple(self.mean.flatten().tolist())}, "
                f"std={tuple(self.std.flatten().tolist())})")


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _coin(gen: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=gen)) < p


def resized_crop_box(h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                     gen: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) as torchvision's RandomResizedCrop.get_params draws it, from ``gen``
    (the same random calls in the same order, so a generator seeded s gives its box under
    torch.manual_seed(s))."""
    area = h * w
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=gen).item()
        aspect = math.exp(torch.empty(1).uniform_(float(log_ratio[0]), float(log_ratio[1]),
                                                  generator=gen).item())
        cw, ch = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, size=(1,), generator=gen).item())
            left = int(torch.randint(0, w - cw + 1, size=(1,), generator=gen).item())
            return top, left, ch, cw
    in_ratio = w / h                                    # torchvision's fallback: a central crop
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


CLS_AUGMENTS = ("square_crop", "random_resized_crop")   # switch cls_augment_square_crop


class ClassificationAugment:
    """Random square-ratio crop covering a [0.75, 1] fraction of the area, then horizontal flip p=0.5.

    The crop is returned at its own size; ModelTransform's resize then scales it up, which is the
    "random scale" of the study with one interpolation instead of two. ``kind="random_resized_crop"``
    is the study's transform instead (its transforms.py:75-95): torchvision's RandomResizedCrop
    (aspect ratio in [3/4, 4/3]) resized to ``resolution`` bicubic without antialiasing, then the flip.
    """

    def __init__(self, scale: tuple[float, float] = (0.75, 1.0), flip_p: float = 0.5,
                 kind: str = "square_crop", resolution: int | None = None,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)):
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 <= flip_p <= 1:
            raise ConfigError("ClassificationAugment", f"scale {scale} / flip_p {flip_p} out of range",
                              "use 0 < scale_lo <= scale_hi <= 1 and 0 <= flip_p <= 1")
        if kind not in CLS_AUGMENTS or (kind == "random_resized_crop" and not resolution):
            raise ConfigError("hparams['cls_augment']", f"{kind!r} (resolution {resolution})",
                              f"use one of {', '.join(CLS_AUGMENTS)}; random_resized_crop needs the "
                              "input size")
        self.scale, self.flip_p, self.kind, self.resolution, self.ratio = scale, flip_p, kind, resolution, ratio

    def __call__(self, image: torch.Tensor, mask: "torch.Tensor | None", gen: torch.Generator) -> Pair:
        if self.kind == "random_resized_crop":
            return self._study(image, mask, gen)
        h, w = image.shape[-2:]
        side = math.sqrt(_uniform(gen, *self.scale))
        ch, cw = max(1, round(h * side)), max(1, round(w * side))
        top = int(torch.randint(0, h - ch + 1, (), generator=gen))
        left = int(torch.randint(0, w - cw + 1, (), generator=gen))
        image = image[..., top:top + ch, left:left + cw]
        mask = None if mask is None else mask[..., top:top + ch, left:left + cw]
        if _coin(gen, self.flip_p):
            image = image.flip(-1)
            mask = None if mask is None else mask.flip(-1)
        return image, mask

    def _study(self, image: torch.Tensor, mask: "torch.Tensor | None", gen: torch.Generator) -> Pair:
        top, left, ch, cw = resized_crop_box(*image.shape[-2:], self.scale, self.ratio, gen)
        size = (self.resolution, self.resolution)
        crop = image[..., top:top + ch, left:left + cw].float()
        image = F.interpolate(crop.reshape(1, 1, ch, cw), size=size, mode="bicubic", align_corners=False,
                              antialias=False).reshape(*image.shape[:-2], *size)
        if mask is not None:
            mask = mask_to(mask[..., top:top + ch, left:left + cw], self.resolution)
        if float(torch.rand(1, generator=gen)) < self.flip_p:        # RandomHorizontalFlip's draw
            image = image.flip(-1)
            mask = None if mask is None else mask.flip(-1)
        return image, mask


class SegmentationAugment:
    """Horizontal and vertical flips (p=0.25 each) and a rotation in [-90, 90] degrees, applied
    identically to image (bilinear) and mask (nearest); uncovered corners are 0 (background)."""

    def __init__(self, flip_p: float = 0.25, max_degrees: float = 90.0):
        if not 0 <= flip_p <= 1 or max_degrees < 0:
            raise ConfigError("SegmentationAugment", f"flip_p {flip_p} / max_degrees {max_degrees} "
                                                     "out of range",
                              "use 0 <= flip_p <= 1 and max_degrees >= 0")
        self.flip_p, self.max_degrees = flip_p, max_degrees

    def __call__(self, image: torch.Tensor, mask: "torch.Tensor | None", gen: torch.Generator) -> Pair:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2.functional import rotate

        for dim in (-1, -2):
            if _coin(gen, self.flip_p):
                image = image.flip(dim)
                mask = None if mask is None else mask.flip(dim)
        angle = _uniform(gen, -self.max_degrees, self.max_degrees)
        image = rotate(image[None], angle, interpolation=InterpolationMode.BILINEAR, fill=0.0)[0]
        if mask is not None:
            mask = rotate(mask[None], angle, interpolation=InterpolationMode.NEAREST, fill=0)[0]
        return image, mask
