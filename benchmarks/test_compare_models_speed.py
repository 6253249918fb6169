"""Speed cell of ``radbench compare-models``: one pair of multilabel cells at NIH size, timed
through the CLI's own path (records + predictions in a run folder, ``radbench compare-models``),
against the previous (B, N)-weight vectorisation (``paired_partner.py``) on the same draw.

Run apart from the metric grid (``make bench`` skips the ``throughput`` marker):

    RADBENCH_PERF_SCALE=full OMP_NUM_THREADS=1 pytest benchmarks/test_compare_models_speed.py \\
        -m throughput -s -p no:cacheprovider

``full`` is NIH's test split as the study uses it: 25,596 films of about 7,000 patients, 15
findings, the command's default B. The ratio and the largest difference between the two paths'
resampled differences go to ``benchmark.extra_info`` and a ``[throughput]`` line, wall and CPU
seconds both (on a shared machine the CPU seconds are the comparable ones).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

import throughput_tools as perf  # benchmarks/throughput_tools.py
from paired_partner import reduceat_differences  # benchmarks/paired_partner.py
from radbench_core.cli.app import main
from radbench_core.core.results import CellResult, Metric, RunStore
from radbench_core.eval.metrics import auroc
from radbench_core.eval.paired import paired_bootstrap
from radbench_core.eval.predictions import classification_predictions, save_predictions

pytestmark = pytest.mark.throughput
# scale -> (images, patients, findings, resamples; None = the command's default)
SIZES = {"tiny": (600, 200, 15, 200), "small": (5_000, 1_400, 15, 500), "full": (25_596, 7_000, 15, None)}


@pytest.fixture(autouse=True)
def _run_apart(request: pytest.FixtureRequest) -> None:
    selected = "throughput" in (request.config.getoption("markexpr", "") or "")
    if not (selected or perf.PERF_SCALE_ENV in os.environ):
        pytest.skip("speed cells run apart: pytest benchmarks -m throughput (or set RADBENCH_PERF_SCALE)")


def nih_sized_pair(images: int, patients: int, findings: int, seed: int = 0):
    """Two cells' multilabel predictions on the same films: NIH-like prevalences (0.2-18 %), several
    films per patient, a shared patient effect, the second model slightly weaker."""
    rng = np.random.default_rng(seed)
    groups = np.sort(rng.integers(0, patients, images)).astype(str)
    prevalence = np.geomspace(0.002, 0.18, findings)
    labels = (rng.random((images, findings)) < prevalence).astype(np.float64)
    patient_effect = rng.normal(size=(patients, findings))[np.unique(groups, return_inverse=True)[1]]
    ids = [f"{i:08d}_000.png" for i in range(images)]
    preds = []
    for signal in (1.0, 0.9):
        logits = signal * labels + 0.5 * patient_effect + rng.normal(size=labels.shape)
        preds.append(classification_predictions(ids, groups, labels, 1 / (1 + np.exp(-logits)), "multilabel"))
    return preds


def write_run(run: Path, preds) -> Path:
    store = RunStore(run)
    for k, pred in enumerate(preds):
        cell_id = f"model{k}-nih-linear"
        rel = save_predictions(run, cell_id, pred)
        store.write_cell(CellResult(cell_id=cell_id, model=f"model{k}", dataset="nih", protocol="linear",
                                    variant="", task="classification", modality="xray", profile="perf",
                                    extra={"predictions": rel},
                                    metrics={"auroc": Metric(auroc(pred.labels, pred.scores[0], "multilabel"))}))
    store.write_manifest({"profile": "perf"})
    return run


def test_compare_models_pair_at_nih_size(benchmark, tmp_path, capsys):
    scale = perf.perf_scale()
    images, patients, findings, resamples = SIZES[scale.name]
    preds = nih_sized_pair(images, patients, findings)
    run = write_run(tmp_path / "run", preds)
    argv = ["compare-models", str(run), "--dataset", "nih", "--protocol", "linear"]
    argv += [] if resamples is None else ["--resamples", str(resamples)]
    cpu0 = time.process_time()
    status = benchmark.pedantic(main, args=(argv,), rounds=1, iterations=1)
    cli_cpu = time.process_time() - cpu0
    out = capsys.readouterr().out
    assert status == 0, out
    b = int(re.search(r"B=(\d+)", out).group(1))
    cli_s = benchmark.stats.stats.min
    cpu0 = time.process_time()
    partner_s, d_old = perf.time_call(lambda: reduceat_differences(preds[0], preds[1], b, seed=0))
    partner_cpu = time.process_time() - cpu0
    new = paired_bootstrap(preds[0], preds[1], "auroc", resamples=b, seed=0)
    old_low, old_high = np.quantile(d_old[np.isfinite(d_old)], [0.025, 0.975])
    same = max(abs(old_low - new.ci_low), abs(old_high - new.ci_high))
    values = dict(scale=scale.name, images=images, patients=new.n_groups, findings=findings, resamples=b,
                  cli_s=round(cli_s, 2), cli_cpu_s=round(cli_cpu, 2), partner_s=round(partner_s, 2),
                  partner_cpu_s=round(partner_cpu, 2), ratio=round(partner_s / cli_s, 1),
                  cpu_ratio=round(partner_cpu / cli_cpu, 1), ci_max_abs_diff=float(same))
    benchmark.extra_info.update(values)
    print("\n[throughput] compare-models pair: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    assert same < 1e-12
