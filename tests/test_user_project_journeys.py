"""Issue 22's remaining journeys, driven as a user drives them: a project folder OUTSIDE the repo (its own
conftest.py, protocol module, profile and a data folder of DICOM files with a CSV), pytest run from it.

1. DICOM + CSV (a quarter of the files MONOCHROME1) through real cells: kNN and the project's own
   protocol on two tiny models, each passing with an AUROC recomputed here from the saved test
   predictions with scikit-learn.
2. ``radbench compare-models`` over that run pairs the two models' cells of the user protocol and
   prints the pair with its p-value.
3. A run where every cell fails still writes its report, listing each failed cell with its one-line
   reason; no traceback, pytest's exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

pydicom = pytest.importorskip("pydicom")

from tests.test_dicom import write_variant  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = '''
from fixtures import PLUGINS as pytest_plugins  # noqa: F401


def pytest_radbench_register(registry):
    from radbench_core import ModelSpec, csv_dataset
    from ward_protocol import CENTROID
    registry.add_model(ModelSpec(
        id="deit_s16", label="DeiT-S/16 (ward)", paradigm="supervised", family="deit", arch="vit",
        timm_name="deit_small_patch16_224.fb_in1k", patch_size=16, native_resolution=224,
        tasks=("classification",), demo_kwargs=dict(embed_dim=32, depth=2, num_heads=2)))
    registry.add_dataset(csv_dataset("ward_dcm", "Ward chest X-rays (DICOM)", folder="ward_dcm",
                                     label_column="finding", classes=("normal", "effusion"),
                                     patient_column="patient"))
    registry.add_protocol(CENTROID)
'''
PROTOCOL = '''
import numpy as np
from radbench_core.eval.metrics import auroc_metric
from radbench_core.protocols import ProtocolSpec
from radbench_core.protocols.base import FrozenInputs, ProtocolResult, test_predictions


def run_centroid(inputs: FrozenInputs, hparams: dict, seed: int) -> ProtocolResult:
    def feats(split):
        x = inputs.features[split]["cls"][:, -1]
        return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-8)
    train, labels, test = feats("train"), inputs.labels["train"], feats("test")
    centroids = np.stack([train[labels == k].mean(axis=0) for k in range(inputs.num_classes)])
    logits = test @ centroids.T / hparams["temperature"]
    scores = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    auroc = auroc_metric(inputs.labels["test"], scores, inputs.label_kind, resamples=20, seed=seed)
    return ProtocolResult(metrics={"auroc": auroc}, extra=test_predictions(inputs.labels["test"], scores))


CENTROID = ProtocolSpec("centroid", "classification", "frozen", "ward_protocol:run_centroid",
                        variant="resolution", hparam_keys=("temperature",),
                        description="nearest class centroid")
'''
PROFILE = '''
from radbench_core import Grid, get_profile
PROFILE = get_profile("demo").extend(
    "ward", grids=(Grid(("deit_s16", "dinov2_vits14"), ("ward_dcm",), ("knn", "centroid")),),
    replace_grids=True, hparams={"centroid": {"temperature": 0.1}}, data="user", cls_resolution=112,
    num_workers=0)
'''
N_PATIENTS, PER_PATIENT = 20, 2


def write_ward_dicom(folder: Path, typo: bool = False) -> None:
    """40 chest-X-ray-like DICOM files of 20 patients; 'effusion' has a bright lower band. Every 4th
    file is stored MONOCHROME1 (inverted values), as CR/DX exports often are."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["image,finding,patient"]
    for p in range(N_PATIENTS):
        finding = ("normal", "effusion")[p % 2]
        for j in range(PER_PATIENT):
            i = p * PER_PATIENT + j
            img = rng.integers(200, 1200, (24, 24)).astype(np.float64)
            if finding == "effusion":
                img[14:, :] += 2500
            stored = np.clip(img, 0, 4095).astype(np.uint16)
            photometric = "MONOCHROME1" if i % 4 == 3 else "MONOCHROME2"
            if photometric == "MONOCHROME1":
                stored = (4095 - stored).astype(np.uint16)
            write_variant(folder / f"{i}.dcm", stored, PhotometricInterpretation=photometric, Modality="DX")
            label = "efusion" if typo and p == 0 else finding
            rows.append(f"{i}.dcm,{label},P{p}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def make_project(root: Path, typo: bool = False) -> Path:
    root.mkdir(parents=True)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "ward_protocol.py").write_text(PROTOCOL)
    (root / "ward_profile.py").write_text(PROFILE)
    write_ward_dicom(root / "data" / "ward_dcm", typo=typo)
    return root


def env_for(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBENCH_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(project)]), OMP_NUM_THREADS="1")
    return env


def run_project(project: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_classification.py"),
         "--radbench-profile=ward_profile.py", "--radbench-data-dir=data", "-p", "no:cacheprovider",
         "-p", "no:randomly", f"--radbench-results-dir={tmp_path / 'runs'}",
         f"--radbench-cache-dir={tmp_path / 'cache'}"],
        cwd=project, env=env_for(project), capture_output=True, text=True, timeout=600)


def the_run(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def test_dicom_csv_project_runs_real_cells_and_compare_models_pairs_its_protocol(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    result = run_project(project, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout
    run = the_run(tmp_path)
    cells = {p.stem: json.loads(p.read_text()) for p in (run / "cells").glob("*.json")}
    assert sorted(cells) == sorted(f"{m}-ward_dcm-{p}" for m in ("deit_s16", "dinov2_vits14")
                                   for p in ("knn", "centroid"))
    for cell_id, rec in cells.items():
        preds = np.load(run / rec["extra"]["predictions"])
        labels, scores = preds["labels"], preds["scores"]
        scores = scores[0] if scores.ndim == 3 else scores
        assert len(labels) == 8 and set(labels.tolist()) == {0, 1}         # 4 test patients, stratified
        assert rec["metrics"]["auroc"]["value"] == pytest.approx(roc_auc_score(labels, scores[:, 1]), abs=1e-9)
    # the bright band is learnable from random-init features once MONOCHROME1 reads the right way up
    assert max(rec["metrics"]["auroc"]["value"] for rec in cells.values()) > 0.9
    compared = subprocess.run(
        [sys.executable, "-m", "radbench_core.cli.app", "compare-models", str(run), "--dataset", "ward_dcm",
         "--protocol", "centroid", "--resamples", "200"],
        cwd=project, env=env_for(project), capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stderr
    out = compared.stdout
    assert "deit_s16-ward_dcm-centroid" in out and "dinov2_vits14-ward_dcm-centroid" in out
    pair = [line.split() for line in out.splitlines() if line.startswith("1 vs 2 ")]
    assert len(pair) == 1 and "p_holm" in out
    first, second = sorted(c for c in cells if c.endswith("-centroid"))
    aurocs = {c: cells[c]["metrics"]["auroc"]["value"] for c in (first, second)}
    row = first if out.index(first) < out.index(second) else second          # matrix row 1
    other = second if row == first else first
    assert float(pair[0][3]) == pytest.approx(aurocs[row] - aurocs[other], abs=1e-4)   # row - column difference
    p_holm = float(pair[0][6])                               # "1 vs 2  diff [lo, hi]  p_holm (method) ..."
    assert 0.0 <= p_holm <= 1.0 and "p=" in out

def test_every_cell_failing_still_writes_a_report_listing_each_with_its_reason(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", typo=True)
    result = run_project(project, tmp_path)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 failed" in result.stdout and "Traceback" not in result.stdout + result.stderr
    run = the_run(tmp_path)
    reason = "labels.csv: row of 0.dcm: label 'efusion' is not one of ['normal', 'effusion']"
    failed = json.loads((run / "manifest.json").read_text())["failed_cells"]
    assert len(failed) == 4 and all(reason in line and "\n" not in line for line in failed.values())
    html = (run / "index.html").read_text()
    assert "Failed cells (4)" in html
    for cell_id in failed:
        assert cell_id in html


def test_the_projects_monochrome1_files_reach_the_model_the_right_way_up(tmp_path: Path) -> None:
    """The same folder as the journey, read in-process through the project's csv_dataset: every
    effusion image (MONOCHROME1 or not) shows its band bright, every normal one does not."""
    from radbench_core.data.datasets import open_dataset
    from radbench_core.data.datasets.generic import csv_dataset
    write_ward_dicom(tmp_path / "ward_dcm")
    spec = csv_dataset("ward_dcm", "Ward chest X-rays (DICOM)", folder="ward_dcm", label_column="finding",
                       classes=("normal", "effusion"), patient_column="patient")
    index = open_dataset(spec, tmp_path / "ward_dcm")
    inverted = {f"{i}.dcm" for i in range(N_PATIENTS * PER_PATIENT) if i % 4 == 3}
    assert {pydicom.dcmread(tmp_path / "ward_dcm" / k).PhotometricInterpretation for k in inverted} == {"MONOCHROME1"}
    for item in index.items:
        image = index.load_slices(item)[0]
        band_brighter = image[14:].mean() > image[:14].mean() + 0.3
        assert band_brighter == (item.label == 1), item.key
