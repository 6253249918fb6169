"""What a protocol receives and returns.

A protocol is a plain function ``(inputs, hparams, seed) -> ProtocolResult``. Frozen protocols
(kNN, linear, few-shot) get cached features; live ones (fine-tune, LoRA, BitFit) and segmentation
get the backbone and slice datasets. Hyperparameters come from the active profile.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from radbench_core.core.errors import ConfigError
from radbench_core.core.results import Metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from radbench_core.data.datasets.base import DatasetIndex


@dataclass
class FrozenInputs:
    """Features of every item (a volume's slices already averaged), per split.

    ``features[split]["cls"]`` is ``(N, k, D)``: the class token of the last k blocks (k = 4 for
    ViTs, last block last; k = 1 for CNNs, whose "cls" is the pooled last stage; SAM's is the mean
    patch embedding). ``features[split]["patch_mean"]`` is ``(N, D)`` where the backbone has patch
    tokens, absent otherwise.
    """
    features: dict[str, dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]          # multilabel (N, C) float with NaN = ignore; else (N,) int
    patients: dict[str, list[str]]
    label_kind: str                        # "multilabel" | "multiclass" | "binary"
    num_classes: int
    device: str = "cpu"
    dataset: str = ""                      # the dataset id (per-dataset settings)
    # The study trains linear heads on augmented images: split -> (epoch -> that split's features
    # under that epoch's augmentation draw), computed by a frozen forward each epoch. None: cached.
    augmented: "dict[str, Callable[[int], dict[str, np.ndarray]]] | None" = None


@dataclass
class LiveInputs:
    """A trainable copy of the backbone and slice datasets (the protocol may modify the backbone)."""
    backbone: "torch.nn.Module"            # a radbench_core.models.features.Backbone
    datasets: dict[str, Any]               # split -> SliceDataset (items' slices, item position)
    labels: dict[str, np.ndarray]          # item-level labels, as in FrozenInputs
    label_kind: str
    num_classes: int
    device: str = "cpu"
    num_workers: int = 0
    dataset: str = ""                      # the dataset id: epochs are per dataset in the study
    # the rate the linear probe of this (model, dataset) selects on validation: the study's head rate
    # where hparams["head_lr"] is "linear" (the runner computes it; None: not asked for)
    linear_probe_lr: float | None = None


@dataclass
class SegInputs:
    """Everything a segmentation protocol needs; ``backbone`` is None for scratch baselines."""
    index: "DatasetIndex"
    datasets: dict[str, Any]               # split -> SliceDataset(with_masks=True)
    num_classes: int                       # including background
    resolution: int
    backbone: "torch.nn.Module | None" = None
    scratch_model: str | None = None       # "unet" | "transunet" for scratch cells
    device: str = "cpu"
    num_workers: int = 0
    examples_path: str | None = None       # where to save qualitative predictions (.npz); None: not


@dataclass
class ProtocolResult:
    metrics: dict[str, Metric]
    chosen: dict[str, Any] = field(default_factory=dict)        # selected hyperparameters
    params_trainable: int | None = None
    params_total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)         # per-class values, per-seed, files


def test_predictions(labels: Any, scores: Any, *, runs: bool = False) -> dict[str, Any]:
    """The ``extra`` of a classification ProtocolResult that makes the cell comparable item by item.

    Why: ``radbench compare-models`` and the report's "≈" marks pair two cells' test predictions;
    a protocol that returns ``ProtocolResult(..., extra=test_predictions(inputs.labels["test"],
    scores))`` is covered like the built-in ones. ``labels`` and ``scores`` follow the test split's
    item order (``inputs.labels["test"]``): scores ``(N,)``/``(N, C)``, or ``(R, N[, C])`` with
    ``runs=True`` for R seeds whose headline is their mean. The runner writes them to
    ``<run>/predictions/`` and keeps them out of the record.
    """
    from radbench_core.eval.predictions import ArrayPayload
    payload = ArrayPayload(labels=np.asarray(labels), scores=np.asarray(scores, dtype=np.float32))
    if runs:
        payload["runs"] = True
    return {"test_predictions": payload}


_CIS_FROM_PREDICTIONS = contextvars.ContextVar("radbench_cis_from_predictions", default=False)


@contextmanager
def cis_from_predictions() -> Iterator[None]:
    """Within it, built-in protocols skip their own item bootstrap (``own_resamples`` is 0).

    Why: the runner replaces the CI of every metric computable from the test predictions a protocol
    returns by a patient bootstrap (``eval.cell_intervals``), so the protocol's item bootstrap (a
    Python loop of ``bootstrap`` metric computations) was computed only to be thrown away. Only
    protocols that always return their test predictions consult it; outside the runner (a protocol
    called directly) they keep their item-bootstrap CI. Not a hyperparameter: the record does not
    change, so neither may the config hash."""
    token = _CIS_FROM_PREDICTIONS.set(True)
    try:
        yield
    finally:
        _CIS_FROM_PREDICTIONS.reset(token)


def own_resamples(hparams: dict[str, Any], key: str = "bootstrap", default: int = 1000) -> int:
    """Resamples of a protocol's own item-bootstrap CIs: ``hparams[key]``, or 0 inside
    :func:`cis_from_predictions` (the runner recomputes every such CI from the predictions)."""
    return 0 if _CIS_FROM_PREDICTIONS.get() else int(hparams.get(key, default))


def choice(hparams: Any, key: str, choices: tuple[str, ...], default: str, what: str) -> str:
    """``hparams[key]`` (``default`` when absent), one of ``choices``; else a ConfigError naming it."""
    value = hparams.get(key, default)
    if value not in choices:
        raise ConfigError(f"hparams[{key!r}]={value!r}", f"unknown {what}",
                          f"use one of {', '.join(choices)}")
    return value


def require(hparams: dict[str, Any], key: str, protocol: str) -> Any:
    """``hparams[key]``, or a ConfigError that names the protocol and where the value comes from."""
    if key not in hparams:
        raise ConfigError(f"hparams[{key!r}] of protocol {protocol!r}", "missing value",
                          f"add {key!r} to the profile's {protocol!r} hyperparameters "
                          f"(see radbench_core/config/hparams.py PAPER[{protocol!r}])")
    return hparams[key]


def per_key(value: Any, key: str, what: str) -> Any:
    """A per-dataset or per-architecture setting (a dict, ``"*"`` = any other) resolved for ``key``.

    A plain value applies to every key. The study sets epochs per dataset (20 on NIH, 10 on
    CheXpert) and batch size per architecture (128 for CNNs, 32 for ViTs).
    """
    if not isinstance(value, dict):
        return value
    if key in value:
        return value[key]
    if "*" in value:
        return value["*"]
    raise ConfigError(f"hparams[{what!r}]", f"no value for {key!r} (has {sorted(value)})",
                      f"add {key!r} or a default '*' entry to hparams[{what!r}]")
