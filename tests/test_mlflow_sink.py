"""Issue 25 item 5: each cell of a run as one MLflow run, against a real local MLflow store.

A tiny demo session (two NIH kNN cells) runs once in a subprocess with ``--radbench-mlflow`` on a
sqlite store in tmp_path; the tests read that store back with MLflow's own client and compare every
logged number with the record files. Resumed sessions, repeated pushes and a changed record of the
same identity must not add runs; a tracker that is missing or unreachable is one line, and the
records and the exit status stay as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

mlflow = pytest.importorskip("mlflow", reason="needs radbench[mlflow] (in the test extra)")
from mlflow.tracking import MlflowClient  # noqa: E402

from conftest import TINY_PROFILE  # noqa: E402
from fixtures import finish  # noqa: E402
from fixtures.state import RadbenchState  # noqa: E402
from radbench_core.cli.app import main as radbench  # noqa: E402
from radbench_core.core.results import RunStore, cell_filename  # noqa: E402
from radbench_core.sinks.mlflow_sink import (  # noqa: E402
    KEY_TAG, TrackerError, cell_metrics, push_run, run_key, tracking_uri)

ROOT = Path(__file__).resolve().parent.parent
CELLS = ["dinov2_vits14-nih-knn", "resnet152-nih-knn"]


def _session(project: Path, run_dir: Path, uri: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBENCH_")}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{project}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "-k", "knn",
           "--radbench-profile=tiny_profile.py", f"--radbench-cache-dir={project / 'cache'}",
           f"--radbench-run-dir={run_dir}", "--radbench-no-report", f"--radbench-mlflow={uri}", *args]
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two demo cells run by the plugin, logged at session end, then a resumed session of the same run."""
    project = tmp_path_factory.mktemp("mlflow-project")
    (project / "conftest.py").write_text("from fixtures import PLUGINS as pytest_plugins\n")
    (project / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "test_classification.py", project / "benchmarks")
    (project / "tiny_profile.py").write_text(TINY_PROFILE.format(demo=True, extra=()))
    uri = f"sqlite:///{project / 'store' / 'mlflow.db'}"
    (project / "store").mkdir()
    run_dir = project / "runs" / "run-1"
    started = time.monotonic()
    first = _session(project, run_dir, uri)
    middle = time.monotonic()
    resumed = _session(project, run_dir, uri, f"--radbench-resume={run_dir}", "-rs")
    print(f"sessions: first {middle - started:.1f} s, resumed {time.monotonic() - middle:.1f} s")
    return SimpleNamespace(project=project, uri=uri, run_dir=run_dir, first=first, resumed=resumed,
                           client=MlflowClient(tracking_uri=uri))


def _runs(demo, experiment="radbench-tiny"):
    exp = demo.client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return {r.data.tags["cell_id"]: r for r in demo.client.search_runs([exp.experiment_id])}


def _records(run_dir: Path) -> dict:
    return {r.cell_id: r for r in RunStore(run_dir).load_cells()}


def test_a_session_logs_one_run_per_cell_with_the_records_numbers(demo):
    assert demo.first.returncode == 0, demo.first.stdout[-3000:] + demo.first.stderr[-3000:]
    assert "mlflow: 2 cell run(s) created, 0 updated, 0 unchanged in experiment radbench-tiny" in demo.first.stdout
    assert "Creating initial MLflow database tables" not in demo.first.stdout + demo.first.stderr   # quiet
    records, runs = _records(demo.run_dir), _runs(demo)
    assert sorted(records) == sorted(runs) == CELLS
    for cell, record in records.items():
        run = runs[cell]
        metrics, with_ci = run.data.metrics, set()
        for name, metric in record.metrics.items():                # the record's numbers, exactly
            assert metrics[name] == metric.value
            if metric.ci_low is None:                                   # e.g. auroc_val: no CI
                assert f"{name}_ci_low" not in metrics and f"{name}_ci_high" not in metrics
                continue
            assert metrics[f"{name}_ci_low"] == metric.ci_low < metric.value < metric.ci_high \
                == metrics[f"{name}_ci_high"]
            with_ci.add(name)
        assert "auroc" in with_ci and 0.0 <= metrics["auroc"] <= 1.0
        assert metrics["wall_time_s"] == record.wall_time_s
        tags = run.data.tags
        assert {k: tags[k] for k in ("model", "dataset", "protocol", "profile", "demo", "cell_id",
                                     "config_hash", "radbench_version")} == {
            "model": record.model, "dataset": "nih", "protocol": "knn", "profile": "tiny", "demo": "true",
            "cell_id": cell, "config_hash": record.config_hash, "radbench_version": record.radbench_version}
        assert tags[KEY_TAG] == f"{cell}@{record.config_hash}" and tags["radbench_run"] == "run-1"
        params = run.data.params
        assert params["config_hash"] == record.config_hash and params["seed"] == "0"
        assert "k" in record.hparams and all(              # every hyperparameter, by its own name
            params[key] == (value if isinstance(value, str) else json.dumps(value, sort_keys=True))
            for key, value in record.hparams.items())
        assert run.info.run_name == cell and run.info.status == "FINISHED"
        artifacts = {a.path for d in ("record", "predictions") for a in demo.client.list_artifacts(run.info.run_id, d)}
        stem = cell_filename(cell)[:-5]
        assert artifacts == {f"record/{stem}.json", f"predictions/{stem}.npz"}
        local = Path(demo.client.download_artifacts(run.info.run_id, f"record/{stem}.json", str(demo.project / "dl")))
        assert local.read_bytes() == RunStore(demo.run_dir).cell_path(cell).read_bytes()
    # artifacts of a local sqlite store live beside the database, not in the folder pytest ran in
    assert (demo.project / "store" / "mlartifacts").is_dir() and not (demo.project / "mlruns").exists()


def test_a_resumed_session_adds_no_run(demo):
    assert demo.resumed.returncode == 0, demo.resumed.stdout[-3000:]
    assert "resumed: dinov2_vits14-nih-knn already recorded" in demo.resumed.stdout
    assert "mlflow: 0 cell run(s) created, 0 updated, 2 unchanged" in demo.resumed.stdout
    assert sorted(_runs(demo)) == CELLS


def test_pushing_again_and_a_changed_record_of_the_same_identity_update_in_place(demo, tmp_path):
    copy = tmp_path / "run-2"                           # a repeated session: a new folder, same identities
    shutil.copytree(demo.run_dir, copy)
    before = {c: r.info.run_id for c, r in _runs(demo).items()}
    path = RunStore(copy).cell_path(CELLS[0])
    data = json.loads(path.read_text())
    data["metrics"]["auroc"]["value"] = 0.123456789
    data["wall_time_s"] += 1.0
    path.write_text(json.dumps(data))
    summary = push_run(copy, demo.uri)
    assert (summary.created, summary.updated, sorted(summary.unchanged)) == ([], [CELLS[0]], [CELLS[1]])
    assert push_run(copy, demo.uri).unchanged == CELLS                           # idempotent
    runs = _runs(demo)
    assert {c: r.info.run_id for c, r in runs.items()} == before             # same runs, none added
    updated = runs[CELLS[0]]
    assert updated.data.metrics["auroc"] == 0.123456789
    assert updated.data.tags["radbench_revision"] == "1" and updated.data.tags["radbench_run"] == "run-2"
    history = demo.client.get_metric_history(updated.info.run_id, "auroc")
    old = _records(demo.run_dir)[CELLS[0]].metrics["auroc"].value
    assert sorted((m.step, m.value) for m in history) == [(0, old), (1, 0.123456789)]


def test_another_identity_is_another_run(demo, tmp_path):
    copy = tmp_path / "run-seed"
    shutil.copytree(demo.run_dir, copy)
    path = RunStore(copy).cell_path(CELLS[1])
    data = json.loads(path.read_text())
    data["config_hash"], data["seed"] = "0123456789abcdef", 7
    path.write_text(json.dumps(data))
    summary = push_run(copy, demo.uri, experiment="radbench-seeds")
    assert sorted(summary.created) == CELLS                # a fresh experiment holds both
    exp = demo.client.get_experiment_by_name("radbench-seeds")
    keys = sorted(r.data.tags[KEY_TAG] for r in demo.client.search_runs([exp.experiment_id]))
    assert keys == sorted(run_key(r) for r in _records(copy).values())
    assert push_run(demo.run_dir, demo.uri, experiment="radbench-seeds").created == [CELLS[1]]


def test_the_cli_pushes_a_run_folder(demo, capsys):
    assert radbench(["mlflow", str(demo.run_dir), "--uri", demo.uri, "--experiment", "radbench-cli"]) == 0
    assert "mlflow: 2 cell run(s) created" in capsys.readouterr().out
    assert sorted(_runs(demo, "radbench-cli")) == CELLS
    assert radbench(["mlflow", str(demo.run_dir), "--uri", demo.uri, "--experiment", "radbench-cli"]) == 0
    assert "0 cell run(s) created, 0 updated, 2 unchanged" in capsys.readouterr().out
    assert radbench(["mlflow", str(demo.project), "--uri", demo.uri]) == 2          # no records there
    err = capsys.readouterr().err.strip()
    assert err == (f"radbench: error: {demo.project / 'cells'}: no cell records to log. Fix: pass a run "
                   "folder whose cells/ holds records (reports/runs/<run id>).")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finish_with_tracker(demo, tmp_path, uri):
    run_dir = tmp_path / "run"
    shutil.copytree(demo.run_dir, run_dir)
    before = {p.name: p.read_bytes() for p in (run_dir / "cells").iterdir()}
    settings = SimpleNamespace(baseline=None, update_baseline=False, report=False, seed=0, device="cpu",
                               data_dir=None, weights_dir=None, resume=None, fail=None, mlflow=uri,
                               mlflow_experiment=None)
    st = RadbenchState(settings=settings, run_dir=run_dir, started="2026-01-01T00:00:00", is_worker=False)
    st._profile = SimpleNamespace(name="tiny", description="tiny", demo=True)
    status = finish.finish_run(None, st, RunStore(run_dir), interrupted=False)
    after = {p.name: p.read_bytes() for p in (run_dir / "cells").iterdir()}
    lines = [n for n in st.notes if n.startswith("mlflow")]
    return status, lines, before == after


def test_an_unreachable_tracker_is_one_line_and_the_run_keeps_its_records_and_status(demo, tmp_path):
    started = time.monotonic()
    status, lines, intact = _finish_with_tracker(demo, tmp_path, f"http://127.0.0.1:{_closed_port()}")
    assert status == 0 and intact and len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith(f"mlflow: WARNING: http://127.0.0.1:") and "the MLflow tracker failed" in lines[0]
    assert "Fix: pass a reachable tracking URI" in lines[0] and lines[0].endswith("The exit status is unchanged.")
    assert time.monotonic() - started < 60                 # MLflow's own retries would take minutes


def test_mlflow_not_installed_is_one_line_naming_the_extra(demo, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.setitem(sys.modules, name, None)          # import mlflow... raises ImportError
    status, lines, intact = _finish_with_tracker(demo, tmp_path, demo.uri)
    assert status == 0 and intact and len(lines) == 1
    assert lines[0].startswith("mlflow: WARNING: --radbench-mlflow: MLflow is not installed")
    assert "Fix: pip install 'radbench[mlflow]'" in lines[0]


def test_a_file_store_uri_is_refused_with_the_sqlite_fix(demo, tmp_path):
    with pytest.raises(TrackerError) as info:
        push_run(demo.run_dir, (tmp_path / "mlruns").as_uri())
    text = str(info.value)
    assert "\n" not in text and "MlflowException" in text and "sqlite:////abs/path/mlflow.db" in text


def test_uri_and_metric_names():
    assert tracking_uri("runs/x.db") == "sqlite:///" + str(Path("runs/x.db").resolve())
    assert tracking_uri("http://h:5000") == "http://h:5000"
    from radbench_core.core.results import CellResult, Metric
    record = CellResult("c", "m", "d", "p", "", "classification", "xray", "demo",
                        {"auroc": Metric(0.7, ci_low=0.6, ci_high=0.8), "nan": Metric(None)})
    assert cell_metrics(record) == {"auroc": 0.7, "auroc_ci_low": 0.6, "auroc_ci_high": 0.8, "wall_time_s": 0.0}


def test_an_experiment_without_a_tracker_is_a_usage_error(tmp_path, monkeypatch):
    from fixtures.options import parse_settings
    for name in [k for k in os.environ if k.startswith("RADBENCH_")]:
        monkeypatch.delenv(name)
    options = {"radbench_mlflow_experiment": "sweep"}
    config = SimpleNamespace(getoption=options.get, rootpath=tmp_path)
    with pytest.raises(pytest.UsageError) as info:
        parse_settings(config)
    assert str(info.value) == ("--radbench-mlflow-experiment: an experiment was named but no tracker to log "
                               "to. Fix: add --radbench-mlflow URI (or set RADBENCH_MLFLOW)")
    monkeypatch.setenv("RADBENCH_MLFLOW", "sqlite:///x.db")                # the environment twin
    settings = parse_settings(config)
    assert (settings.mlflow, settings.mlflow_experiment) == ("sqlite:///x.db", "sweep")


def test_a_new_store_is_created_quietly_beside_its_database(demo, tmp_path, capfd):
    summary = push_run(demo.run_dir, str(tmp_path / "new" / "store.db"))     # a bare .db path: sqlite
    assert sorted(summary.created) == CELLS and summary.uri == f"sqlite:///{tmp_path / 'new' / 'store.db'}"
    out, err = capfd.readouterr()
    assert "Creating initial MLflow database tables" not in out + err and "INFO" not in err
    assert (tmp_path / "new" / "mlartifacts" / "radbench-tiny").is_dir()
