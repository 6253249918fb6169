"""run_cell end to end on phantoms: real records, cache hits without forwards, real signal."""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.run import extraction
from radbench_core.core.cells import Cell
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.config.profiles import Grid, Profile, _hparams, get_profile
from radbench_core.protocols.base import FrozenInputs
from radbench_core.protocols.linear import run_linear
from radbench_core.core.results import DEMO_WEIGHTS
from radbench_core.run.runner import BackbonePool, RunContext, planned_config_hash, run_cell


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def tiny_profile(size="tiny") -> Profile:
    return Profile(name="tiny", description="test", demo=True,
                   grids=(Grid(("dinov2_vits14",), ("nih",), ("knn", "linear")),),
                   hparams=_hparams(paper=False), cls_resolution=56, phantom_size=size, batch_size=16,
                   num_workers=0)


def test_second_frozen_protocol_runs_no_forward(cache_dir, tmp_path):
    ctx = RunContext(profile=tiny_profile(), cache_dir=cache_dir, run_dir=tmp_path, progress=False)
    pool, cache = BackbonePool(), FeatureCache(cache_dir / "features")
    first = run_cell(Cell("dinov2_vits14", "nih", "knn"), ctx, pool, cache)
    forwards = extraction.FORWARD_BATCHES
    second = run_cell(Cell("dinov2_vits14", "nih", "linear"), ctx, pool, cache)
    assert extraction.FORWARD_BATCHES == forwards, "a cache hit must not run the backbone"
    assert (cache.misses, cache.hits) == (1, 1) and pool.loads == 1
    for rec in (first, second):
        assert rec.weights == DEMO_WEIGHTS and rec.is_demo
        assert "phantom (demo" in rec.dataset_provenance
        assert rec.config_hash == planned_config_hash(Cell(rec.model, rec.dataset, rec.protocol), ctx)
        assert 0.0 <= rec.metrics["auroc"].value <= 1.0
        assert rec.metrics["auroc"].ci_low <= rec.metrics["auroc"].value <= rec.metrics["auroc"].ci_high
        assert rec.extra["n_items"]["test"] > 0 and rec.seed == 0
        names = rec.extra["class_names"]                  # the per-class list, named (clinical tables)
        assert len(names) == len(rec.extra["auroc_per_class"]) and "Cardiomegaly" in names


def test_linear_probe_on_the_nih_phantom_beats_chance_and_noise_does_not(cache_dir, tmp_path):
    profile = Profile(name="nih", description="test", demo=True,
                      grids=(Grid(("dinov2_vitg14",), ("nih",), ("linear",)),),
                      hparams=get_profile("demo").hparams, cls_resolution=112, phantom_size="small",
                      batch_size=32, num_workers=0)
    ctx = RunContext(profile=profile, cache_dir=cache_dir, run_dir=tmp_path, progress=False)
    rec = run_cell(Cell("dinov2_vitg14", "nih", "linear"), ctx, BackbonePool(),
                   FeatureCache(cache_dir / "features"))
    auroc = rec.metrics["auroc"]
    assert auroc.value > 0.6 and auroc.ci_low > 0.5, auroc
    # the same labels with features that carry no signal stay near chance
    from radbench_core.run.runner import load_index
    index, _ = load_index("nih", ctx)
    rng = np.random.default_rng(0)
    noise = FrozenInputs(
        features={s: {"cls": rng.normal(size=(len(index.splits[s]), 4, 96)).astype(np.float32),
                      "patch_mean": rng.normal(size=(len(index.splits[s]), 96)).astype(np.float32)}
                  for s in ("train", "val", "test")},
        labels={s: index.labels(s) for s in ("train", "val", "test")},
        patients={s: index.patients(s) for s in ("train", "val", "test")},
        label_kind="multilabel", num_classes=index.spec.num_classes)
    chance = run_linear(noise, profile.hparams_for("linear"), seed=0).metrics["auroc"].value
    assert abs(chance - 0.5) < 0.1, chance


def test_fine_tuning_head_rate_is_the_linear_probe_choice(cache_dir, tmp_path):
    profile = tiny_profile()
    assert profile.hparams_for("finetune")["head_lr"] == "linear"
    ctx = RunContext(profile=profile, cache_dir=cache_dir, run_dir=tmp_path, progress=False)
    pool, cache = BackbonePool(), FeatureCache(cache_dir / "features")
    linear = run_cell(Cell("dinov2_vits14", "nih", "linear"), ctx, pool, cache)
    forwards = extraction.FORWARD_BATCHES
    tuned = run_cell(Cell("dinov2_vits14", "nih", "bitfit"), ctx, pool, cache)
    assert tuned.hparams["head_lr"] == 5e-3          # BitFit keeps its own fixed rates
    full = run_cell(Cell("dinov2_vits14", "nih", "finetune"), ctx, pool, cache)
    assert full.hparams["head_lr"] == linear.hparams["lr"]
    # resume compares this hash before anything runs: resolving head_lr must not change it
    assert full.config_hash == planned_config_hash(Cell("dinov2_vits14", "nih", "finetune"), ctx)
    assert extraction.FORWARD_BATCHES == forwards     # the probe's features came from the cache


def test_a_frozen_probe_records_the_whole_model_as_its_total(cache_dir, tmp_path):
    from radbench_core.models.features import load_backbone
    ctx = RunContext(profile=tiny_profile(), cache_dir=cache_dir, run_dir=tmp_path, progress=False)
    rec = run_cell(Cell("dinov2_vits14", "nih", "linear"), ctx, BackbonePool(), FeatureCache(cache_dir / "features"))
    backbone = sum(p.numel() for p in load_backbone("dinov2_vits14", demo=True, resolution=56).parameters())
    assert rec.params_trainable > 0
    assert rec.params_total == backbone + rec.params_trainable


def test_every_input_kind_has_one_builder():
    from typing import get_args

    from radbench_core.protocols import PROTOCOLS, InputKind
    from radbench_core.run.inputs import BUILDERS
    assert set(BUILDERS) == set(get_args(InputKind))
    assert {PROTOCOLS.get_spec(p).inputs for p in PROTOCOLS} <= set(BUILDERS)


def test_the_protocol_receives_exactly_the_hashed_hparams(cache_dir, tmp_path, monkeypatch):
    """No side channel: the linear probe's rate arrives as LiveInputs.linear_probe_lr, and the
    hyperparameters the protocol sees are the ones the config hash was taken from."""
    from radbench_core.protocols import finetune, get_protocol
    from radbench_core.run.runner import cell_hparams
    seen = []

    def recording(inputs, hparams, seed):
        seen.append((inputs, dict(hparams)))
        return real(inputs, hparams, seed)
    real = finetune.run_finetune
    monkeypatch.setattr(finetune, "run_finetune", recording)
    profile = tiny_profile()
    ctx = RunContext(profile=profile, cache_dir=cache_dir, run_dir=tmp_path, progress=False)
    pool, cache = BackbonePool(), FeatureCache(cache_dir / "features")
    linear = run_cell(Cell("dinov2_vits14", "nih", "linear"), ctx, pool, cache)
    cell = Cell("dinov2_vits14", "nih", "finetune")
    full = run_cell(cell, ctx, pool, cache)
    (inputs, hparams), = seen
    assert hparams == cell_hparams(cell, get_protocol("finetune"), profile)
    assert hparams["head_lr"] == "linear"
    assert inputs.linear_probe_lr == linear.hparams["lr"] == full.hparams["head_lr"]
