"""docs/examples run as a user's project would: registered by a conftest hook, nothing installed into
radbench_core; the user's model, dataset and protocol reach results.csv and the report by their titles."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, only_run, records, scratch_project

EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture
def examples_project(pytester, shared_cache):
    scratch_project(pytester, shared_cache)
    for path in EXAMPLES.glob("*.py"):
        shutil.copy(path, pytester.path / path.name)          # the examples' conftest replaces the scratch one
    return pytester


def test_user_model_dataset_and_protocol_run_and_reach_the_report(examples_project) -> None:
    p = examples_project
    result = p.runpytest_subprocess("benchmarks", *p.base_args, "--radbench-profile=byo_profile.py",
                                    "-p", "no:randomly", timeout=900)
    result.assert_outcomes(passed=12, skipped=1)                 # skipped: no segmentation cells
    run_dir = only_run(p)
    recs = records(run_dir)
    expected = {f"{m}-{d}-{proto}" for m in ("deit_s16", "small_cnn", "dinov2_vits14")
                for d in ("ward_cxr", "nih") for proto in ("knn", "centroid")}
    assert set(recs) == expected
    for rec in recs.values():
        assert 0.0 <= rec["metrics"]["auroc"]["value"] <= 1.0
        assert rec["weights"] == "random-init (demo)"
    assert recs["small_cnn-ward_cxr-centroid"]["hparams"]["temperature"] == 0.1
    # the centroid protocol learns the phantom's class squares even on random-init features
    assert recs["dinov2_vits14-ward_cxr-centroid"]["metrics"]["auroc"]["value"] > 0.6
    with open(run_dir / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["model"] for r in rows} >= {"deit_s16", "small_cnn"}
    assert {r["dataset"] for r in rows} >= {"ward_cxr"} and {r["protocol"] for r in rows} >= {"centroid"}
    tables = "\n".join(path.read_text() for path in run_dir.rglob("*_extended.md"))
    assert "DeiT-S/16 (ImageNet-1k)" in tables and "SmallCNN (ours)" in tables
    # the user's dataset and protocol have no study table: they are in "Other cells" by their titles
    other = (run_dir / "tables" / "other_cells.md").read_text()
    assert "Ward chest X-rays" in other and "SmallCNN (ours)" in other and "centroid" in other


def test_collect_only_lists_the_user_cells_with_their_markers(examples_project) -> None:
    p = examples_project
    result = p.runpytest_subprocess("benchmarks", *p.base_args, "--radbench-profile=byo_profile.py",
                                    "--co", "-q", "-m", "ours and centroid", timeout=300)
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_cell[" in line)
    assert ids == ["small_cnn-nih-centroid", "small_cnn-ward_cxr-centroid"]
