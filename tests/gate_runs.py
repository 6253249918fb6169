"""Finished runs and baselines for the gate tests: records, their predictions npz, a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radbench_core.core.results import CellResult, RunStore
from radbench_core.eval.metrics import auroc, metric
from radbench_core.eval.predictions import classification_predictions, save_predictions

CELL = "m-nih-linear"


def scored_set(n_patients: int = 200, images: int = 3, seed: int = 0):
    """Labels per patient, patient ids per image, and scores of a decent model (AUROC ~0.8)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, n_patients), images)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], images)
    scores = 1.2 * y + rng.normal(size=y.size)
    return y, groups, scores


def write_run(run_dir: Path, cells: dict[str, float | tuple], *, narrowed: str | None = None,
              config_hash: str = "h") -> Path:
    """A run folder: each cell's record (value, or (labels, groups, scores) with predictions saved).

    A value may also be given per metric: {"cell": {"auroc": 0.8, "dice_study": 0.7}}."""
    store = RunStore(run_dir)
    for cell_id, spec in cells.items():
        extra = {}
        if isinstance(spec, tuple):
            y, groups, scores = spec
            pred = classification_predictions([str(i) for i in range(len(y))], groups, y, scores, "binary")
            extra["predictions"] = save_predictions(run_dir, cell_id, pred)
            values = {"auroc": auroc(y, scores, "binary")}
        else:
            values = spec if isinstance(spec, dict) else {"auroc": spec}
        store.write_cell(CellResult(cell_id=cell_id, model="m", dataset="nih", protocol="linear",
                                    variant="", task="classification", modality="xray",
                                    profile="demo", config_hash=config_hash, extra=extra,
                                    metrics={k: metric(k, v) for k, v in values.items()}))
    store.write_manifest({"profile": "demo", **({"narrowed": narrowed} if narrowed else {})})
    return run_dir
