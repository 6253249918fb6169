"""Shard submission: the pytest command of a shard, local runs through submitit, a faked SLURM array."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from radbench_core.run import submit
from radbench_core.core.errors import ConfigError

WRITE_SHARD = ("import os, sys; i, n, run = sys.argv[1:4]; "
               "open(os.path.join(run, f'shard{i}.txt'), 'w').write(f'{i}/{n} cwd={os.getcwd()}'); "
               "sys.exit(0 if i == '1' else 3)")


def test_command_for_shard_is_the_pytest_invocation():
    cmd = submit.command_for_shard(2, 4, Path("/runs/r1"), ["-k", "dinov2", "-x"], python="/py/bin/python")
    assert cmd == ["/py/bin/python", "-m", "pytest", "benchmarks", "--radbench-shard", "2/4",
                   "--radbench-run-dir", "/runs/r1", "-k", "dinov2", "-x"]
    assert submit.command_for_shard(1, 1, Path("r"), [])[0] == sys.executable


def test_local_executor_runs_two_shards_into_one_run_dir(tmp_path, monkeypatch):
    def fake_command(i, n, run_dir, pytest_args, *, python=sys.executable):
        return [python, "-c", WRITE_SHARD, str(i), str(n), str(run_dir), *pytest_args]

    monkeypatch.setattr(submit, "command_for_shard", fake_command)
    workdir = tmp_path / "work"
    workdir.mkdir()
    jobs = submit.submit_shards(2, ["extra"], run_dir=Path("runs/r"), executor="local",
                                slurm={"timeout_min": 2}, cwd=workdir)
    assert len(jobs) == 2
    codes = submit.wait_all(jobs)
    assert codes == [0, 3]                                     # each shard's own exit code
    run_dir = workdir / "runs" / "r"                           # relative run dir resolved against cwd
    assert (run_dir / "shard1.txt").read_text() == f"1/2 cwd={workdir.resolve()}"
    assert (run_dir / "shard2.txt").read_text() == f"2/2 cwd={workdir.resolve()}"
    assert (run_dir / "submitit").is_dir()                     # submitit logs live with the run


def test_submit_rejects_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^--shards: 0 is not a positive number of shards"):
        submit.submit_shards(0, [], run_dir=tmp_path, executor="local")
    with pytest.raises(ConfigError, match="executor 'cloud' is unknown.*use one of auto, slurm, local"):
        submit.submit_shards(1, [], run_dir=tmp_path, executor="cloud")
    with pytest.raises(ConfigError,
                       match=r"bad submitit parameters \['bogus'\] \(Parameter 'bogus' need.*"
                             r"slurm_partition=gpu"):
        submit.submit_shards(1, [], run_dir=tmp_path, executor="local", slurm={"bogus": 1})
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(ConfigError, match="SLURM was requested but srun/sbatch are not on PATH.*--local"):
        submit.submit_shards(1, [], run_dir=tmp_path, executor="slurm")


def _fake_slurm_bin(bin_dir: Path, log: Path) -> None:
    """srun/sbatch stand-ins: sbatch records the submission script and answers like SLURM does."""
    bin_dir.mkdir()
    scripts = {
        "srun": "#!/bin/sh\nexit 0\n",
        "sbatch": f"#!/bin/sh\nfor a; do f=$a; done\ncat \"$f\" >> {log}\necho 'Submitted batch job 4242'\n",
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_auto_executor_submits_one_slurm_job_array_when_slurm_is_there(tmp_path, monkeypatch):
    log = tmp_path / "sbatch.log"
    _fake_slurm_bin(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    jobs = submit.submit_shards(3, ["-k", "nih"], run_dir=tmp_path / "run", executor="auto",
                                slurm={"slurm_partition": "gpu", "gpus_per_node": 1}, cwd=tmp_path)
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    sbatch = log.read_text()
    assert sbatch.count("#SBATCH --array=0-2%3") == 1                # one array of 3 tasks
    assert "#SBATCH --partition=gpu" in sbatch and "#SBATCH --gpus-per-node=1" in sbatch
    assert f"#SBATCH --time={submit.DEFAULT_TIMEOUT_MIN}" in sbatch
    for job in jobs:                                                 # keep submitit from polling sacct
        job._cancel_at_deletion = False
