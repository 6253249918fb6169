"""A torch Dataset over every slice of a split's items, decoding each item (volume) once.

Slices are served item by item in split order, so a sequential DataLoader touches each volume in
one run of consecutive indices and the small per-process LRU cache means a volume is decoded once,
not once per slice. Augmentation draws from a generator seeded by (seed, epoch, index): the same
sample for the same triple in any process, a fresh one each epoch after ``set_epoch``.
"""

from __future__ import annotations

import copy

from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import torch

from radbench_core.data.datasets.base import DatasetIndex, Item
from radbench_core.data.datasets.transforms import ModelTransform
from radbench_core.core.errors import DatasetError

Augment = Callable[[torch.Tensor, "torch.Tensor | None", torch.Generator],
                   "tuple[torch.Tensor, torch.Tensor | None]"]


class SliceDataset(torch.utils.data.Dataset):
    """All slices of ``index``'s ``split``; see ``__getitem__`` for what one sample holds."""

    def __init__(self, index: DatasetIndex, split: str, transform: ModelTransform, *,
                 augment: Augment | None = None, with_masks: bool = False, seed: int = 0,
                 cache_items: int = 8, cache_bytes: int = 512 * 2**20):
        if split not in index.splits or not index.splits[split]:
            raise DatasetError(index.root, f"the {split!r} split of {index.spec.title} is empty or "
                                           f"missing (splits: {sorted(index.splits)})",
                               "check the dataset folder, or pass a split file listing items for it")
        if with_masks and index.spec.task != "segmentation":
            raise DatasetError(index.root, f"{index.spec.title} has no masks (task "
                                           f"{index.spec.task!r})", "use with_masks=False")
        self.index, self.split, self.transform = index, split, transform
        self.augment, self.with_masks, self.seed = augment, with_masks, int(seed)
        self._hold(index.split_items(split))
        self.epoch = 0
        self.cache_items, self.cache_bytes = max(1, cache_items), cache_bytes
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()

    def _hold(self, items: list[Item]) -> None:
        """Serve ``items``: their slices numbered in order."""
        self.items: list[Item] = list(items)
        counts = np.asarray([it.n_slices for it in self.items], dtype=np.int64)
        self.n_items = len(self.items)
        self.item_of_slice = np.repeat(np.arange(self.n_items), counts)
        self.first_slice = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def subset(self, positions: list[int]) -> "SliceDataset":
        """A shallow copy holding only the items at ``positions`` (in that order), own slice cache."""
        out = copy.copy(self)
        out._hold([self.items[int(p)] for p in positions])
        out._cache = OrderedDict()
        return out

    def __len__(self) -> int:
        return int(self.item_of_slice.size)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call once per epoch, in the main process, before iterating)."""
        self.epoch = int(epoch)

    def slices_of(self, position: int) -> range:
        """Dataset indices of the slices of the item at ``position`` within the split."""
        start = int(self.first_slice[position])
        return range(start, start + self.items[position].n_slices)

    def volume_mask(self, position: int) -> np.ndarray:
        """The item's ``(S, H, W)`` class map at original size, to score a reassembled prediction."""
        return self._decoded(position)[1] if self.with_masks else self.index.load_mask(self.items[position])

    def _decoded(self, position: int) -> tuple[np.ndarray, np.ndarray | None]:
        hit = self._cache.get(position)
        if hit is not None:
            self._cache.move_to_end(position)
            return hit
        item = self.items[position]
        slices = self.index.load_slices(item)
        mask = self.index.load_mask(item) if self.with_masks else None
        where = f"{self.index.root / item.images[0]} (item {item.key!r})"
        if slices.ndim != 3 or slices.shape[0] != item.n_slices:
            raise DatasetError(where, f"decoded shape {slices.shape}; expected ({item.n_slices}, H, W)",
                               "re-download the item; its file does not match the index")
        if mask is not None and mask.shape != slices.shape:
            raise DatasetError(where, f"mask shape {mask.shape} differs from image shape "
                                      f"{slices.shape}", "use the label file that belongs to this image")
        self._cache[position] = (slices, mask)
        total = sum(s.nbytes + (0 if m is None else m.nbytes) for s, m in self._cache.values())
        while len(self._cache) > 1 and (len(self._cache) > self.cache_items or total > self.cache_bytes):
            _, (s, m) = self._cache.popitem(last=False)
            total -= s.nbytes + (0 if m is None else m.nbytes)
        return slices, mask

    def _generator(self, i: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))

    def label_of(self, position: int) -> torch.Tensor:
        """The item label: float vector (NaN = ignore) for multilabel, int64 scalar otherwise."""
        label = self.items[position].label
        if self.index.spec.label_kind == "multilabel":
            return torch.tensor(label, dtype=torch.float32)
        return torch.tensor(int(label), dtype=torch.int64)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """dict(image (3,R,R) float32, item (position in split), slice, label [, mask (R,R) int64])."""
        if not 0 <= i < len(self):
            raise IndexError(f"slice index {i} out of range for {len(self)} slices")
        position = int(self.item_of_slice[i])
        s = i - int(self.first_slice[position])
        slices, masks = self._decoded(position)
        image = torch.from_numpy(np.array(slices[s], dtype=np.float32, copy=True))
        mask = None if masks is None else torch.from_numpy(np.array(masks[s], dtype=np.int64))
        if self.augment is not None:
            image, mask = self.augment(image, mask, self._generator(i))
        out: dict[str, Any] = {"image": self.transform(image), "item": position, "slice": s}
        if self.index.spec.label_kind != "mask":
            out["label"] = self.label_of(position)
        if mask is not None:
            out["mask"] = self.transform.mask(mask)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()        # each worker process builds its own cache
        return state
