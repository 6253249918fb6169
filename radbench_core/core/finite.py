"""Guards against silently wrong numbers: non-finite tensors and undefined headline metrics.

A benchmark that passes with a meaningless number is worse than one that fails, so every place
where a NaN/inf could enter (weights after loading, extracted features, a training loss, the
headline metric of a cell) has a check here that raises a :class:`NumericalError` naming the tensor
and the file it came from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from radbench_core.core.errors import NumericalError

# the metric a cell is judged by, per task (what the report tables print)
HEADLINE = {"classification": "auroc", "segmentation": "dice"}


def _nonfinite_count(array: Any) -> tuple[int, int]:
    """(non-finite values, total values) of a numpy array or torch tensor."""
    try:
        import torch
        if isinstance(array, torch.Tensor):
            if not (array.is_floating_point() or array.is_complex()):
                return 0, array.numel()
            return int((~torch.isfinite(array.detach())).sum().item()), array.numel()
    except ImportError:                       # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.inexact):
        return 0, arr.size
    return int((~np.isfinite(arr)).sum()), arr.size


def check_finite_array(array: Any, what: str, where: str | Path, fix: str) -> None:
    """Raise if ``array`` holds NaN/inf; ``what`` names the tensor, ``where`` the file or cell."""
    bad, total = _nonfinite_count(array)
    if bad:
        raise NumericalError(where, f"{what}: {bad} of {total} values are not finite (NaN/inf)", fix)


def check_state_finite(named: Iterable[tuple[str, Any]], where: str | Path) -> None:
    """Every parameter/buffer of a loaded model must be finite (call after loading weights).

    Usage: ``check_state_finite(backbone.state_dict().items(), weights_file)``.
    """
    for name, tensor in named:
        check_finite_array(tensor, f"weight tensor {name!r}", where,
                           "the weights file is damaged or was saved from a diverged run; "
                           "download it again")


def check_features_finite(features: Mapping[str, Mapping[str, Any]], where: str | Path) -> None:
    """Extracted features (split -> kind -> array) must be finite before they are cached or used."""
    for split, kinds in features.items():
        for kind, array in kinds.items():
            check_finite_array(array, f"{split} features {kind!r}", where,
                               "the backbone produced NaN/inf (check its weights, or run in fp32 "
                               "without --radbench-compile); nothing was cached")


def check_loss(loss: Any, where: str | Path, step: int | None = None) -> None:
    """A training loss must be finite: a NaN loss trains a head into garbage that still scores."""
    value = float(loss.detach().float().item() if hasattr(loss, "detach") else loss)
    if not math.isfinite(value):
        at = f" at step {step}" if step is not None else ""
        raise NumericalError(where, f"the training loss became {value}{at}",
                             "lower the learning rate, or check the inputs and weights for NaN/inf")


def check_headline(result: Any, task: str, where: str | Path = "cell") -> None:
    """A cell whose headline metric is missing or not finite must fail, never pass.

    ``result`` is a ProtocolResult or CellResult (anything with ``.metrics`` of name -> metric with
    ``.value``) or a plain mapping. The reason (e.g. one class in the test split) comes from the
    metric's ``note``/``reason`` when it has one.
    """
    name = HEADLINE.get(task)
    if name is None:
        raise NumericalError(where, f"unknown task {task!r}", "use classification or segmentation")
    metrics = getattr(result, "metrics", result)
    if name not in metrics:
        raise NumericalError(where, f"the headline metric {name!r} was not computed (metrics: "
                                    f"{sorted(metrics)})",
                             "check the protocol returns it; a cell without its headline metric "
                             "cannot be compared")
    metric = metrics[name]
    value = getattr(metric, "value", metric)
    if value is None or not math.isfinite(float(value)):
        reason = getattr(metric, "note", "") or getattr(metric, "reason", "")
        why = f" ({reason})" if reason else ""
        raise NumericalError(where, f"the headline metric {name!r} is undefined ({value}){why}",
                             "give every class examples in the test split (a split with one class "
                             "has no AUROC), or use a larger or stratified split file")
