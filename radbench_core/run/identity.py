"""A cell's identity: what must match for two records of a cell to be comparable.

Why its own module: resume, sharding and the gate compare this hash before anything runs, so it is
taken from the configured hyperparameters only, and nothing is added to them afterwards.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from radbench_core.config.profiles import Profile
from radbench_core.core.cells import Cell
from radbench_core.data.datasets import LoadOptions, get_dataset
from radbench_core.data.source import phantom_fingerprint


def config_hash(cell: Cell, hparams: dict[str, Any], resolution: int, profile: Profile,
                options: LoadOptions) -> str:
    """What must match for two records of a cell to be comparable."""
    parts = {"cell": cell.id, "hparams": hparams,
             "resolution": resolution, "demo": profile.demo, "phantom_size": profile.phantom_size,
             "phantom": phantom_fingerprint(get_dataset(cell.dataset)) if profile.uses_phantoms else None,
             "options": repr(options)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
