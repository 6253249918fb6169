"""Regression gating: tolerance grammar, one-sided verdicts, baseline files and .obtained output."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.core.errors import BaselineError
from radbench_core.gate.compare import (
    DEFAULT_TOLERANCES,
    Tolerance,
    check_tolerance_names,
    compare,
    has_regressions,
    load_baseline,
    nothing_compared,
    obtained_path,
    parse_tolerances,
    render_verdicts,
    tolerance_for,
    update_baseline,
    write_obtained,
)
from radbench_core.core.results import CellResult, Metric


def rec(cell_id: str = "dinov2_vits14-nih-linear", *, config_hash: str = "abc123", profile: str = "demo",
        **metrics: float | tuple[float, bool]) -> CellResult:
    ms = {}
    for name, v in metrics.items():
        value, hib = v if isinstance(v, tuple) else (v, True)
        ms[name] = Metric(value, higher_is_better=hib)
    return CellResult(cell_id=cell_id, model="m", dataset="d", protocol="p", variant="",
                      task="classification", modality="xray", profile=profile, metrics=ms,
                      config_hash=config_hash)


def baseline_of(tmp_path, *records: CellResult, profile: str = "demo"):
    path = update_baseline(tmp_path / "demo.json", list(records), profile=profile)
    return load_baseline(path)


def verdict_of(verdicts, metric: str):
    (v,) = [v for v in verdicts if v.metric == metric]
    return v


# --- tolerance grammar ---------------------------------------------------------------------------

def test_parse_tolerances_absolute_relative_wildcard_and_whitespace():
    tol = parse_tolerances(" auroc : 0.01 , dice_jaccard:2% ,*:0.5%, loss:1e-3")
    assert tol == {"auroc": Tolerance(0.01), "dice_jaccard": Tolerance(2.0, True),
                   "*": Tolerance(0.5, True), "loss": Tolerance(0.001)}
    assert tol["dice_jaccard"].allowed(0.80) == pytest.approx(0.016)   # 2% of the baseline value
    assert tol["auroc"].allowed(0.80) == 0.01
    assert str(tol["dice_jaccard"]) == "2%" and str(tol["auroc"]) == "0.01"


@pytest.mark.parametrize("expr, fragment", [
    ("auroc0.01", "missing ':'"),
    ("auroc:-0.01", "negative"),
    ("auroc:abc", "not a non-negative number"),
    (":0.01", "empty metric name"),
    ("auroc:5%%", "not a non-negative number"),
    ("auroc:0.01,,dice:1%", "empty entry"),
    ("", "empty tolerance expression"),
    ("auroc:0.01,auroc:0.02", "given twice"),
    ("au roc:0.01", "metric name"),
    ("auroc:", "not a non-negative number"),
])
def test_parse_tolerances_rejects_bad_expressions_with_actionable_message(expr, fragment):
    with pytest.raises(BaselineError) as info:
        parse_tolerances(expr)
    msg = str(info.value)
    assert msg.startswith("--radbench-fail: ")
    assert fragment in msg
    assert "metric:ABS or metric:N%" in msg                     # the grammar
    assert 'Fix: write e.g. --radbench-fail "auroc:0.01' in msg  # an example


def test_parse_tolerances_names_another_option_when_asked():
    with pytest.raises(BaselineError, match=r"^--fail: .*--fail \"auroc"):
        parse_tolerances("auroc", option="--fail")


def test_tolerance_resolution_order():
    user = parse_tolerances("*:0,dice:5%")
    assert tolerance_for("dice", user) == Tolerance(5.0, True)     # user's exact metric
    assert tolerance_for("auroc", user) == Tolerance(0.0)          # user's wildcard beats defaults
    assert tolerance_for("auroc", {}) == DEFAULT_TOLERANCES["auroc"] == Tolerance(0.01)
    assert tolerance_for("hd95", {}) == Tolerance(1.0, True)       # default wildcard: 1% relative


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
                       st.one_of(st.tuples(st.floats(0, 99.9, allow_nan=False), st.just(True)),
                                 st.tuples(st.floats(0, 0.99, allow_nan=False), st.just(False))),
                       min_size=1, max_size=5))
def test_parse_tolerances_round_trips_rendered_tolerances(tols):
    """Every tolerance the gate accepts (under 100 %, absolute under 1) renders and parses back."""
    expr = ",".join(f"{k}:{v!r}{'%' if rel else ''}" for k, (v, rel) in tols.items())
    assert parse_tolerances(expr) == {k: Tolerance(v, rel) for k, (v, rel) in tols.items()}


# --- compare ---------------------------------------------------------------------------------------

def test_drop_beyond_tolerance_regresses_and_within_or_improvement_passes(tmp_path):
    base = baseline_of(tmp_path, rec(auroc=0.80, dice=0.70, accuracy=0.90))
    tol = parse_tolerances("auroc:0.01,dice:0.05")
    v = compare([rec(auroc=0.785, dice=0.66, accuracy=0.95)], base, tol)
    assert verdict_of(v, "auroc").verdict == "regressed"            # dropped 0.015 > 0.01
    assert verdict_of(v, "auroc").delta == pytest.approx(-0.015)
    assert verdict_of(v, "dice").verdict == "ok"                    # dropped 0.04 <= 0.05
    assert verdict_of(v, "accuracy").verdict == "improved"          # +0.05 > 1% of 0.90
    assert has_regressions(v)
    ok = compare([rec(auroc=0.79, dice=0.76, accuracy=0.90)], base, tol)   # drop exactly = tolerance
    assert {x.metric: x.verdict for x in ok} == {"auroc": "ok", "dice": "improved", "accuracy": "ok"}
    assert not has_regressions(ok)


def test_lower_is_better_metric_fails_on_a_rise(tmp_path):
    base = baseline_of(tmp_path, rec(hd95=(10.0, False)))
    tol = parse_tolerances("hd95:0.5")
    assert compare([rec(hd95=(10.6, False))], base, tol)[0].verdict == "regressed"
    assert compare([rec(hd95=(10.4, False))], base, tol)[0].verdict == "ok"
    assert compare([rec(hd95=(8.0, False))], base, tol)[0].verdict == "improved"


def test_relative_tolerance_is_a_percentage_of_the_baseline_value(tmp_path):
    base = baseline_of(tmp_path, rec(dice_jaccard=0.50))
    tol = parse_tolerances("dice_jaccard:2%")          # 2% of 0.50 = 0.01
    assert compare([rec(dice_jaccard=0.4905)], base, tol)[0].verdict == "ok"
    assert compare([rec(dice_jaccard=0.4895)], base, tol)[0].verdict == "regressed"


def test_changed_config_hash_is_not_comparable_and_shows_both_values(tmp_path):
    base = baseline_of(tmp_path, rec(auroc=0.9, dice=0.8))
    v = compare([rec(config_hash="zzz999", auroc=0.1, dice=0.1)], base, {})
    assert [(x.metric, x.baseline, x.now, x.verdict) for x in v] == [
        ("auroc", 0.9, 0.1, "not comparable"), ("dice", 0.8, 0.1, "not comparable")]
    assert all("abc123" in x.note and "zzz999" in x.note for x in v)
    assert not has_regressions(v) and nothing_compared(v)
    table = render_verdicts(v)
    assert "0.9000" in table and "0.1000" in table                      # both values are shown
    assert table.rstrip().endswith("2 not comparable -> nothing compared")


@pytest.mark.parametrize("expr, problem", [
    ("auroc:1e999", "the tolerance '1e999' is not finite"),
    ("*:100%", "a tolerance of 100% lets any drop pass"),
    ("dice:250%", "a tolerance of 250% lets any drop pass"),
    ("auroc:1", "an absolute tolerance of 1 on a metric in [0, 1] lets any drop pass"),
    ("*:5", "an absolute tolerance of 5 on a metric in [0, 1] lets any drop pass"),
])
def test_tolerances_that_would_disable_the_gate_are_refused(expr, problem):
    with pytest.raises(BaselineError) as err:
        parse_tolerances(expr)
    assert problem in str(err.value) and "Fix:" in str(err.value)


def test_the_demo_gate_expression_and_sane_tolerances_still_parse():
    assert parse_tolerances("*:0.05") == {"*": Tolerance(0.05)}
    assert parse_tolerances("wall_time_s:50,auroc:0.99")["wall_time_s"] == Tolerance(50)
    assert parse_tolerances("dice:99.5%")["dice"] == Tolerance(99.5, relative=True)


def test_tolerance_for_a_metric_no_cell_records_is_refused():
    tolerances = parse_tolerances("aucroc:0.01,*:0.05")
    with pytest.raises(BaselineError, match=r"no cell in the baseline records metric\(s\) \['aucroc'\]"):
        check_tolerance_names(tolerances, {"auroc", "dice"})
    check_tolerance_names(parse_tolerances("auroc:0.01,*:0.05"), {"auroc", "dice"})


def test_nothing_compared_when_all_new_or_empty(tmp_path):
    base = baseline_of(tmp_path, rec(auroc=0.9))
    assert nothing_compared(compare([rec("other-cell", auroc=0.5)], base, {}))
    assert nothing_compared([])
    assert not nothing_compared(compare([rec(auroc=0.9)], base, {}))


def test_new_cell_new_metric_missing_metric_and_nan(tmp_path):
    base = baseline_of(tmp_path, rec(auroc=0.9, dice=0.8))
    v = compare([rec("other-cell", auroc=0.5)], base, {})
    assert [(x.cell_id, x.verdict, x.now) for x in v] == [("other-cell", "new", 0.5)]
    assert not has_regressions(v)
    v = compare([rec(auroc=0.9, jaccard=0.6)], base, {})
    assert {x.metric: x.verdict for x in v} == {"auroc": "ok", "dice": "missing", "jaccard": "new"}
    assert has_regressions(v)                            # a metric disappearing fails the gate
    v = compare([rec(auroc=math.nan, dice=0.8)], base, {})
    assert verdict_of(v, "auroc").verdict == "regressed" and verdict_of(v, "auroc").now is None


def test_render_verdicts_lists_regressions_first(tmp_path):
    base = baseline_of(tmp_path, rec("a-cell", auroc=0.9), rec("b-cell", auroc=0.9))
    v = compare([rec("a-cell", auroc=0.95), rec("b-cell", auroc=0.5)], base, {})
    lines = render_verdicts(v).splitlines()
    assert lines[0].split() == ["cell", "metric", "baseline", "now", "Δ", "tol", "verdict"]
    assert lines[2].split()[:6] == ["b-cell", "auroc", "0.9000", "0.5000", "-0.4000", "0.01"]
    assert lines[2].split()[6] == "regressed"
    assert lines[3].split()[-1] == "improved"
    assert lines[-1] == "radbench gate: 1 regressed, 1 improved -> FAILED"


# --- baseline files --------------------------------------------------------------------------------

def test_update_baseline_format_merge_and_byte_identical(tmp_path):
    path = tmp_path / "b.json"
    update_baseline(path, [rec("x", auroc=0.8), rec("y", auroc=0.7)], profile="demo")
    first = path.read_bytes()
    update_baseline(tmp_path / "b2.json", [rec("y", auroc=0.7), rec("x", auroc=0.8)], profile="demo")
    assert (tmp_path / "b2.json").read_bytes() == first          # order-independent, deterministic
    doc = json.loads(first)
    assert doc["format"] == "radbench-baseline" and doc["version"] == 1 and doc["profile"] == "demo"
    assert doc["cells"]["x"] == {"config_hash": "abc123",
                                 "metrics": {"auroc": {"higher_is_better": True, "value": 0.8}}}
    assert first.decode().count("\n") > 10                       # indented, one key per line
    update_baseline(path, [rec("y", auroc=0.75), rec("z", dice=0.5)], profile="demo")
    cells = load_baseline(path).cells
    assert sorted(cells) == ["x", "y", "z"]                      # x kept, y replaced, z added
    assert cells["x"].metrics["auroc"].value == 0.8 and cells["y"].metrics["auroc"].value == 0.75


def test_update_baseline_refuses_other_profile(tmp_path):
    path = update_baseline(tmp_path / "b.json", [rec(auroc=0.8)], profile="demo")
    with pytest.raises(BaselineError, match="for profile 'demo', the run is 'paper'"):
        update_baseline(path, [rec(auroc=0.8, profile="paper")], profile="paper")
    with pytest.raises(BaselineError, match="was run with profile 'paper'"):
        update_baseline(path, [rec(auroc=0.8, profile="paper")], profile="demo")


def test_nan_values_are_stored_as_null_and_compare(tmp_path):
    base = baseline_of(tmp_path, rec(auroc=math.nan, f1=0.5))   # an all-null baseline is refused
    assert base.cells["dinov2_vits14-nih-linear"].metrics["auroc"].value is None
    assert verdict_of(compare([rec(auroc=0.6, f1=0.5)], base, {}), "auroc").verdict == "improved"
    assert verdict_of(compare([rec(auroc=math.nan, f1=0.5)], base, {}), "auroc").verdict == "ok"


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "top level is not a JSON object"),
    ('{"format": "pytest-regressions", "version": 1}', "format tag is 'pytest-regressions'"),
    ('{"format": "radbench-baseline", "version": 7}', "version 7"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0"}',
     "missing key 'cells'"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0",'
     ' "cells": {"c": {"metrics": {}}}}', "cell 'c' lacks a config_hash"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0",'
     ' "cells": {"c": {"config_hash": "h", "metrics": {"auroc": {"value": "high"}}}}}',
     "value 'high' is not a number"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0",'
     ' "cells": {"c": {"config_hash": "h", "metrics": {"auroc": {"higher": 1}}}}}', "has no 'value'"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0",'
     ' "cells": {"c": {"config_hash": "h", "metrics": {"auroc": {"value": NaN}}}}}',
     "cell 'c' metric 'auroc': value nan is not finite (any comparison with it would pass)"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0",'
     ' "cells": {"c": {"config_hash": "h", "metrics": {"auroc": {"value": -Infinity}}}}}',
     "value -inf is not finite"),
    ('{"format": "radbench-baseline", "version": 1, "profile": "demo", "radbench_version": "0",'
     ' "cells": {"c": {"config_hash": "h", "metrics": {"auroc": {"value": null}, "f1": {"value": null}}}}}',
     "all 2 metric values are null, so nothing would be compared"),
])
def test_malformed_baseline_raises_naming_file_problem_and_fix(tmp_path, content, fragment):
    path = tmp_path / "demo.json"
    path.write_text(content)
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and fragment in msg
    assert "Fix: regenerate it with --radbench-update-baseline" in msg


def test_missing_baseline_file_and_no_overwrite_of_a_broken_one(tmp_path):
    with pytest.raises(BaselineError, match="no baseline file here"):
        load_baseline(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{oops")
    with pytest.raises(BaselineError, match="not valid JSON"):
        update_baseline(broken, [rec(auroc=0.8)], profile="demo")
    assert broken.read_text() == "{oops"


def test_write_obtained_merges_run_into_baseline_beside_it(tmp_path):
    path = update_baseline(tmp_path / "demo.json", [rec("x", auroc=0.8), rec("y", auroc=0.7)], profile="demo")
    out = write_obtained(path, [rec("y", auroc=0.6)])
    assert out == obtained_path(path) == tmp_path / "demo.json.obtained"
    got = load_baseline(out)
    assert got.profile == "demo"
    assert got.cells["x"].metrics["auroc"].value == 0.8 and got.cells["y"].metrics["auroc"].value == 0.6
    assert load_baseline(path).cells["y"].metrics["auroc"].value == 0.7      # baseline untouched
    fresh = write_obtained(tmp_path / "none.json", [rec("y", auroc=0.6)])
    assert sorted(load_baseline(fresh).cells) == ["y"]
