"""The pooled features the study took from VGG19 (fc7) and SAM (mean of the last block's tokens),
checked against references written from the study's wrappers (repo dinov2/eval/utils.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from radbench_core.models.features import Backbone, load_backbone
from radbench_core.models.architectures import create_architecture, strip_unused_parts
from radbench_core.models.specs import VGG_DROPOUT, get_model


def images(n: int, pixels: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, pixels, pixels, generator=torch.Generator().manual_seed(seed))


def torchvision_fc7(bb: Backbone, x: torch.Tensor) -> torch.Tensor:
    """torchvision vgg19 with ``classifier[6] = Identity`` in eval mode, as the study built it:
    features -> AdaptiveAvgPool2d(7) -> flatten -> Linear fc6 -> ReLU -> Linear fc7 -> ReLU, with
    the fc weights as torchvision stores them (timm's _filter_fn only reshapes them into convs)."""
    m = bb.model
    fc6_w = m.pre_logits.fc1.weight.flatten(1)          # (mid, 512*7*7) in torchvision's order
    fc7_w = m.pre_logits.fc2.weight.flatten(1)
    h = torch.flatten(F.adaptive_avg_pool2d(m.features(x), (7, 7)), 1)
    h = F.relu(F.linear(h, fc6_w, m.pre_logits.fc1.bias))
    return F.relu(F.linear(h, fc7_w, m.pre_logits.fc2.bias))


@pytest.mark.parametrize("pixels", [224, 448])
def test_vgg_feature_is_torchvision_fc7(pixels: int) -> None:
    bb = load_backbone("vgg19", demo=True, resolution=pixels)
    x = images(2, pixels)
    with torch.inference_mode():
        head, pooled = bb.head_features(x), bb.pooled(x)
        want = torchvision_fc7(bb, x)
    assert head.shape == (2, 4096) and bb.embed_dim == 4096 and pooled["cls"].shape == (2, 1, 4096)
    torch.testing.assert_close(head, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled["cls"][:, 0], want, atol=1e-5, rtol=1e-5)
    assert (head >= 0).all() and (head > 0).any()        # after fc7's ReLU


def test_full_size_vgg19_feature_is_4096_wide() -> None:
    spec = get_model("vgg19")
    with torch.device("meta"):
        model = strip_unused_parts(spec, create_architecture(spec))
        bb = Backbone(spec, model, resolution=224, weights="meta")
        head = bb.head_features(torch.empty(2, 3, 224, 224))
    assert head.shape == (2, 4096) and bb.embed_dim == 4096
    assert tuple(model.pre_logits.fc1.weight.shape) == (4096, 512, 7, 7)   # torchvision's fc6, as a conv
    assert tuple(model.pre_logits.fc2.weight.shape) == (4096, 4096, 1, 1)  # fc7


def test_vgg_fine_tuning_keeps_torchvisions_two_dropouts() -> None:
    bb = load_backbone("vgg19", demo=True, resolution=224)
    assert bb.model.pre_logits.drop.p == VGG_DROPOUT == 0.5
    x = images(4, 224)
    with torch.no_grad():
        bb.eval()
        clean = bb.head_features(x)
        bb.train()
        torch.manual_seed(0)
        noisy = bb.head_features(x)
    assert torch.equal(bb.eval().head_features(x).detach(), clean)     # eval: deterministic
    zeroed = (noisy == 0) & (clean > 0)
    assert 0.3 < zeroed.float().sum() / (clean > 0).sum() < 0.9    # the dropout after fc7 alone drops half


def test_sam_cls_is_the_mean_of_the_last_blocks_tokens_at_1024() -> None:
    """The study: SamVisionEncoder with neck = Identity, last_hidden_state (B, 64, 64, C) averaged."""
    bb = load_backbone("sam_vitl16", demo=True, resolution=1024)
    seen: dict[str, torch.Tensor] = {}
    hook = bb.model.blocks[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("last", o))
    try:
        with torch.inference_mode():
            pooled = bb.pooled(images(1, 1024))
    finally:
        hook.remove()
    last = seen["last"]
    assert last.shape == (1, 64, 64, bb.embed_dim)
    want = last.reshape(1, 64 * 64, bb.embed_dim).mean(dim=1)
    torch.testing.assert_close(pooled["cls"][:, 0], want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(pooled["patch_mean"], want, atol=1e-6, rtol=1e-6)
    assert isinstance(bb.model.neck, torch.nn.Identity)
