"""Switch ``multilabel_loss_mean``: the study sums the multi-label loss over the batch (B x the mean).

Observed on the computation: the loss value on a batch against the study's loop written out, the
weights one SGD step leaves (batch_sum at lr == mean at B x lr), and the reduction the profiles'
linear cells actually hand the loss.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from radbench_core.config.profiles import get_profile
from radbench_core.core.errors import ConfigError
from radbench_core.protocols import linear
from radbench_core.protocols.losses import classification_loss
from radbench_core.protocols.linear import (HeadConfig, head_seed, run_linear,
                                            train_heads)
from synthetic import frozen_features


def _study_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The study's linear.py:318-328 loop: per item BCE averaged over classes, added up over the batch."""
    loss = torch.zeros(())
    for i in range(len(logits)):
        loss = loss + F.binary_cross_entropy_with_logits(logits[i], target[i])
    return loss


@pytest.mark.parametrize("batch,classes", [(128, 15), (32, 5), (7, 3)])
def test_batch_sum_is_the_studys_loop_and_b_times_the_mean(batch: int, classes: int) -> None:
    g = torch.Generator().manual_seed(batch)
    logits = torch.randn(batch, classes, generator=g) * 3
    target = (torch.rand(batch, classes, generator=g) < 0.3).float()
    study = classification_loss(logits, target, "multilabel", "batch_sum")
    mean = classification_loss(logits, target, "multilabel", "mean")
    torch.testing.assert_close(study, _study_loss(logits, target), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mean, F.binary_cross_entropy_with_logits(logits, target), rtol=1e-6, atol=1e-6)
    assert float(study / mean) == pytest.approx(batch, rel=1e-5)
    # single-label losses are a mean under either value (the study's cross-entropy is a mean)
    y = torch.randint(0, classes, (batch,), generator=g)
    assert torch.equal(classification_loss(logits, y, "multiclass", "batch_sum"),
                       classification_loss(logits, y, "multiclass", "mean"))


def test_one_sgd_step_of_the_summed_loss_moves_the_head_b_times_further() -> None:
    """Same head, same init, one full-batch step: the study's update is B x ours (B = 64)."""
    inputs = frozen_features(64, 0.5, "multilabel", 4, 0, dim=8, blocks=1, patch=False, uncertain=0.0)
    cfg = HeadConfig(1e-3, 1, False)
    common = dict(label_kind="multilabel", num_classes=4, epochs=1, batch_size=64, seed=3)
    summed = train_heads(inputs.features["train"], inputs.labels["train"], [cfg],
                         loss_reduction="batch_sum", **common)
    mean = train_heads(inputs.features["train"], inputs.labels["train"], [cfg], loss_reduction="mean",
                       **common)
    w0 = torch.randn(8, 4, generator=torch.Generator().manual_seed(head_seed(3, cfg))) * 0.01
    torch.testing.assert_close(summed.final[0][0] - w0, 64 * (mean.final[0][0] - w0), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(summed.final[0][1], 64 * mean.final[0][1], rtol=1e-4, atol=1e-7)
    assert float((mean.final[0][0] - w0).abs().max()) > 0


@pytest.mark.parametrize("profile,expected", [("paper", "batch_sum"), ("sound", "mean"), ("demo", "mean")])
def test_the_profiles_linear_cell_hands_its_switch_value_to_the_loss(monkeypatch, profile: str,
                                                                     expected: str) -> None:
    seen: set[str] = set()
    real = linear.classification_loss

    def spy(logits, target, label_kind, reduction="mean"):
        seen.add(reduction)
        return real(logits, target, label_kind, reduction)
    monkeypatch.setattr(linear, "classification_loss", spy)
    hp = {**get_profile(profile).hparams_for("linear"), "lrs": (1e-2,), "n_blocks": (1,),
          "avgpool": (False,), "epochs": 1, "features": "cached", "bootstrap": 10}
    run_linear(frozen_features(60, 0.5, "multilabel", 3, 0, dim=6, blocks=1, patch=False), hp, seed=0)
    assert seen == {expected}


def test_an_unknown_reduction_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="multilabel_loss"):
        classification_loss(torch.zeros(2, 3), torch.zeros(2, 3), "multilabel", "sum")
