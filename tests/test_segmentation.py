"""Segmentation protocols end to end on a synthetic task, plus loss, reassembly and scoring checks.

The synthetic task follows the real contracts: a tiny index with ``split_items``/``load_mask``
(volumes of non-square slices), a dataset with the SliceDataset API (image/mask/item/slice,
``item_of_slice``, ``n_items``, ``set_epoch``) and a backbone with the features.Backbone API built on
a tiny random-initialised timm ViT.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from radbench_core.data.datasets.base import Item
from radbench_core.core.errors import ConfigError
from radbench_core.protocols.base import SegInputs
from radbench_core.protocols.losses import dice_loss
from radbench_core.protocols.seg_training import (SegTask, mean_dice, per_item_scores,
                                                  predict_items, reassemble)
from radbench_core.protocols.segmentation import (run_seg_decoder, run_seg_fewshot, run_seg_scratch,
                                                  summarise)

RES, PATCH, H, W = 48, 8, 40, 52
CLASSES = ("disk", "square")


# --------------------------------------------------------------------------- synthetic task
def phantom_slice(rng: np.random.Generator, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a bright disk (class 1) and a dimmer square (class 2), never overlapping."""
    img = rng.normal(0.15, 0.05, size=(h, w)).astype(np.float32)
    mask = np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[:h, :w]
    r = rng.uniform(6, 10)
    cy, cx = rng.uniform(r + 1, h - r - 1), rng.uniform(r + 1, w / 2 - 1)
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    s = int(rng.integers(8, 13))
    y0, x0 = int(rng.integers(1, h - s - 1)), int(rng.integers(w // 2 + 1, w - s - 1))
    mask[y0:y0 + s, x0:x0 + s] = 2
    img[mask == 1] = 0.95
    img[mask == 2] = 0.6
    return np.clip(img + rng.normal(0, 0.03, size=img.shape), 0, 1).astype(np.float32), mask


class FakeIndex:
    """The two DatasetIndex readers a segmentation protocol uses, over in-memory volumes."""

    def __init__(self, n_items: dict[str, int], n_slices: int = 3, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.spec = SimpleNamespace(class_names=CLASSES)
        self.items, self.splits, self.vols, self.masks = [], {}, {}, {}
        for split, n in n_items.items():
            self.splits[split] = []
            for _ in range(n):
                key = f"case{len(self.items):03d}"
                pairs = [phantom_slice(rng) for _ in range(n_slices)]
                self.vols[key] = np.stack([p[0] for p in pairs])
                self.masks[key] = np.stack([p[1] for p in pairs])
                self.splits[split].append(len(self.items))
                self.items.append(Item(key=key, patient=key, images=(key,), n_slices=n_slices))

    def split_items(self, split: str) -> list[Item]:
        return [self.items[i] for i in self.splits[split]]

    def load_slices(self, item: Item) -> np.ndarray:
        return self.vols[item.key].copy()

    def load_mask(self, item: Item) -> np.ndarray:
        return self.masks[item.key].copy()


class FakeSliceDataset(torch.utils.data.Dataset):
    """SliceDataset API: every slice of the split's items, item by item, resized to RES x RES."""

    def __init__(self, index: FakeIndex, split: str, res: int = RES):
        images, masks, items, slices = [], [], [], []
        for pos, item in enumerate(index.split_items(split)):
            vol = torch.from_numpy(index.load_slices(item))[:, None]
            lab = torch.from_numpy(index.load_mask(item))[:, None].float()
            images.append(F.interpolate(vol, size=(res, res), mode="bilinear", align_corners=False))
            masks.append(F.interpolate(lab, size=(res, res), mode="nearest")[:, 0].long())
            items += [pos] * vol.shape[0]
            slices += list(range(vol.shape[0]))
        self.images = ((torch.cat(images) - 0.5) / 0.25).repeat(1, 3, 1, 1)
        self.masks = torch.cat(masks)
        self.item_of_slice = np.asarray(items)
        self.slice_ids = slices
        self.n_items = len(index.split_items(split))
        self.augment = None
        self.epochs_seen: list[int] = []

    def __len__(self) -> int:
        return len(self.item_of_slice)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "mask": self.masks[i], "item": int(self.item_of_slice[i]),
                "slice": self.slice_ids[i]}

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)


class TinyViTBackbone(nn.Module):
    """features.Backbone API on a random-init timm ViT (patch 8, 5 blocks of width 32)."""

    def __init__(self, res: int = RES, dim: int = 32):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=res,
                                         patch_size=PATCH, embed_dim=dim, depth=5, num_heads=2,
                                         num_classes=0)
        self.resolution, self.embed_dim = res, dim
        self.map_channels, self.map_strides = (dim,) * 5, (PATCH,) * 5
        self.spec = SimpleNamespace(arch="vit")

    def patch_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.vit.forward_intermediates(x, indices=5, intermediates_only=True)

    def frozen(self) -> "TinyViTBackbone":
        self.eval().requires_grad_(False)
        return self


@pytest.fixture(scope="module")
def index() -> FakeIndex:
    return FakeIndex({"train": 8, "val": 3, "test": 4})


def seg_inputs(index: FakeIndex, backbone=None, scratch=None, examples_path=None) -> SegInputs:
    datasets = {s: FakeSliceDataset(index, s) for s in ("train", "val", "test")}
    return SegInputs(index=index, datasets=datasets, num_classes=3, resolution=RES, backbone=backbone,
                     scratch_model=scratch, examples_path=examples_path)


def hp(**kw) -> dict:
    base = {"lrs": [5e-2, 1e-2], "epochs": 6, "batch_size": 8, "cache_maps": True, "select_epoch": "best",
            "select_metric": "dice", "refit": False, "bootstrap_resamples": 100, "decoder": "unet"}
    return {**base, **kw}


def state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- end to end
def test_unet_decoder_learns_phantoms_and_backbone_stays_frozen(index, tmp_path):
    from radbench_core.protocols.decoders import UNetDecoder
    backbone = TinyViTBackbone()
    before = state_snapshot(backbone)
    examples = tmp_path / "ex" / "cell.npz"
    res = run_seg_decoder(seg_inputs(index, backbone, examples_path=str(examples)),
                          hp(lrs=[2e-1], epochs=15, n_examples=3), seed=0)
    after = backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "frozen backbone changed"
    assert not any(p.requires_grad for p in backbone.parameters())

    assert set(res.metrics) == {"dice", "jaccard", "dice_jaccard", "dice_study", "jaccard_study",
                                "dice_jaccard_study"}
    assert res.metrics["dice"].value > 0.7
    assert all(v["dice"] > 0.5 for v in res.extra["per_class"].values())
    assert set(res.extra["per_class"]) == set(CLASSES)
    hd95 = res.extra["hd95"]                   # FakeIndex has no voxel_spacing: pixels
    assert hd95["unit"] == "px" and set(hd95["per_class"]) == set(CLASSES)
    assert all(0.0 <= res.extra["per_class"][c]["hd95"] == hd95["per_class"][c] < H / 2 for c in CLASSES), hd95
    assert sum(hd95["volumes_scored"].values()) >= len(CLASSES)
    for name, m in res.metrics.items():
        assert m.higher_is_better and 0.0 <= m.ci_low <= m.ci_high <= 1.0, name
    mean_dj = np.mean([v["dice_jaccard"] for v in res.extra["per_class"].values()])
    assert res.metrics["dice_jaccard"].value == pytest.approx(mean_dj)
    assert res.metrics["dice_jaccard"].value == pytest.approx(
        (res.metrics["dice"].value + res.metrics["jaccard"].value) / 2)

    decoder = UNetDecoder(backbone.map_channels, backbone.map_strides, 3)
    assert res.params_trainable == n_params(decoder)
    assert res.params_total == n_params(decoder) + n_params(backbone)
    assert res.chosen["lr"] == 2e-1 and 0 <= res.chosen["epoch"] < 15 and res.chosen["refit"] is False
    assert res.chosen["decoder"] == "unet"
    assert len(res.extra["history"]) == 15 and res.extra["n_test_items"] == 4
    assert res.extra["wall_time_s"] > 0 and res.extra["peak_memory_mb"] > 0

    assert res.extra["examples"] == str(examples)
    with np.load(examples) as ex:
        assert ex["image"].shape == (3, RES, RES) and ex["image"].dtype == np.float32
        assert 0.0 <= ex["image"].min() and ex["image"].max() <= 1.0
        assert ex["truth"].shape == ex["pred"].shape == (3, RES, RES)
        assert all((t > 0).any() for t in ex["truth"]), "examples favour slices with foreground"
        grid = RES // PATCH
        assert ex["features"].shape == (3, grid, grid, 32) and ex["features"].dtype == np.float16
        agree = (ex["pred"] == ex["truth"]).mean()
        assert agree > 0.9


def test_linear_decoder_trains_above_empty_prediction(index):
    res = run_seg_decoder(seg_inputs(index, TinyViTBackbone()),
                          hp(decoder="linear", lrs=[1e-1], epochs=30), seed=0)
    assert res.metrics["dice"].value > 0.5          # the empty prediction scores 0
    assert res.extra["per_class"]["disk"]["dice"] > 0.7
    assert res.chosen["decoder"] == "linear"
    assert res.params_trainable == 32 * 3 + 3               # one 1x1 conv, as the study's


def test_cached_maps_match_live_maps_and_runs_are_deterministic(index):
    kw = dict(decoder="linear", lrs=[5e-2], epochs=3)
    a = run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(**kw), seed=3)
    b = run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(**kw), seed=3)
    live = run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(cache_maps=False, **kw), seed=3)
    assert [h["train_loss"] for h in a.extra["history"]] == [h["train_loss"] for h in b.extra["history"]]
    assert {k: m.value for k, m in a.metrics.items()} == {k: m.value for k, m in b.metrics.items()}
    np.testing.assert_allclose([h["train_loss"] for h in live.extra["history"]],
                               [h["train_loss"] for h in a.extra["history"]], atol=1e-4)
    assert live.metrics["dice"].value == pytest.approx(a.metrics["dice"].value, abs=1e-3)


class CountingBackbone(TinyViTBackbone):
    def __init__(self) -> None:
        super().__init__()
        self.images_seen = 0

    def patch_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.images_seen += x.shape[0]
        return super().patch_maps(x)


def test_maps_are_cached_only_without_augmentation(index):
    seen = {}
    for augment in (None, object()):
        backbone = CountingBackbone()
        inputs = seg_inputs(index, backbone)
        inputs.datasets["train"].augment = augment
        run_seg_decoder(inputs, hp(decoder="linear", lrs=[5e-2, 1e-2], epochs=2), seed=0)
        assert inputs.datasets["train"].epochs_seen == [0, 1, 0, 1]
        seen[augment is None] = backbone.images_seen
    n_train, n_val, n_test = 8 * 3, 3 * 3, 4 * 3
    assert seen[True] == n_train + n_val + n_test                   # every slice encoded once
    assert seen[False] == 2 * 2 * n_train + n_val + n_test          # train re-encoded per epoch


@pytest.fixture
def scratch_calls(monkeypatch) -> list[tuple]:
    """The real scratch_models builder, wrapped to record how the protocol calls it."""
    import radbench_core.models.scratch_models as real
    calls: list[tuple] = []
    mod = types.ModuleType("radbench_core.models.scratch_models")

    def recording(model_id, num_classes, *, demo, resolution):
        calls.append((model_id, num_classes, demo, resolution))
        return real.build_scratch_model(model_id, num_classes, demo=demo, resolution=resolution)
    mod.build_scratch_model = recording
    monkeypatch.setitem(sys.modules, "radbench_core.models.scratch_models", mod)
    return calls


def test_scratch_unet_trains_end_to_end_to_high_dice(index, scratch_calls):
    res = run_seg_scratch(seg_inputs(index, scratch="unet"),
                          hp(lrs=[5e-3], epochs=15, optimizer="adamw", demo=True), seed=0)
    assert scratch_calls and scratch_calls[0] == ("unet", 3, True, RES)
    assert res.metrics["dice"].value > 0.7
    assert res.params_trainable == res.params_total > 0
    assert "decoder" not in res.chosen


def test_fewshot_aggregates_seeds(index):
    res = run_seg_fewshot(seg_inputs(index, TinyViTBackbone()),
                          hp(decoder="linear", lrs=[5e-2], epochs=2, shots=2, seeds=[0, 1]), seed=0)
    per_seed = res.extra["per_seed_detail"]
    assert res.extra["per_seed"] == [p["metrics"]["dice_jaccard"] for p in per_seed]
    assert [p["seed"] for p in per_seed] == [0, 1]
    for p in per_seed:
        assert len(p["chosen"]["train_items"]) == 2 and len(set(p["chosen"]["train_items"])) == 2
    assert per_seed[0]["chosen"]["train_items"] != per_seed[1]["chosen"]["train_items"]
    for name in ("dice", "jaccard", "dice_jaccard"):
        vals = [p["metrics"][name] for p in per_seed]
        assert res.metrics[name].value == pytest.approx(np.mean(vals))
        assert res.extra["spread"][name] == pytest.approx(np.std(vals, ddof=1))
    assert res.chosen == {"shots": 2, "seeds": [0, 1], "decoder": "linear"}
    hd95 = res.extra["hd95"]                   # per organ: the mean over seeds of each seed's mean
    assert hd95["seeds"] == 2 and hd95["unit"] == "px"
    assert set(hd95["per_class"]) == set(CLASSES) == set(res.extra["per_class"])
    assert all(hd95["volumes_scored"][c] + hd95["volumes_one_empty"][c] <= 2 * 4 for c in CLASSES)


# --------------------------------------------------------------------------- reassembly, scoring
class _Oracle(nn.Module):
    """Turns the image (whose channel 0 is the label map) into confident one-hot logits."""

    def forward(self, enc, size):
        lab = enc[0][:, 0].round().long().clamp(0, 2)
        return F.one_hot(lab, 3).permute(0, 3, 1, 2).float() * 20.0


def _oracle_dataset(index: FakeIndex, split: str, res: int) -> FakeSliceDataset:
    ds = FakeSliceDataset(index, split, res)
    ds.images = ds.masks[:, None].float().repeat(1, 3, 1, 1)
    return ds


@pytest.mark.parametrize("shape", [(RES, RES), (H, W)])
def test_slice_predictions_reassemble_in_original_orientation(shape):
    idx = FakeIndex({"test": 3}, n_slices=4, seed=5)
    for key, m in idx.masks.items():     # crop/pad the phantoms to the wanted original size
        out = np.zeros((m.shape[0], *shape), np.int64)
        h, w = min(shape[0], m.shape[1]), min(shape[1], m.shape[2])
        out[:, :h, :w] = m[:, :h, :w]
        idx.masks[key] = out
        idx.vols[key] = out.astype(np.float32)
    ds = _oracle_dataset(idx, "test", RES)
    task = SegTask(make_head=_Oracle, encode=lambda x: [x], apply=lambda head, enc, size: head(enc, size))
    truth = [idx.load_mask(it) for it in idx.split_items("test")]
    preds = predict_items(task, _Oracle(), ds, [t.shape[-2:] for t in truth], RES, "cpu", batch_size=5)
    assert [p.shape for p in preds] == [t.shape for t in truth]
    if shape == (RES, RES):
        for p, t in zip(preds, truth):
            np.testing.assert_array_equal(p, t)
    else:   # resized RES -> original: boundaries move by a pixel at most, orientation is kept
        dice, _ = per_item_scores(preds, truth, 3)
        assert np.nanmin(dice) > 0.85
        flipped, _ = per_item_scores([p[:, ::-1] for p in preds], truth, 3)
        assert np.nanmean(flipped) < np.nanmean(dice) - 0.3


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(2, 5), st.integers(2, 5)), min_size=1,
                max_size=4), st.integers(0, 2 ** 31 - 1))
def test_reassemble_round_trip_is_exact(shapes, seed):
    rng = np.random.default_rng(seed)
    vols = [rng.integers(0, 5, size=s) for s in shapes]
    flat = [(i, s, v[s]) for i, v in enumerate(vols) for s in range(v.shape[0])]
    order = rng.permutation(len(flat))
    items = [flat[j][0] for j in order]
    slices = [flat[j][1] for j in order]
    preds = [flat[j][2] for j in order]
    back = reassemble(preds, items, slices)
    assert len(back) == len(vols)
    for b, v in zip(back, vols):
        np.testing.assert_array_equal(b, v)


def test_reassemble_rejects_missing_or_repeated_slices():
    sl = [np.zeros((2, 2))] * 3
    with pytest.raises(ConfigError, match=r"reassemble: item 0 has slice ids \[0, 2\].*exactly once"):
        reassemble(sl[:2], [0, 0], [0, 2])
    with pytest.raises(ConfigError, match=r"item 0 has slice ids \[0, 0, 1\]"):
        reassemble(sl, [0, 0, 0], [0, 1, 0])
    with pytest.raises(ConfigError, match="3 predictions for 2 item ids.*one item id and one slice id"):
        reassemble(sl, [0, 0], [0, 1])
    with pytest.raises(ConfigError, match="item 1 has no predicted slice"):
        reassemble(sl[:2], [0, 2], [0, 0])


def _dice_loss_reference(logits: np.ndarray, target: np.ndarray, eps: float = 1e-5) -> float:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    losses = []
    for b in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            t = (target[b] == c).astype(np.float64)
            losses.append(1 - (2 * (p[b, c] * t).sum() + eps) / (p[b, c].sum() + t.sum() + eps))
    return float(np.mean(losses))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(2, 4), st.integers(0, 2 ** 31 - 1))
def test_dice_loss_matches_reference(batch, classes, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(batch, classes, 6, 5))
    target = rng.integers(0, classes, size=(batch, 6, 5))
    got = dice_loss(torch.tensor(logits), torch.tensor(target)).item()
    assert got == pytest.approx(_dice_loss_reference(logits, target), abs=1e-6)


def test_dice_loss_is_zero_for_perfect_prediction_and_has_gradient():
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    target[0, 0, 0], target[0, 0, 1], target[0, 0, 2] = 0, 1, 2     # every class in sample 0
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40.0
    assert dice_loss(perfect, target).item() < 1e-3
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    loss = dice_loss(logits, target)
    assert loss.item() > 0.3
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_per_item_scores_and_summary_match_straightforward_reference():
    rng = np.random.default_rng(1)
    preds = [rng.integers(0, 3, size=(2, 5, 6)) for _ in range(5)]
    truth = [rng.integers(0, 3, size=(2, 5, 6)) for _ in range(5)]
    truth[1][truth[1] == 2] = 0
    preds[1][preds[1] == 2] = 0          # class 2 absent from both in item 1 -> NaN, excluded
    dice, jac = per_item_scores(preds, truth, 3)
    for i, (p, t) in enumerate(zip(preds, truth)):
        for c in (1, 2):
            a, b = p == c, t == c
            if not a.any() and not b.any():
                assert np.isnan(dice[i, c - 1]) and np.isnan(jac[i, c - 1])
                continue
            assert dice[i, c - 1] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
            assert jac[i, c - 1] == pytest.approx((a & b).sum() / (a | b).sum())
    metrics, per_class = summarise(dice, jac, ["a", "b"], resamples=200, seed=4)
    ref_class = [np.mean([d for d in dice[:, k] if not np.isnan(d)]) for k in range(2)]
    assert per_class["a"]["dice"] == pytest.approx(ref_class[0])
    assert per_class["b"]["dice"] == pytest.approx(ref_class[1])
    assert metrics["dice"].value == pytest.approx(np.mean(ref_class))
    assert mean_dice(dice) == pytest.approx(np.mean(ref_class))
    again, _ = summarise(dice, jac, ["a", "b"], resamples=200, seed=4)
    assert (again["dice"].ci_low, again["dice"].ci_high) == (metrics["dice"].ci_low, metrics["dice"].ci_high)
    assert metrics["dice"].ci_low <= metrics["dice"].ci_high


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, match", [
    ({"lrs": []}, r"hparams\['lrs'\].*non-empty list of positive rates.*lrs=\[1e-2"),
    ({"lrs": [0.1, -1]}, r"hparams\['lrs'\]"),
    ({"epochs": 0}, r"hparams\['epochs'\].*positive int, got 0.*epochs to an int >= 1"),
    ({"batch_size": "16"}, r"hparams\['batch_size'\].*positive int"),
    ({"decoder": "mlp"}, r"hparams\['decoder'\].*unknown decoder 'mlp'"),
    ({"optimizer": "rmsprop", "epochs": 1}, r"hparams\['optimizer'\].*'sgd' or 'adamw'"),
    ({"decoder": "linear", "lrs": [float("inf")], "epochs": 2}, r"hparams\['lrs'\].*diverged.*smaller"),
    ({"select_epoch": "middle", "epochs": 1}, r"select_epoch.*'middle'.*\('last', 'best'\)"),
    ({"select_metric": "auroc", "epochs": 1}, r"select_metric.*'auroc'.*\('dice_study', 'dice'\)"),
])
def test_bad_hparams_name_the_option(index, bad, match):
    with pytest.raises(ConfigError, match=match):
        run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(**bad), seed=0)


def test_bad_inputs_say_what_to_pass(index):
    with pytest.raises(ConfigError, match=r"SegInputs.backbone.*needs a frozen backbone.*run_seg_scratch"):
        run_seg_decoder(seg_inputs(index), hp(), seed=0)
    with pytest.raises(ConfigError, match=r"SegInputs.scratch_model.*'unet' or 'transunet'"):
        run_seg_scratch(seg_inputs(index), hp(), seed=0)
    inputs = seg_inputs(index, TinyViTBackbone())
    inputs.num_classes = 4
    with pytest.raises(ConfigError, match=r"SegInputs.num_classes.*4 classes.*names 2 foreground"):
        run_seg_decoder(inputs, hp(epochs=1), seed=0)
    for shots in (0, 9, "some", True):
        with pytest.raises(ConfigError, match=r"hparams\['shots'\].*8 training images.*1\.\.8 or 'all'"):
            run_seg_fewshot(seg_inputs(index, TinyViTBackbone()), hp(shots=shots), seed=0)


# --------------------------------------------------------------------------- the study's rule
def test_study_rule_final_state_on_pooled_val_dice_then_refit_on_train_and_val(index):
    backbone = CountingBackbone()
    res = run_seg_decoder(seg_inputs(index, backbone),
                          hp(decoder="linear", lrs=[1e-1, 1e-3], sweep_epochs=3, epochs=4, refit=True,
                             select_epoch="last", select_metric="dice_study", cache_maps=False), seed=0)
    sweep = [h for h in res.extra["history"] if not h.get("refit")]
    refit_rows = [h for h in res.extra["history"] if h.get("refit")]
    assert [(h["lr"], h["epoch"]) for h in sweep] == [(lr, e) for lr in (1e-1, 1e-3) for e in range(3)]
    assert [h["epoch"] for h in refit_rows] == [0, 1, 2, 3] and all(h["lr"] == res.chosen["lr"] for h in refit_rows)
    # only each run's final state is scored on validation, and the best of those is chosen
    assert [h["val_dice_study"] is not None for h in sweep] == [False, False, True] * 2
    finals = {h["lr"]: h["val_dice_study"] for h in sweep if h["epoch"] == 2}
    assert res.chosen["lr"] == max(finals, key=finals.get) and res.chosen["epoch"] == 2
    assert res.chosen["refit"] is True and res.extra["val_score"] == pytest.approx(max(finals.values()))
    # slices through the backbone: sweep 2 rates x 3 epochs x 24 train, 2 x 9 val, refit 4 x (24 + 9),
    # test 12: the refit trains on train + val
    assert backbone.images_seen == 2 * 3 * 24 + 2 * 9 + 4 * 33 + 12


def test_study_metrics_are_recorded_beside_ours(index):
    res = run_seg_decoder(seg_inputs(index, TinyViTBackbone()),
                          hp(decoder="linear", lrs=[1e-1], epochs=8), seed=0)
    m = res.metrics
    assert m["dice_jaccard_study"].value == pytest.approx((m["dice_study"].value + m["jaccard_study"].value) / 2)
    for name in ("dice_study", "jaccard_study", "dice_jaccard_study"):
        assert m[name].higher_is_better and 0.0 <= m[name].ci_low <= m[name].value <= m[name].ci_high <= 1.0
    # pooled Dice at the training resolution tracks our per-volume Dice on this balanced task
    assert abs(m["dice_study"].value - m["dice"].value) < 0.1


def test_study_metrics_pool_item_confusion_matrices():
    from radbench_core.eval.metrics import study_dice, study_jaccard
    from radbench_core.protocols.segmentation import study_metrics
    cms = np.array([[[5, 1], [0, 2]], [[4, 0], [2, 2]], [[6, 2], [1, 1]]])
    out = study_metrics(cms, resamples=200, seed=0)
    pooled = cms.sum(axis=0)                       # [[15, 3], [3, 5]]
    assert out["dice_study"].value == pytest.approx(10 / 16) == pytest.approx(study_dice(pooled))
    assert out["jaccard_study"].value == pytest.approx(5 / 8) == pytest.approx(study_jaccard(pooled))
    assert out["dice_jaccard_study"].value == pytest.approx((10 / 16 + 5 / 8) / 2)
    assert out["dice_study"].ci_low <= out["dice_study"].value <= out["dice_study"].ci_high
    assert study_metrics(cms, resamples=0, seed=0)["dice_study"].ci_low is None


def test_refit_set_is_train_plus_an_augmented_twin_of_val(index):
    from radbench_core.protocols.seg_training import TrainVal
    train, val = FakeSliceDataset(index, "train"), FakeSliceDataset(index, "val")
    train.augment = marker = object()
    both = TrainVal(train, val)
    assert len(both) == len(train) + len(val) == 33
    assert torch.equal(both[24]["image"], val[0]["image"]) and torch.equal(both[3]["image"], train[3]["image"])
    assert both.parts[1].augment is marker and val.augment is None      # val itself is left alone
    both.set_epoch(5)
    assert train.epochs_seen[-1] == 5 and both.parts[1].epochs_seen[-1] == 5


def test_fit_uses_sgd_momentum_and_a_per_step_cosine_to_zero(index, monkeypatch):
    import math

    from radbench_core.protocols import seg_training
    made = []
    real = seg_training.make_optimizer

    def recording(params, hparams, lr):
        opt = real(params, hparams, lr)
        seen: list[float] = []
        opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))
        made.append((opt, seen))
        return opt
    monkeypatch.setattr(seg_training, "make_optimizer", recording)
    backbone = TinyViTBackbone()
    task = seg_training.SegTask(make_head=lambda: nn.Conv2d(32, 3, 1), encode=backbone.patch_maps,
                                apply=lambda head, enc, size: F.interpolate(head(enc[-1]), size=size),
                                cacheable=True)
    train = FakeSliceDataset(index, "train")                 # 24 slices: 3 steps of 8 per epoch
    hparams = {"batch_size": 8, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0}
    seg_training.fit(task, train, None, 0.05, 2, hparams, 0, resolution=RES, device="cpu")
    opt, seen = made[0]
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 0.0
    total = 2 * 3
    want = [0.05 * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    np.testing.assert_allclose(seen, want, rtol=1e-6)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)   # annealed to zero at the end
