"""One gate, one set of rules: ``pytest --radbench-baseline`` (fixtures/finish._gate) and
``radbench compare`` get the same table of bad gate inputs and must give the same verdicts
(issue 21). Verdicts: pass (exit 0), fail (pytest TESTS_FAILED / compare 1), error (a one-line
usage error: pytest USAGE_ERROR / compare 2)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures.finish import _gate
from fixtures.state import RadbenchState
from radbench_core.cli.app import main
from radbench_core.core.results import RunStore
from radbench_core.gate.baseline import update_baseline
from tests.gate_runs import write_run

A, B = "m-nih-linear", "m-nih-knn"

# name, baseline cells, run cells, --fail, flags, expected verdict
TABLE = [
    ("all ok", {A: 0.80}, {A: 0.80}, None, {}, "pass"),
    ("a real drop", {A: 0.80}, {A: 0.70}, None, {}, "fail"),
    ("typo in a metric name", {A: 0.80}, {A: 0.80}, "aurco:0.01", {}, "error"),
    ("absolute >= 1 on the study Dice switches it off", {A: {"dice_study": 0.7}},
     {A: {"dice_study": 0.7}}, "dice_study:5", {}, "error"),
    ("absolute >= 1 on Dice switches it off", {A: {"dice": 0.7}}, {A: {"dice": 0.7}}, "dice:5", {}, "error"),
    ("100% relative switches it off", {A: 0.80}, {A: 0.80}, "auroc:100%", {}, "error"),
    ("bad grammar", {A: 0.80}, {A: 0.80}, "auroc=0.01", {}, "error"),
    ("nothing compared", {A: 0.80}, {B: 0.80}, None, {}, "fail"),
    ("nothing compared, allowed", {A: 0.80}, {B: 0.80}, None, {"allow_nothing": True, "allow_missing": True},
     "pass"),
    # 2% of the BASELINE 0.5 is 0.01: a drop of 0.0099 passes (2% of the new 0.4901 would fail it)
    ("relative tolerance of the baseline, inside", {A: 0.5}, {A: 0.4901}, "auroc:2%", {}, "pass"),
    ("relative tolerance of the baseline, beyond", {A: 0.5}, {A: 0.4899}, "auroc:2%", {}, "fail"),
    # the study's Dice defaults to 0.01 absolute like Dice (was 1 % relative = 0.007 here)
    ("study metric default tolerance", {A: {"dice_study": 0.70}}, {A: {"dice_study": 0.692}}, None, {},
     "pass"),
    ("baseline cell did not run", {A: 0.80, B: 0.80}, {A: 0.80}, None, {}, "fail"),
    ("baseline cell did not run, run narrowed (-k)", {A: 0.80, B: 0.80}, {A: 0.80}, None,
     {"narrowed": "-k linear"}, "pass"),
    ("baseline cell did not run, allowed", {A: 0.80, B: 0.80}, {A: 0.80}, None, {"allow_missing": True},
     "pass"),
    ("damaged baseline", "not json", {A: 0.80}, None, {}, "error"),
]


def _setup(tmp_path: Path, base_cells, run_cells, narrowed):
    base_path = tmp_path / "base.json"
    if isinstance(base_cells, str):
        base_path.write_text(base_cells)
    else:
        base_run = write_run(tmp_path / "base_run", base_cells)
        update_baseline(base_path, RunStore(base_run).load_cells(), profile="demo")
    run = write_run(tmp_path / "run", run_cells, narrowed=narrowed)
    return base_path, run


def pytest_path(base_path, run, fail, flags) -> str:
    settings = SimpleNamespace(baseline=base_path, fail=fail, gate_noise=False,
                               gate_allow_missing=flags.get("allow_missing", False),
                               gate_allow_nothing=flags.get("allow_nothing", False))
    st = RadbenchState(settings=settings, run_dir=run, started="", is_worker=False)
    status = _gate(st, RunStore(run).load_cells(), narrowed=flags.get("narrowed"), run_dir=run)
    return {0: "pass", int(pytest.ExitCode.TESTS_FAILED): "fail",
            int(pytest.ExitCode.USAGE_ERROR): "error"}[status]


def cli_path(base_path, run, fail, flags, capsys) -> str:
    argv = ["compare", str(run), str(base_path)] + (["--fail", fail] if fail else [])
    argv += ["--allow-missing"] * flags.get("allow_missing", False)
    argv += ["--allow-nothing"] * flags.get("allow_nothing", False)
    status = main(argv)
    err = capsys.readouterr().err
    if status == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return {0: "pass", 1: "fail", 2: "error"}[status]


@pytest.mark.parametrize("name, base_cells, run_cells, fail, flags, expected", TABLE,
                         ids=[row[0] for row in TABLE])
def test_both_gate_paths_give_the_same_verdict(tmp_path, capsys, name, base_cells, run_cells, fail,
                                               flags, expected):
    base_path, run = _setup(tmp_path, base_cells, run_cells, flags.get("narrowed"))
    assert pytest_path(base_path, run, fail, flags) == expected
    assert cli_path(base_path, run, fail, flags, capsys) == expected


def test_cells_that_did_not_run_are_listed(tmp_path, capsys):
    base_path, run = _setup(tmp_path, {A: 0.80, B: 0.80}, {A: 0.80}, None)
    assert main(["compare", str(run), str(base_path)]) == 1
    out = capsys.readouterr().out
    assert f"{B}" in out and "not run" in out and "1 cell(s)" in out and "--allow-missing" in out
    doc = json.loads(base_path.read_text())
    assert set(doc["cells"]) == {A, B}
