"""Launch the shards of a study as a SLURM job array through submitit, or locally without SLURM.

Each job runs ``python -m pytest benchmarks --radbench-shard i/N --radbench-run-dir RUN ...`` as a
subprocess and returns pytest's exit code; every shard writes into the same run directory (cells are
per-file atomic writes, so shards never collide) and ``radbench report RUN`` builds the report.
The job function is :func:`subprocess.call` itself, so a job needs nothing but Python on its node.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from radbench_core.core.errors import ConfigError

EXECUTORS = ("auto", "slurm", "local")
DEFAULT_TIMEOUT_MIN = 24 * 60      # submitit's local default (2 min) would kill any real study
JOB_CRASHED = -1                   # wait_all's code for a job that submitit reports as failed


def command_for_shard(i: int, n: int, run_dir: Path, pytest_args: Sequence[str], *,
                      python: str = sys.executable) -> list[str]:
    """The argv of shard ``i`` of ``n`` (1-based); pure, so it is tested without launching."""
    return [python, "-m", "pytest", "benchmarks", "--radbench-shard", f"{i}/{n}",
            "--radbench-run-dir", str(run_dir), *pytest_args]


def make_executor(executor: str, folder: Path, slurm: dict[str, Any] | None = None) -> Any:
    """A configured submitit executor; ``slurm`` holds AutoExecutor parameters
    (``slurm_partition``, ``gpus_per_node``, ``timeout_min``, ...)."""
    import submitit

    if executor not in EXECUTORS:
        raise ConfigError("radbench submit", f"executor {executor!r} is unknown",
                          f"use one of {', '.join(EXECUTORS)}")
    has_slurm = shutil.which("srun") is not None and shutil.which("sbatch") is not None
    if executor == "slurm" and not has_slurm:
        raise ConfigError("radbench submit", "SLURM was requested but srun/sbatch are not on PATH",
                          "run on a SLURM login node, or use --local to run the shards on this machine")
    cluster = "slurm" if executor == "slurm" or (executor == "auto" and has_slurm) else "local"
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = {"timeout_min": DEFAULT_TIMEOUT_MIN, "name": "radbench", **(slurm or {})}
    try:
        ex.update_parameters(**params)
    except (ValueError, NameError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("radbench submit", f"bad submitit parameters {sorted(slurm or {})} ({reason})",
                          "pass AutoExecutor parameters such as slurm_partition=gpu, gpus_per_node=1, "
                          "timeout_min=600") from exc
    return ex


def submit_shards(n_shards: int, pytest_args: Sequence[str], *, run_dir: Path, executor: str = "auto",
                  slurm: dict[str, Any] | None = None, python: str = sys.executable,
                  cwd: Path | None = None) -> list[Any]:
    """Submit N shards (one SLURM array, or N local processes) writing into one ``run_dir``.

    Returns submitit jobs; local jobs are cancelled when their job objects are garbage-collected,
    so keep them and call :func:`wait_all`.
    """
    if not isinstance(n_shards, int) or isinstance(n_shards, bool) or n_shards < 1:
        raise ConfigError("--shards", f"{n_shards!r} is not a positive number of shards",
                          "use e.g. --shards 4")
    cwd = Path(cwd or Path.cwd()).resolve()
    run_dir = Path(run_dir)
    run_dir = run_dir if run_dir.is_absolute() else cwd / run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    ex = make_executor(executor, run_dir / "submitit" / "%j", slurm)
    commands = [command_for_shard(i, n_shards, run_dir, list(pytest_args), python=python)
                for i in range(1, n_shards + 1)]
    job_fn = functools.partial(subprocess.call, cwd=str(cwd))
    return ex.map_array(job_fn, commands)


def wait_all(jobs: Sequence[Any]) -> list[int]:
    """Block until every job ends; pytest's exit code per shard (JOB_CRASHED if the job died)."""
    codes: list[int] = []
    for job in jobs:
        try:
            codes.append(int(job.result()))
        except Exception:  # noqa: BLE001 - submitit raises its own types for killed/timed-out jobs
            codes.append(JOB_CRASHED)
    return codes
