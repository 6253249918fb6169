"""U-Net and TransUNet from scratch: shapes, the study's sizes, determinism, and that they learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from radbench_core.core.errors import ConfigError
from radbench_core.models.specs import count_parameters
from radbench_core.protocols.losses import dice_loss
from radbench_core.models.scratch_models import TransUNet, UNet, build_scratch_model, parameter_counts


def images(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_id", ["unet", "transunet"])
@pytest.mark.parametrize("resolution, num_classes", [(112, 4), (64, 2), (80, 9)])
def test_demo_models_return_full_resolution_logits(model_id: str, resolution: int, num_classes: int) -> None:
    model = build_scratch_model(model_id, num_classes, demo=True, resolution=resolution, seed=0).eval()
    with torch.inference_mode():
        logits = model(images(2, resolution))
    assert logits.shape == (2, num_classes, resolution, resolution) and torch.isfinite(logits).all()
    assert count_parameters(model)[1] < 200_000


@settings(max_examples=6, deadline=None)
@given(cells=st.integers(2, 8), model_id=st.sampled_from(["unet", "transunet"]))
def test_any_multiple_of_16_works(cells: int, model_id: str) -> None:
    resolution = 16 * cells
    model = build_scratch_model(model_id, 3, demo=True, resolution=resolution, seed=1).eval()
    with torch.inference_mode():
        assert model(images(1, resolution)).shape == (1, 3, resolution, resolution)


def test_full_size_unet_is_ronnebergers() -> None:
    with torch.device("meta"):
        model = build_scratch_model("unet", 2, demo=False, resolution=224)
    assert isinstance(model, UNet)
    assert model.inc[0].out_channels == 64 and model.downs[-1][0].out_channels == 1024
    assert len(model.downs) == len(model.ups) == 4
    assert abs(count_parameters(model)[1] / 1e6 - 31) <= 0.05 * 31      # study Table 6: 31M


def test_full_size_transunet_is_an_r50_vit_large_hybrid() -> None:
    with torch.device("meta"):
        model = build_scratch_model("transunet", 9, demo=False, resolution=224)
    assert isinstance(model, TransUNet)
    assert [len(stage.blocks) for stage in model.trunk.stages] == [3, 4, 9]
    assert model.vit.embed_dim == 1024 and len(model.vit.blocks) == 24
    assert model.vit.pos_embed.shape == (1, 14 * 14, 1024)                 # 1x1 patches of the 1/16 map
    assert abs(count_parameters(model)[1] / 1e6 - 324) <= 0.05 * 324    # study Table 6: 324M


def test_seed_fixes_the_weights_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    a = build_scratch_model("transunet", 2, demo=True, resolution=64, seed=3)
    assert torch.equal(torch.rand(2), expected)
    b = build_scratch_model("transunet", 2, demo=True, resolution=64, seed=3)
    c = build_scratch_model("transunet", 2, demo=True, resolution=64, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("model_id, ratio", [("unet", 0.6)])
def test_demo_model_learns_a_simple_segmentation(model_id: str, ratio: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=gen)
    target = (x[:, 0] > 0).long()                       # the mask is a pixelwise function of the image
    model = build_scratch_model(model_id, 2, demo=True, resolution=32, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = F.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < ratio * losses[0], losses


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(model_id="segformer", num_classes=2, resolution=64), "expected one of unet, transunet"),
    (dict(model_id="unet", num_classes=0, resolution=64), "got 0, expected an integer >= 1"),
    (dict(model_id="transunet", num_classes=2, resolution=100), "got 100, expected a multiple of 16"),
])
def test_bad_arguments_are_config_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_scratch_model(kwargs.pop("model_id"), kwargs.pop("num_classes"), demo=True, **kwargs)
    assert fragment in str(info.value) and "Fix:" in str(info.value)


def split_disks(n: int, res: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright disk per image; its left half is class 1, its right half class 2 (like two lungs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:res, :res]
    masks = np.zeros((n, res, res), np.int64)
    for i in range(n):
        r = rng.uniform(res / 8, res / 4)
        cy, cx = rng.uniform(r, res - r, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        masks[i][disk] = 1 + (xx[disk] >= cx)
    noise = torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(seed))
    return (torch.from_numpy(masks) > 0).float()[:, None].repeat(1, 3, 1, 1) + 0.3 * noise, torch.from_numpy(masks)


@pytest.mark.parametrize("model_id", ["unet", "transunet"])
def test_demo_model_learns_two_classes_with_the_dice_loss(model_id: str) -> None:
    """The demo's training setting in small: the old 4-wide TransUNet head stalled here (0.58 on class 1)."""
    torch.manual_seed(0)
    x, y = split_disks(16, 64, 0)
    x_test, y_test = split_disks(8, 64, 1)
    model = build_scratch_model(model_id, 3, demo=True, resolution=64, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(40):
        model.train()
        loss = dice_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x_test).argmax(dim=1)
    for c in (1, 2):
        dice = 2 * ((pred == c) & (y_test == c)).sum() / ((pred == c).sum() + (y_test == c).sum())
        assert dice > 0.75, (c, float(dice))


def test_table6_scratch_parameter_counts() -> None:
    unet, unet_total = parameter_counts("unet")            # one output class, as Table 6
    trans, trans_total = parameter_counts("transunet")
    assert unet == unet_total and trans == trans_total     # everything trains
    assert int(unet / 1e6) == 31 and int(trans / 1e6) == 324
    # one more class adds one output channel: 64 weights + 1 bias (U-Net), 16*9 + 1 (TransUNet head)
    assert parameter_counts("unet", 2)[0] - unet == 64 + 1
    assert parameter_counts("transunet", 2)[0] - trans == 16 * 9 + 1
