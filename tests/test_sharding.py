"""Sharding: i/N parsing, a stable partition that covers every cell once, merging shard run dirs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.core.errors import ConfigError
from radbench_core.core.results import CellResult, Metric, RunStore
from radbench_core.run.sharding import merge_runs, parse_shard, select_shard, shard_of

ROOT = Path(__file__).resolve().parents[1]
cell_ids = st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                            min_size=1, max_size=30), max_size=60, unique=True)


def test_parse_shard_accepts_one_based_i_over_n():
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard(" 4 / 4 ") == (4, 4)
    assert parse_shard("1/1") == (1, 1)


@pytest.mark.parametrize("expr, fragment", [
    ("0/4", "need 1 <= i <= N"), ("5/4", "need 1 <= i <= N"), ("1/0", "need 1 <= i <= N"),
    ("2", "not of the form i/N"), ("a/b", "not of the form i/N"), ("-1/3", "not of the form i/N"),
    ("", "not of the form i/N"),
])
def test_parse_shard_rejects_bad_values_naming_the_option(expr, fragment):
    with pytest.raises(ConfigError) as info:
        parse_shard(expr)
    msg = str(info.value)
    assert msg.startswith("--radbench-shard: ") and fragment in msg and "Fix: " in msg


def test_shard_of_is_sha256_mod_n_one_based():
    expected = int.from_bytes(hashlib.sha256(b"dinov2_vitl14-amos-seg_unet@448").digest()[:8], "big") % 7 + 1
    assert shard_of("dinov2_vitl14-amos-seg_unet@448", 7) == expected
    assert shard_of("anything", 1) == 1


def test_shard_of_is_stable_across_processes():
    ids = ["a", "dinov2_vits14-nih-linear", "sam_vitb-msd_heart-seg_linear@224", "ünïcode"]
    code = ("import sys, json; from radbench_core.run.sharding import shard_of; "
            "print(json.dumps([shard_of(c, 5) for c in json.loads(sys.argv[1])]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ids)], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=ROOT).stdout
    assert json.loads(out) == [shard_of(c, 5) for c in ids]


@settings(max_examples=30, deadline=None)
@given(ids=cell_ids, n=st.integers(1, 9))
def test_shards_cover_every_cell_exactly_once_in_order(ids, n):
    shards = [select_shard(ids, i, n) for i in range(1, n + 1)]
    flat = [c for s in shards for c in s]
    assert sorted(flat) == sorted(ids)                       # every cell, none twice
    for s in shards:
        assert s == [c for c in ids if c in set(s)]           # original order kept
    assert shards == [select_shard(list(ids), i, n) for i in range(1, n + 1)]   # deterministic


@pytest.mark.parametrize("n", [2, 4, 8])
def test_shards_are_roughly_balanced_for_many_cells(n):
    ids = [f"model{m}-dataset{d}-proto{p}" for m in range(20) for d in range(10) for p in range(10)]
    sizes = [len(select_shard(ids, i, n)) for i in range(1, n + 1)]
    expected = len(ids) / n
    assert all(abs(s - expected) < 0.15 * expected for s in sizes), sizes


def test_select_shard_rejects_missing_shard():
    with pytest.raises(ConfigError, match="shard 3 of 2 does not exist"):
        select_shard(["a"], 3, 2)
    with pytest.raises(ConfigError, match="not a positive integer"):
        shard_of("a", 0)


def _record(cell_id: str, auroc: float) -> CellResult:
    return CellResult(cell_id=cell_id, model="m", dataset="d", protocol="p", variant="",
                      task="classification", modality="xray", profile="demo", metrics={"auroc": Metric(auroc)},
                      config_hash="h")


def test_merge_runs_combines_shard_dirs_and_manifests(tmp_path):
    a, b = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    a.write_cell(_record("z-cell", 0.7))
    b.write_cell(_record("a-cell", 0.6))
    a.write_manifest({"git_sha": "s1", "profile": "demo", "shard": "1/2"})
    b.write_manifest({"git_sha": "s1", "profile": "demo", "shard": "2/2"})
    records, manifest = merge_runs([a.run_dir, b.run_dir])
    assert [r.cell_id for r in records] == ["a-cell", "z-cell"]
    assert manifest["git_sha"] == "s1" and manifest["profile"] == "demo" and "shard" not in manifest
    assert manifest["merged_from"] == [str(a.run_dir), str(b.run_dir)]
    assert [m["shard"] for m in manifest["runs"]] == ["1/2", "2/2"]
    single_records, single_manifest = merge_runs([a.run_dir])
    assert [r.cell_id for r in single_records] == ["z-cell"] and single_manifest["shard"] == "1/2"


def test_merge_runs_rejects_overlap_and_empty_dirs(tmp_path):
    a, b = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    a.write_cell(_record("same", 0.7))
    b.write_cell(_record("same", 0.6))
    with pytest.raises(ConfigError, match="cell 'same' is also recorded in"):
        merge_runs([a.run_dir, b.run_dir])
    with pytest.raises(ConfigError, match="no cell records under"):
        merge_runs([tmp_path / "empty"])
