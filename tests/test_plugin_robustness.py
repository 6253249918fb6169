"""Issue 15 through the plugin: gate inputs checked at start-up, nothing-compared gate, a broken
user profile, SIGTERM handled like Ctrl-C (pytester subprocess runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run

SLOW_PROFILE = '''
import time
from pathlib import Path
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.protocols import PROTOCOLS, ProtocolSpec

PROTOCOLS["slow"] = ProtocolSpec("slow", "classification", "frozen", "slow_profile:slow")


def slow(inputs, hparams, seed):
    Path("{marker}").write_text("started")
    time.sleep(120)
    raise RuntimeError("not reached")


PROFILE = Profile(
    name="slowtiny", description="one real cell, then one that hangs", demo=True,
    grids=(Grid(("dinov2_vits14",), ("nih",), ("knn", "slow")),),
    hparams={{**_hparams(paper=False), "slow": {{}}}},
    cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)
'''


def _baseline(path: Path, profile: str, cells: dict) -> Path:
    path.write_text(json.dumps({"format": "radbench-baseline", "version": 1, "radbench_version": "x",
                                "profile": profile, "cells": cells}))
    return path


def _usage_error(result, *patterns):
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(list(patterns))
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize("case", ["other-profile", "missing", "unknown-metric", "fail-without-baseline"])
def test_gate_inputs_are_usage_errors_before_any_cell(project, case):
    profile = project.write_profile()
    args = [f"--radbench-profile={profile}"]
    if case == "other-profile":
        args.append(f"--radbench-baseline={_baseline(project.path / 'b.json', 'demo', {})}")
        expect = "*this baseline is for profile 'demo', the run is profile 'tiny'*Fix:*"
    elif case == "missing":
        args.append(f"--radbench-baseline={project.path / 'nope.json'}")
        expect = "*--radbench-baseline:*nope.json: no baseline file here. Fix:*"
    elif case == "unknown-metric":
        cells = {"dinov2_vits14-nih-knn": {"config_hash": "x", "metrics": {"auroc": {"value": 0.5}}}}
        args += [f"--radbench-baseline={_baseline(project.path / 'b.json', 'tiny', cells)}",
                 "--radbench-fail=aucroc:0.01"]
        expect = "*--radbench-fail: no cell in *b.json records metric(s) ?'aucroc'?*Fix:*"
    else:
        args.append("--radbench-fail=auroc:0.01")
        expect = "*--radbench-fail: tolerances were given but no --radbench-baseline*Fix:*"
    result = run(project, *args)
    _usage_error(result, f"ERROR: {expect}")
    assert not project.results.exists() or not any(project.results.rglob("*.json"))   # no cell ran


def test_a_gate_that_compares_nothing_fails_unless_allowed(project):
    profile = project.write_profile()
    # a baseline of this profile whose only cell has another config: every verdict is "not comparable"
    cells = {"dinov2_vits14-nih-knn": {"config_hash": "other", "metrics": {
        "auroc": {"value": 0.5, "higher_is_better": True}}}}
    baseline = _baseline(project.path / "b.json", "tiny", cells)
    args = [f"--radbench-profile={profile}", f"--radbench-baseline={baseline}", "--radbench-fail=*:0.05",
            "-k", "knn and dinov2", "--radbench-run-dir=runs/one"]
    failed = run(project, *args)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["*dinov2_vits14-nih-knn*auroc*0.5000*not comparable*",
                                 "*radbench gate FAILED: no cell could be compared*"])
    last = [ln for ln in failed.stdout.str().splitlines() if ln.strip()][-1]
    assert "radbench gate FAILED" in last and "passed" in last          # pytest's final line says so
    allowed = run(project, *args, "--radbench-gate-allow-nothing", "--radbench-resume=runs/one")
    assert allowed.ret == 0


def test_a_user_profile_with_a_syntax_error_is_one_usage_line(project):
    bad = project.path / "broken_profile.py"
    bad.write_text("from radbench_core.config.profiles import Profile\nPROFILE = Profile(name='x',\n")
    result = run(project, f"--radbench-profile={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --radbench-profile: {bad}:*: the profile file has a syntax "
                                 "error*Fix: correct the file*"])
    assert "Traceback" not in result.stderr.str()
    boom = project.path / "boom_profile.py"
    boom.write_text("import nonexistent_module_xyz\n")
    result = run(project, f"--radbench-profile={boom}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --radbench-profile: {boom}:1: the profile file failed to load "
                                 "(ModuleNotFoundError: No module named 'nonexistent_module_xyz')*"])


def test_sigterm_is_handled_like_ctrl_c(project, tmp_path):
    marker = tmp_path / "started"
    project.makepyfile(slow_profile=SLOW_PROFILE.format(marker=marker))
    cmd = [sys.executable, "-m", "pytest", "benchmarks", *project.base_args,
           f"--radbench-profile={project.path / 'slow_profile.py'}", "--radbench-run-dir=runs/slurm"]
    proc = subprocess.Popen(cmd, cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{project.path}"})
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[0]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    run_dir = project.path / "runs" / "slurm"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["interrupted"] is True
    assert (run_dir / "cells" / "dinov2_vits14-nih-knn.json").exists()
    assert (run_dir / "index.html").exists()                          # report of what finished
    assert "continue with --radbench-resume runs/slurm" in out and "Traceback" not in out
