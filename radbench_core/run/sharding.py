"""Split the cells over machines by a stable hash of the cell id, and merge the shards' run dirs.

Shards are numbered **1-based**, ``i/N`` with ``1 <= i <= N`` (as in pytest-split's ``--group``):
``--radbench-shard 1/4`` ... ``4/4``. A cell's shard depends only on its id and N (SHA-256, never
Python's salted ``hash()``), so every machine computes the same partition without talking to the
others, and adding a cell never moves the other cells.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Sequence

from radbench_core.core.errors import ConfigError
from radbench_core.core.results import CellResult, RunStore

OPTION = "--radbench-shard"
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(expr: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)``; validated at option parsing so a typo never runs the wrong cells."""
    match = _SHARD.match(expr or "")
    if not match:
        raise ConfigError(OPTION, f"{expr!r} is not of the form i/N", "write e.g. --radbench-shard 1/4 "
                          "(shards are numbered 1..N)")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ConfigError(OPTION, f"{expr!r}: need 1 <= i <= N and N >= 1 (shards are 1-based)",
                          f"use one of 1/{max(n, 1)} ... {max(n, 1)}/{max(n, 1)}")
    return i, n


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(OPTION, f"number of shards {n!r} is not a positive integer", "use N >= 1")


def shard_of(cell_id: str, n: int) -> int:
    """The 1-based shard (1..n) that runs ``cell_id``; identical in every process and machine."""
    _check_n(n)
    digest = hashlib.sha256(cell_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def select_shard(cell_ids: Sequence[str], i: int, n: int) -> list[str]:
    """The cells of shard ``i`` of ``n``, in their original order."""
    _check_n(n)
    if not 1 <= i <= n:
        raise ConfigError(OPTION, f"shard {i} of {n} does not exist (shards are 1-based)",
                          f"use a shard index between 1 and {n}")
    return [c for c in cell_ids if shard_of(c, n) == i]


def balance_shards(costs: dict[str, float], n: int) -> dict[str, int]:
    """cell id -> 1-based shard, balancing the summed ``costs`` (estimated seconds, ``radbench plan``).

    Longest-processing-time first (Graham 1969): cells in decreasing cost (ties by id, so every
    machine computes the same partition) each go to the currently lightest shard; the heaviest
    shard is at most 4/3 of the optimum. Unlike ``shard_of``, adding a cell may move others.
    """
    _check_n(n)
    load = [0.0] * n
    out: dict[str, int] = {}
    for cell_id in sorted(costs, key=lambda c: (-float(costs[c]), c)):
        k = min(range(n), key=lambda j: (load[j], j))
        load[k] += float(costs[cell_id])
        out[cell_id] = k + 1
    return out


def merge_runs(run_dirs: Sequence[str | Path]) -> tuple[list[CellResult], dict[str, Any]]:
    """Records and one manifest from several run dirs (shards written to separate folders).

    A cell recorded in two of them is ambiguous, so it is an error rather than a silent pick.
    The merged manifest keeps the keys on which all runs agree and lists each run's manifest.
    """
    if not run_dirs:
        raise ConfigError("radbench report", "no run directory given", "pass at least one RUN_DIR")
    seen: dict[str, Path] = {}
    records: list[CellResult] = []
    manifests: list[dict[str, Any]] = []
    for run_dir in map(Path, run_dirs):
        store = RunStore(run_dir)
        cells = store.load_cells()
        if not cells:
            raise ConfigError(run_dir, f"no cell records under {store.cells_dir}",
                              "pass the folder of a run (it holds manifest.json and cells/*.json)")
        for rec in cells:
            if rec.cell_id in seen:
                raise ConfigError(run_dir, f"cell {rec.cell_id!r} is also recorded in {seen[rec.cell_id]}",
                                  "pass run dirs that do not overlap (or remove one record)")
            seen[rec.cell_id] = run_dir
            records.append(rec)
        manifests.append(store.read_manifest())
    records.sort(key=lambda r: r.cell_id)
    if len(manifests) == 1:
        return records, manifests[0]
    common = {k: v for k, v in manifests[0].items() if all(m.get(k, object()) == v for m in manifests[1:])}
    common["merged_from"] = [str(Path(d)) for d in run_dirs]
    common["runs"] = manifests
    return records, common
