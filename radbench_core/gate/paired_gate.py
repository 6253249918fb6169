"""The noise-aware gate's test: now - baseline, paired on the same test items.

Both runs are scored on the same test set, so adding their two test-set CIs in quadrature (the old
rule) counts the test set's sampling noise twice and ignores that it cancels in a difference: a drop
of 0.018 AUROC with paired p = 0.001 passed as "within the noise (0.032)". Here both runs' saved
predictions are bootstrapped with the same patient draws (:func:`radbench_core.eval.paired.paired_bootstrap`)
and a drop beyond the tolerance passes only when its 95% CI reaches 0 (docs/gating.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from radbench_core.core.errors import BaselineError, ConfigError
from radbench_core.core.results import CellResult
from radbench_core.eval.paired import PairedResult, paired_bootstrap
from radbench_core.eval.predictions import find_predictions, load_predictions
from radbench_core.eval.weighted_metrics import METRIC_KIND
from radbench_core.gate.baseline import REGEN, Baseline, sha256_of

GATE_RESAMPLES = 2000      # p down to 1/2001 and a CI edge stable to about +-0.002 AUROC


def baseline_predictions_path(baseline: Baseline, cell_id: str) -> Path | None:
    """The baseline cell's predictions file, its digest checked; None when the baseline has none."""
    cell = baseline.cells.get(cell_id)
    if cell is None or cell.predictions is None:
        return None
    path = baseline.path.parent / cell.predictions["file"]
    if not path.is_file():
        raise BaselineError(path, f"predictions of baseline cell {cell_id!r} are missing", REGEN)
    if sha256_of(path) != cell.predictions["sha256"]:
        raise BaselineError(path, f"predictions of baseline cell {cell_id!r} do not match the digest "
                                  "recorded in the baseline (edited or replaced)", REGEN)
    return path


def paired_against(baseline: Baseline, run_dirs: Sequence[str | Path], *,
                   resamples: int = GATE_RESAMPLES, seed: int = 0
                   ) -> Callable[[CellResult, str], PairedResult | None]:
    """``paired(record, metric)``: the paired test of now - baseline, None without predictions."""
    def paired(rec: CellResult, metric: str) -> PairedResult | None:
        if metric not in METRIC_KIND:
            return None
        base_path = baseline_predictions_path(baseline, rec.cell_id)
        now_path = find_predictions(rec.extra if isinstance(rec.extra, dict) else {}, run_dirs)
        if base_path is None or now_path is None:
            return None
        now, base = load_predictions(now_path), load_predictions(base_path)
        if now.kind != METRIC_KIND[metric]:
            return None
        try:
            return paired_bootstrap(now, base, metric, resamples=resamples, seed=seed)
        except ConfigError:           # a different test set: nothing to pair, tolerance only
            return None
    return paired
