"""Linear probe: many heads trained together on one pass over frozen features (DINOv2-style).

Every head is a (learning rate, last-n blocks' class tokens, with/without mean patch token)
combination. All heads share one zero-padded weight over the widest input, so a training step is
one matrix product however many heads there are (32 heads cost 1.1-1.35x one head on an H200; on one
CPU core the extra FLOPs show). Each head has its own loss term, learning rate and momentum
buffer and its padding gets no gradient, so a head evolves as it would alone. Initialisation
depends only on (seed, head config) and the batch order only on the seed, which is what makes
"best head of the sweep == that head trained alone" hold.

Features are used raw (no standardisation), as DINOv2's linear evaluation does: the point is to
measure the representation as it is. The best (head, epoch) is chosen on validation AUROC; that
configuration is then retrained from scratch on train+val for that many epochs and scored on test
(the study's appendix A.1). ``hparams["epoch_selection"]="final"`` is the study's code instead: the
best head after the last epoch, refit for every epoch (switch ``linear_epoch_on_val``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch

from radbench_core.core import progress
from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import auroc, auroc_metric, auroc_per_class, metric
from radbench_core.protocols.base import FrozenInputs, ProtocolResult
from radbench_core.protocols.base import own_resamples, require
from radbench_core.protocols.losses import classification_loss
from radbench_core.eval.predictions import ArrayPayload

EVAL_CHUNK = 8192
FEATURE_SOURCES = ("augmented", "cached")
# Features of the training items: fixed arrays (cached), or epoch -> arrays (a fresh augmentation
# draw every epoch, the study's way).
TrainFeatures = Union[dict[str, np.ndarray], Callable[[int], dict[str, np.ndarray]]]


@dataclass(frozen=True)
class HeadConfig:
    lr: float
    n_blocks: int          # class tokens of the last n blocks, concatenated
    avgpool: bool          # also append the mean patch token

    def label(self) -> str:
        return f"lr={self.lr:g},blocks={self.n_blocks},avgpool={int(self.avgpool)}"


def n_outputs(label_kind: str, num_classes: int) -> int:
    """Binary tasks use a two-logit softmax head; the others one logit per class."""
    return 2 if label_kind == "binary" else int(num_classes)


def scores_from_logits(logits: torch.Tensor, label_kind: str) -> torch.Tensor:
    """The per-item scores AUROC reads: sigmoid (multilabel), softmax, or P(positive) (binary)."""
    if label_kind == "multilabel":
        return torch.sigmoid(logits)
    probs = torch.softmax(logits, dim=-1)
    return probs[..., 1] if label_kind == "binary" else probs


EPOCH_SELECTIONS = ("best_val", "final")   # switch linear_epoch_on_val: sound "best_val", study "final"


def head_configs(lrs: Sequence[float], n_blocks: Sequence[int], avgpool: Sequence[bool],
                 features: dict[str, np.ndarray]) -> list[HeadConfig]:
    """The grid, restricted to what the features offer (CNNs: 1 block, no patch tokens)."""
    available = np.shape(features["cls"])[1]
    has_patch = "patch_mean" in features
    configs = [HeadConfig(float(lr), int(n), bool(a)) for n in n_blocks for a in avgpool
               for lr in lrs if int(n) <= available and (has_patch or not a)]
    if not configs:
        raise ConfigError("hparams['linear']", f"no head fits features with {available} block(s) "
                          f"and{'' if has_patch else ' no'} patch tokens (n_blocks={list(n_blocks)})",
                          "include n_blocks=1 and avgpool=False in the grid")
    return configs


def head_input(features: dict[str, Any], n_blocks: int, avgpool: bool) -> Any:
    """``(N, n_blocks*D [+ D])`` head input: last n blocks' class tokens (+ mean patch token)."""
    cls = features["cls"]
    parts = [cls[:, -n_blocks:].reshape(len(cls), -1)]
    if avgpool:
        parts.append(features["patch_mean"])
    if isinstance(cls, torch.Tensor):
        return torch.cat([p.float() for p in parts], dim=1)
    return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=1)


def head_seed(seed: int, cfg: HeadConfig) -> int:
    """Initialisation seed from (seed, config) only: independent of which other heads exist."""
    return zlib.crc32(f"{seed}|{cfg.lr!r}|{cfg.n_blocks}|{cfg.avgpool}".encode())


@dataclass
class HeadSweep:
    """Outcome of :func:`train_heads`: per-epoch validation AUROC and each head's weights."""
    configs: list[HeadConfig]
    label_kind: str
    val_auroc: np.ndarray                                   # (heads, epochs), NaN without val
    final: list[tuple[torch.Tensor, torch.Tensor]]          # (W (D_in, C), b (C,)) after training
    best: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # at best val epoch

    def best_index(self) -> tuple[int, int]:
        """(head, epoch) with the highest validation AUROC; first one on ties, (0, last) if none."""
        if not np.isfinite(self.val_auroc).any():
            return 0, self.val_auroc.shape[1] - 1
        flat = int(np.nanargmax(self.val_auroc))
        return divmod(flat, self.val_auroc.shape[1])

    def best_final_index(self) -> tuple[int, int]:
        """(head, last epoch): the head with the highest validation AUROC after the last epoch, as
        the study picks it (first on ties, head 0 if none is finite)."""
        last = self.val_auroc[:, -1]
        head = int(np.nanargmax(last)) if np.isfinite(last).any() else 0
        return head, self.val_auroc.shape[1] - 1

    def chosen_index(self, selection: str) -> tuple[int, int]:
        """(head, epoch) under ``selection``: "best_val" (ours) or "final" (the study's)."""
        if selection not in EPOCH_SELECTIONS:
            raise ConfigError(f"hparams['epoch_selection']={selection!r}", "unknown epoch selection",
                              f"use one of {', '.join(EPOCH_SELECTIONS)}")
        return self.best_index() if selection == "best_val" else self.best_final_index()

    def scores(self, features: dict[str, np.ndarray], head: int, which: str = "best",
               device: str = "cpu") -> np.ndarray:
        """Scores of one head on other features (``which`` = "best" epoch or "final")."""
        w, b = (self.best if which == "best" else self.final)[head]
        cfg = self.configs[head]
        x = torch.as_tensor(head_input(features, cfg.n_blocks, cfg.avgpool))
        out = [scores_from_logits(x[i:i + EVAL_CHUNK].to(device) @ w.to(device) + b.to(device),
                                  self.label_kind).cpu() for i in range(0, len(x), EVAL_CHUNK)]
        return torch.cat(out).numpy().astype(np.float64)


def _targets(labels: np.ndarray, label_kind: str, n_out: int, device: str) -> torch.Tensor:
    y = np.asarray(labels)
    if label_kind == "multilabel":
        if y.ndim != 2 or y.shape[1] != n_out:
            raise ConfigError("FrozenInputs.labels", f"multilabel targets must be (N, {n_out}), got "
                              f"{y.shape}", "pass num_classes equal to the label columns")
        return torch.as_tensor(y, dtype=torch.float32, device=device)
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= n_out)):
        raise ConfigError("FrozenInputs.labels", f"{label_kind} targets must be (N,) ints in "
                          f"0..{n_out - 1}, got shape {y.shape}", "check num_classes and labels")
    return torch.as_tensor(y, dtype=torch.int64, device=device)


def _group_logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(heads, B, C)`` logits of all heads sharing input ``x`` (B, D_in), as one matrix product."""
    d_in, heads, n_out = w.shape
    return (x @ w.view(d_in, heads * n_out)).view(len(x), heads, n_out).transpose(0, 1) + b[:, None, :]


def _padded_rows(configs: Sequence[HeadConfig], dim: int) -> tuple[int, bool, list[torch.Tensor]]:
    """Shared input = last ``max_n`` class tokens (+ mean patch); each head's rows within it."""
    max_n = max(c.n_blocks for c in configs)
    use_avg = any(c.avgpool for c in configs)
    rows = []
    for c in configs:
        r = list(range((max_n - c.n_blocks) * dim, max_n * dim))
        rows.append(torch.tensor(r + (list(range(max_n * dim, (max_n + 1) * dim)) if c.avgpool else [])))
    return max_n, use_avg, rows


def _on_device(features: dict[str, Any], device: str) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float32)).to(device) for k, v in features.items()}


class HeadBank:
    """Every head of a sweep in one zero-padded weight ``(D_full, heads, C)`` over the widest input
    (last ``max_n`` class tokens + mean patch), so a step is one matrix product whatever the number
    of heads. Gradients outside a head's own rows are masked, so its padding stays exactly zero."""

    def __init__(self, configs: Sequence[HeadConfig], feats: dict[str, torch.Tensor], n_out: int,
                 seed: int, device: str):
        blocks, dim = feats["cls"].shape[1:]
        self.max_n, self.use_avg, self.rows = _padded_rows(configs, dim)
        if self.max_n > blocks or (self.use_avg and "patch_mean" not in feats):
            raise ConfigError("train_heads", f"a head needs {self.max_n} blocks"
                              f"{' and patch tokens' * self.use_avg}, the features have {blocks} "
                              "block(s)", "build configs with head_configs()")
        d_full = (self.max_n + self.use_avg) * dim
        w = torch.zeros(d_full, len(configs), n_out)
        mask = torch.zeros(d_full, len(configs), 1)
        for h, cfg in enumerate(configs):
            g = torch.Generator().manual_seed(head_seed(seed, cfg))
            w[self.rows[h], h] = torch.randn(len(self.rows[h]), n_out, generator=g) * 0.01  # DINOv2: N(0, 0.01)
            mask[self.rows[h], h] = 1.0
        self.w, self.mask = w.to(device), mask.to(device)
        self.b = torch.zeros(len(configs), n_out, device=device)
        self.buf_w, self.buf_b = torch.zeros_like(self.w), torch.zeros_like(self.b)
        self.lr = torch.tensor([c.lr for c in configs], device=device)

    def step(self, batch: dict[str, torch.Tensor], y: torch.Tensor, label_kind: str, decay: float,
             momentum: float, loss_reduction: str = "mean") -> None:
        """One SGD + momentum step of every head on ``batch`` (torch.optim.SGD's update)."""
        w, b = self.w, self.b
        x = head_input(batch, self.max_n, self.use_avg)
        w.requires_grad_(True)
        b.requires_grad_(True)
        loss = classification_loss(_group_logits(x, w, b), y, label_kind, loss_reduction).sum()
        g_w, g_b = torch.autograd.grad(loss, [w, b])
        with torch.no_grad():
            w.requires_grad_(False)
            b.requires_grad_(False)
            self.buf_w.mul_(momentum).add_(g_w * self.mask)    # buf = m * buf + grad
            self.buf_b.mul_(momentum).add_(g_b)
            w.sub_(self.lr[None, :, None] * decay * self.buf_w)
            b.sub_(self.lr[:, None] * decay * self.buf_b)

    def scores(self, features: dict[str, np.ndarray], label_kind: str, device: str) -> np.ndarray:
        """``(heads, N[, C])`` scores of every head."""
        return _all_head_scores(features, self.w, self.b, self.max_n, self.use_avg, label_kind, device)

    def weights(self, h: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _compact(self.w, self.b, self.rows, h)


class BestEpoch:
    """Per head: the validation AUROC of every epoch and the weights of its best one (the first
    epoch reaching the maximum wins; a head never scored finite keeps its final weights)."""

    def __init__(self, heads: int, epochs: int):
        self.val_auroc = np.full((heads, epochs), np.nan)
        self.best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * heads

    def update(self, epoch: int, values: Sequence[float], bank: HeadBank) -> None:
        for h, value in enumerate(values):
            seen = self.val_auroc[h, :epoch]
            previous = np.nanmax(seen) if np.isfinite(seen).any() else -np.inf
            self.val_auroc[h, epoch] = value
            if np.isfinite(self.val_auroc[h, epoch]) and self.val_auroc[h, epoch] > previous:
                self.best[h] = bank.weights(h)

    def weights_or(self, final: list[tuple[torch.Tensor, torch.Tensor]]) -> list:
        return [best if best is not None else last for best, last in zip(self.best, final)]


class _EpochFeatures:
    """The training features of each epoch: fixed arrays, or a function of the epoch (augmented
    images, one backbone pass per epoch shared by every head) that must keep items and shape."""

    def __init__(self, source: TrainFeatures, device: str):
        self.source, self.device = source, device
        self.first = _on_device(source(0) if callable(source) else source, device)

    def at(self, epoch: int) -> dict[str, torch.Tensor]:
        if epoch == 0 or not callable(self.source):
            return self.first
        feats = _on_device(self.source(epoch), self.device)
        if feats["cls"].shape != self.first["cls"].shape:
            raise ConfigError("train_heads(train_features)", f"epoch {epoch} gave features of shape "
                              f"{tuple(feats['cls'].shape)}, epoch 0 {tuple(self.first['cls'].shape)}",
                              "return the same items in the same order every epoch")
        return feats


def train_heads(train_features: TrainFeatures, train_labels: np.ndarray,
                configs: Sequence[HeadConfig], *, label_kind: str, num_classes: int, epochs: int,
                batch_size: int, seed: int, device: str = "cpu", momentum: float = 0.9,
                val_features: dict[str, np.ndarray] | None = None,
                val_labels: np.ndarray | None = None, loss_reduction: str = "mean") -> HeadSweep:
    """Train all ``configs`` together (SGD + momentum, per-step cosine decay to 0).

    One shuffled batch order (from ``seed``) feeds every head of the :class:`HeadBank`. With
    validation data every head is scored after every epoch and its best-epoch weights are kept.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError("hparams['linear']", f"epochs={epochs}, batch_size={batch_size}: both "
                          "must be >= 1", "set positive epochs and batch_size")
    n_out = n_outputs(label_kind, num_classes)
    features = _EpochFeatures(train_features, device)
    y = _targets(train_labels, label_kind, n_out, device)
    n = len(features.first["cls"])
    bank = HeadBank(configs, features.first, n_out, seed, device)
    tracker = BestEpoch(len(configs), epochs)
    order = torch.Generator().manual_seed(seed)
    total_steps, step = epochs * math.ceil(n / batch_size), 0
    for epoch in range(epochs):
        feats = features.at(epoch)
        perm = torch.randperm(n, generator=order).to(device)
        for b0 in range(0, n, batch_size):
            idx = perm[b0:b0 + batch_size]
            decay = 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            bank.step({k: v[idx] for k, v in feats.items()}, y[idx], label_kind, decay, momentum, loss_reduction)
            step += 1
        if val_features is not None and val_labels is not None:
            scores = bank.scores(val_features, label_kind, device)
            tracker.update(epoch, [auroc(val_labels, s, label_kind) for s in scores], bank)
        progress.update("train", done=epoch + 1, total=epochs, unit="epoch")
    final = [bank.weights(h) for h in range(len(configs))]
    return HeadSweep(list(configs), label_kind, tracker.val_auroc, final, tracker.weights_or(final))


def _compact(w: torch.Tensor, b: torch.Tensor, rows: list[torch.Tensor], h: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Head h's own weights ``(D_in, C)`` (in :func:`head_input` order) and bias, on the CPU."""
    return w[rows[h].to(w.device), h].detach().cpu().clone(), b[h].detach().cpu().clone()


@torch.no_grad()
def _all_head_scores(features: dict[str, np.ndarray], w: torch.Tensor, b: torch.Tensor, max_n: int,
                     use_avg: bool, label_kind: str, device: str) -> np.ndarray:
    """``(heads, N[, C])`` scores of every head, computed in chunks of items."""
    n = len(features["cls"])
    out = [scores_from_logits(_group_logits(head_input(
        {k: torch.as_tensor(np.asarray(v[i:i + EVAL_CHUNK])).to(device) for k, v in features.items()},
        max_n, use_avg), w, b), label_kind).cpu() for i in range(0, n, EVAL_CHUNK)]
    return torch.cat(out, dim=1).double().numpy()


def _merge(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(a[k]), np.asarray(b[k])]) for k in a if k in b}


def _merged_per_epoch(a: Callable[[int], dict], b: Callable[[int], dict]) -> Callable[[int], dict]:
    return lambda epoch: _merge(a(epoch), b(epoch))


def training_features(inputs: FrozenInputs, hparams: dict[str, Any]) -> tuple[TrainFeatures, TrainFeatures]:
    """(train, train+val) head-training features: augmented per epoch (the study) or cached."""
    source = hparams.get("features", "cached")
    feats = inputs.features
    if source == "cached":
        return feats["train"], _merge(feats["train"], feats["val"])
    if source != "augmented":
        raise ConfigError(f"hparams['features']={source!r}", f"expected one of {FEATURE_SOURCES}",
                          "use 'augmented' (the study's) or 'cached' (faster, no augmentation)")
    aug = inputs.augmented
    if not aug or "train" not in aug or "val" not in aug:
        raise ConfigError("FrozenInputs.augmented", "hparams['features']='augmented' but no augmented "
                          "train/val features were provided",
                          "run the cell through radbench_core.run.runner.run_cell, or set features='cached'")
    return aug["train"], _merged_per_epoch(aug["train"], aug["val"])


def _check_schedule(hparams: dict[str, Any]) -> None:
    if hparams.get("schedule", "cosine") != "cosine" or float(hparams.get("weight_decay", 0.0)) != 0.0:
        raise ConfigError("hparams['linear']", f"schedule={hparams.get('schedule')!r}, weight_decay="
                          f"{hparams.get('weight_decay')!r}: the head trainer runs the study's cosine "
                          "schedule without weight decay only", "set schedule='cosine', weight_decay=0")


def run_linear(inputs: FrozenInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """Multi-head sweep on train, selection on val, retrain on train+val, test AUROC with CI.

    ``hparams["features"]``: "augmented" trains the heads on a fresh augmentation of the training
    images every epoch (the study's); "cached" on the cached unaugmented features. Validation and
    test features are unaugmented either way.
    """
    feats, labels, kind = inputs.features, inputs.labels, inputs.label_kind
    _check_schedule(hparams)
    configs = head_configs(require(hparams, "lrs", "linear"), hparams.get("n_blocks", (1, 4)),
                           hparams.get("avgpool", (False, True)), feats["train"])
    epochs = int(require(hparams, "epochs", "linear"))
    common = dict(label_kind=kind, num_classes=inputs.num_classes,
                  batch_size=int(require(hparams, "batch_size", "linear")), seed=seed,
                  device=inputs.device, momentum=float(hparams.get("momentum", 0.9)),
                  loss_reduction=str(hparams.get("multilabel_loss", "mean")))
    train_feats, train_val_feats = training_features(inputs, hparams)
    sweep = train_heads(train_feats, labels["train"], configs, epochs=epochs,
                        val_features=feats["val"], val_labels=labels["val"], **common)
    head, epoch = sweep.chosen_index(str(hparams.get("epoch_selection", "best_val")))
    cfg = configs[head]
    refit = train_heads(train_val_feats, np.concatenate([labels["train"], labels["val"]]), [cfg],
                        epochs=epoch + 1, **common)
    test_scores = refit.scores(feats["test"], 0, which="final", device=inputs.device)
    w, b = refit.final[0]
    return ProtocolResult(
        metrics={"auroc": auroc_metric(labels["test"], test_scores, kind,
                                       resamples=own_resamples(hparams), seed=seed),
                 "auroc_val": metric("auroc_val", float(sweep.val_auroc[head, epoch]))},
        chosen={"lr": cfg.lr, "n_blocks": cfg.n_blocks, "avgpool": cfg.avgpool, "epochs": epoch + 1,
                "features": hparams.get("features", "cached")},
        params_trainable=w.numel() + b.numel(),
        extra={"n_heads": len(configs),
               "auroc_per_class": auroc_per_class(labels["test"], test_scores, kind).tolist(),
               # the runner writes these to <run>/predictions/ (paired comparisons) and drops them
               "test_predictions": ArrayPayload(labels=labels["test"], scores=test_scores),
               "val_auroc_best_per_head": {c.label(): float(np.nanmax(r)) if np.isfinite(r).any()
                                           else None for c, r in zip(configs, sweep.val_auroc)}},
    )
