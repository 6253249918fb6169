"""Fine-tuning (full, LoRA, BitFit) of a tiny timm ViT on an easy synthetic image task."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch.utils.data import Dataset

from radbench_core.errors import ConfigError
from radbench_core.protocols.base import LiveInputs
from radbench_core.protocols.finetune import (configure_trainable, count_parameters, predict_items,
                                              run_finetune)
from radbench_core.protocols.linear import scores_from_logits

D, DEPTH, HIDDEN, RES = 24, 2, 48, 16          # embed dim, blocks, MLP hidden, image size


class TinyBackbone(torch.nn.Module):
    """The slice of radbench's Backbone API the protocol uses: model, embed_dim, head_features."""

    def __init__(self, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = VisionTransformer(img_size=RES, patch_size=8, embed_dim=D, depth=DEPTH,
                                           num_heads=2, mlp_ratio=HIDDEN / D, num_classes=0)
        self.embed_dim = D

    def head_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)[:, 0]


class SliceSet(Dataset):
    """Slices of items (an item may have several): dicts with image (3,R,R), item, label."""

    def __init__(self, images: torch.Tensor, items: np.ndarray, labels: np.ndarray):
        self.images, self.items, self.labels = images, items, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        item = int(self.items[i])
        return {"image": self.images[i], "item": item, "label": self.labels[item]}


def easy_task(n_items: int, signal: float, seed: int = 0) -> LiveInputs:
    """Binary task: positives are brighter (signal > 0); items 0 mod 3 are 2-slice volumes."""
    rng = np.random.default_rng(seed)
    datasets, labels = {}, {}
    for split, n in (("train", n_items), ("val", n_items // 2), ("test", n_items)):
        y = rng.integers(0, 2, n)
        items = np.concatenate([[i] * (2 if i % 3 == 0 else 1) for i in range(n)])
        noise = rng.normal(size=(len(items), 3, RES, RES)) * 0.5
        images = torch.as_tensor(noise + signal * y[items][:, None, None, None], dtype=torch.float32)
        datasets[split], labels[split] = SliceSet(images, items, y), y
    return LiveInputs(TinyBackbone(), datasets, labels, "binary", 2)


FAST = {"epochs": 3, "batch_size": 16, "backbone_lrs": (1e-3,), "head_lr": 1e-2, "bootstrap": 100}


def expected_lora_params(r: int, n_out: int) -> int:
    per_block = r * (D + 3 * D) + r * (D + HIDDEN) + r * (HIDDEN + D)      # qkv, fc1, fc2
    return DEPTH * per_block + D * n_out + n_out


def expected_bitfit_params(n_out: int) -> int:
    # patch-embed bias + per block (norm1, qkv, proj, norm2, fc1, fc2) + final norm, + head
    per_block = D + 3 * D + D + D + HIDDEN + D
    return D + DEPTH * per_block + D + D * n_out + n_out


@pytest.mark.parametrize("mode,extra", [("full", {}), ("lora", {"backbone_lrs": (2e-3,)}),
                                        ("bitfit", {"backbone_lrs": (2e-3,)})])
def test_every_mode_learns_the_easy_task(mode: str, extra: dict) -> None:
    inputs = easy_task(60, 1.5)
    result = run_finetune(inputs, {**FAST, **extra, "mode": mode, "r": 8}, seed=0)
    m = result.metrics["auroc"]
    assert m.value > 0.85 and m.ci_low <= m.value <= m.ci_high
    assert result.chosen["mode"] == mode and 1 <= result.chosen["epochs"] <= 3
    assert result.extra["train_wall_s"] > 0 and result.extra["peak_memory_mb"] > 0
    assert result.extra["params_trainable_pct"] == pytest.approx(
        100 * result.params_trainable / result.params_total)
    if mode == "lora":
        assert result.params_trainable == expected_lora_params(8, 2)
    if mode == "bitfit":
        assert result.params_trainable == expected_bitfit_params(2)
    if mode == "full":
        assert result.params_trainable == result.params_total


def test_noise_images_stay_near_chance() -> None:
    result = run_finetune(easy_task(200, 0.0, seed=1), {**FAST, "epochs": 2, "mode": "full"}, seed=0)
    assert abs(result.metrics["auroc"].value - 0.5) < 0.15


def test_lora_and_bitfit_counts_equal_hand_counted_values_at_the_study_rank() -> None:
    head = torch.nn.Linear(D, 3)
    lora = TinyBackbone()
    configure_trainable(lora, "lora", {"r": 48, "alpha": 16, "dropout": 0.1}, seed=0)
    trainable, total = count_parameters(lora, head)
    assert trainable == expected_lora_params(48, 3)
    plain_total = count_parameters(TinyBackbone(), head)[1]
    assert total == plain_total + expected_lora_params(48, 3) - (D * 3 + 3)
    bitfit = TinyBackbone()
    configure_trainable(bitfit, "bitfit", {}, seed=0)
    assert count_parameters(bitfit, head) == (expected_bitfit_params(3), plain_total)
    with pytest.raises(ConfigError, match=r"hparams\['mode'\]='prefix'.*Fix: use 'full'"):
        configure_trainable(TinyBackbone(), "prefix", {})


def _wrapped(key: str, state: dict) -> str:
    """peft moves a wrapped layer's own weights to '<layer>.base_layer.<name>'."""
    layer, _, name = key.rpartition(".")
    return f"{layer}.base_layer.{name}" if f"{layer}.base_layer.{name}" in state else key


def test_lora_and_bitfit_leave_frozen_weights_untouched() -> None:
    for mode in ("lora", "bitfit"):
        inputs = easy_task(30, 1.5)
        before = copy.deepcopy(inputs.backbone.model.state_dict())
        run_finetune(inputs, {**FAST, "epochs": 1, "mode": mode, "r": 4}, seed=0)
        after = inputs.backbone.model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[_wrapped(k, after)])}
        if mode == "lora":
            assert changed == set()
            assert any("lora_B" in k and after[k].abs().sum() > 0 for k in after)   # adapters learned
        else:
            assert changed and all(k.endswith("bias") for k in changed)


def test_item_scores_average_the_slice_probabilities() -> None:
    inputs = easy_task(9, 1.0)
    backbone, head = inputs.backbone, torch.nn.Linear(D, 2)
    data = inputs.datasets["test"]
    got = predict_items(backbone, head, data, 9, "binary", batch_size=4, device="cpu")
    with torch.no_grad():
        slice_scores = scores_from_logits(head(backbone.head_features(data.images)), "binary")
    want = [slice_scores[torch.as_tensor(data.items == i)].double().mean().item() for i in range(9)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ConfigError, match=r"1 of 10 items have no slice"):
        predict_items(backbone, head, data, 10, "binary", batch_size=4, device="cpu")


def test_finetune_is_deterministic_for_a_seed_and_rejects_bad_hparams() -> None:
    hp = {**FAST, "epochs": 1, "mode": "bitfit"}
    first = run_finetune(easy_task(30, 1.0), hp, seed=3)
    second = run_finetune(easy_task(30, 1.0), hp, seed=3)
    assert first.metrics == second.metrics and first.chosen == second.chosen
    with pytest.raises(ConfigError, match=r"hparams\['optimizer'\]='lamb': unknown optimizer"):
        run_finetune(easy_task(30, 1.0), {**hp, "optimizer": "lamb"}, seed=0)
    with pytest.raises(ConfigError, match=r"epochs=0"):
        run_finetune(easy_task(30, 1.0), {**hp, "epochs": 0}, seed=0)
    without_head_lr = {k: v for k, v in hp.items() if k != "head_lr"}
    with pytest.raises(ConfigError, match=r"hparams\['head_lr'\] of protocol 'bitfit': missing"):
        run_finetune(easy_task(30, 1.0), without_head_lr, seed=0)


def test_best_rate_and_epoch_are_chosen_on_validation() -> None:
    hp = {**FAST, "backbone_lrs": (1e-3, 1e-7), "head_lr": 1e-3, "mode": "full"}
    result = run_finetune(easy_task(60, 0.3, seed=2), hp, seed=0)
    history = result.extra["val_auroc_by_lr"]
    assert set(history) == {"0.001", "1e-07"} and all(len(v) == 3 for v in history.values())
    best = max(v for values in history.values() for v in values)
    first = next((lr, e) for lr, values in history.items() for e, v in enumerate(values) if v == best)
    assert (f"{result.chosen['backbone_lr']:g}", result.chosen["epochs"] - 1) == first
    assert result.metrics["auroc_val"].value == best
