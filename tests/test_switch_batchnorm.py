"""Switch ``seg_bn_eval_at_scoring``: the study scores decoders and scratch models in train mode.

Observed on the computation: the mode every BatchNorm layer is in when it runs without gradients
(validation and test scoring) inside the real protocols, and what train mode does to a prediction
(it depends on the other slices of the batch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from radbench_core.config.profiles import get_profile
from radbench_core.core.errors import ConfigError
from radbench_core.protocols.seg_training import bn_mode_of, set_scoring_mode
from radbench_core.protocols.segmentation import run_seg_decoder, run_seg_scratch
from test_segmentation import TinyViTBackbone, hp, index, scratch_calls, seg_inputs  # noqa: F401


@pytest.fixture
def bn_modes_at_scoring(monkeypatch) -> set[bool]:
    """``training`` of every BatchNorm forward run without gradients (i.e. while scoring)."""
    seen: set[bool] = set()
    real = nn.BatchNorm2d.forward

    def spy(self, x):
        if not torch.is_grad_enabled():
            seen.add(bool(self.training))
        return real(self, x)
    monkeypatch.setattr(nn.BatchNorm2d, "forward", spy)
    return seen


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_unet_decoder_is_scored_in_the_switched_mode(index, bn_modes_at_scoring, mode):
    run_seg_decoder(seg_inputs(index, TinyViTBackbone()),
                    hp(lrs=[1e-2], epochs=1, refit=True, bn_at_scoring=mode), seed=0)
    assert bn_modes_at_scoring == {mode == "train"}


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_scratch_unet_is_scored_in_the_switched_mode(index, scratch_calls, bn_modes_at_scoring, mode):
    run_seg_scratch(seg_inputs(index, scratch="unet"),
                    hp(lrs=[1e-2], epochs=1, demo=True, bn_at_scoring=mode), seed=0)
    assert bn_modes_at_scoring == {mode == "train"}


def test_train_mode_makes_a_slice_depend_on_its_batch_and_eval_mode_does_not():
    torch.manual_seed(0)
    head = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    head[1].running_mean.fill_(0.3)
    x = torch.randn(6, 2, 5, 5)
    with torch.no_grad():
        for mode, depends in (("eval", False), ("train", True)):
            set_scoring_mode(head, mode)
            alone, in_batch = head(x[:1]), head(x)[:1]
            assert torch.allclose(alone, in_batch, atol=1e-6) is not depends, mode
            ref = nn.functional.batch_norm(head[0](x), head[1].running_mean, head[1].running_var,
                                           head[1].weight, head[1].bias, training=False, eps=1e-5)
            if mode == "eval":
                np.testing.assert_allclose(head(x).numpy(), ref.numpy(), atol=1e-6)


def test_profiles_set_the_switch_and_a_bad_value_is_a_config_error():
    for protocol in ("seg_unet", "seg_linear", "seg_fewshot", "scratch", "scratch_fewshot"):
        assert bn_mode_of(get_profile("paper").hparams_for(protocol)) == "train"
        assert bn_mode_of(get_profile("sound").hparams_for(protocol)) == "eval"
        assert bn_mode_of(get_profile("demo").hparams_for(protocol)) == "eval"
    with pytest.raises(ConfigError, match="bn_at_scoring"):
        bn_mode_of({"bn_at_scoring": "frozen"})
