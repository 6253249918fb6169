"""Switch ``finetune_no_trainval_refit``: which model of a fine-tune cell is scored on test.

Ours (``final_model="best_val_snapshot"``): the best (backbone rate, epoch) on validation, that
snapshot scored on test. The study (``"head_refit_trainval"``, repo
dinov2/eval/classification/linear.py:540-601 for --fine-tune, --peft lora and --peft bitfit alike):
the sweep keeps each run's state after its last epoch (no epoch choice) and picks the head on
validation; then a NEW linear head with the chosen head's rate is trained for all epochs on train +
val (val with the training transform), the tuned backbone frozen (the refit's optimiser holds only
the new head; its modules stay in the eval mode the sweep's last ``evaluate()`` left them in), and
that head is scored on test at the end. Which backbone rate the study kept among its separate runs
its code does not say (Table 4: "only the best is shown"); here: the best on validation after the
last epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from radbench_core.protocols.base import choice
from radbench_core.protocols.seg_training import TrainVal

FINAL_MODELS = ("best_val_snapshot", "head_refit_trainval")


def final_model_rule(hparams: dict[str, Any]) -> str:
    """``hparams["final_model"]`` checked: ours "best_val_snapshot" (the default) or the study's."""
    return choice(hparams, "final_model", FINAL_MODELS, "best_val_snapshot", "fine-tuning final model")


class TrainValSlices(TrainVal):
    """Train slices then val slices as one training set, val augmented like train (the study's
    ConcatDataset of two datasets built with train_transform); a val slice's ``item`` is shifted by
    the number of train items, so it indexes the concatenated labels."""

    def __init__(self, train: Any, val: Any, n_train_items: int):
        super().__init__(train, val)
        self.n_train_items = int(n_train_items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i < self.sizes[0]:
            return self.parts[0][i]
        out = dict(self.parts[1][i - self.sizes[0]])
        out["item"] = int(out["item"]) + self.n_train_items
        return out


def refit_head(inputs: Any, hparams: dict[str, Any], backbone: nn.Module, n_out: int, head_lr: float,
               epochs: int, batch_size: int, seed: int) -> nn.Module:
    """The study's refit: a new seeded head trained on train + val at ``head_lr`` for ``epochs``
    (cosine per step), the backbone frozen in eval mode. Returns the trained head."""
    from radbench_core.protocols import finetune as ft
    device = inputs.device
    backbone.eval()
    backbone.requires_grad_(False)
    head = ft._new_head(int(backbone.embed_dim), n_out, seed, device)
    n_train = len(inputs.labels["train"])
    data = TrainValSlices(inputs.datasets["train"], inputs.datasets["val"], n_train)
    y = torch.as_tensor(np.concatenate([np.asarray(inputs.labels["train"]), np.asarray(inputs.labels["val"])]))
    opt = ft._optimizer(hparams, [], list(head.parameters()), 0.0, head_lr)
    loader = ft._loader(data, batch_size, True, seed, device, inputs.num_workers)
    sched = ft._scheduler(hparams, opt, max(1, epochs * len(loader)))
    for epoch in range(epochs):
        data.set_epoch(epoch)
        ft._train_epoch(backbone, head, loader, y, opt, sched, inputs.label_kind, device,
                        str(hparams.get("multilabel_loss", "mean")), train_backbone=False)
    return head
