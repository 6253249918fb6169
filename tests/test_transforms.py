"""Model-input transform and augmentations against hand-computed values, PIL and properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from radbench_core.data.datasets.transforms import (ClassificationAugment, ModelTransform,
                                               SegmentationAugment, mask_to, resize_image)
from radbench_core.core.errors import ConfigError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_same_size_only_normalises():
    x = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    out = ModelTransform(2, MEAN, STD)(x)
    assert out.shape == (3, 2, 2) and out.dtype == torch.float32
    for c in range(3):
        np.testing.assert_allclose(out[c].numpy(), (x - MEAN[c]) / STD[c], rtol=1e-6)


def test_upsampling_matches_hand_computed_bilinear():
    x = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    out = resize_image(x, 4).numpy()
    # pixel centres at 0.25, 0.75 ... of the input grid: 0, 0.25, 0.75, 1 (edges clamp)
    np.testing.assert_allclose(out, np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-6)


def test_downsampling_is_antialiased_like_pil():
    rng = np.random.default_rng(0)
    x = rng.random((64, 48)).astype(np.float32)
    ours = resize_image(x, 16).numpy()
    ref = np.asarray(Image.fromarray(x).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    # hand-computed 4 -> 2: output centre 1.0, triangle filter of half-width 2 over input centres
    # 0.5, 1.5, 2.5 -> weights .75, .75, .25 (renormalised): (0*.75 + 7*.75 + 14*.25) / 1.75 = 5
    row = np.array([[0.0, 7.0, 14.0, 21.0]], dtype=np.float32).repeat(4, 0)
    np.testing.assert_allclose(resize_image(row, 2).numpy(), [[5.0, 16.0], [5.0, 16.0]], atol=1e-5)


def test_mask_nearest_matches_pil_and_keeps_labels():
    rng = np.random.default_rng(1)
    m = rng.integers(0, 4, size=(37, 53)).astype(np.uint8)
    for r in (16, 37, 100):
        ours = mask_to(m, r)
        ref = np.asarray(Image.fromarray(m).resize((r, r), Image.Resampling.NEAREST))
        assert ours.dtype == torch.int64
        np.testing.assert_array_equal(ours.numpy(), ref)
    assert ModelTransform(16, MEAN, STD).mask(m).shape == (16, 16)


@pytest.mark.parametrize("args, text", [
    ((0, MEAN, STD), "resolution 0 is not a positive integer"),
    ((224, MEAN[:2], STD[:2]), "must be 3 values each"),
    ((224, MEAN, (0.2, 0.0, 0.2)), "std > 0"),
])
def test_bad_transform_arguments(args, text):
    with pytest.raises(ConfigError, match=text) as err:
        ModelTransform(*args)
    assert "Fix:" in str(err.value)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(8, 80), w=st.integers(8, 80), seed=st.integers(0, 2**31 - 1))
def test_classification_crop_area_and_determinism(h, w, seed):
    x = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
    aug = ClassificationAugment()
    a, _ = aug(x, None, torch.Generator().manual_seed(seed))
    b, _ = aug(x, None, torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)
    ch, cw = a.shape
    assert abs(ch / h - cw / w) <= 1.0 / min(h, w) + 1e-9          # square ratio (up to rounding)
    side = ch / h
    assert 0.75 - 2.0 / min(h, w) <= side * side <= 1.0
    # the crop is a contiguous window of the image, possibly mirrored
    flat = x.numpy()
    top, left = np.argwhere((flat == a.min().item()))[0]
    window = flat[top:top + ch, left:left + cw]
    assert np.array_equal(a.numpy(), window) or np.array_equal(a.numpy(), window[:, ::-1])


def test_classification_flip_rate():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    aug = ClassificationAugment(scale=(1.0, 1.0))
    gen = torch.Generator().manual_seed(0)
    flips = sum(int(aug(x, None, gen)[0][0, 0] == 3.0) for _ in range(400))
    assert 160 <= flips <= 240                   # p = 0.5, > 4 sigma either side


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_segmentation_image_and_mask_move_together(seed):
    mask = torch.zeros(32, 32, dtype=torch.int64)
    mask[4:14, 6:20] = 1
    mask[18:28, 10:16] = 2
    image = mask.float()
    aug = SegmentationAugment()
    img2, mask2 = aug(image, mask, torch.Generator().manual_seed(seed))
    img3, mask3 = aug(image, mask, torch.Generator().manual_seed(seed))
    assert torch.equal(img2, img3) and torch.equal(mask2, mask3)
    assert mask2.dtype == torch.int64 and set(mask2.unique().tolist()) <= {0, 1, 2}
    disagree = (img2.round().long() != mask2).float().mean().item()
    assert disagree < 0.08                       # only interpolation seams differ
    assert abs((mask2 > 0).sum().item() - (mask > 0).sum().item()) <= 0.4 * (mask > 0).sum().item()


def test_segmentation_flip_rates_and_exact_flips():
    x = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    aug = SegmentationAugment(max_degrees=0.0)
    gen = torch.Generator().manual_seed(0)
    seen = {"none": 0, "h": 0, "v": 0, "hv": 0}
    for _ in range(400):
        out, m = aug(x, x.long(), gen)
        assert torch.equal(out.long(), m)
        seen[{0: "none", 3: "h", 12: "v", 15: "hv"}[int(out[0, 0])]] += 1
    # p(h) = p(v) = 0.25 independently: expected 225 / 75 / 75 / 25
    assert 180 <= seen["none"] <= 270 and 45 <= seen["h"] <= 110 and 45 <= seen["v"] <= 110
    assert 8 <= seen["hv"] <= 45


def test_bad_augment_arguments():
    with pytest.raises(ConfigError, match="scale"):
        ClassificationAugment(scale=(0.9, 0.5))
    with pytest.raises(ConfigError, match="flip_p"):
        SegmentationAugment(flip_p=1.5)
