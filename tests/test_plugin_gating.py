"""Regression gate, resume and shards through the plugin (pytester subprocess runs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import records, run
from radbench_core.plan.estimate import plan
from radbench_core.config.profiles import get_profile

LINEAR = "dinov2_vits14-nih-linear"


@pytest.fixture
def finished_run(finished_tiny_run):
    """One finished run of the tiny profile and a baseline written from it (one plugin session per
    worker, copied for each test: tests/conftest.py finished_tiny_run)."""
    return finished_tiny_run("first")


def regate(project, profile, run_dir, baseline, *extra):
    """Resume the finished run (every cell is skipped as resumed) and gate its records again."""
    return run(project, f"--radbench-profile={profile}", f"--radbench-resume={run_dir}",
               f"--radbench-baseline={baseline}", *extra)


def shift(baseline: Path, cell: str, metric: str, delta: float) -> None:
    data = json.loads(baseline.read_text())
    data["cells"][cell]["metrics"][metric]["value"] += delta
    baseline.write_text(json.dumps(data))


def test_gate_fails_a_drop_passes_an_improvement_and_flags_a_changed_config(project, finished_run):
    profile, run_dir, baseline = finished_run
    data = json.loads(baseline.read_text())
    assert set(data["cells"]) == set(records(run_dir)) and data["profile"] == "tiny"

    ok = regate(project, profile, run_dir, baseline)
    assert ok.ret == 0
    ok.assert_outcomes(skipped=5)                     # 4 resumed + no segmentation cells
    # issue 25: the manifest and the report count the 4 recorded cells as resumed, not skipped
    outcomes = json.loads((run_dir / "manifest.json").read_text())["outcomes"]
    assert outcomes == {"passed": 0, "resumed": 4, "failed": 0, "skipped": 1}
    assert "Last session: 0 passed, 4 resumed, 0 failed, 1 skipped." in (run_dir / "index.html").read_text()

    shift(baseline, LINEAR, "auroc", +0.05)          # the run now looks 0.05 worse than the baseline
    # the report was checked above; the gate runs below need none (--radbench-no-report)
    dropped = regate(project, profile, run_dir, baseline, "--radbench-no-report")
    assert dropped.ret == pytest.ExitCode.TESTS_FAILED
    dropped.stdout.fnmatch_lines([f"*{LINEAR}*auroc*regressed*"])
    assert baseline.with_name(baseline.name + ".obtained").exists()

    within = regate(project, profile, run_dir, baseline, "--radbench-fail=auroc:0.1", "--radbench-no-report")
    assert within.ret == 0

    shift(baseline, LINEAR, "auroc", -0.10)          # now the run is 0.05 better: never a failure
    assert regate(project, profile, run_dir, baseline, "--radbench-no-report").ret == 0

    data = json.loads(baseline.read_text())
    data["cells"][LINEAR]["config_hash"] = "something-else"
    baseline.write_text(json.dumps(data))
    changed = regate(project, profile, run_dir, baseline, "--radbench-no-report")
    assert changed.ret == 0
    changed.stdout.fnmatch_lines([f"*{LINEAR}*not comparable*"])


def test_resume_with_another_seed_refuses_the_records_naming_the_seed(project, finished_run):
    """Issue 26 M3: the records say seed 0; resuming with seed 7 must not keep them as 'recorded'."""
    profile, run_dir, _ = finished_run
    before = {p.name: p.read_bytes() for p in (run_dir / "cells").glob("*.json")}
    result = run(project, f"--radbench-profile={profile}", f"--radbench-resume={run_dir}",
                 "--radbench-seed=7", "--radbench-no-report")
    result.assert_outcomes(failed=4, skipped=1)
    result.stdout.fnmatch_lines([f"*{run_dir}/cells/{LINEAR}.json: --radbench-resume: this record was "
                                 "made with seed 0 (recorded) vs 7 (this run). Fix: resume with the "
                                 "options of that run*"])
    assert "already recorded" not in result.stdout.str()
    assert {p.name: p.read_bytes() for p in (run_dir / "cells").glob("*.json")} == before


def test_resume_runs_exactly_the_missing_cells(project, finished_run):
    profile, run_dir, _ = finished_run
    before = records(run_dir)
    (run_dir / "cells" / f"{LINEAR}.json").unlink()
    result = run(project, f"--radbench-profile={profile}", f"--radbench-resume={run_dir}", "-rs",
                 "--radbench-no-report")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(["*resumed: dinov2_vits14-nih-knn already recorded*"])
    after = records(run_dir)
    assert after.keys() == before.keys()
    assert after[LINEAR]["metrics"] == before[LINEAR]["metrics"]
    assert json.loads((run_dir / "manifest.json").read_text())["resumed"] is True


def test_shards_cover_every_cell_once_into_one_run(project):
    profile = project.write_profile()
    outcomes = []
    for shard in ("1/2", "2/2"):
        result = run(project, f"--radbench-profile={profile}", "--radbench-run-dir=runs/sharded",
                     f"--radbench-shard={shard}", "--radbench-no-report")
        outcomes.append(result.parseoutcomes().get("passed", 0))
    assert sum(outcomes) == 4
    assert sorted(records(project.path / "runs/sharded")) == [
        "dinov2_vits14-nih-knn", "dinov2_vits14-nih-linear", "resnet152-nih-knn", "resnet152-nih-linear"]


def test_submitit_local_shards_merge_to_the_single_process_result(project, finished_tiny_run, monkeypatch):
    profile, _, _ = finished_tiny_run("single")          # the single-process run: 4 passed, 1 skipped
    from radbench_core.cli.app import main
    monkeypatch.chdir(project.path)
    status = main(["submit", "--shards", "2", "--local", "--run-dir", str(project.path / "runs/array"),
                   "--", f"--radbench-profile={profile}", *project.base_args])
    assert status == 0
    a, b = records(project.path / "runs/single"), records(project.path / "runs/array")
    assert a.keys() == b.keys()
    assert all(a[c]["metrics"] == b[c]["metrics"] for c in a)
    assert main(["report", str(project.path / "runs/array"), "--out", str(project.path / "merged")]) == 0
    assert (project.path / "merged" / "index.html").exists()


def test_shards_by_estimated_time_partition_the_demo_grid_within_15_percent(project):
    """--radbench-shard-by time: every demo cell in exactly one shard, shards' estimated time close."""
    picked = []
    for shard in ("1/2", "2/2"):
        result = run(project, "--radbench-profile=demo", "--co", "-q", f"--radbench-shard={shard}",
                     "--radbench-shard-by=time")
        picked.append({m.group(1) for line in result.outlines
                       if (m := re.search(r"test_cell\[(.+?)\]", line))})
    demo = get_profile("demo")
    assert not picked[0] & picked[1]
    assert picked[0] | picked[1] == {c.id for c in demo.cells()}
    hours = {e.cell_id: e.gpu_hours for e in plan(demo, demo.cells()).estimates}
    loads = [sum(hours[c] for c in ids) for ids in picked]
    assert max(loads) <= 1.15 * min(loads), loads
    bad = run(project, "--radbench-profile=demo", "--co", "--radbench-shard-by=size")
    assert "--radbench-shard-by: expected hash or time" in bad.stderr.str()
