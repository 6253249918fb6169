"""Issue 26 M4: every end-of-session step (manifest, gate, baseline, report) survives SIGTERM and a
full disk with one line and a resume hint; the cell records stay as they are."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures import finish
from fixtures.state import RadbenchState
from radbench_core.core.errors import StorageError
from radbench_core.core.results import CellResult, Metric, RunStore


def _state(tmp_path: Path, **settings) -> tuple[RadbenchState, RunStore]:
    base = dict(baseline=None, update_baseline=False, report=True, seed=0, device="cpu", data_dir=None,
                weights_dir=None, resume=None, fail=None, gate_allow_nothing=False, gate_noise=False)
    st = RadbenchState(settings=SimpleNamespace(**{**base, **settings}), run_dir=tmp_path / "run",
                       started="2026-01-01T00:00:00", is_worker=False)
    st._profile = SimpleNamespace(name="tiny", description="tiny", demo=True)
    store = RunStore(st.run_dir)
    store.write_cell(CellResult(cell_id="a", model="m", dataset="nih", protocol="knn", variant=None,
                                task="classification", modality="xray", profile="tiny",
                                metrics={"auroc": Metric(0.7)}, dataset_provenance="/data/nih"))
    return st, store


def test_sigterm_while_the_report_is_built_is_one_line_and_the_manifest_says_interrupted(tmp_path, monkeypatch):
    st, store = _state(tmp_path)
    record = (store.cells_dir / "a.json").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("signal 15 (SIGTERM)")
    monkeypatch.setattr(finish, "build_report_swapped", killed)
    status = finish.finish_run(None, st, store, interrupted=False)
    assert status == pytest.ExitCode.INTERRUPTED
    assert json.loads((store.run_dir / "manifest.json").read_text())["interrupted"] is True
    assert f"interrupted while writing the report; the cell records in {store.cells_dir} are intact: " \
           f"continue with --radbench-resume {store.run_dir}" in st.notes
    assert (store.cells_dir / "a.json").read_bytes() == record


def test_a_full_disk_when_the_manifest_is_written_is_one_line_and_the_rest_still_runs(tmp_path, monkeypatch):
    st, store = _state(tmp_path)
    reported = []
    monkeypatch.setattr(finish, "build_report_swapped", lambda *a, **k: reported.append(1) or tmp_path / "i.html")

    def full(manifest):
        raise StorageError(store.run_dir / "manifest.json", "the disk is full; nothing was written",
                           "free disk space, then rerun with --radbench-resume")
    monkeypatch.setattr(store, "write_manifest", full)
    assert finish.finish_run(None, st, store, interrupted=False) == 0
    line = next(n for n in st.notes if n.startswith("the manifest could not be written"))
    assert "the disk is full" in line and f"--radbench-resume {store.run_dir}" in line and "\n" not in line
    assert reported == [1]                                  # the report step still ran
    assert ("weights: random-init (smoke) on your data folder - checks the pipeline, not the models"
            in st.notes)                                    # user data is never called "synthetic phantoms"


def test_leftover_report_folders_of_a_killed_build_are_swept(tmp_path):
    from fixtures.session import _sweep_leftovers
    st, _ = _state(tmp_path, cache_dir=tmp_path / "cache")
    old = [st.run_dir / ".report-abc", st.run_dir / ".old-figures-123"]
    fresh = st.run_dir / ".report-now"
    for path in old + [fresh]:
        path.mkdir()
    for path in old:
        os.utime(path, (time.time() - 2 * 86400,) * 2)
    _sweep_leftovers(st)
    assert not any(p.exists() for p in old) and fresh.exists()
    assert f"removed a temporary left by an interrupted run: {old[0]}" in st.notes


def test_storage_error_on_fsync_is_named(tmp_path, monkeypatch):
    """The manifest's real writer: ENOSPC at fsync becomes the note, not a 90-line traceback."""
    st, store = _state(tmp_path)
    monkeypatch.setattr(finish, "build_report_swapped", lambda *a, **k: tmp_path / "i.html")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", no_space)
    finish.finish_run(None, st, store, interrupted=False)
    assert any(n.startswith("the manifest could not be written") and "disk is full" in n for n in st.notes)
