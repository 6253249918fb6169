"""Same seed, same machine -> the same record, to the last bit on CPU; another seed changes what it should.

Each cell runs twice in this process through ``runner.run_cell`` with a fresh BackbonePool and a
fresh FeatureCache (so features are extracted again, not read back), and the CellResults are
compared exactly: metric values and CI bounds with ``==`` on floats, the chosen hyperparameters,
parameter counts and the config hash.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import numpy as np
import torch

from radbench_core.run import runner
from radbench_core.core.cells import Cell
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.core.results import CellResult

FROZEN_KNN = Cell("dinov2_vits14", "nih", "knn")
FROZEN_LINEAR = Cell("resnet152", "nih", "linear")
FINETUNE = Cell("dinov2_vits14", "nih", "bitfit")
SEGMENTATION = Cell("dinov2_vits14", "mc", "seg_linear", "56")


def tiny_profile() -> Profile:
    hparams = _hparams(paper=False)
    hparams["linear"].update(epochs=10, bootstrap=100)
    hparams["knn"].update(bootstrap=100)
    hparams["bitfit"].update(epochs=1, bootstrap=100)
    # augmentation on: the seeded flips/rotations must repeat too
    hparams["seg_linear"].update(epochs=4, augment=True, cache_maps=False, bootstrap_resamples=50,
                                 n_examples=0)
    return Profile(name="determinism", description="tiny cells run twice", demo=True,
                   grids=(Grid(("dinov2_vits14",), ("nih",), ("knn",)),), hparams=hparams,
                   cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("phantoms")


def run_fresh(cell: Cell, seed: int, phantoms: Path, features: Path) -> CellResult:
    """One cell from scratch: new backbone pool, new (empty) feature cache, new dataset index."""
    runner._INDEXES.clear()
    ctx = runner.RunContext(profile=tiny_profile(), cache_dir=phantoms, device="cpu", seed=seed,
                            run_dir=None, progress=False)
    pool = runner.BackbonePool()
    cache = FeatureCache(features)
    try:
        result = runner.run_cell(cell, ctx, pool, cache)
    finally:
        pool.release()
    assert cache.misses == (1 if runner.get_protocol(cell.protocol).inputs == "frozen" else 0)
    return result


def _volatile(key: str) -> bool:
    return "wall" in key or "memory" in key or key.endswith("time_s")


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not _volatile(str(k))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def comparable(result: CellResult) -> dict:
    """Everything a stored record says about the cell except how long it took and its memory.

    Compared as stored (``to_dict``: NaN, e.g. the AUROC of a class absent from a tiny test split,
    becomes None), since NaN != NaN would make two identical records differ.
    """
    return _without_timings(result.to_dict())


def assert_bit_identical(a: CellResult, b: CellResult) -> None:
    assert comparable(a) == comparable(b)
    for name, metric in a.metrics.items():
        other = b.metrics[name]
        for field in ("value", "ci_low", "ci_high"):
            x, y = getattr(metric, field), getattr(other, field)
            assert (x is None and y is None) or math.isnan(x) and math.isnan(y) or \
                x.hex() == y.hex(), (name, field, x, y)


# (not named "cell": the radbench plugin parametrizes any test asking for a "cell" argument)
@pytest.mark.parametrize("case", [FROZEN_KNN, FROZEN_LINEAR, FINETUNE, SEGMENTATION], ids=lambda c: c.id)
def test_same_seed_gives_a_bit_identical_record(case, phantoms, tmp_path):
    first = run_fresh(case, 0, phantoms, tmp_path / "features-a")
    second = run_fresh(case, 0, phantoms, tmp_path / "features-b")
    assert_bit_identical(first, second)
    assert first.seed == 0 and first.deterministic is torch.are_deterministic_algorithms_enabled()
    assert first.metrics and all(m.value is not None and math.isfinite(m.value) for m in first.metrics.values())
    assert any(m.value > 0 for m in first.metrics.values())          # a real result, not a degenerate 0


def test_another_seed_changes_the_random_parts_only(phantoms, tmp_path):
    """kNN has no randomness but its bootstrap; training does: the seed must reach both."""
    knn = {s: run_fresh(FROZEN_KNN, s, phantoms, tmp_path / f"knn-{s}") for s in (0, 1)}
    assert knn[0].metrics["auroc"].value == knn[1].metrics["auroc"].value      # same features, same split
    from radbench_core.eval.paired import cluster_counts                       # the CI's patient draws
    patients = np.array([f"p{i}" for i in range(40)])
    assert not np.array_equal(cluster_counts(patients, 50, 0)[0], cluster_counts(patients, 50, 1)[0])
    assert knn[0].metrics["auroc"].ci_unit == knn[1].metrics["auroc"].ci_unit
    # issue 26: the seed is part of a record's identity, so resume never mixes two seeds' records
    assert knn[0].config_hash != knn[1].config_hash
    assert (knn[0].extra["identity"]["seed"], knn[1].extra["identity"]["seed"]) == (0, 1)
    tuned = {s: run_fresh(FINETUNE, s, phantoms, tmp_path / f"ft-{s}") for s in (0, 1)}
    assert tuned[0].metrics["auroc"].value != tuned[1].metrics["auroc"].value  # head init, batch order
    assert (tuned[0].seed, tuned[1].seed) == (0, 1)


def test_record_carries_the_deterministic_algorithms_setting(phantoms, tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        strict = run_fresh(FROZEN_KNN, 3, phantoms, tmp_path / "strict")
    finally:
        torch.use_deterministic_algorithms(before)
    loose = run_fresh(FROZEN_KNN, 3, phantoms, tmp_path / "loose")
    assert (strict.seed, strict.deterministic) == (3, True)
    assert (loose.seed, loose.deterministic) == (3, before)
    assert strict.metrics == loose.metrics            # on CPU the strict mode changes no number
    stored = CellResult.from_dict(strict.to_dict())
    assert (stored.seed, stored.deterministic) == (3, True)
