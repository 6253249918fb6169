"""The `radbench` command: compare (exit codes, table, .obtained), list, prepare, report, submit."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from radbench_core.run import submit
from radbench_core.cli.app import main
from radbench_core.data.datasets import DATASET_IDS
from radbench_core.gate.compare import load_baseline, update_baseline
from radbench_core.core.results import CellResult, Metric, RunStore

ROOT = Path(__file__).resolve().parents[1]


def record(cell_id: str, auroc: float, *, task: str = "classification") -> CellResult:
    return CellResult(cell_id=cell_id, model="dinov2_vits14", dataset="nih", protocol="linear", variant="224",
                      task=task, modality="xray", profile="demo",
                      metrics={"auroc": Metric(auroc, ci_low=auroc - 0.02, ci_high=auroc + 0.02)},
                      config_hash="cafe01")


@pytest.fixture()
def run_and_baseline(tmp_path):
    """A run with two cells, and a baseline where both had auroc 0.80."""
    baseline = update_baseline(tmp_path / "demo.json", [record("cell-a", 0.80), record("cell-b", 0.80)],
                               profile="demo")
    store = RunStore(tmp_path / "run")
    store.write_manifest({"profile": "demo"})
    return store, baseline


def test_compare_regression_exits_1_with_table_and_obtained(run_and_baseline, capsys):
    store, baseline = run_and_baseline
    store.write_cell(record("cell-a", 0.70))        # dropped 0.10 > default 0.01
    store.write_cell(record("cell-b", 0.805))
    assert main(["compare", str(store.run_dir), str(baseline)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["cell", "metric", "baseline", "now", "Δ", "tol", "verdict"]
    assert lines[2].split() == ["cell-a", "auroc", "0.8000", "0.7000", "-0.1000", "0.01", "regressed"]
    assert lines[3].split() == ["cell-b", "auroc", "0.8000", "0.8050", "+0.0050", "0.01", "ok"]
    assert "radbench gate: 1 regressed, 1 ok -> FAILED" in out
    obtained = baseline.with_name("demo.json.obtained")
    assert f"obtained values written to {obtained}" in out
    assert load_baseline(obtained).cells["cell-a"].metrics["auroc"].value == 0.70


def test_compare_improvement_and_custom_tolerance_exit_0(run_and_baseline, capsys):
    store, baseline = run_and_baseline
    store.write_cell(record("cell-a", 0.99))        # +0.19: beyond the band, "improved"
    store.write_cell(record("cell-b", 0.70))
    assert main(["compare", str(store.run_dir), str(baseline), "--fail", "auroc:20%"]) == 0   # 0.16 allowed
    out = capsys.readouterr().out
    assert "radbench gate: 1 improved, 1 ok -> passed" in out


def test_compare_update_writes_baseline_then_passes(tmp_path, capsys):
    store = RunStore(tmp_path / "run")
    store.write_cell(record("cell-a", 0.61))
    target = tmp_path / "baselines" / "demo.json"
    assert main(["compare", str(store.run_dir), str(target), "--update"]) == 0
    assert "baseline updated" in capsys.readouterr().out
    assert load_baseline(target).cells["cell-a"].metrics["auroc"].value == 0.61
    assert main(["compare", str(store.run_dir), str(target)]) == 0
    assert not target.with_name("demo.json.obtained").exists()        # nothing to diff when all ok


def test_bad_fail_expression_exits_2_with_one_clean_line(run_and_baseline, capsys):
    store, baseline = run_and_baseline
    store.write_cell(record("cell-a", 0.8))
    assert main(["compare", str(store.run_dir), str(baseline), "--fail", "auroc=0.01"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("radbench: error: --fail: missing ':' between metric and tolerance in 'auroc=0.01'")
    assert 'Fix: write e.g. --fail "auroc:0.01' in err
    assert "\n" not in err and "Traceback" not in err and captured.out == ""


def test_missing_baseline_and_empty_run_exit_2(run_and_baseline, tmp_path, capsys):
    store, _ = run_and_baseline
    store.write_cell(record("cell-a", 0.8))
    assert main(["compare", str(store.run_dir), str(tmp_path / "nope.json")]) == 2
    assert "nope.json: no baseline file here" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "empty-run"), str(tmp_path / "demo.json")]) == 2
    assert "no cell records under" in capsys.readouterr().err


def test_list_datasets_shows_every_registered_dataset(capsys):
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"datasets ({len(DATASET_IDS)}):")
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == list(DATASET_IDS)


@pytest.mark.parametrize("kind, module, attr", [
    ("models", "radbench_core.models.specs", "MODELS"),
    ("protocols", "radbench_core.protocols", "PROTOCOLS"),
])
def test_list_registries_show_every_entry(kind, module, attr, capsys):
    registry = getattr(importlib.import_module(module), attr)
    assert main(["list", kind]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == list(registry)


def test_list_profiles_shows_names_and_cell_counts(capsys):
    from radbench_core.config import profiles
    assert main(["list", "profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == list(profiles.PROFILE_NAMES)
    demo = profiles.get_profile("demo")
    assert lines[0].endswith(f"{len(demo.cells())} cells")


def test_usage_errors_exit_2(capsys):
    assert main(["list", "weights"]) == 2
    assert "invalid choice: 'weights'" in capsys.readouterr().err
    assert main(["compare", "run", "base.json", "--", "-k", "x"]) == 2
    assert "only for `radbench submit`" in capsys.readouterr().err
    assert main(["prepare", "imagenet"]) == 2
    assert "dataset 'imagenet': unknown dataset id" in capsys.readouterr().err


def test_prepare_reports_a_missing_folder_and_indexes_a_demo_phantom(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RADBENCH_DATA_DIR", raising=False)
    assert main(["prepare", "mc"]) == 2
    assert "--data-dir: no data directory given" in capsys.readouterr().err
    assert main(["prepare", "mc", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "data" / "montgomery") in err and "was not found" in err
    monkeypatch.setenv("RADBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["prepare", "mc", "--demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "synthetic" in out[0] and str(tmp_path / "cache") in out[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in out[2:5]}
    total = int(out[1].split(": ")[1].split()[0])
    assert set(counts) == {"train", "val", "test"}
    assert sum(counts.values()) == total and min(counts.values()) > 0


def test_report_merges_run_dirs_into_index_html(tmp_path, capsys):
    a, b = RunStore(tmp_path / "shard1"), RunStore(tmp_path / "shard2")
    a.write_cell(record("cell-a", 0.8))
    b.write_cell(record("cell-b", 0.7))
    assert main(["report", str(a.run_dir), str(b.run_dir)]) == 2
    assert "--out: several run dirs were given" in capsys.readouterr().err
    assert main(["report", str(a.run_dir), str(b.run_dir), "--out", str(tmp_path / "merged")]) == 0
    index = Path(capsys.readouterr().out.strip())
    assert index.is_file() and index.parent == tmp_path / "merged"
    assert "cell-a" in (tmp_path / "merged" / "results.csv").read_text()
    assert "cell-b" in (tmp_path / "merged" / "results.csv").read_text()
    assert main(["report", str(a.run_dir), "--ci"]) == 0                  # CIs into Markdown and LaTeX
    for ext in ("md", "tex"):
        assert "0.800" in " ".join(p.read_text() for p in (a.run_dir / "tables").glob(f"*.{ext}"))
        assert "[0.780, 0.820]" in " ".join(p.read_text() for p in (a.run_dir / "tables").glob(f"*.{ext}"))


def test_report_published_writes_the_studys_records_and_tables(tmp_path, capsys):
    from radbench_core.report.published import PUBLISHED_WEIGHTS, published_index
    out = tmp_path / "published"
    assert main(["report", "--published", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"143 published cell(s) written to {out / 'cells'}"
    assert Path(lines[-1]) == out / "index.html" and Path(lines[-1]).is_file()
    records = RunStore(out).load_cells()
    assert {r.cell_id: r.metrics.get("auroc", r.metrics.get("dice_jaccard_study")).value
            for r in records} == published_index()
    assert {r.weights for r in records} == {PUBLISHED_WEIGHTS}
    t9 = (out / "tables" / "table9_finetune_lora_bitfit.md").read_text().splitlines()
    assert t9[4].startswith("| Fine-tuning |") and t9[4].endswith("| **0.769** | **0.848** |")
    assert main(["report", "--published", str(out)]) == 2
    assert "--published: run dirs were given too" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "no run dir given" in capsys.readouterr().err


def test_submit_local_runs_shards_and_passes_pytest_args(tmp_path, monkeypatch, capsys):
    def fake_command(i, n, run_dir, pytest_args, *, python=sys.executable):
        code = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))"
        return [python, "-c", code, str(Path(run_dir) / f"shard{i}.txt"), f"{i}/{n}", *pytest_args]

    monkeypatch.setattr(submit, "command_for_shard", fake_command)
    run_dir = tmp_path / "run"
    argv = ["submit", "--shards", "2", "--local", "--run-dir", str(run_dir), "--slurm", "timeout_min=2",
            "--", "-k", "dinov2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "shard 1/2: exit 0" in out and "shard 2/2: exit 0" in out
    assert (run_dir / "shard1.txt").read_text() == "1/2 -k dinov2"
    assert (run_dir / "shard2.txt").read_text() == "2/2 -k dinov2"
    assert main(["submit", "--shards", "2", "--local", "--slurm", "timeout_min"]) == 2
    assert "--slurm: 'timeout_min' is not KEY=VALUE" in capsys.readouterr().err


def test_console_entry_point_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "radbench_core.cli.app", "list", "datasets"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "nih" in done.stdout
    assert importlib.util.find_spec("radbench_core.cli.app") is not None
