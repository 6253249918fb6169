"""What every cell of a session shares: the run's settings, the pooled backbone, the opened indexes.

Why apart from the runner: the input builders (``run/inputs.py``) and ``run_cell`` both read these,
and neither should import the other to get them.
"""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from radbench_core.config.profiles import Profile
from radbench_core.core.finite import check_state_finite
from radbench_core.data.datasets import DatasetIndex, LoadOptions, get_dataset, open_dataset
from radbench_core.data.source import dataset_root


@dataclass
class RunContext:
    profile: Profile
    cache_dir: Path
    data_dir: Path | None = None
    weights_dir: Path | None = None
    device: str = "cpu"
    seed: int = 0
    run_dir: Path | None = None
    num_workers: int | None = None          # None: the profile's
    progress: bool = True
    compile: bool = False                   # torch.compile the frozen feature forward
    load_options: dict[str, LoadOptions] = field(default_factory=dict)

    @property
    def workers(self) -> int:
        return self.profile.num_workers if self.num_workers is None else self.num_workers


class BackbonePool:
    """Keeps the backbone of the current model; releases it when a worker moves to another model."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._backbone: torch.nn.Module | None = None
        self._compiled = None
        self.loads = 0

    def get(self, model_id: str, *, demo: bool, resolution: int, weights_dir: Path | None,
            device: str) -> torch.nn.Module:
        from radbench_core.models.features import load_backbone
        key = (model_id, demo, resolution, str(weights_dir), device)
        if key != self._key:
            self.release()
            self._backbone = load_backbone(model_id, demo=demo, resolution=resolution,
                                           weights_dir=weights_dir, device=device)
            check_state_finite(self._backbone.state_dict().items(), self._backbone.weights)
            self._key = key
            self.loads += 1
        assert self._backbone is not None
        return self._backbone

    def pooled_forward(self, compile: bool):
        """The frozen feature forward, ``torch.compile``d once per backbone when asked."""
        assert self._backbone is not None
        if not compile:
            return self._backbone.pooled
        if self._compiled is None:
            self._compiled = torch.compile(self._backbone.pooled)
        return self._compiled

    def release(self) -> None:
        self._backbone, self._key, self._compiled = None, None, None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


_INDEXES: dict[tuple, DatasetIndex] = {}


def load_options_of(dataset_id: str, ctx: RunContext, hparams: dict[str, Any] | None = None
                    ) -> LoadOptions:
    """The user's load options of a dataset, with a protocol's per-split cap (Table 8's subset) and
    the data switches' values (AMOS cases, split rule); an option the user set wins."""
    from radbench_core.config.switches import load_option_overrides
    options = ctx.load_options.get(dataset_id, LoadOptions())
    user = ctx.load_options.get(dataset_id)
    switched = {k: v for k, v in load_option_overrides(dataset_id, hparams or {}).items()
                if user is None or getattr(user, k) == getattr(LoadOptions(), k)}
    if switched:
        options = dataclasses.replace(options, **switched)
    cap = (hparams or {}).get("max_items")
    return dataclasses.replace(options, max_items=int(cap)) if cap is not None else options


def load_index(dataset_id: str, ctx: RunContext, options: LoadOptions | None = None
               ) -> tuple[DatasetIndex, str]:
    spec = get_dataset(dataset_id)
    root, provenance = dataset_root(spec, demo=ctx.profile.uses_phantoms, data_dir=ctx.data_dir,
                                    cache_dir=ctx.cache_dir, phantom_size=ctx.profile.phantom_size)
    options = options if options is not None else load_options_of(dataset_id, ctx)
    key = (dataset_id, str(root), options)
    if key not in _INDEXES:
        if len(_INDEXES) > 8:
            _INDEXES.clear()
        _INDEXES[key] = open_dataset(spec, root, options)
    return _INDEXES[key], provenance
