"""radbench: how well do vision foundation models transfer to radiology?

The library half of radbench. Nothing in this package imports pytest; the pytest glue lives in
``fixtures/``. Its packages are layers, each importing only the ones below it (the contract is
``[tool.importlinter]`` in pyproject.toml, checked in CI):

    cli                      the ``radbench`` command
    gate | report | plan | sinks   regression gate, the study's tables and figures, cost
                             estimates, experiment trackers (MLflow)
    run                      one cell end to end: runner, extraction, feature cache, sharding
    config                   profiles, their checks, the study's settings (fidelity) and hparams
    protocols                kNN, linear probe, few-shot, fine-tune/LoRA/BitFit, segmentation
    models | data            model specs, building, weights, features | datasets, phantoms
    eval                     metrics, predictions, paired statistics
    core                     errors, records, registry, atomic files, progress, guards

What a user writes in a conftest or a profile is importable from here:
``from radbench_core import ModelSpec, csv_dataset, mask_dataset, Grid, get_profile``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "ModelSpec": "radbench_core.models.specs",
    "DatasetSpec": "radbench_core.data.datasets.base",
    "csv_dataset": "radbench_core.data.datasets.generic",
    "mask_dataset": "radbench_core.data.datasets.generic",
    "ProtocolSpec": "radbench_core.protocols",
    "ProtocolResult": "radbench_core.protocols.base",
    "Grid": "radbench_core.config.profiles",
    "Profile": "radbench_core.config.profiles",
    "get_profile": "radbench_core.config.profiles",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (importing radbench_core stays free of torch)."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'radbench_core' has no attribute {name!r}")
