"""A cell's identity: its hyperparameters, its resolution, and the hash of what must match for
two records of a cell to be comparable.

Why its own module: resume, sharding, the gate and the planner work these out before anything runs
(and without importing torch); the hash is taken from the configured hyperparameters only, and the
runner adds nothing to them afterwards.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from radbench_core.config.profiles import Profile
from radbench_core.core.cells import Cell
from radbench_core.data.datasets import LoadOptions, get_dataset
from radbench_core.data.source import phantom_fingerprint
from radbench_core.protocols import ProtocolSpec


def resolution_of(cell: Cell, protocol: ProtocolSpec, profile: Profile) -> int:
    if protocol.variant == "resolution" and cell.variant:
        return fit_to_patches(cell.model, int(cell.variant))
    if protocol.task == "segmentation":
        seg_default = profile.hparams_for(protocol.id).get("resolution")
        return int(seg_default or profile.cls_resolution)
    return profile.cls_resolution


def fit_to_patches(model_id: str, resolution: int) -> int:
    """A ViT's input must be whole patches: 1024 px (Table 8) is 1022 px (73 patches) at patch 14.

    The official DINOv2 patch embedding asserts divisibility too, so the study cannot have fed it
    1024 px exactly; the fidelity registry declares this (``table8_patch14_at_1022px``).
    """
    from radbench_core.models.specs import get_model
    spec = get_model(model_id)
    if spec.arch in ("vit", "sam") and resolution % spec.patch_size:
        return resolution // spec.patch_size * spec.patch_size
    return resolution


def cell_hparams(cell: Cell, protocol: ProtocolSpec, profile: Profile) -> dict[str, Any]:
    hparams = profile.hparams_for(protocol.id)
    hparams.update(dict(protocol.fixed))
    if protocol.variant == "shots" and cell.variant:
        hparams["shots"] = cell.variant if cell.variant == "all" else int(cell.variant)
    hparams["demo"] = profile.demo
    return hparams


def config_hash(cell: Cell, hparams: dict[str, Any], resolution: int, profile: Profile,
                options: LoadOptions) -> str:
    """What must match for two records of a cell to be comparable."""
    parts = {"cell": cell.id, "hparams": hparams,
             "resolution": resolution, "demo": profile.demo, "phantom_size": profile.phantom_size,
             "phantom": phantom_fingerprint(get_dataset(cell.dataset)) if profile.uses_phantoms else None,
             "options": repr(options)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
