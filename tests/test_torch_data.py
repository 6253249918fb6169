"""SliceDataset: sample layout, labels, determinism per (seed, epoch, index), the volume cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from radbench_core.data.datasets import get_dataset, open_dataset
from radbench_core.data.datasets.torch_data import SliceDataset
from radbench_core.data.datasets.transforms import (ClassificationAugment, ModelTransform,
                                               SegmentationAugment)
from radbench_core.core.errors import DatasetError

T = ModelTransform(24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for dataset_id in ("mc", "sarscov2", "nih", "brain_tumor"):
        root = tmp_path_factory.mktemp(dataset_id)
        get_dataset(dataset_id).write_phantom(root, "tiny", 0)
        out[dataset_id] = root
    return out


def _open(roots, dataset_id):
    return open_dataset(get_dataset(dataset_id), roots[dataset_id])


class CountingLoads:
    """Wraps an index's readers to count decodes (the cache must make them once per item)."""

    def __init__(self, ix):
        self.calls: list[str] = []
        inner = ix.load_slices

        def load(item):
            self.calls.append(item.key)
            return inner(item)
        ix.load_slices = load


def test_volume_slices_labels_and_cache(roots):
    ix = _open(roots, "sarscov2")
    counter = CountingLoads(ix)
    ds = SliceDataset(ix, "test", T)
    items = ix.split_items("test")
    assert ds.n_items == len(items) and len(ds) == sum(it.n_slices for it in items)
    np.testing.assert_array_equal(ds.item_of_slice, np.repeat(np.arange(len(items)),
                                                              [it.n_slices for it in items]))
    samples = [ds[i] for i in range(len(ds))]
    assert counter.calls == [it.key for it in items]          # each volume decoded exactly once
    for i, sample in enumerate(samples):
        p = int(ds.item_of_slice[i])
        assert sample["item"] == p and sample["slice"] == i - int(ds.first_slice[p])
        assert sample["image"].shape == (3, 24, 24) and sample["image"].dtype == torch.float32
        assert sample["label"].dtype == torch.int64 and sample["label"].ndim == 0
        assert int(sample["label"]) == items[p].label
        assert "mask" not in sample
    vol = ix.load_slices(items[1])
    expected = T(vol[2])
    assert torch.equal(ds[int(ds.first_slice[1]) + 2]["image"], expected)
    start = int(ds.first_slice[1])
    assert list(ds.slices_of(1)) == list(range(start, start + items[1].n_slices))


def test_cache_is_bounded(roots):
    ix = _open(roots, "sarscov2")
    counter = CountingLoads(ix)
    ds = SliceDataset(ix, "train", T, cache_items=2)
    a, b, c = (int(ds.first_slice[p]) for p in range(3))
    for i in (a, b, a, c, a):           # c evicts the least recently used (b); a stays cached
        ds[i]
    assert counter.calls == [ds.items[0].key, ds.items[1].key, ds.items[2].key]
    ds[b]
    assert counter.calls[-1] == ds.items[1].key and len(ds._cache) == 2


def test_multilabel_and_multiclass_labels(roots):
    nih = _open(roots, "nih")
    sample = SliceDataset(nih, "val", T)[0]
    assert sample["label"].dtype == torch.float32 and sample["label"].shape == (15,)   # the study's 15 outputs (No Finding included)
    assert sample["label"].tolist() == list(nih.split_items("val")[0].label)
    brain = _open(roots, "brain_tumor")
    ds = SliceDataset(brain, "train", T)
    assert [int(ds[i]["label"]) for i in range(5)] == [it.label for it in brain.split_items("train")[:5]]


def test_masks_and_volume_mask(roots):
    ix = _open(roots, "mc")
    ds = SliceDataset(ix, "val", T, with_masks=True)
    sample = ds[1]
    assert "label" not in sample and sample["mask"].shape == (24, 24)
    assert sample["mask"].dtype == torch.int64 and set(sample["mask"].unique().tolist()) == {0, 1, 2}
    full = ds.volume_mask(1)
    np.testing.assert_array_equal(full, ix.load_mask(ix.split_items("val")[1]))
    assert full.shape == (1, 64, 64)
    assert torch.equal(sample["mask"], T.mask(full[0]))


def test_augmentation_deterministic_per_seed_epoch_index(roots):
    ix = _open(roots, "mc")
    make = lambda seed: SliceDataset(ix, "train", T, augment=SegmentationAugment(),
                                     with_masks=True, seed=seed)
    a, b, other = make(3), make(3), make(4)
    for i in (0, 5):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["mask"], b[i]["mask"])
    assert any(not torch.equal(a[i]["image"], other[i]["image"]) for i in range(4))
    before = [a[i]["image"] for i in range(4)]
    a.set_epoch(1)
    after = [a[i]["image"] for i in range(4)]
    assert any(not torch.equal(x, y) for x, y in zip(before, after))
    a.set_epoch(0)
    assert all(torch.equal(x, a[i]["image"]) for i, x in enumerate(before))


def test_dataloader_worker_gives_same_samples(roots):
    ix = _open(roots, "nih")
    ds = SliceDataset(ix, "test", T, augment=ClassificationAugment(), seed=7)
    ds.set_epoch(2)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1, shuffle=False)
    batch = next(iter(loader))
    direct = torch.stack([ds[i]["image"] for i in range(4)])
    assert torch.equal(batch["image"], direct)
    assert batch["item"].tolist() == [0, 1, 2, 3] and batch["label"].shape == (4, 15)


def test_bad_requests_are_refused(roots):
    ix = _open(roots, "nih")
    ix.splits["val"] = []
    with pytest.raises(DatasetError, match=r"the 'val' split of NIH ChestX-ray14 is empty"):
        SliceDataset(ix, "val", T)
    with pytest.raises(DatasetError, match=r"has no masks.*Fix: use with_masks=False"):
        SliceDataset(ix, "train", T, with_masks=True)
    ix.load_slices = lambda item: np.zeros((2, 8, 8), np.float32)     # index says 1 slice
    with pytest.raises(DatasetError, match=r"decoded shape \(2, 8, 8\); expected \(1, H, W\)"):
        SliceDataset(ix, "train", T)[0]
    with pytest.raises(IndexError):
        SliceDataset(ix, "test", T)[10_000]
