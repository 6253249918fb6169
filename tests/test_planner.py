"""radbench plan: ViT FLOPs against a hand count and torch's flop counter, the README's measured
numbers, a cell's hours by hand, calibration files, the paper profile in < 3 s of CPU, stored counts
equal to a recount, dataset sizes from the dataset specs, time-balanced shards."""

from __future__ import annotations

import json
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.core.cells import Cell
from radbench_core.cli.app import main
from radbench_core.core.errors import ConfigError
from radbench_core.plan.estimate import estimate_cell, load_calibration, plan
from radbench_core.plan import constants, counted
from radbench_core.plan.constants import EFFICIENCY, GPUS
from radbench_core.plan.flops import backbone_flops, count_decoder, count_scratch, counted_decoder, vit_flops
from radbench_core.config.profiles import get_profile
from radbench_core.run.sharding import balance_shards


def test_vit_flops_by_hand_for_a_one_block_vit():
    # 28 px, patch 14: 4 patches + cls = 5 tokens, width 8, MLP 4x
    patch = 4 * 3 * 14 * 14 * 8                    # 18,816 multiply-adds
    linear = (4 + 2 * 4) * 5 * 8 * 8               # qkv + proj + MLP = 3,840
    attention = 2 * 5 * 5 * 8                      # scores + weighted sum = 400
    assert vit_flops(1, 8, 4.0, 14, 28) == 2 * (patch + linear + attention)


def test_vit_flops_equal_torch_flop_counter_on_a_timm_vit():
    import timm
    from torch.utils.flop_counter import FlopCounterMode
    model = timm.models.vision_transformer.VisionTransformer(img_size=84, patch_size=14, embed_dim=96,
                                                             depth=3, num_heads=4, num_classes=0)
    for block in model.blocks:
        block.attn.fused_attn = False             # explicit matmuls: the counter sees attention
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 84, 84))
    assert counter.get_total_flops() == vit_flops(3, 96, 4.0, 14, 84)


def test_full_size_costs_match_the_readme_and_scale():
    assert backbone_flops("dinov2_vitl14", 224) / 1e9 == pytest.approx(162.0, abs=0.5)   # README
    assert backbone_flops("dinov2_vitl14", 448) / 1e9 == pytest.approx(724.0, abs=1.0)   # README
    assert backbone_flops("resnet152", 448) == pytest.approx(4 * backbone_flops("resnet152", 224))
    flops, activations = counted_decoder("unet", 1024, 14, 448)
    assert flops > 0 and activations > 0


def test_a_finetune_cell_by_hand():
    profile = get_profile("paper")
    est = estimate_cell(Cell("dinov2_vitg14", "nih", "finetune"), profile, "H200", dict(EFFICIENCY), set())
    f = backbone_flops("dinov2_vitg14", 224)
    # paper runs the study's split (switch patient_split_70_10_20): val = the last 10,002 rows of
    # train_val_list.txt (make_val_set); sound would take 10 % of the train_val patients (8,652)
    n = {"train": 76_522, "val": 10_002, "test": 25_596}
    flops = 8 * 20 * f * (3 * n["train"] + n["val"]) + f * n["test"]       # 8 rates x 20 epochs
    assert est.total_pflop == pytest.approx(flops / 1e15)
    assert est.gpu_hours == pytest.approx(flops / (989.4e12 * EFFICIENCY["finetune"]) / 3600)
    assert est.path == "finetune" and est.peak_memory_gib < GPUS["H200"]["memory_gib"]


def test_frozen_cells_share_one_extraction():
    profile = get_profile("paper")
    seen: set = set()
    knn = estimate_cell(Cell("dinov2_vitl14", "nih", "knn"), profile, "H200", dict(EFFICIENCY), seen)
    again = estimate_cell(Cell("dinov2_vitl14", "nih", "fewshot", "8"), profile, "H200", dict(EFFICIENCY), seen)
    assert knn.gpu_hours > 0 and knn.cache_gib > 0
    assert again.gpu_hours == 0 and again.cache_gib == 0


def test_calibration_replaces_assumed_efficiencies(tmp_path):
    good = tmp_path / "gpu.json"
    good.write_text(json.dumps({"gpu": "NVIDIA H200", "paths": {"finetune": {"pct_peak": 15.0}}}))
    assert load_calibration(good) == {"finetune": 0.15}
    profile = get_profile("paper")
    cells = [Cell("dinov2_vitg14", "nih", "finetune")]
    base, calibrated = plan(profile, cells), plan(profile, cells, calibration=good)
    assert calibrated.total_hours == pytest.approx(2 * base.total_hours)
    assert "finetune" not in calibrated.assumed and "finetune" in base.assumed
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="gpu_training.py"):
        load_calibration(bad)
    with pytest.raises(ConfigError, match="unknown GPU"):
        plan(profile, cells, gpu="TPU")


def test_plan_of_the_paper_profile_is_fast_and_complete(capsys):
    start = time.process_time()            # CPU: the machine may be shared
    assert main(["plan", "--profile", "paper", "--shards", "4"]) == 0
    elapsed = time.process_time() - start
    out = capsys.readouterr().out
    assert elapsed < 3.0, elapsed
    assert "TOTAL 241 cells on one H200" in out and "dominant cells" in out and "ASSUMED" in out
    assert out.count("\n") > 241 and "shard 4/4" in out


def test_plan_selects_like_pytest(capsys):
    assert main(["plan", "--profile", "paper", "-k", "vitg14 and finetune", "-m", "xray", "--summary"]) == 0
    assert "2 cell(s)" in capsys.readouterr().out


def test_time_balanced_shards_of_the_demo_grid_are_within_15_percent():
    profile = get_profile("demo")
    hours = {e.cell_id: e.gpu_hours for e in plan(profile, profile.cells()).estimates}
    for n in (2, 3, 4):
        shards = balance_shards(hours, n)
        loads = [sum(h for c, h in hours.items() if shards[c] == k) for k in range(1, n + 1)]
        assert max(loads) <= 1.15 * min(loads), (n, loads)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=7), st.integers(1, 3))
def test_longest_first_is_within_four_thirds_of_optimal(costs, n):
    import itertools
    named = {f"c{i}": c for i, c in enumerate(costs)}
    shards = balance_shards(named, n)
    assert set(shards.values()) <= set(range(1, n + 1)) and set(shards) == set(named)
    loads = [sum(c for k, c in named.items() if shards[k] == j) for j in range(1, n + 1)]
    optimum = min(max(sum(c for c, a in zip(costs, assign) if a == j) for j in range(n))
                  for assign in itertools.product(range(n), repeat=len(costs)))   # brute force
    assert max(loads) <= (4 / 3 - 1 / (3 * n)) * optimum + 1e-9        # Graham's LPT bound
    assert balance_shards(named, n) == shards                            # deterministic


def test_gpu_training_benchmark_runs_tiny_and_feeds_the_planner(tmp_path):
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_training.py"
    spec = importlib.util.spec_from_file_location("gpu_training", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "tiny.json"
    assert module.main(["--tiny", "--only", "seg_decoder", "scratch", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["paths"]) == {"seg_decoder", "scratch"}
    for row in doc["paths"].values():
        assert row["images_per_s"] > 0 and row["flops_per_step"] > 0
    assert load_calibration(out) == {}           # CPU: no % of peak, nothing calibrated


@pytest.mark.parametrize("key", sorted(counted.DECODERS))
def test_stored_decoder_counts_equal_a_recount(key):
    assert count_decoder(*key) == counted.DECODERS[key]


@pytest.mark.parametrize("key", sorted(counted.SCRATCH))
def test_stored_scratch_counts_equal_a_recount(key):
    assert count_scratch(*key) == counted.SCRATCH[key]


def test_stored_scratch_parameters_equal_a_recount():
    from radbench_core.models.scratch_models import parameter_counts
    assert {m: parameter_counts(m)[1] for m in counted.SCRATCH_PARAMS} == counted.SCRATCH_PARAMS


def test_dataset_sizes_come_from_the_dataset_specs():
    """One source: CheXpert's loader splits 191,027 / 202 / 518 frontal images (not Table 1's
    161,792), and the planner charges exactly those; no size table of its own."""
    from radbench_core.data.datasets import DATASET_IDS, get_dataset
    assert not hasattr(constants, "DATASETS")
    assert all(get_dataset(d).size is not None for d in DATASET_IDS)
    size = get_dataset("chexpert").size
    assert (size.train, size.val, size.test) == (191_027, 202, 518)
    est = estimate_cell(Cell("dinov2_vitl14", "chexpert", "knn"), get_profile("paper"), "H200",
                        dict(EFFICIENCY), set())
    assert est.total_pflop * 1e15 == pytest.approx(backbone_flops("dinov2_vitl14", 224) * 191_747)


def test_a_dataset_without_a_size_is_a_planner_error(monkeypatch):
    import dataclasses

    from radbench_core.data import datasets
    sizeless = dataclasses.replace(datasets.get_dataset("mc"), size=None)
    monkeypatch.setattr(datasets, "get_dataset", lambda _id: sizeless)
    with pytest.raises(ConfigError, match=r"planner: dataset 'mc'.*size=DatasetSize"):
        estimate_cell(Cell("dinov2_vitl14", "mc", "seg_unet"), get_profile("paper"), "H200",
                      dict(EFFICIENCY), set())


def test_few_shot_segmentation_cells_by_hand():
    """Few-shot repeats the 4-rate sweep per seed the cell really runs on `shots` images (decoder and
    scratch): `sound` 3 random samples on MC dealt 70/10/20 (97 / 14 / 27), `paper` the study's one
    systematic sample (switch seg_fewshot_random_seeds) on the study's MC split (69 / 23 / 46)."""
    f = backbone_flops("dinov2_vitl14", 224)
    fd, _ = counted_decoder("unet", 1024, 14, 224)
    fm, _ = counted.SCRATCH[("unet", 448, 2)]             # the study's scratch notebooks: 448 px only
    for name, seeds, (n_train, n_val, n_test) in (("sound", 3, (97, 14, 27)), ("paper", 1, (69, 23, 46))):
        profile = get_profile(name)
        est = estimate_cell(Cell("dinov2_vitl14", "mc", "seg_fewshot", "4"), profile, "H200", dict(EFFICIENCY), set())
        flops = seeds * 4 * 50 * ((f + 3 * fd) * 4 + (f + fd) * n_val) + (f + fd) * n_test
        assert est.total_pflop == pytest.approx(flops / 1e15) and est.path == "seg_decoder", name
        est = estimate_cell(Cell("unet", "mc", "scratch_fewshot", "16"), profile, "H200", dict(EFFICIENCY), set())
        flops = fm * (seeds * 7 * 50 * (3 * 16 + n_val) + n_test)      # 7 rates x seeds, 50 sweep epochs
        assert est.total_pflop == pytest.approx(flops / 1e15) and est.path == "scratch", name
        assert n_train + n_val + n_test == 138


def test_the_planner_counts_the_seeds_the_protocol_runs():
    """One function decides for both: the planner's run count is the protocol's list of seeds."""
    from radbench_core.protocols.segmentation import fewshot_seeds
    from radbench_core.run.identity import cell_hparams
    from radbench_core.protocols import get_protocol
    for name, want in (("paper", [0]), ("sound", [0, 1, 2])):
        profile = get_profile(name)
        for protocol in ("seg_fewshot", "scratch_fewshot"):
            hp = cell_hparams(Cell("unet" if protocol.startswith("scratch") else "dinov2_vitl14", "mc", protocol, "4"),
                              get_protocol(protocol), profile)
            assert fewshot_seeds(hp) == want, (name, protocol)
