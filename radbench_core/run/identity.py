"""A cell's identity: its hyperparameters, its resolution, and the hash of what must match for
two records of a cell to be comparable.

Why its own module: resume, sharding, the gate and the planner work these out before anything runs
(and without importing torch); the hash is taken from the configured hyperparameters only, and the
runner adds nothing to them afterwards.

Two records of a cell are interchangeable only if everything that changes the number matches: the
cell's hyperparameters, resolution and load options (:func:`config_parts`), and also the run's seed,
the data folder (its path and the size+mtime fingerprint of its files), the weights file and the
switches that change arithmetic (``--radbench-compile``). ``--radbench-resume`` keeps a record only
if its identity matches the planned one, and otherwise refuses it with one line naming what differs
(:func:`resume_mismatch`). Parts at their defaults (seed 0, phantom data, no weights file, no switch)
are left out of the hash, so records and baselines made before these parts existed keep their hash.
Each record stores a readable summary of its parts (``extra["identity"]``) to name a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from radbench_core.config.profiles import Profile
from radbench_core.core.cells import Cell, shots_and_size
from radbench_core.data.datasets import LoadOptions, get_dataset
from radbench_core.data.source import phantom_fingerprint
from radbench_core.protocols import ProtocolSpec


def resolution_of(cell: Cell, protocol: ProtocolSpec, profile: Profile) -> int:
    if protocol.variant == "resolution" and cell.variant:
        return fit_to_patches(cell.model, int(cell.variant))
    if protocol.variant == "shots" and shots_and_size(cell.variant)[1]:      # e.g. seg_fewshot@4_448px
        return fit_to_patches(cell.model, int(shots_and_size(cell.variant)[1]))
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
        shots, _ = shots_and_size(cell.variant)
        hparams["shots"] = shots if shots == "all" else int(shots)
    hparams["demo"] = profile.demo
    return hparams


def config_parts(cell: Cell, hparams: dict[str, Any], resolution: int, profile: Profile,
                 options: LoadOptions) -> dict[str, Any]:
    """The cell's own identity parts (the run's are added by :func:`identity_parts`)."""
    return {"cell": cell.id, "hparams": hparams,
            "resolution": resolution, "demo": profile.demo, "phantom_size": profile.phantom_size,
            "phantom": phantom_fingerprint(get_dataset(cell.dataset)) if profile.uses_phantoms else None,
            "options": repr(options)}


def config_hash(cell: Cell, hparams: dict[str, Any], resolution: int, profile: Profile,
                options: LoadOptions) -> str:
    """What must match for two records of a cell to be comparable (the cell's own parts only)."""
    return identity_hash(config_parts(cell, hparams, resolution, profile, options))


_DEFAULTS: dict[str, Any] = {"seed": 0, "data": None, "weights": None, "switches": {}}
_READABLE = ("seed", "data", "weights", "switches")          # stored as they are, not digested
_NAMES = {"seed": "seed", "data": "data folder", "weights": "weights file", "switches": "switches",
          "hparams": "hyperparameters", "options": "load options", "resolution": "resolution",
          "phantom": "phantom generator", "phantom_size": "phantom size", "demo": "demo mode",
          "cell": "cell"}


def identity_parts(base: dict[str, Any], *, seed: int = 0, data: str | None = None,
                   weights: str | None = None, switches: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cell's own parts (``base``) plus the run's, each left out at its default."""
    parts = dict(base)
    for name, value in (("seed", seed), ("data", data), ("weights", weights), ("switches", switches or {})):
        if value != _DEFAULTS[name]:
            parts[name] = value
    return parts


def identity_hash(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def identity_summary(parts: dict[str, Any]) -> dict[str, Any]:
    """What a record stores to name a later mismatch: run parts as they are, the rest as digests."""
    out = {name: parts.get(name, _DEFAULTS[name]) for name in _READABLE}
    out.update({name: _digest(value) for name, value in parts.items() if name not in _READABLE})
    return out


def differing_parts(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """Names of the parts whose summary differs, in a fixed order (run parts first)."""
    names = list(_READABLE) + sorted((set(recorded) | set(planned)) - set(_READABLE))
    return [n for n in names if recorded.get(n, _DEFAULTS.get(n)) != planned.get(n, _DEFAULTS.get(n))]


def _show(value: Any) -> str:
    return "none" if value in (None, {}) else str(value)


def resume_mismatch(record_path: Path | str, recorded: dict[str, Any] | None,
                    planned: dict[str, Any]) -> str:
    """One line: the record was made under another configuration, which part differs, what to do."""
    planned_summary = identity_summary(planned)
    if not recorded:
        what = "a configuration it does not describe (the record predates identity summaries)"
    else:
        parts = []
        for name in differing_parts(recorded, planned_summary):
            if name in _READABLE:
                parts.append(f"{_NAMES[name]} {_show(recorded.get(name, _DEFAULTS[name]))} "
                             f"(recorded) vs {_show(planned_summary.get(name, _DEFAULTS[name]))} (this run)")
            else:
                parts.append(f"{_NAMES.get(name, name)} differ")
        what = "; ".join(parts) or "another configuration"
    return (f"{record_path}: --radbench-resume: this record was made with {what}. Fix: resume with the "
            "options of that run, or start a new run (without --radbench-resume), or delete the "
            "record to recompute the cell.")


def weights_identity(model_id: str, weights_dir: Path | str | None) -> str | None:
    """The weights file a cell will load, as ``path size mtime`` (cheap: no read of a 1 GB file;
    the record's ``weights`` field carries its sha256). None when no file in the weights folder
    would be used (demo weights, the Hugging Face cache, or none: loading reports that)."""
    import os

    from radbench_core.models.specs import get_model
    from radbench_core.models.weights import WEIGHTS_ENV, expected_filenames
    folder = weights_dir if weights_dir is not None else os.environ.get(WEIGHTS_ENV)
    if not folder:
        return None
    for name in expected_filenames(get_model(model_id)):
        path = Path(folder) / name
        if path.is_file():
            st = path.stat()
            return f"{path.resolve()} {st.st_size} {st.st_mtime_ns}"
    return None
