"""The throughput cells run at tiny scale so they cannot rot, and the perf helpers measure for real.

Only that measurements are produced and sane is checked here (positive rates, finite ratios, the
right counts); whether a target is met is read from the full-scale benchmark output.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import throughput_tools as perf
from radbench_core.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _allocate_mb(mb: int) -> int:
    """Touch ``mb`` MiB (a workload with a known footprint for the fresh-process probe)."""
    block = np.ones(mb * 2**20 // 8, dtype=np.float64)
    return int(block.size)


def _fail() -> None:
    raise ValueError("boom from the child")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("throughput_smoke")
    out = tmp / "bench.json"
    # the outer run may be an xdist worker: its PYTEST_XDIST_* variables must not leak into the child
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env = {**clean, "RADBENCH_PERF_SCALE": "tiny", "OMP_NUM_THREADS": "1",
           "RADBENCH_CACHE_DIR": str(tmp / "cache"), "RADBENCH_RESULTS_DIR": str(tmp / "runs")}
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_throughput.py", "-m", "throughput", "-q", "-s",
           "-p", "no:cacheprovider", "--basetemp", str(tmp / "base"), "--benchmark-json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    data = json.loads(out.read_text())
    return {b["name"]: b["extra_info"] for b in data["benchmarks"]}, done.stdout


def test_every_throughput_cell_reports_sane_numbers(tiny_run):
    info, stdout = tiny_run
    assert set(info) == {"test_extraction_overhead[nih-demo]", "test_extraction_overhead[msd_spleen-demo]",
                         "test_png_decode_rate", "test_nifti_slice_cache", "test_cache_second_protocol",
                         "test_linear_sweep", "test_knn_vs_sklearn", "test_nih_scale_index",
                         "test_feature_cache_size"}
    assert stdout.count("[throughput] ") == len(info)
    for name, values in info.items():
        numbers = {k: v for k, v in values.items() if isinstance(v, (int, float))}
        assert numbers, name
        for key, value in numbers.items():
            assert math.isfinite(value) and value > 0, f"{name}: {key}={value}"
    for name in ("test_extraction_overhead[nih-demo]", "test_extraction_overhead[msd_spleen-demo]"):
        v = info[name]
        assert v["time_ratio_w2"] == pytest.approx(v["bare_features_per_s"] / v["path_features_per_s_w2"])
    scale = perf.SCALES["tiny"]
    assert info["test_nih_scale_index"]["rows"] == scale.nih_rows
    assert info["test_knn_vs_sklearn"]["same_neighbours"] >= 0.95
    assert info["test_nifti_slice_cache"]["volumes"] < info["test_nifti_slice_cache"]["slices"]
    size = info["test_feature_cache_size"]
    assert size["growth_bytes_per_value"] == pytest.approx(2.0, abs=1e-6)     # fp16, headers cancel
    assert 2.0 <= size["bytes_per_value_n1"] < 2.1


def test_throughput_cells_skip_unless_selected(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != perf.PERF_SCALE_ENV}
    env.update(OMP_NUM_THREADS="1", RADBENCH_RESULTS_DIR=str(tmp_path / "runs"))
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_throughput.py", "-q", "-rs",
                           "-p", "no:cacheprovider", "--benchmark-disable", "--basetemp", str(tmp_path / "b")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "speed cells run apart" in done.stdout and " passed" not in done.stdout


def test_perf_scale_names_the_variable_and_the_choices():
    assert perf.perf_scale(env={}).name == "small"
    assert perf.perf_scale(env={"RADBENCH_PERF_SCALE": "full"}).parallel
    with pytest.raises(ConfigError) as err:
        perf.perf_scale(env={"RADBENCH_PERF_SCALE": "huge"})
    assert "RADBENCH_PERF_SCALE: got 'huge'" in str(err.value) and "tiny, small, full" in str(err.value)
    assert "Fix: set RADBENCH_PERF_SCALE=tiny" in str(err.value)


def test_bad_timing_arguments_are_config_errors():
    with pytest.raises(ConfigError, match=r"time_call\(repeat\): got 0, expected >= 1"):
        perf.time_call(lambda: None, 0)
    with pytest.raises(ConfigError, match=r"rate\(seconds\): got 0.0, expected a positive duration"):
        perf.rate(10, 0.0)
    with pytest.raises(ConfigError, match=r"knn_probe\(method\): got 'faiss'.*Fix: use 'radbench'"):
        perf.knn_probe("faiss", 10, 2, 4, 1)
    with pytest.raises(ConfigError, match=r"write_nih_metadata\(n_rows\): got 5, expected >= 40"):
        perf.write_nih_metadata("/nonexistent/never-written", 5)


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 10**6), seconds=st.floats(1e-6, 1e4))
def test_rate_is_count_over_time(count, seconds):
    assert perf.rate(count, seconds) * seconds == pytest.approx(count, rel=1e-9, abs=1e-9)


def test_time_call_keeps_the_best_round():
    durations = iter([0.03, 0.0, 0.02])
    import time
    best, result = perf.time_call(lambda: time.sleep(next(durations)) or "done", 3)
    assert result == "done" and best < 0.015


def test_status_kb_reads_proc_format(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t   2048 kB\n")
    assert perf.status_kb("VmHWM", status) == 123456 and perf.status_kb("VmRSS", status) == 2048
    assert perf.status_kb("VmSwap", status) is None and perf.status_kb("VmHWM", tmp_path / "nope") is None


def test_fresh_process_peak_sees_the_workload_and_not_the_parent():
    ballast = np.ones(300 * 2**20 // 8)                       # the parent's memory must not count
    run = perf.run_in_fresh_process(_allocate_mb, 120)
    assert run.result == 120 * 2**20 // 8 and run.seconds > 0
    assert 110 <= run.extra_mb < 250, run
    assert ballast.sum() > 0 and run.start_rss_mb < perf.current_rss_mb() - 200   # not the parent's


def test_fresh_process_failure_carries_the_child_traceback():
    with pytest.raises(RuntimeError, match=r"_fail failed in its subprocess:[\s\S]*boom from the child"):
        perf.run_in_fresh_process(_fail)


def test_nih_metadata_indexes_in_native_format(tmp_path):
    from radbench_core.data.datasets import get_dataset, open_dataset
    root = perf.write_nih_metadata(tmp_path / "nih", 400)
    header = (root / "Data_Entry_2017.csv").read_text().splitlines()[0]
    assert header.startswith("Image Index,Finding Labels,Follow-up #,Patient ID") and header.endswith(",")
    index = open_dataset(get_dataset("nih"), root)
    assert len(index.items) == 400
    patients = {s: set(index.patients(s)) for s in ("train", "val", "test")}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    assert all(int(p) % 5 == 2 for p in patients["test"]) and len(patients["test"]) == 20
    labels = index.labels("train")
    assert labels.shape == (len(index.splits["train"]), 15) and 0.02 < labels.mean() < 0.12   # 15 study outputs


def test_bare_forward_loop_runs_the_same_batches_extraction_sees(tmp_path):
    from radbench_core.data.datasets import get_dataset, open_dataset
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ModelTransform
    from radbench_core.models.features import load_backbone

    spec = get_dataset("msd_spleen")
    spec.write_phantom(tmp_path / "spleen", size="tiny", seed=0)
    index = open_dataset(spec, tmp_path / "spleen")
    backbone = load_backbone("dinov2_vits14", demo=True, resolution=42, device="cpu")
    dataset = SliceDataset(index, "val", ModelTransform(42, backbone.mean, backbone.std))
    batches = perf.preload_batches(dataset, 4)
    assert sum(len(b) for b in batches) == len(dataset)
    assert all(b.shape[1:] == (3, 42, 42) for b in batches)
    assert perf.bare_forward_seconds(backbone, batches, "cpu") > 0


def test_machine_info_describes_this_machine():
    info = perf.machine_info()
    assert info["nproc"] == os.cpu_count() and info["cpu"] and info["torch_threads"] >= 1
