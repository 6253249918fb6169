"""The pytest plugin end to end, in a scratch project run by pytester in a subprocess."""

from __future__ import annotations

import json

import pytest

from conftest import only_run, records, run


def test_k_and_m_select_exactly_the_intended_cells(project):
    result = project.runpytest_subprocess("benchmarks", "--collect-only", "-q", "-k", "dinov2 and nih",
                                          *project.base_args)
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_cell[" in line)
    from radbench_core.config.profiles import get_profile
    from radbench_core.models.specs import get_model
    # -k matches the id and the markers: RAD-DINO's family marker is dinov2 (a DINOv2 trained on CXR)
    assert ids and all(("dinov2" in i or get_model(i.split("-")[0]).family == "dinov2") and "-nih-" in i
                       for i in ids)
    expected = sorted(c.id for c in get_profile("demo").cells()
                      if ("dinov2" in c.model or get_model(c.model).family == "dinov2") and c.dataset == "nih")
    assert ids == expected
    result = project.runpytest_subprocess("benchmarks", "--collect-only", "-q", "-m", "ct",
                                          *project.base_args)
    ct = [line for line in result.outlines if "::test_cell[" in line]
    assert ct and all(("-sarscov2-" in l or "-amos-" in l or "-msd_spleen-" in l) for l in ct)


def test_unknown_profile_is_a_usage_error(project):
    result = run(project, "--radbench-profile=nonsense")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--radbench-profile: unknown profile 'nonsense'*"])


def test_a_failing_cell_keeps_the_others_and_the_results(project):
    profile = project.write_profile(extra=("boom",))
    result = run(project, f"--radbench-profile={profile}")
    result.assert_outcomes(passed=4, failed=1, skipped=1)    # skipped: no segmentation cells
    run_dir = only_run(project)
    recs = records(run_dir)
    assert sorted(recs) == ["dinov2_vits14-nih-knn", "dinov2_vits14-nih-linear", "resnet152-nih-knn",
                            "resnet152-nih-linear"]
    for rec in recs.values():
        assert rec["weights"] == "random-init (demo)"
        assert 0.0 <= rec["metrics"]["auroc"]["value"] <= 1.0
    assert (run_dir / "results.csv").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["profile"] == "tiny"
    assert (project.path / "runs").is_dir()


def test_a_data_folder_without_the_profiles_datasets_is_a_usage_error(project, tmp_path):
    """Issue 22: it was a green all-skipped run; a dataset missing beside others still skips with the
    download hint (tests/test_smoke_profile.py)."""
    profile = project.write_profile(demo=False)
    result = run(project, f"--radbench-profile={profile}", f"--radbench-data-dir={tmp_path}", "-rs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--radbench-data-dir:*holds none of its datasets*nih_chestxray14/*Fix:*"])


def test_xdist_and_serial_give_the_same_records(project, finished_tiny_run):
    profile, _, _ = finished_tiny_run("serial")          # the serial run: 4 passed, 1 skipped
    parallel = run(project, f"--radbench-profile={profile}", "--radbench-run-dir=runs/xdist",
                   "-n", "2", "--dist", "loadgroup", "--radbench-no-report")
    parallel.assert_outcomes(passed=4, skipped=1)
    a, b = records(project.path / "runs/serial"), records(project.path / "runs/xdist")
    assert a.keys() == b.keys()
    for cell in a:
        assert a[cell]["metrics"] == b[cell]["metrics"], cell
        assert a[cell]["config_hash"] == b[cell]["config_hash"]
