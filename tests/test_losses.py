"""protocols/losses.py against hand-written references: every branch, several heads at once, and
the edges (unknown targets, an all-unknown batch, absent classes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radbench_core.core.errors import ConfigError
from radbench_core.protocols.losses import LOSS_REDUCTIONS, classification_loss, dice_loss


def _bce(z: float, t: float) -> float:
    return -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))


def _multilabel_reference(logits: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    """One loss per head: a loop over heads, items and classes, skipping unknown (NaN) targets."""
    out = []
    for head in logits:
        terms = [[_bce(head[i, c], target[i, c]) for c in range(head.shape[1])
                  if not math.isnan(target[i, c])] for i in range(head.shape[0])]
        if reduction == "batch_sum":                      # each item's sum over C, summed over the batch
            out.append(sum(sum(t) for t in terms) / head.shape[1])
        else:                                             # the mean over the known targets
            known = sum(len(t) for t in terms)
            out.append(sum(sum(t) for t in terms) / max(known, 1))
    return np.asarray(out)


@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
@pytest.mark.parametrize("heads,batch,classes", [(1, 4, 3), (3, 5, 2), (2, 1, 4)])
def test_multilabel_loss_per_head_against_a_loop(reduction: str, heads: int, batch: int, classes: int) -> None:
    g = torch.Generator().manual_seed(heads * 100 + batch * 10 + classes)
    logits = torch.randn(heads, batch, classes, generator=g, dtype=torch.float64) * 2
    target = (torch.rand(batch, classes, generator=g) < 0.4).double()
    target[0, -1] = float("nan")                                 # one unknown label
    got = classification_loss(logits, target, "multilabel", reduction)
    assert got.shape == (heads,)
    np.testing.assert_allclose(got.numpy(), _multilabel_reference(logits.numpy(), target.numpy(), reduction),
                               rtol=1e-10, atol=1e-12)


def test_an_all_unknown_batch_is_a_zero_loss_not_nan() -> None:
    logits = torch.tensor([[[0.3, -0.2], [1.0, 2.0]]])
    target = torch.full((2, 2), float("nan"))
    for reduction in LOSS_REDUCTIONS:
        loss = classification_loss(logits, target, "multilabel", reduction)
        assert torch.equal(loss, torch.zeros(1))


def test_the_mean_divides_by_the_known_count_of_all_heads_targets_not_by_the_item_count() -> None:
    """Hand case: 2 items x 2 labels, one unknown -> 3 known terms."""
    logits = torch.zeros(1, 2, 2)                                # every term is log 2
    target = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    assert classification_loss(logits, target, "multilabel").item() == pytest.approx(math.log(2), rel=1e-6)
    # the study's sum: (log 2 + 2 log 2) / 2 classes
    assert classification_loss(logits, target, "multilabel", "batch_sum").item() == pytest.approx(
        1.5 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("kind,classes", [("multiclass", 4), ("binary", 2)])
@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
def test_single_label_loss_is_each_heads_mean_cross_entropy(kind: str, classes: int, reduction: str) -> None:
    g = torch.Generator().manual_seed(classes)
    logits = torch.randn(3, 6, classes, generator=g, dtype=torch.float64)
    target = torch.randint(0, classes, (6,), generator=g)
    got = classification_loss(logits, target, kind, reduction)
    want = torch.stack([F.cross_entropy(logits[h], target) for h in range(3)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # hand case: uniform logits give log(C) per item
    flat = classification_loss(torch.zeros(2, 5, classes), torch.zeros(5, dtype=torch.long), kind, reduction)
    torch.testing.assert_close(flat, torch.full((2,), math.log(classes)))


def test_a_single_head_without_a_head_axis_gives_a_scalar() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([0, 1])
    got = classification_loss(logits, target, "multiclass")
    assert got.shape == () and got.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)


def test_an_unknown_reduction_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        classification_loss(torch.zeros(1, 2, 3), torch.zeros(2, 3), "multilabel", "sum")
    assert str(info.value) == ("hparams['multilabel_loss']: unknown reduction 'sum'. "
                               "Fix: use one of mean, batch_sum.")


def test_dice_loss_hand_case_with_an_absent_class() -> None:
    """2 classes, 4 pixels all of class 0, logits 0 (p = 1/2 everywhere), eps = 1e-5:
    class 0: 1 - (2*2 + eps)/(2 + 4 + eps); class 1 (absent): 1 - eps/(2 + eps); the mean of the two."""
    eps = 1e-5
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    want = ((1 - (4 + eps) / (6 + eps)) + (1 - eps / (2 + eps))) / 2
    assert dice_loss(logits, target).item() == pytest.approx(want, rel=1e-6)
    assert dice_loss(logits, target, eps=1.0).item() == pytest.approx(((1 - 5 / 7) + (1 - 1 / 3)) / 2, rel=1e-6)


def test_dice_loss_averages_per_sample_not_pooled_over_the_batch() -> None:
    """Sample 0 all class 0 and predicted right, sample 1 all class 1 and predicted as class 0.
    Per sample, the four (sample, class) terms are ~0, ~0 (absent and not predicted), 1, 1: 0.5.
    The same pixels as one pooled sample give class 0 Dice 8/12 and class 1 Dice 0: loss 2/3."""
    target = torch.stack([torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long)])
    logits = torch.zeros(2, 2, 2, 2)
    logits[0, 0] = 30.0                                           # sample 0 right (class 0)
    logits[1, 0] = 30.0                                           # sample 1 wrong (says class 0)
    per_sample = dice_loss(logits, target).item()
    # terms: s0c0 ~0, s0c1 = 1 - eps/(~0 + eps) ~ 0 (absent, nothing predicted), s1c0 ~1, s1c1 ~1
    assert per_sample == pytest.approx(0.5, abs=1e-3)
    pooled_like = dice_loss(torch.cat([logits[0], logits[1]], dim=1)[None], target.reshape(1, 4, 2)).item()
    assert pooled_like == pytest.approx(1 - (2 * 4 / 12 + 0) / 2, abs=1e-3)       # a different number


def test_dice_loss_reads_half_precision_logits_as_float32() -> None:
    logits = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 3, (1, 4, 4), generator=torch.Generator().manual_seed(2))
    half = dice_loss(logits.half(), target)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(dice_loss(logits.half().float(), target).item(), abs=1e-7)


def test_a_batch_with_one_known_target_is_that_targets_loss() -> None:
    """The divisor is the known count even at 1 (the clamp only guards 0)."""
    logits = torch.tensor([[[0.7, -0.4]]])
    target = torch.tensor([[1.0, float("nan")]])
    loss = classification_loss(logits, target, "multilabel")
    assert loss.item() == pytest.approx(_bce(0.7, 1.0), rel=1e-6)
