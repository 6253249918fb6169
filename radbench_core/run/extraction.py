"""Batched feature extraction: slices -> backbone -> per-item features (volume slices averaged).

This is the expensive part of a frozen protocol, so it runs once per (model, dataset, resolution)
and its output goes to the feature cache. ``FORWARD_BATCHES`` counts backbone forwards so tests can
prove a cache hit runs none.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from radbench_core.core import progress as live_progress

FORWARD_BATCHES = 0


def autocast_for(device: str):
    """bf16 autocast on CUDA, nothing on CPU (bf16 matmuls are slow and inexact there)."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_loader(dataset, *, batch_size: int, num_workers: int, device: str, shuffle: bool = False,
                generator: torch.Generator | None = None) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      pin_memory=device.startswith("cuda"), generator=generator,
                      persistent_workers=False, prefetch_factor=4 if num_workers else None)


class _Splits(torch.utils.data.Dataset):
    """Several splits' slice datasets as one, items renumbered globally, so one DataLoader (and
    one set of worker processes) serves them all."""

    def __init__(self, datasets: dict[str, Any]):
        self.names = list(datasets)
        self.parts = [datasets[n] for n in self.names]
        self.slice_offsets = np.cumsum([0] + [len(d) for d in self.parts])
        self.item_offsets = np.cumsum([0] + [int(d.n_items) for d in self.parts])
        self.n_items = int(self.item_offsets[-1])

    def __len__(self) -> int:
        return int(self.slice_offsets[-1])

    def __getitem__(self, i: int) -> dict:
        part = int(np.searchsorted(self.slice_offsets, i, side="right") - 1)
        sample = dict(self.parts[part][i - int(self.slice_offsets[part])])
        sample["item"] = int(sample["item"]) + int(self.item_offsets[part])
        return sample


def extract_splits(backbone: torch.nn.Module, datasets: dict[str, Any], *, device: str,
                   batch_size: int, num_workers: int = 0, desc: str = "features",
                   progress: bool = True, forward=None) -> dict[str, dict[str, np.ndarray]]:
    """``extract_split`` over several splits through one DataLoader: workers start once."""
    joined = _Splits(datasets)
    features = extract_split(backbone, joined, device=device, batch_size=batch_size,
                             num_workers=num_workers, desc=desc, progress=progress, forward=forward)
    out = {name: {k: v[joined.item_offsets[i]:joined.item_offsets[i + 1]] for k, v in features.items()}
           for i, name in enumerate(joined.names)}
    for name, kinds in out.items():
        for kind, array in kinds.items():
            _check_features(array, kind, datasets[name], desc)
    return out


def _check_features(array: np.ndarray, kind: str, dataset: Any, desc: str) -> None:
    """Non-finite features would train and score a head on garbage: fail naming the first item."""
    from radbench_core.core.errors import NumericalError
    bad_rows = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
    if not bad_rows.size:
        return
    items = getattr(dataset, "items", None)
    root = getattr(getattr(dataset, "index", None), "root", None)
    first = items[int(bad_rows[0])] if items is not None and int(bad_rows[0]) < len(items) else None
    where = (f"{root}/{first.images[0]}" if root is not None else first.images[0]) if first else desc
    raise NumericalError(where, f"{desc}: {kind} features of {bad_rows.size} of {len(array)} "
                                f"{getattr(dataset, 'split', '')} items are not finite (NaN/inf), "
                                "first at this file",
                         "check the backbone's weights and this input for NaN/inf (or run without "
                         "bf16/--radbench-compile); nothing was cached")


@torch.inference_mode()
def extract_split(backbone: torch.nn.Module, dataset, *, device: str, batch_size: int,
                  num_workers: int = 0, desc: str = "features", progress: bool = True,
                  forward=None) -> dict[str, np.ndarray]:
    """Pooled features per item of one split: ``{"cls": (N, k, D), "patch_mean": (N, D)}``.

    ``forward`` replaces ``backbone.pooled`` (e.g. its ``torch.compile``d version).
    """
    global FORWARD_BATCHES
    backbone.eval()
    forward = forward or backbone.pooled
    n_items = int(dataset.n_items)
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(n_items, dtype=torch.float64)
    channels_last = device.startswith("cuda") and getattr(backbone.spec, "arch", "") == "cnn"
    loader = make_loader(dataset, batch_size=batch_size, num_workers=num_workers, device=device)
    for i, batch in enumerate(tqdm(loader, desc=desc, disable=not progress, leave=False, mininterval=2.0)):
        live_progress.detail(i, len(loader), "batch")
        x = batch["image"].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device):
            out = forward(x)
        FORWARD_BATCHES += 1
        items = torch.as_tensor(batch["item"], dtype=torch.long)
        for kind, value in out.items():
            value = value.detach().float().cpu().double()
            if kind not in sums:
                sums[kind] = torch.zeros((n_items, *value.shape[1:]), dtype=torch.float64)
            sums[kind].index_add_(0, items, value)
        counts.index_add_(0, items, torch.ones(len(items), dtype=torch.float64))
    if (counts == 0).any():
        missing = int((counts == 0).sum())
        raise RuntimeError(f"{missing} items produced no slices during extraction")
    shape = (-1,) + (1,) * 2
    return {k: (v / counts.view(shape[: v.dim()])).float().numpy() for k, v in sums.items()}
