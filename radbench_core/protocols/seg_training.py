"""The training and scoring loop shared by every segmentation protocol.

One loop serves the frozen-backbone decoders and the scratch baselines; a :class:`SegTask` says what
differs (how images become head inputs, whether those inputs may be cached). Choices follow the
study's released code: soft Dice loss over all classes (background included, per sample, MONAI's
``DiceLoss(softmax=True, to_onehot_y=True)``), SGD with momentum 0.9 and no weight decay, a cosine
schedule to zero per step, one run per learning rate; the rate is chosen on validation (the study:
each run's final state, by Dice pooled over all validation slices at the training resolution), then
a fresh head is trained with it on train + val for ``epochs`` and tested (:func:`refit`). Predictions are made slice by slice, upsampled (bilinear) to each item's original slice size,
reassembled into volumes in slice order and scored against ``index.load_mask(item)``.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from radbench_core.core import progress
from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import confusion_matrix, dice_jaccard, study_dice
from radbench_core.protocols.losses import dice_loss

Encoded = list[torch.Tensor]


@dataclass
class SegTask:
    """What the frozen-decoder and scratch paths do differently."""
    make_head: Callable[[], nn.Module]                         # a fresh trainable module
    encode: Callable[[torch.Tensor], Encoded]                  # images (on device) -> head inputs
    apply: Callable[[nn.Module, Encoded, tuple[int, int]], torch.Tensor]   # -> logits (B,C,R,R)
    cacheable: bool = False                                    # encode() is fixed (frozen backbone)


@dataclass
class Selection:
    """The chosen configuration and the trace of the sweep."""
    head: nn.Module
    lr: float
    epoch: int
    val_score: float                           # the selected metric (select_metric) on validation
    history: list[dict[str, Any]] = field(default_factory=list)
    cache: tuple[Any, Any] = (None, None)      # cached train / val head inputs, reused by the refit


def reassemble(pred_slices: Sequence[np.ndarray], item_of_slice: Sequence[int],
               slice_idx: Sequence[int]) -> list[np.ndarray]:
    """Stack per-slice predictions into one ``(S, H, W)`` volume per item, in slice order.

    Items are returned in order of their position (0..max item); every item's slice numbers must be
    exactly 0..S-1 so a volume is never silently missing a slice or holding one twice.
    """
    items = np.asarray(item_of_slice, dtype=np.int64)
    slices = np.asarray(slice_idx, dtype=np.int64)
    if not (len(pred_slices) == len(items) == len(slices)):
        raise ConfigError("reassemble", f"{len(pred_slices)} predictions for {len(items)} item ids and "
                          f"{len(slices)} slice ids", "pass one item id and one slice id per prediction")
    volumes = []
    for item in range(int(items.max()) + 1 if len(items) else 0):
        where = np.flatnonzero(items == item)
        if where.size == 0:
            raise ConfigError("reassemble", f"item {item} has no predicted slice",
                              "predict every slice of every item of the split")
        order = where[np.argsort(slices[where], kind="stable")]
        if not np.array_equal(slices[order], np.arange(len(order))):
            raise ConfigError("reassemble", f"item {item} has slice ids {sorted(slices[where].tolist())}",
                              "predict every slice of every item exactly once (slices 0..S-1)")
        volumes.append(np.stack([np.asarray(pred_slices[j]) for j in order]))
    return volumes


def per_item_scores(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                    num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Dice and Jaccard ``(items, foreground classes)``, NaN where a class is absent from both."""
    dice, jac = zip(*(dice_jaccard(p, t, num_classes) for p, t in zip(preds, targets)))
    return np.asarray(dice, dtype=np.float64), np.asarray(jac, dtype=np.float64)


def mean_dice(dice: np.ndarray) -> float:
    """Mean over classes of the per-class mean over items (absent-everywhere classes excluded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(np.nanmean(dice, axis=0)))


@dataclass
class Cached:
    """Head inputs of every slice of a split, kept on the CPU, with masks and (item, slice) ids."""
    enc: Encoded
    masks: torch.Tensor
    items: torch.Tensor
    slices: torch.Tensor


def _chunks(order: Sequence[int], size: int) -> list[list[int]]:
    order = [int(i) for i in order]
    return [order[i:i + size] for i in range(0, len(order), size)]


def _batches(dataset: Any, cached: Cached | None, batches: list[list[int]], task: SegTask,
             device: str, num_workers: int) -> Iterator[tuple[Encoded, dict[str, torch.Tensor]]]:
    """(head inputs on device, batch dict with mask/item/slice) for each list of slice positions."""
    if cached is not None:
        for idx in batches:
            sel = torch.as_tensor(idx, dtype=torch.long)
            yield ([t[sel].to(device) for t in cached.enc],
                   {"mask": cached.masks[sel], "item": cached.items[sel], "slice": cached.slices[sel]})
        return
    for batch in DataLoader(dataset, batch_sampler=batches, num_workers=num_workers):
        with torch.no_grad():
            enc = task.encode(batch["image"].to(device))
        yield enc, batch


@torch.no_grad()
def encode_dataset(task: SegTask, dataset: Any, batch_size: int, device: str,
                   num_workers: int = 0) -> Cached:
    """Encode a split once (only valid for fixed inputs: frozen backbone, no augmentation)."""
    parts: list[Encoded] = []
    masks, items, slices = [], [], []
    for enc, batch in _batches(dataset, None, _chunks(range(len(dataset)), batch_size), task, device,
                               num_workers):
        parts.append([t.cpu() for t in enc])
        masks.append(batch["mask"])
        items.append(torch.as_tensor(batch["item"]))
        slices.append(torch.as_tensor(batch["slice"]))
    return Cached([torch.cat(level) for level in zip(*parts)], torch.cat(masks), torch.cat(items),
                  torch.cat(slices))


def make_optimizer(params: Any, hparams: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """SGD + momentum 0.9, no weight decay, as the study's segmentation code; AdamW on request."""
    name = hparams.get("optimizer", "sgd")
    wd = float(hparams.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(hparams.get("momentum", 0.9)),
                               weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    raise ConfigError("hparams['optimizer']", f"unknown optimizer {name!r}", "use 'sgd' or 'adamw'")


def fresh_head(task: SegTask, seed: int, device: str) -> nn.Module:
    """Same initial weights for every learning rate of a seed, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = task.make_head()
    return head.to(device)


BN_MODES = ("eval", "train")      # switch seg_bn_eval_at_scoring: sound "eval", study "train"


def bn_mode_of(hparams: dict[str, Any]) -> str:
    """The head's mode when scoring (``hparams['bn_at_scoring']``), checked."""
    mode = str(hparams.get("bn_at_scoring", "eval"))
    if mode not in BN_MODES:
        raise ConfigError("hparams['bn_at_scoring']", f"unknown mode {mode!r}",
                          f"use one of {', '.join(BN_MODES)}")
    return mode


def set_scoring_mode(head: nn.Module, bn_mode: str = "eval") -> nn.Module:
    """Eval mode (running BatchNorm statistics), or the study's way: the decoder / scratch model left
    in train mode, so BatchNorm normalises with each scored batch's own statistics (its utils.py:361
    puts only the encoder in eval mode; the scratch notebooks never call eval())."""
    return head.train(bn_mode == "train")


@torch.no_grad()
def predict_items(task: SegTask, head: nn.Module, dataset: Any, sizes: Sequence[tuple[int, int]],
                  resolution: int, device: str, batch_size: int, num_workers: int = 0,
                  cached: Cached | None = None, confmats: np.ndarray | None = None,
                  bn_mode: str = "eval") -> list[np.ndarray]:
    """Predicted label volumes of a split, each at its original slice size ``sizes[item]``.

    ``confmats`` ``(items, C, C)``, if given, gets each item's pixel counts at the TRAINING resolution
    (argmax vs the resized mask of the batch): the input of the study's pooled metric.
    """
    set_scoring_mode(head, bn_mode)
    preds, items, slices = [], [], []
    n = len(cached.masks) if cached is not None else len(dataset)
    for enc, batch in _batches(dataset, cached, _chunks(range(n), batch_size), task, device,
                               num_workers):
        logits = task.apply(head, enc, (resolution, resolution)).float()
        if confmats is not None:
            small = logits.argmax(dim=1).cpu().numpy()
            masks = np.asarray(batch["mask"])
            for j, item in enumerate(batch["item"].tolist()):
                confmats[item] += confusion_matrix(small[j], masks[j], confmats.shape[1])
        for j, (item, sl) in enumerate(zip(batch["item"].tolist(), batch["slice"].tolist())):
            up = F.interpolate(logits[j:j + 1], size=tuple(sizes[item]), mode="bilinear",
                               align_corners=False)
            preds.append(up.argmax(dim=1)[0].to(torch.int16).cpu().numpy())
            items.append(item)
            slices.append(sl)
    return reassemble(preds, items, slices)


def fit(task: SegTask, train: Any, cache: Cached | None, lr: float, epochs: int,
        hparams: dict[str, Any], seed: int, *, resolution: int, device: str, num_workers: int = 0,
        after_epoch: Callable[[nn.Module, int, dict[str, Any]], None] | None = None
        ) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train a fresh head with Dice loss, SGD (momentum) and a per-step cosine schedule to zero.

    Stops early only when the loss stops being finite (the row says ``diverged``).
    """
    bs = int(hparams["batch_size"])
    head = fresh_head(task, seed, device)
    opt = make_optimizer(head.parameters(), hparams, lr)
    n = len(cache.masks) if cache is not None else len(train)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * math.ceil(n / bs)),
                                                       eta_min=0.0)
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, Any]] = []
    for epoch in range(epochs):
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        head.train()
        losses = []
        for enc, batch in _batches(train, cache, _chunks(torch.randperm(n, generator=gen).tolist(), bs),
                                   task, device, num_workers):
            loss = dice_loss(task.apply(head, enc, (resolution, resolution)), batch["mask"].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        row: dict[str, Any] = {"lr": lr, "epoch": epoch, "train_loss": float(np.mean(losses))}
        if not np.isfinite(losses).all():
            rows.append({**row, "diverged": True})
            break
        if after_epoch is not None:
            after_epoch(head, epoch, row)
        rows.append(row)
        progress.update("train", done=epoch + 1, total=epochs, unit="epoch")
    return head, rows


SELECT_METRICS = ("dice_study", "dice")
SELECT_EPOCHS = ("last", "best")


class _Selector:
    """Scores a run's head on validation when the rule asks and keeps the best head seen.

    ``select_epoch`` "last" (the study: each run's final state) or "best" (every ``val_every``-th
    epoch); ``select_metric`` "dice_study" (the study: Dice pooled over all val slices at the
    training resolution) or "dice" (per-volume Dice at native size). Every validated epoch's
    row gets both values; a non-finite score counts as -1; the first of equal scores wins.
    """

    def __init__(self, task: SegTask, val: Any, val_targets: list[np.ndarray], val_cache: Cached | None,
                 hparams: dict[str, Any], *, epochs: int, num_classes: int, resolution: int,
                 device: str, num_workers: int, split: str = "val"):
        self.rule, self.metric = selection_rule(hparams)
        self.split = split                            # the history rows' key prefix: the split scored
        self.task, self.val, self.val_targets, self.val_cache = task, val, val_targets, val_cache
        self.val_sizes = [tuple(t.shape[-2:]) for t in val_targets]
        self.epochs, self.val_every = epochs, int(hparams.get("val_every", 1))
        self.eval_bs = int(hparams.get("eval_batch_size", hparams["batch_size"]))
        self.num_classes, self.resolution = num_classes, resolution
        self.device, self.num_workers = device, num_workers
        self.bn_mode = bn_mode_of(hparams)            # switch seg_bn_train_mode: the study scored in train mode
        self.best: Selection | None = None

    def watching(self, lr: float) -> Callable[[nn.Module, int, dict[str, Any]], None]:
        """The ``after_epoch`` callback of the run at rate ``lr``."""
        return lambda head, epoch, row: self.after_epoch(lr, head, epoch, row)

    def after_epoch(self, lr: float, head: nn.Module, epoch: int, row: dict[str, Any]) -> None:
        dice, pooled = f"{self.split}_dice", f"{self.split}_dice_study"
        row[dice] = row[pooled] = None
        if not self._due(epoch):
            return
        row[dice], row[pooled] = self._validate(head)
        score = row[pooled if self.metric == "dice_study" else dice]
        if self.best is None or _rank(score) > _rank(self.best.val_score):
            self.best = Selection(copy.deepcopy(head).cpu(), lr, epoch, score)

    def _due(self, epoch: int) -> bool:
        last = epoch == self.epochs - 1
        return last or (self.rule == "best" and (epoch + 1) % self.val_every == 0)

    def _validate(self, head: nn.Module) -> tuple[float, float]:
        """(mean per-volume Dice at native size, Dice pooled over all val slices)."""
        n, k = len(self.val_targets), self.num_classes
        cms = np.zeros((n, k, k), dtype=np.int64)
        preds = predict_items(self.task, head, self.val, self.val_sizes, self.resolution, self.device,
                              self.eval_bs, self.num_workers, self.val_cache, confmats=cms,
                              bn_mode=self.bn_mode)
        return mean_dice(per_item_scores(preds, self.val_targets, k)[0]), study_dice(cms.sum(axis=0))


def selection_rule(hparams: dict[str, Any]) -> tuple[str, str]:
    """(select_epoch, select_metric), checked before anything is computed."""
    rule, metric = hparams.get("select_epoch", "last"), hparams.get("select_metric", "dice_study")
    if rule not in SELECT_EPOCHS or metric not in SELECT_METRICS:
        raise ConfigError("hparams['select_epoch'/'select_metric']", f"got {rule!r} / {metric!r}",
                          f"use one of {SELECT_EPOCHS} / one of {SELECT_METRICS}")
    return rule, metric


def _rank(score: float) -> float:
    return score if np.isfinite(score) else -1.0


def train_and_select(task: SegTask, datasets: dict[str, Any], val_targets: list[np.ndarray],
                     hparams: dict[str, Any], seed: int, *, num_classes: int, resolution: int,
                     device: str, num_workers: int = 0) -> Selection:
    """One run per learning rate for ``sweep_epochs``; keep the best on validation (:class:`_Selector`)."""
    lrs = [float(x) for x in hparams["lrs"]]
    epochs = int(hparams.get("sweep_epochs") or hparams["epochs"])
    eval_bs = int(hparams.get("eval_batch_size", hparams["batch_size"]))
    selection_rule(hparams)
    train, val = datasets["train"], datasets["val"]
    use_cache = task.cacheable and bool(hparams.get("cache_maps", False))
    train_cache = (encode_dataset(task, train, eval_bs, device, num_workers)
                   if use_cache and getattr(train, "augment", None) is None else None)
    val_cache = encode_dataset(task, val, eval_bs, device, num_workers) if use_cache else None
    selector = _Selector(task, val, val_targets, val_cache, hparams, epochs=epochs,
                         num_classes=num_classes, resolution=resolution, device=device,
                         num_workers=num_workers)
    history: list[dict[str, Any]] = []
    for lr in lrs:
        history += fit(task, train, train_cache, lr, epochs, hparams, seed, resolution=resolution,
                       device=device, num_workers=num_workers, after_epoch=selector.watching(lr))[1]
    if selector.best is None:
        raise ConfigError("hparams['lrs']", f"every learning rate in {lrs} diverged (non-finite loss)",
                          "add smaller learning rates to the profile's segmentation hparams")
    sel = selector.best
    sel.head.to(device)
    sel.history = history
    sel.cache = (train_cache, val_cache)
    return sel


class TrainVal(torch.utils.data.Dataset):
    """Train and validation slices as one training set (the refit), val augmented like train."""

    def __init__(self, train: Any, val: Any):
        self.parts = [train, augmented_like(val, train)]
        self.sizes = [len(p) for p in self.parts]
        self.augment = getattr(train, "augment", None)

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.parts[0][i] if i < self.sizes[0] else self.parts[1][i - self.sizes[0]]

    def set_epoch(self, epoch: int) -> None:
        for p in self.parts:
            if hasattr(p, "set_epoch"):
                p.set_epoch(epoch)


def augmented_like(val: Any, train: Any) -> Any:
    augment = getattr(train, "augment", None)
    if augment is None or not hasattr(val, "augment"):
        return val
    twin = copy.copy(val)              # same index and transform, own augmentation and slice cache
    twin.augment = augment
    if hasattr(twin, "_cache"):
        twin._cache = type(val._cache)()
    return twin


def refit(task: SegTask, datasets: dict[str, Any], sel: Selection, hparams: dict[str, Any], seed: int,
          *, resolution: int, device: str, num_workers: int = 0,
          after_epoch: Callable[[nn.Module, int, dict[str, Any]], None] | None = None
          ) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The study's last step: a fresh head trained on train + val with the chosen rate for ``epochs``.

    ``after_epoch`` watches the refit (switch ``seg_test_once`` at the study's value: a
    :func:`watch_test_split` keeps the best of its periodic test scores)."""
    train_cache, val_cache = getattr(sel, "cache", (None, None))
    cache = None
    if train_cache is not None and val_cache is not None:
        cache = Cached([torch.cat([a, b]) for a, b in zip(train_cache.enc, val_cache.enc)],
                       torch.cat([train_cache.masks, val_cache.masks]),
                       torch.cat([train_cache.items, val_cache.items]),
                       torch.cat([train_cache.slices, val_cache.slices]))
    data = TrainVal(datasets["train"], datasets["val"])
    head, rows = fit(task, data, cache, sel.lr, int(hparams["epochs"]), hparams, seed,
                     resolution=resolution, device=device, num_workers=num_workers, after_epoch=after_epoch)
    return head, [{**r, "refit": True} for r in rows]


def rerun_selected(task: SegTask, datasets: dict[str, Any], sel: Selection, hparams: dict[str, Any],
                   seed: int, *, resolution: int, device: str, num_workers: int = 0,
                   after_epoch: Callable[[nn.Module, int, dict[str, Any]], None] | None = None
                   ) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The selected sweep run again (same rate, seed, data and epochs), watched by ``after_epoch``:
    ``report_epoch="best_on_test"`` without a refit takes the best of THIS run's periodic test
    scores (the study's rule, applied to the run that is reported when nothing is refitted)."""
    epochs = int(hparams.get("sweep_epochs") or hparams["epochs"])
    head, rows = fit(task, datasets["train"], getattr(sel, "cache", (None, None))[0], sel.lr, epochs,
                     hparams, seed, resolution=resolution, device=device, num_workers=num_workers,
                     after_epoch=after_epoch)
    return head, [{**r, "rerun": True} for r in rows]


REPORT_EPOCHS = ("final", "best_on_test")
STUDY_TEST_EVERY = 5                     # the study's eval_period_epochs (segmentation.py:185)


def report_epoch_rule(hparams: dict[str, Any]) -> str:
    """Switch ``seg_test_once``: "final" (ours: the refit's final state, tested once) or
    "best_on_test" (the study: the best of the refit's periodic test scores)."""
    rule = hparams.get("report_epoch", "final")
    if rule not in REPORT_EPOCHS:
        raise ConfigError("hparams['report_epoch']", f"unknown rule {rule!r}",
                          f"use one of {', '.join(REPORT_EPOCHS)}")
    return rule


def watch_test_split(task: SegTask, test: Any, test_targets: list[np.ndarray], hparams: dict[str, Any], *,
                 num_classes: int, resolution: int, device: str, num_workers: int) -> _Selector:
    """A selector over the TEST split, as the study's refit had: scored every 5 epochs and at the
    end, by the pooled Dice its evaluate_segmentors ranks (the study's first metric)."""
    rules = {**hparams, "select_epoch": "best", "select_metric": "dice_study",
             "val_every": int(hparams.get("test_every", STUDY_TEST_EVERY))}
    return _Selector(task, test, test_targets, None, rules, epochs=int(hparams["epochs"]),
                     num_classes=num_classes, resolution=resolution, device=device,
                     num_workers=num_workers, split="test")
