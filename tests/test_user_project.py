"""A user's project OUTSIDE the repo (its own folder with conftest.py, a profile and a data folder),
driven as a user drives it: pytest with the profile named three ways, and the ``radbench`` command's
subcommands run from the project folder, each seeing the project's registrations (and an installed
package's entry points)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = '''
from fixtures import PLUGINS as pytest_plugins  # noqa: F401

def pytest_radbench_register(registry):
    from radbench_core import ModelSpec, csv_dataset
    registry.add_model(ModelSpec(
        id="deit_s16", label="DeiT-S/16 (ward)", paradigm="supervised", family="deit", arch="vit",
        timm_name="deit_small_patch16_224.fb_in1k", patch_size=16, native_resolution=224,
        tasks=("classification",), demo_kwargs=dict(embed_dim=32, depth=2, num_heads=2)))
    registry.add_dataset(csv_dataset("ward_cxr", "Ward chest X-rays", folder="ward_cxr",
                                     label_column="finding", classes=("normal", "effusion"),
                                     patient_column="patient"))
'''
PROFILE = '''
from radbench_core import Grid, get_profile
PROFILE = get_profile("demo").extend("mine", grids=(Grid(("deit_s16",), ("ward_cxr",), ("knn",)),),
                                     replace_grids=True)
'''
ENTRY_POINT_PACKAGE = '''
from radbench_core import csv_dataset
EP_CXR = csv_dataset("ep_cxr", "Entry-point chest X-rays", folder="ep_cxr", label_column="finding",
                     classes=("normal", "effusion"))
'''


@pytest.fixture()
def user_project(tmp_path: Path) -> Path:
    """tmp/proj: conftest.py, my_profile.py, data/ward_cxr (40 PNGs, 10 patients); tmp/site: an
    installed package declaring a ``radbench.datasets`` entry point."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "conftest.py").write_text(CONFTEST)
    (proj / "my_profile.py").write_text(PROFILE)
    folder = proj / "data" / "ward_cxr"
    folder.mkdir(parents=True)
    rows = ["image,finding,patient"]
    for i in range(40):
        Image.fromarray(np.full((16, 16), i * 5, np.uint8)).save(folder / f"{i}.png")
        rows.append(f"{i}.png,{('normal', 'effusion')[i % 2]},P{i // 4}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    site = tmp_path / "site"
    (site / "ward_plugin").mkdir(parents=True)
    (site / "ward_plugin" / "__init__.py").write_text(ENTRY_POINT_PACKAGE)
    info = site / "ward_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ward-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[radbench.datasets]\nep_cxr = ward_plugin:EP_CXR\n")
    return proj


def env_for(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBENCH_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(project.parent / "site")]), OMP_NUM_THREADS="1",
               **extra)
    return env


def radbench(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radbench_core.cli.app", *args], cwd=project,
                          env=env_for(project), capture_output=True, text=True, timeout=300)


def test_radbench_list_prepare_and_plan_see_the_project_and_entry_points(user_project: Path) -> None:
    listed = radbench(user_project, "list")
    assert listed.returncode == 0, listed.stderr
    assert "deit_s16" in listed.stdout and "DeiT-S/16 (ward)" in listed.stdout
    assert "ward_cxr" in listed.stdout and "ep_cxr" in listed.stdout     # conftest and entry point
    prepared = radbench(user_project, "prepare", "ward_cxr", "--data-dir", "data")
    assert prepared.returncode == 0, prepared.stderr
    assert "Ward chest X-rays at data/ward_cxr: 40 items" in prepared.stdout
    written = radbench(user_project, "prepare", "ward_cxr", "--data-dir", "data", "--write-splits", "ward.json")
    assert written.returncode == 0, written.stderr
    split = json.loads((user_project / "ward.json").read_text())
    assert sorted(split) == ["test", "train", "val"] and sorted(sum(split.values(), [])) == sorted(
        f"{i}.png" for i in range(40))
    for name, keys in split.items():                      # stratified: both classes in every split
        assert {int(k.split(".")[0]) % 2 for k in keys} == {0, 1}, name
    planned = radbench(user_project, "plan", "--profile", "my_profile.py")      # sizes of user data: unknown
    assert planned.returncode == 2 and "dataset 'ward_cxr': no size known" in planned.stderr
    assert len(planned.stderr.strip().splitlines()) == 1


def test_radbench_outside_a_project_names_the_unknown_id_in_one_line(tmp_path: Path, user_project: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = radbench(elsewhere, "prepare", "ward_cxr", "--data-dir", str(user_project / "data"))
    assert result.returncode == 2 and "unknown dataset id" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("form", ["space", "equals", "env"])
def test_the_profile_finds_its_conftest_however_it_is_named(tmp_path: Path, user_project: Path, form: str) -> None:
    """From a folder that is not the project, ``pytest <repo>/benchmarks`` collects the project's cells."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    profile = str(user_project / "my_profile.py")
    named = {"space": ["--radbench-profile", profile], "equals": [f"--radbench-profile={profile}"],
             "env": []}[form]
    env = env_for(user_project, **({"RADBENCH_PROFILE": profile} if form == "env" else {}))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_classification.py"), *named,
         "--co", "-q", "-p", "no:cacheprovider", f"--radbench-results-dir={tmp_path / 'runs'}",
         f"--radbench-cache-dir={tmp_path / 'cache'}"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "deit_s16" in result.stdout and "ward_cxr" in result.stdout


def test_radbench_report_prints_the_projects_titles(tmp_path: Path, user_project: Path) -> None:
    from radbench_core.core.results import CellResult, Metric, RunStore
    store = RunStore(tmp_path / "run")
    store.write_manifest({"profile": "mine"})
    store.write_cell(CellResult(
        cell_id="deit_s16-ward_cxr-knn-224", model="deit_s16", dataset="ward_cxr", protocol="knn",
        variant="224", task="classification", modality="xray", profile="mine",
        metrics={"auroc": Metric(0.71, ci_low=0.6, ci_high=0.8)}, config_hash="cafe01"))
    result = radbench(user_project, "report", str(store.run_dir))
    assert result.returncode == 0, result.stderr
    html = "".join(p.read_text() for p in store.run_dir.rglob("*.html"))
    assert "DeiT-S/16 (ward)" in html and "Ward chest X-rays" in html


def run_pytest(project: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_classification.py"), *args,
         "-p", "no:cacheprovider", f"--radbench-results-dir={tmp_path / 'runs'}",
         f"--radbench-cache-dir={tmp_path / 'cache'}"],
        cwd=project, env=env_for(project), capture_output=True, text=True, timeout=300)


def test_a_typoed_data_dir_is_a_usage_error_and_smoke_covers_registered_datasets(
        tmp_path: Path, user_project: Path) -> None:
    typo = run_pytest(user_project, tmp_path, "--radbench-profile=smoke", "--radbench-data-dir=dta", "--co", "-q")
    assert typo.returncode == 4, typo.stdout[-1500:]
    assert "--radbench-data-dir: dta does not exist (profile 'smoke' looks for the folders" in typo.stderr
    listed = run_pytest(user_project, tmp_path, "--radbench-profile=smoke", "--radbench-data-dir=data", "--co", "-q")
    assert listed.returncode == 0, listed.stdout[-1500:] + listed.stderr[-1500:]
    assert "dinov2_vits14-ward_cxr-knn" in listed.stdout
