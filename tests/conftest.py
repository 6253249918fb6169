"""The scratch-project fixture (and its helpers) that drives the radbench plugin through pytester."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

# Imported once, before any test: pytester restores sys.modules after each test that uses it, and a
# C extension first imported inside such a test (numpy.fft, scipy through the report, torch's
# inductor ops through the planner) cannot be loaded a second time in the same process.
import radbench_core.cli.app  # noqa: E402,F401
import radbench_core.plan.estimate  # noqa: E402,F401
import radbench_core.report  # noqa: E402,F401

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _lazy_imports_loaded_before_any_pytester_test(request):
    """torch and timm import parts of themselves lazily (torch._dynamo on a model's first build, the
    flop counter's op libraries). pytester restores sys.modules after each test that uses it, and an
    op library or C extension first imported inside such a test cannot be loaded a second time in
    the process, so a later test would fail depending on test order. Load them once, up front.

    Skipped (it costs 15 s) when no selected test uses pytester, directly or through a fixture: a
    targeted run such as `make mutants`, which runs the selected tests once per mutant."""
    if not any("pytester" in getattr(item, "fixturenames", ()) for item in request.session.items):
        return
    import torch

    from radbench_core.models.features import load_backbone
    from radbench_core.plan.estimate import plan
    from radbench_core.config.profiles import get_profile
    demo = get_profile("demo")
    plan(demo, demo.cells())
    backbone = load_backbone("dinov2_vits14", demo=True, resolution=56)
    with torch.no_grad():
        backbone.pooled(torch.zeros(1, 3, 56, 56))


# The modules that take longest, longest first: by CI's and our timings where measured, otherwise by
# how many plugin sessions they start (each ~10-30 s of CPU; docs/testing.md "Test time").
# `make test` runs `pytest tests -n 2 --dist loadfile --no-loadscope-reorder`: each worker takes one
# whole module at a time in collection order, so these start first and the short modules fill in
# behind them; no worker is left alone with a long module at the end, and a module-scoped fixture
# (one plugin session whose records several tests read) runs once, not once per worker.
# A module not listed keeps its place after them.
SLOWEST_FIRST = (
    "test_plugin_gating.py",            # ~15 pytest subprocesses
    "test_bad_inputs.py",
    "test_examples.py",
    "test_crash_safety.py",
    "test_plugin.py",                   # 7 pytest subprocesses
    "test_user_project_journeys.py",
    "test_mlflow_sink.py",
    "test_report_browser.py",
    "test_switch_effects.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: order within a module kept


TINY_PROFILE = '''
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.protocols import PROTOCOLS, ProtocolSpec

PROTOCOLS["boom"] = ProtocolSpec("boom", "classification", "frozen", "tiny_profile:boom")


def boom(inputs, hparams, seed):
    raise RuntimeError("this protocol always fails")


PROFILE = Profile(
    name="tiny", description="two models, one dataset", demo={demo},
    grids=(Grid(("dinov2_vits14", "resnet152"), ("nih",), ("knn", "linear")),
           Grid(("dinov2_vits14",), ("nih",), {extra})),
    hparams={{**_hparams(paper=False), "boom": {{}}}},
    cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)
'''


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("radbench-cache")


def scratch_project(pytester, cache_dir: Path, *extra_args: str):
    """A project with radbench's plugins and cell modules; ``base_args`` point cache and runs into it."""
    pytester.makeconftest(
        'from fixtures import PLUGINS as pytest_plugins')
    bench = pytester.mkdir("benchmarks")
    for name in ("test_classification.py", "test_segmentation.py"):
        shutil.copy(ROOT / "benchmarks" / name, bench / name)
    pytester.results = pytester.path / "runs"
    pytester.base_args = ["-p", "no:cacheprovider", f"--radbench-cache-dir={cache_dir}",
                          f"--radbench-results-dir={pytester.results}", *extra_args]
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{pytester.path}"
    for env in ("RADBENCH_PROFILE", "RADBENCH_SEED", "RADBENCH_SHARD", "RADBENCH_FAIL", "RADBENCH_DEVICE"):
        os.environ.pop(env, None)
    return pytester


@pytest.fixture
def project(pytester, shared_cache):
    scratch_project(pytester, shared_cache)

    def write_profile(demo=True, extra=()):
        pytester.makepyfile(tiny_profile=TINY_PROFILE.format(demo=demo, extra=tuple(extra)))
        return str(pytester.path / "tiny_profile.py")

    pytester.write_profile = write_profile
    return pytester


def run(project, *args):
    return project.runpytest_subprocess("benchmarks", *project.base_args, *args, timeout=600)


@pytest.fixture(scope="session")
def _finished_tiny_runs(tmp_path_factory) -> dict:
    return {"folder": tmp_path_factory.mktemp("finished-tiny-run")}


@pytest.fixture
def finished_tiny_run(project, _finished_tiny_runs):
    """``finished_tiny_run(name)``: a finished serial run of the tiny profile at ``runs/<name>`` of this
    project and the baseline written from it at ``baseline.json``; returns (profile, run folder,
    baseline). The plugin runs it once per process (an xdist worker); later calls copy that run's
    folder and baseline, so the tests that start from the same finished run pay for one session."""
    def make(name: str) -> tuple[str, Path, Path]:
        profile = project.write_profile()
        run_dir, baseline = project.path / "runs" / name, project.path / "baseline.json"
        saved = _finished_tiny_runs["folder"]
        if not (saved / "baseline.json").exists():
            result = run(project, f"--radbench-profile={profile}", f"--radbench-run-dir={run_dir}",
                         f"--radbench-baseline={baseline}", "--radbench-update-baseline",
                         "--radbench-no-report")                # no test reads this run's report
            result.assert_outcomes(passed=4, skipped=1)        # skipped: no segmentation cells
            shutil.copytree(run_dir, saved / "run")
            shutil.copy(baseline, saved / "baseline.json")
        else:
            shutil.copytree(saved / "run", run_dir)
            shutil.copy(saved / "baseline.json", baseline)
        return profile, run_dir, baseline
    return make


def records(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "cells").glob("*.json"))}


def only_run(project) -> Path:
    runs = [p for p in project.results.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


