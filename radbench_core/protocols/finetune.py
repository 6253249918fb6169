"""End-to-end fine-tuning of the live backbone: full, LoRA (through peft) or BitFit.

A linear head on ``backbone.head_features(x)`` is trained on the slices of the training split
(each slice carries its item's label). Items are scored by averaging the probabilities of their
slices, so 2D images and 3D volumes share one path. The best (learning rate, epoch) is chosen on
validation AUROC and its snapshot is scored on test. The caller passes a backbone copy; it is
trained in place. Trainable/total parameters, wall time and peak memory are recorded (the study's
Table 9 columns).
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from radbench_core.core import progress
from radbench_core.core.errors import ConfigError
from radbench_core.core.finite import check_loss
from radbench_core.eval.metrics import auroc, auroc_metric, auroc_per_class, metric
from radbench_core.protocols.base import LiveInputs, ProtocolResult
from radbench_core.protocols.base import own_resamples, per_key, require
from radbench_core.protocols.linear import n_outputs, scores_from_logits
from radbench_core.protocols.losses import classification_loss
from radbench_core.eval.predictions import ArrayPayload

MODES = ("full", "lora", "bitfit")
LORA_TARGETS = ("qkv", "fc1", "fc2")            # repo dinov2/eval/classification/linear.py


def _is_glu_mlp(module: torch.nn.Module) -> bool:
    """A SwiGLU-style FFN (timm GluMlp / SwiGLU): what DINOv2 ViT-g uses instead of an MLP."""
    from timm.layers import GluMlp, SwiGLU
    return isinstance(module, (GluMlp, SwiGLU))


def lora_target_names(model: torch.nn.Module, targets: tuple[str, ...] | list[str],
                      swiglu_ffn: bool = True) -> list[str]:
    """Full names of the linear layers LoRA wraps: those whose own name is one of ``targets``.

    With ``swiglu_ffn=False`` the layers inside a SwiGLU FFN are skipped. That reproduces the
    study: its ViT-g (DINOv2's own code) names that FFN ``w12``/``w3``, so the repo's targets
    (qkv, fc1, fc2) reached only the attention there, while timm calls the same layers fc1/fc2.
    """
    names, skip = [], set()
    for name, module in model.named_modules():
        if not swiglu_ffn and _is_glu_mlp(module):
            skip.add(name + ".")
        elif isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets \
                and not any(name.startswith(prefix) for prefix in skip):
            names.append(name)
    return names


def configure_trainable(backbone: torch.nn.Module, mode: str, hparams: dict[str, Any],
                        seed: int = 0) -> None:
    """Set ``requires_grad`` for the mode; LoRA first injects seeded adapters into backbone.model.

    LoRA trains the adapters and, with ``bias="lora_only"`` (the repo's), the biases of the layers it
    wraps; BitFit trains every bias (repo ``bitfit``: "bias" in the parameter name).
    """
    if mode not in MODES:
        raise ConfigError(f"hparams['mode']={mode!r}", f"unknown fine-tuning mode, expected one of "
                          f"{MODES}", "use 'full', 'lora' or 'bitfit'")
    bias = str(hparams.get("bias", "lora_only"))
    if mode == "lora":
        from peft import LoraConfig, inject_adapter_in_model
        targets = lora_target_names(backbone.model, tuple(hparams.get("target_modules", LORA_TARGETS)),
                                    bool(hparams.get("lora_swiglu_ffn", True)))
        if not targets:
            wanted = list(hparams.get("target_modules", LORA_TARGETS))
            raise ConfigError("hparams['target_modules']", f"no linear layer of "
                              f"{type(backbone.model).__name__} is named one of {wanted}",
                              "name linear layers of the backbone, e.g. qkv, fc1, fc2")
        config = LoraConfig(r=int(hparams.get("r", 48)), lora_alpha=int(hparams.get("alpha", 16)),
                            lora_dropout=float(hparams.get("dropout", 0.1)), target_modules=targets)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inject_adapter_in_model(config, backbone.model)
    for name, p in backbone.named_parameters():
        if mode == "full":
            p.requires_grad_(True)
        elif mode == "lora":
            p.requires_grad_("lora_" in name or (bias == "lora_only" and name.endswith("base_layer.bias"))
                             or (bias == "all" and name.endswith("bias")))
        else:
            p.requires_grad_("bias" in name.rsplit(".", 1)[-1])


def count_parameters(*modules: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts over the given modules."""
    params = [p for m in modules for p in m.parameters()]
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def parameter_counts(model_id: str, mode: str, num_classes: int = 1,
                     hparams: dict[str, Any] | None = None) -> tuple[int, int]:
    """(trainable, total) of the full-size model + a ``num_classes``-output head, as Table 9 counts.

    Built on the meta device (no weights, no memory); ``mode`` is full | lora | bitfit | linear and
    ``hparams`` are the protocol's settings (LoRA rank, targets, ...): callers pass the profile's,
    e.g. the paper profile's for Table 9.
    """
    from radbench_core.models.architectures import create_architecture, strip_unused_parts
    from radbench_core.models.specs import get_model
    if mode not in (*MODES, "linear"):
        raise ConfigError(f"parameter_counts(mode={mode!r})", "unknown mode",
                          "use 'full', 'lora', 'bitfit' or 'linear'")
    spec = get_model(model_id)
    holder = torch.nn.Module()
    with torch.device("meta"):
        holder.model = strip_unused_parts(spec, create_architecture(spec))
        dim = int(getattr(holder.model, "embed_dim", 0) or holder.model.num_features)
        head = torch.nn.Linear(dim, int(num_classes))
        if mode == "linear":
            holder.requires_grad_(False)
        else:
            configure_trainable(holder, mode, dict(hparams or {}))
    return count_parameters(holder, head)


def _loader(dataset: Any, batch_size: int, shuffle: bool, seed: int, device: str,
            num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      pin_memory=device.startswith("cuda"),
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def _forward(backbone: torch.nn.Module, head: torch.nn.Module, images: torch.Tensor,
             device: str) -> torch.Tensor:
    cuda = device.startswith("cuda")
    with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
        return head(backbone.head_features(images.to(device, non_blocking=True))).float()


@torch.no_grad()
def predict_items(backbone: torch.nn.Module, head: torch.nn.Module, dataset: Any, n_items: int,
                  label_kind: str, batch_size: int, device: str, num_workers: int = 0) -> np.ndarray:
    """Item scores: the mean of each item's slice probabilities (batch field "item")."""
    backbone.eval()
    head.eval()
    sums: torch.Tensor | None = None
    counts = torch.zeros(n_items, dtype=torch.float64)
    for batch in _loader(dataset, batch_size, False, 0, device, num_workers):
        probs = scores_from_logits(_forward(backbone, head, batch["image"], device), label_kind)
        probs = probs.double().cpu()
        items = torch.as_tensor(batch["item"], dtype=torch.int64)
        if sums is None:
            sums = torch.zeros((n_items, *probs.shape[1:]), dtype=torch.float64)
        sums.index_add_(0, items, probs)
        counts.index_add_(0, items, torch.ones(len(items), dtype=torch.float64))
    if sums is None or bool((counts == 0).any()):
        missing = int((counts == 0).sum())
        raise ConfigError("LiveInputs.datasets", f"{missing} of {n_items} items have no slice in "
                          "the dataset", "build the slice dataset from the same split as the labels")
    return (sums / counts.view(-1, *([1] * (sums.dim() - 1)))).numpy()


def _new_head(in_dim: int, n_out: int, seed: int, device: str) -> torch.nn.Linear:
    head = torch.nn.Linear(in_dim, n_out)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(n_out, in_dim, generator=g) * 0.01)
        head.bias.zero_()
    return head.to(device)


def _optimizer(hparams: dict[str, Any], backbone_params: list, head_params: list, lr: float,
               head_lr: float) -> torch.optim.Optimizer:
    groups = [{"params": backbone_params, "lr": lr}, {"params": head_params, "lr": head_lr}]
    groups = [g for g in groups if g["params"]]
    name = hparams.get("optimizer", "sgd")
    decay = float(hparams.get("weight_decay", 0.0))
    if name == "sgd":           # the study's (repo linear.py): SGD, momentum 0.9, no weight decay
        return torch.optim.SGD(groups, momentum=float(hparams.get("momentum", 0.9)), weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=decay)
    raise ConfigError(f"hparams['optimizer']={name!r}", "unknown optimizer", "use 'sgd' or 'adamw'")


def _scheduler(hparams: dict[str, Any], opt: torch.optim.Optimizer, steps: int) -> Any:
    """Per-iteration cosine from the base rate to 0 without warm-up (torch CosineAnnealingLR, as
    the repo), or a constant rate."""
    name = hparams.get("schedule", "cosine")
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.0)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise ConfigError(f"hparams['schedule']={name!r}", "unknown schedule", "use 'cosine' or 'constant'")


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def _snapshot(*modules: torch.nn.Module) -> tuple[dict[str, torch.Tensor], ...]:
    return tuple({k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in modules)


def _train_epoch(backbone: torch.nn.Module, head: torch.nn.Module, loader: DataLoader,
                 y_train: torch.Tensor, opt: torch.optim.Optimizer, sched: Any, label_kind: str,
                 device: str, loss_reduction: str = "mean", train_backbone: bool = True) -> None:
    """One pass over the training slices; each slice is trained on its item's label (the backbone
    in eval mode with ``train_backbone=False``: the study's head refit)."""
    backbone.train(train_backbone)
    head.train()
    total = torch.zeros((), device=device)
    for i, batch in enumerate(loader):
        progress.detail(i, len(loader), "batch")
        target = y_train[torch.as_tensor(batch["item"], dtype=torch.int64)].to(device, non_blocking=True)
        loss = classification_loss(_forward(backbone, head, batch["image"], device), target, label_kind,
                                   loss_reduction)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.detach()
    check_loss(total, f"fine-tuning of {getattr(getattr(backbone, 'spec', None), 'id', 'the backbone')} "
                      f"(summed over the epoch)")


@dataclass(frozen=True)
class _Settings:
    """A fine-tune cell's hyperparameters, resolved for its dataset and architecture and checked."""
    mode: str
    epochs: int
    batch_size: int
    lrs: list[float]
    head_lr: float
    eval_bs: int


def _settings(inputs: LiveInputs, hparams: dict[str, Any]) -> _Settings:
    mode = hparams.get("mode", "full")
    arch = getattr(getattr(inputs.backbone, "spec", None), "arch", "vit")
    epochs = int(per_key(require(hparams, "epochs", mode), inputs.dataset or "*", "epochs"))
    batch_size = int(per_key(require(hparams, "batch_size", mode), arch, "batch_size"))
    lrs = [float(x) for x in require(hparams, "backbone_lrs", mode)]
    if epochs < 1 or batch_size < 1 or not lrs:
        raise ConfigError("hparams['finetune']", f"epochs={epochs}, batch_size={batch_size}, "
                          f"backbone_lrs={lrs}", "use positive epochs/batch size and >= 1 rate")
    head_lr = require(hparams, "head_lr", mode)
    if head_lr == "linear" and inputs.linear_probe_lr is not None:
        head_lr = inputs.linear_probe_lr        # the study: the linear probe's selected rate
    if not isinstance(head_lr, (int, float)):
        raise ConfigError(f"hparams['head_lr'] of protocol {mode!r}", f"got {head_lr!r}, expected a number",
                          "run the cell through radbench_core.run.runner.run_cell, which gives 'linear' "
                          "the linear probe's selected rate (LiveInputs.linear_probe_lr), or pass a number")
    return _Settings(mode, epochs, batch_size, lrs, float(head_lr),
                     int(hparams.get("eval_batch_size", batch_size)))


class _BestSnapshot:
    """The best (rate, epoch) on validation so far and its weights; the very first epoch is kept
    even when no AUROC is finite, and the first of equal values wins. With ``only_epoch`` set only
    that epoch is a candidate (the study: each rate's state after its last epoch)."""

    def __init__(self, first_lr: float, only_epoch: int | None = None):
        self.auroc, self.lr, self.epoch, self.state = -math.inf, first_lr, 0, None
        self.only_epoch = only_epoch

    def offer(self, value: float, lr: float, epoch: int, backbone: nn.Module, head: nn.Module) -> None:
        if self.only_epoch is not None and epoch != self.only_epoch:
            return
        if self.state is None or (np.isfinite(value) and value > self.auroc):
            self.auroc = value if np.isfinite(value) else -math.inf
            self.lr, self.epoch, self.state = lr, epoch, _snapshot(backbone, head)


def run_finetune(inputs: LiveInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """Fine-tune (``hparams['mode']``: full | lora | bitfit), select on val, report test AUROC.

    Every backbone rate starts from the same initial weights and head; the best (rate, epoch)
    snapshot on validation is scored on test, or with ``final_model="head_refit_trainval"`` (switch
    finetune_no_trainval_refit, the study) the best rate's last-epoch backbone under a new head
    trained on train + val (finetune_refit.py). Peak memory: CUDA allocator peak on GPU, the
    process's max RSS on CPU.
    """
    from radbench_core.protocols.finetune_refit import final_model_rule, refit_head
    s = _settings(inputs, hparams)
    rule = final_model_rule(hparams)
    device, kind, backbone = inputs.device, inputs.label_kind, inputs.backbone
    configure_trainable(backbone, s.mode, hparams, seed)
    backbone.to(device)
    n_out = n_outputs(kind, inputs.num_classes)
    head = _new_head(int(backbone.embed_dim), n_out, seed, device)
    trainable, total = count_parameters(backbone, head)
    (initial,) = _snapshot(backbone)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    start = time.perf_counter()
    best = _BestSnapshot(s.lrs[0], s.epochs - 1 if rule == "head_refit_trainval" else None)
    history = {}
    for i, lr in enumerate(s.lrs):
        backbone.load_state_dict(initial)
        head = _new_head(int(backbone.embed_dim), n_out, seed, device)
        history[f"{lr:g}"] = _train_at_rate(inputs, hparams, s, backbone, head, lr, i, seed, best)
    backbone.load_state_dict(best.state[0])
    head.load_state_dict(best.state[1])
    if rule == "head_refit_trainval":
        head = refit_head(inputs, hparams, backbone, n_out, s.head_lr, s.epochs, s.batch_size, seed)
    wall, peak = time.perf_counter() - start, _peak_memory_mb(device)
    progress.update("test")
    test_scores = predict_items(backbone, head, inputs.datasets["test"], len(inputs.labels["test"]),
                                kind, s.eval_bs, device, inputs.num_workers)
    return _result(inputs, hparams, s, best, test_scores, seed, trainable, total,
                   {"train_wall_s": wall, "peak_memory_mb": peak, "val_auroc_by_lr": history})


def _train_at_rate(inputs: LiveInputs, hparams: dict[str, Any], s: _Settings, backbone: nn.Module,
                   head: nn.Module, lr: float, rate_index: int, seed: int, best: _BestSnapshot
                   ) -> list[float]:
    """Train backbone + head at one backbone rate; validate every epoch; offer each to ``best``."""
    device, kind, train_set = inputs.device, inputs.label_kind, inputs.datasets["train"]
    y_train = torch.as_tensor(np.asarray(inputs.labels["train"]))
    opt = _optimizer(hparams, [p for p in backbone.parameters() if p.requires_grad],
                     list(head.parameters()), lr, s.head_lr)
    loader = _loader(train_set, s.batch_size, True, seed, device, inputs.num_workers)
    sched = _scheduler(hparams, opt, max(1, s.epochs * len(loader)))
    values: list[float] = []
    with torch.random.fork_rng(devices=[torch.device(device)] if device.startswith("cuda") else []):
        torch.manual_seed(seed)          # dropout (incl. LoRA's) draws from the global RNG
        for epoch in range(s.epochs):
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)     # a new augmentation draw per epoch
            _train_epoch(backbone, head, loader, y_train, opt, sched, kind, device,
                         str(hparams.get("multilabel_loss", "mean")))
            val_scores = predict_items(backbone, head, inputs.datasets["val"], len(inputs.labels["val"]),
                                       kind, s.eval_bs, device, inputs.num_workers)
            values.append(auroc(inputs.labels["val"], val_scores, kind))
            progress.update("train", done=rate_index * s.epochs + epoch + 1, total=len(s.lrs) * s.epochs)
            best.offer(values[-1], lr, epoch, backbone, head)
    return values


def _result(inputs: LiveInputs, hparams: dict[str, Any], s: _Settings, best: _BestSnapshot,
            test_scores: np.ndarray, seed: int, trainable: int, total: int, timing: dict[str, Any]
            ) -> ProtocolResult:
    kind, y_test = inputs.label_kind, inputs.labels["test"]
    chosen = {"mode": s.mode, "backbone_lr": best.lr, "head_lr": s.head_lr, "epochs": best.epoch + 1,
              "epochs_run": s.epochs, "batch_size": s.batch_size,
              "final_model": hparams.get("final_model", "best_val_snapshot")}
    if s.mode == "lora":
        chosen.update(r=int(hparams.get("r", 48)), alpha=int(hparams.get("alpha", 16)))
    return ProtocolResult(
        metrics={"auroc": auroc_metric(y_test, test_scores, kind,
                                       resamples=own_resamples(hparams), seed=seed),
                 "auroc_val": metric("auroc_val", best.auroc if np.isfinite(best.auroc) else math.nan)},
        chosen=chosen, params_trainable=trainable, params_total=total,
        extra={"params_trainable_pct": 100.0 * trainable / total, **timing,
               "auroc_per_class": auroc_per_class(y_test, test_scores, kind).tolist(),
               "test_predictions": ArrayPayload(labels=y_test, scores=test_scores)},
    )
