"""The training losses: the classification heads' loss and the segmentation decoders' soft Dice.

Both are the study's choices (its ``linear.py`` and MONAI's ``DiceLoss``); the one difference we
argue for, the multi-label reduction, is the switch ``multilabel_loss_mean``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from radbench_core.core.errors import ConfigError

LOSS_REDUCTIONS = ("mean", "batch_sum")     # switch multilabel_loss_mean: sound "mean", study "batch_sum"


def classification_loss(logits: torch.Tensor, target: torch.Tensor, label_kind: str,
                        reduction: str = "mean") -> torch.Tensor:
    """Per-head loss over the batch, logits ``(..., B, C)`` -> ``(...)``.

    BCE-with-logits over the known (non-NaN) targets for multilabel, cross-entropy otherwise.
    ``reduction="batch_sum"`` is the study's multi-label loss (its linear.py:318-328): each item's
    mean BCE over the classes, summed over the batch, i.e. B x the mean, so its learning rates act
    B times larger. Single-label losses are always a mean, as in the study.
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ConfigError("hparams['multilabel_loss']", f"unknown reduction {reduction!r}",
                          f"use one of {', '.join(LOSS_REDUCTIONS)}")
    if label_kind == "multilabel":
        known = ~torch.isnan(target)
        bce = F.binary_cross_entropy_with_logits(
            logits, torch.nan_to_num(target).expand_as(logits), reduction="none")
        if reduction == "batch_sum":
            return (bce * known).sum(dim=(-2, -1)) / logits.shape[-1]
        return (bce * known).sum(dim=(-2, -1)) / known.sum().clamp(min=1)
    lead = logits.shape[:-2]
    flat = logits.reshape(-1, logits.shape[-1])
    ce = F.cross_entropy(flat, target.expand(*lead, -1).reshape(-1), reduction="none")
    return ce.view(*lead, -1).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Soft Dice over every class incl. background, per sample: the study's more stable choice."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum(dim=(2, 3))
    denom = probs.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3))
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()
