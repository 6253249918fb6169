"""Run one cell: plan it, build its protocol's inputs, run the protocol, build the CellResult.

No pytest here: the plugin calls ``run_cell`` and records what it returns, and so could any script.
``run_cell`` is a straight sequence: plan (protocol, hyperparameters, resolution, config hash; the
hyperparameters are frozen from here on), load the index, build the inputs through the one table
of ``run/inputs.py``, run the protocol, turn its result into a record.
"""

from __future__ import annotations

import os
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch

from radbench_core.config.fidelity import GPU_AUTOCAST, deviations_in_effect
from radbench_core.config.switches import switches_in_effect
from radbench_core.core import progress
from radbench_core.core.cells import Cell
from radbench_core.core.finite import check_headline
from radbench_core.core.results import DEMO_WEIGHTS, CellResult
from radbench_core.data.datasets import DatasetIndex, get_dataset
from radbench_core.protocols import ProtocolSpec, get_protocol
from radbench_core.protocols.base import ProtocolResult, cis_from_predictions
from radbench_core.run.context import (  # noqa: F401  (re-exported: the plugin and scripts import them here)
    _INDEXES, BackbonePool, RunContext, load_index, load_options_of)
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.run.identity import (  # noqa: F401  (re-exported)
    cell_hparams, config_hash, config_parts, fit_to_patches, identity_hash, identity_parts,
    identity_summary, resolution_of, weights_identity)
from radbench_core.run.inputs import BUILDERS, BuiltInputs, CellSetup, sources_of


@dataclass(frozen=True)
class CellPlan:
    """What a cell will run with, fixed before anything runs; ``config_hash`` covers all of it."""
    protocol: ProtocolSpec
    hparams: Mapping[str, Any]           # read only: nothing is added after hashing
    resolution: int
    config_hash: str
    identity: Mapping[str, Any]          # the parts the hash covers (resume names the one that differs)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def plan_cell(cell: Cell, ctx: RunContext) -> CellPlan:
    """Protocol, hyperparameters, resolution and config hash of a cell, before anything runs.

    The hash covers exactly the hyperparameters the protocol receives: what the runner works out
    later (the linear probe's rate, the examples file) travels in the inputs, so resume and the
    gate see the same hash as a rerun.
    """
    protocol = get_protocol(cell.protocol)
    hparams = cell_hparams(cell, protocol, ctx.profile)
    resolution = resolution_of(cell, protocol, ctx.profile)
    options = load_options_of(cell.dataset, ctx, hparams)
    data = None
    if not ctx.profile.uses_phantoms:           # a phantom is named by its generator's fingerprint
        index, _ = load_index(cell.dataset, ctx, options)
        data = f"{Path(index.root).resolve()} {sources_of(index)}"
    weights = None if ctx.profile.demo or protocol.inputs == "scratch" else \
        weights_identity(cell.model, ctx.weights_dir)
    parts = identity_parts(config_parts(cell, hparams, resolution, ctx.profile, options), seed=ctx.seed,
                           data=data, weights=weights, switches={"compile": True} if ctx.compile else {})
    return CellPlan(protocol, MappingProxyType(hparams), resolution, identity_hash(parts),
                    MappingProxyType(parts))


def planned_identity(cell: Cell, ctx: RunContext) -> dict[str, Any]:
    """The identity parts ``run_cell`` will record (resume names the part that differs)."""
    return dict(plan_cell(cell, ctx).identity)


def planned_config_hash(cell: Cell, ctx: RunContext) -> str:
    """The config hash ``run_cell`` will record, computed without running anything (for resume)."""
    return plan_cell(cell, ctx).config_hash


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_cell(cell: Cell, ctx: RunContext, pool: BackbonePool, cache: FeatureCache) -> CellResult:
    from radbench_core.models.specs import get_model
    start = time.perf_counter()
    progress.start_cell(cell.id, "data")          # the live line (fixtures/progress.py)
    get_model(cell.model)                         # an unknown id fails here, naming the valid ones
    get_dataset(cell.dataset)                     # and so does an unknown dataset
    plan = plan_cell(cell, ctx)
    if ctx.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(ctx.device))
    options = load_options_of(cell.dataset, ctx, dict(plan.hparams))
    index, provenance = load_index(cell.dataset, ctx, options)
    reported = tuple(getattr(index, "deviations", ())) + (GPU_AUTOCAST,) * ctx.device.startswith("cuda")
    deviations = deviations_in_effect(cell.model, cell.dataset, cell.protocol, dict(plan.hparams),
                                      reported, resolution=plan.resolution)
    seed_everything(ctx.seed)
    built = BUILDERS[plan.protocol.inputs](
        CellSetup(cell, plan.protocol, plan.hparams, plan.resolution, index, ctx, pool, cache))
    progress.update("train")
    with cis_from_predictions():       # _record puts patient-bootstrap CIs on the returned predictions
        result: ProtocolResult = plan.protocol.resolve()(built.inputs, dict(plan.hparams), ctx.seed)
    check_headline(result, plan.protocol.task, cell.id)
    return _record(cell, ctx, plan, index, provenance, deviations, built, result, start)


def _record(cell: Cell, ctx: RunContext, plan: CellPlan, index: DatasetIndex, provenance: str,
            deviations: Any, built: BuiltInputs, result: ProtocolResult, start: float) -> CellResult:
    """The protocol's result as a record: big arrays to files, paths relative to the run."""
    dataset, profile = get_dataset(cell.dataset), ctx.profile
    extra = dict(result.extra)
    extra["identity"] = identity_summary(dict(plan.identity))
    examples = extra.get("examples")
    if examples and ctx.run_dir is not None:
        extra["examples"] = os.path.relpath(examples, ctx.run_dir)
    extra.setdefault("n_items", {s: len(index.splits[s]) for s in ("train", "val", "test")})
    if "auroc_per_class" in extra:                         # the per-class list, named (report tables)
        extra.setdefault("class_names", list(index.spec.class_names))
    payload = extra.pop("test_predictions", None)          # big arrays: a file, never the record
    metrics = result.metrics
    if payload is not None:                                # CIs over patients (issue 21)
        from radbench_core.eval.cell_intervals import with_patient_intervals
        from radbench_core.eval.predictions import predictions_from_protocol, save_predictions
        pred = predictions_from_protocol(payload, index.split_items("test"), index.spec.label_kind,
                                         plan.protocol.task)
        metrics = with_patient_intervals(metrics, pred, resamples=_resamples(plan.hparams), seed=ctx.seed)
        if ctx.run_dir is not None:
            extra["predictions"] = save_predictions(ctx.run_dir, cell.id, pred)
    params_total = result.params_total
    if params_total is None and result.params_trainable is not None and plan.protocol.inputs == "frozen":
        # a probe on a frozen backbone: the whole model is backbone + head (Table 9's percentage)
        params_total = sum(p.numel() for p in built.backbone.parameters()) + result.params_trainable
    if built.backbone is not None:
        weights = built.backbone.weights
    else:
        weights = DEMO_WEIGHTS if profile.demo else "none (trained from scratch)"
    return CellResult(
        cell_id=cell.id, model=cell.model, dataset=cell.dataset, protocol=cell.protocol,
        variant=cell.variant, task=dataset.task, modality=dataset.modality, profile=profile.name,
        metrics=metrics, hparams={**result.chosen, "resolution": plan.resolution},
        params_trainable=result.params_trainable, params_total=params_total,
        wall_time_s=round(time.perf_counter() - start, 4), peak_memory_mb=peak_memory_mb(ctx.device),
        seed=ctx.seed, deterministic=bool(torch.are_deterministic_algorithms_enabled()),
        device=ctx.device, weights=weights, dataset_provenance=provenance,
        config_hash=plan.config_hash, extra=extra, deviations=deviations,
        switches=switches_in_effect(cell.model, cell.dataset, cell.protocol, dict(plan.hparams)))


def _resamples(hparams: Mapping[str, Any]) -> int:
    """Bootstrap resamples of the cell's CIs: the protocol's own setting (0 = no CI)."""
    return int(hparams.get("bootstrap", hparams.get("bootstrap_resamples", 1000)))
