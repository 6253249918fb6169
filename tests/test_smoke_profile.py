"""The smoke profile runs tiny random-init models on a real data folder: here one holding all nine
datasets written in their native layouts (the phantom writers), plus a user CSV dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import only_run, records, scratch_project
from radbench_core.data.datasets import DATASET_IDS, get_dataset
from radbench_core.config.profiles import SMOKE_MAX_ITEMS, get_profile

USER_CONFTEST = '''
from fixtures import PLUGINS as pytest_plugins

def pytest_radbench_register(registry):
    from radbench_core.data.datasets.generic import csv_dataset
    registry.add_dataset(csv_dataset("ward", "Ward X-rays", folder="ward", label_column="dx",
                                     classes=("a", "b"), patient_column="pid"))
'''


def test_smoke_profile_covers_every_registered_dataset_with_capped_splits() -> None:
    profile = get_profile("smoke")
    assert profile.demo and not profile.uses_phantoms
    assert {c.dataset for c in profile.cells()} == set(DATASET_IDS)
    assert all(values["max_items"] == SMOKE_MAX_ITEMS[("segmentation" if p.startswith(("seg", "scratch"))
                                                      else "classification")]
               for p, values in profile.hparams.items())


def test_smoke_runs_every_dataset_of_a_real_data_folder(pytester, shared_cache, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for dataset_id in DATASET_IDS:
        spec = get_dataset(dataset_id)
        (data / spec.folder).mkdir(parents=True)
        spec.write_phantom(data / spec.folder, size="tiny", seed=3)
    project = scratch_project(pytester, shared_cache)
    pytester.makeconftest(USER_CONFTEST)
    from radbench_core.data.datasets.generic import csv_dataset
    ward = csv_dataset("ward", "Ward X-rays", folder="ward", label_column="dx", classes=("a", "b"),
                       patient_column="pid")
    (data / "ward").mkdir()
    ward.write_phantom(data / "ward", size="tiny", seed=0)
    result = project.runpytest_subprocess("benchmarks", *project.base_args, "--radbench-profile=smoke",
                                          f"--radbench-data-dir={data}", timeout=900)
    result.assert_outcomes(passed=15)                   # 5 classification datasets x 2 + 5 segmentation
    recs = records(only_run(project))
    assert {r["dataset"] for r in recs.values()} == set(DATASET_IDS) | {"ward"}
    for rec in recs.values():
        assert rec["profile"] == "smoke" and rec["weights"] == "random-init (demo)"
        assert rec["extra"]["threads"] >= 1
        assert rec["dataset_provenance"].endswith(str(data / get_dataset(rec["dataset"]).folder)
                                                  if rec["dataset"] != "ward" else str(data / "ward"))
        n = rec["extra"]["n_items"]
        assert 0 < max(n.values()) <= SMOKE_MAX_ITEMS[rec["task"]]


def test_smoke_skips_datasets_that_are_not_in_the_folder(pytester, shared_cache, tmp_path: Path) -> None:
    project = scratch_project(pytester, shared_cache)
    (tmp_path / "brain_tumor").mkdir()        # the folder holds one dataset, so it is the data folder
    result = project.runpytest_subprocess("benchmarks", *project.base_args, "--radbench-profile=smoke",
                                          f"--radbench-data-dir={tmp_path}", "-rs", "-k", "mc or nih", timeout=300)
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*Montgomery County CXR was not found*"])
