"""Extraction through one DataLoader over all splits equals per-split extraction; cache hits run no forward."""

import numpy as np
import torch

from radbench_core.run import extraction
from radbench_core.run.extraction import extract_split, extract_splits


class Slices(torch.utils.data.Dataset):
    """Items with 1..3 slices each; the image encodes (item, slice) so averages are checkable."""

    def __init__(self, n_items: int, offset: float):
        self.index = [(i, s) for i in range(n_items) for s in range(1 + i % 3)]
        self.n_items, self.offset = n_items, offset

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        item, slc = self.index[i]
        return {"image": torch.full((3, 4, 4), self.offset + item + 0.1 * slc), "item": item, "slice": slc}


class Mean(torch.nn.Module):
    spec = None

    def pooled(self, x):
        m = x.mean(dim=(1, 2, 3))
        return {"cls": torch.stack([m, 2 * m], 1).unsqueeze(-1), "patch_mean": m.unsqueeze(1)}


def test_one_loader_equals_per_split_and_averages_slices():
    parts = {"train": Slices(5, 0.0), "val": Slices(2, 100.0), "test": Slices(3, 200.0)}
    joined = extract_splits(Mean(), parts, device="cpu", batch_size=3, progress=False)
    for name, ds in parts.items():
        alone = extract_split(Mean(), ds, device="cpu", batch_size=4, progress=False)
        for kind in alone:
            np.testing.assert_allclose(joined[name][kind], alone[kind], rtol=1e-6)
    # item 2 of train has 3 slices: 2.0, 2.1, 2.2 -> mean 2.1
    assert joined["train"]["patch_mean"][2, 0] == np.float32(2.1)
    assert joined["test"]["cls"].shape == (3, 2, 1)
    np.testing.assert_allclose(joined["val"]["cls"][:, 1, 0], 2 * (100.0 + np.array([0.0, 1.05])), rtol=1e-6)


def test_forward_counter_counts_batches():
    before = extraction.FORWARD_BATCHES
    extract_split(Mean(), Slices(4, 0.0), device="cpu", batch_size=2, progress=False)
    assert extraction.FORWARD_BATCHES - before == 4     # 1+2+3+1 = 7 slices -> 4 batches of 2
