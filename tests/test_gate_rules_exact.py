"""gate/compare.py's tolerance grammar and name check, compare()'s remaining branches, and
gate/paired_gate.py, pinned word for word and at their edges (issue 21, mutation testing).

Every error text is written out here by hand (not rebuilt from the module's constants), so a
changed word, bound or operator fails a test. The files of the paired gate are made with radbench's
own writers (tests/gate_runs.write_run: RunStore + save_predictions; gate.baseline.update_baseline).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radbench_core.core.errors import BaselineError
from radbench_core.core.results import CellResult, Metric, RunStore
from radbench_core.eval.metrics import auroc
from radbench_core.eval.paired import PairedResult, paired_bootstrap
from radbench_core.eval.predictions import (classification_predictions, load_predictions,
                                            save_predictions)
from radbench_core.gate.baseline import Baseline, BaselineCell, BaselineMetric, load_baseline, update_baseline
from radbench_core.gate.compare import Tolerance, Verdict, check_tolerance_names, compare, parse_tolerances
from radbench_core.gate.paired_gate import GATE_RESAMPLES, baseline_predictions_path, paired_against
from tests.gate_runs import CELL, scored_set, write_run

GRAMMAR_TEXT = ("expected comma-separated metric:ABS or metric:N% (relative to the baseline value), "
                "'*' = any metric")


def expected(piece: str, problem: str, option: str = "--radbench-fail") -> str:
    """The whole message of a refused expression, written out: where, problem, grammar, example."""
    return (f"{option}: {problem} in {piece!r}; {GRAMMAR_TEXT}. "
            f"Fix: write e.g. {option} \"auroc:0.01,dice_jaccard:2%,*:1%\".")


def refused(expr: str, **kw) -> str:
    with pytest.raises(BaselineError) as info:
        parse_tolerances(expr, **kw)
    return str(info.value)


# --- parse_tolerances: every refusal, word for word, with both option names ------------------------

REFUSALS = [
    # expr, the piece named in the message, the problem
    ("", "", "empty tolerance expression"),
    ("   ", "   ", "empty tolerance expression"),
    ("auroc:0.01,,dice:1%", "auroc:0.01,,dice:1%", "an empty entry (doubled or trailing comma)"),
    ("auroc:0.01,", "auroc:0.01,", "an empty entry (doubled or trailing comma)"),
    (" , ", " , ", "an empty entry (doubled or trailing comma)"),
    ("auroc0.01", "auroc0.01", "missing ':' between metric and tolerance"),
    ("  auroc=0.01 ,dice:1%", "auroc=0.01", "missing ':' between metric and tolerance"),
    (":0.01", ":0.01", "empty metric name"),
    ("  : 0.01", ": 0.01", "empty metric name"),
    ("au roc:0.01", "au roc:0.01",
     "metric name 'au roc' is not '*' nor made of letters, digits, _.-/@"),
    ("auroc!:0.01", "auroc!:0.01",
     "metric name 'auroc!' is not '*' nor made of letters, digits, _.-/@"),
    ("**:0.01", "**:0.01", "metric name '**' is not '*' nor made of letters, digits, _.-/@"),
    ("a*:0.01", "a*:0.01", "metric name 'a*' is not '*' nor made of letters, digits, _.-/@"),
    ("auroc:-0.01", "auroc:-0.01", "a negative tolerance"),
    ("auroc:-0", "auroc:-0", "a negative tolerance"),
    ("auroc:-0.1", "auroc:-0.1", "a negative tolerance"),
    ("auroc:-5%", "auroc:-5%", "a negative tolerance"),
    ("auroc: - 1", "auroc: - 1", "a negative tolerance"),
    ("auroc:- 1 %", "auroc:- 1 %", "a negative tolerance"),
    ("auroc:abc", "auroc:abc", "'abc' is not a non-negative number or percentage"),
    ("auroc:", "auroc:", "'' is not a non-negative number or percentage"),
    ("auroc:%", "auroc:%", "'%' is not a non-negative number or percentage"),
    ("auroc:5%%", "auroc:5%%", "'5%%' is not a non-negative number or percentage"),
    ("auroc:5.", "auroc:5.", "'5.' is not a non-negative number or percentage"),
    ("auroc:+1", "auroc:+1", "'+1' is not a non-negative number or percentage"),
    ("auroc:1e", "auroc:1e", "'1e' is not a non-negative number or percentage"),
    ("auroc:0x1", "auroc:0x1", "'0x1' is not a non-negative number or percentage"),
    ("auroc:1 0", "auroc:1 0", "'1 0' is not a non-negative number or percentage"),
    ("auroc:inf", "auroc:inf", "'inf' is not a non-negative number or percentage"),
    ("auroc:nan", "auroc:nan", "'nan' is not a non-negative number or percentage"),
    ("auroc:NaN%", "auroc:NaN%", "'NaN%' is not a non-negative number or percentage"),
    ("auroc:0.01,auroc:0.02", "auroc:0.02", "metric 'auroc' given twice"),
    ("*:1%, * : 2% ", "* : 2%", "metric '*' given twice"),
    ("auroc:1e999", "auroc:1e999", "the tolerance '1e999' is not finite"),
    ("dice:1e999%", "dice:1e999%", "the tolerance '1e999%' is not finite"),
    ("auroc:100%", "auroc:100%", "a tolerance of 100% lets any drop pass (the gate would be off)"),
    ("hd95:100.0%", "hd95:100.0%", "a tolerance of 100% lets any drop pass (the gate would be off)"),
    ("*:1E+2%", "*:1E+2%", "a tolerance of 100% lets any drop pass (the gate would be off)"),
    ("dice:250%", "dice:250%", "a tolerance of 250% lets any drop pass (the gate would be off)"),
    ("auroc:1", "auroc:1", "an absolute tolerance of 1 on a metric in [0, 1] lets any drop pass "
                           "(the gate would be off); use a percentage for other scales"),
    ("*:1", "*:1", "an absolute tolerance of 1 on a metric in [0, 1] lets any drop pass "
                   "(the gate would be off); use a percentage for other scales"),
    ("dice_jaccard_study:2.5", "dice_jaccard_study:2.5",
     "an absolute tolerance of 2.5 on a metric in [0, 1] lets any drop pass "
     "(the gate would be off); use a percentage for other scales"),
]


@pytest.mark.parametrize("expr, piece, problem", REFUSALS, ids=[r[0] or "<empty>" for r in REFUSALS])
def test_every_refusal_word_for_word_with_the_default_option(expr, piece, problem):
    assert refused(expr) == expected(piece, problem)


@pytest.mark.parametrize("expr, piece, problem", REFUSALS, ids=[r[0] or "<empty>" for r in REFUSALS])
def test_every_refusal_names_the_given_option_in_place_and_in_the_example(expr, piece, problem):
    assert refused(expr, option="--fail") == expected(piece, problem, "--fail")


def test_the_default_option_text_in_full():
    assert refused("auroc") == (
        "--radbench-fail: missing ':' between metric and tolerance in 'auroc'; expected comma-separated "
        "metric:ABS or metric:N% (relative to the baseline value), '*' = any metric. "
        "Fix: write e.g. --radbench-fail \"auroc:0.01,dice_jaccard:2%,*:1%\".")
    assert refused("auroc", option="--fail") == (
        "--fail: missing ':' between metric and tolerance in 'auroc'; expected comma-separated "
        "metric:ABS or metric:N% (relative to the baseline value), '*' = any metric. "
        "Fix: write e.g. --fail \"auroc:0.01,dice_jaccard:2%,*:1%\".")


def test_the_first_bad_piece_is_named_even_after_good_ones():
    assert refused("auroc:0.01, dice:x, jaccard:-1") == \
        expected("dice:x", "'x' is not a non-negative number or percentage")


# --- parse_tolerances: what is accepted, at the edges -----------------------------------------------

BOUNDED = ["auroc", "auroc_val", "accuracy", "dice", "jaccard", "dice_jaccard", "dice_study",
           "jaccard_study", "dice_jaccard_study", "*"]


@pytest.mark.parametrize("name", BOUNDED)
def test_an_absolute_tolerance_of_exactly_1_on_a_bounded_metric_is_refused_0_999_accepted(name):
    assert refused(f"{name}:1") == expected(
        f"{name}:1", "an absolute tolerance of 1 on a metric in [0, 1] lets any drop pass "
                     "(the gate would be off); use a percentage for other scales")
    assert parse_tolerances(f"{name}:0.999") == {name: Tolerance(0.999)}
    assert parse_tolerances(f"{name}:99.99%") == {name: Tolerance(99.99, relative=True)}


@pytest.mark.parametrize("name", ["wall_time_s", "hd95", "loss", "peak_memory_mb", "my_metric"])
def test_an_absolute_tolerance_of_1_or_more_on_an_unbounded_metric_is_accepted(name):
    assert parse_tolerances(f"{name}:1") == {name: Tolerance(1.0)}
    assert parse_tolerances(f"{name}:150") == {name: Tolerance(150.0)}     # over 100, absolute
    assert parse_tolerances(f"{name}:99.99%") == {name: Tolerance(99.99, relative=True)}
    assert refused(f"{name}:100%") == expected(
        f"{name}:100%", "a tolerance of 100% lets any drop pass (the gate would be off)")


def test_relative_tolerances_on_bounded_metrics_are_percentages_not_absolute():
    # 5% of a [0, 1] metric is fine: the >= 1 rule is for absolute amounts only
    assert parse_tolerances("auroc:5%,*:1%") == {"auroc": Tolerance(5.0, True), "*": Tolerance(1.0, True)}
    assert parse_tolerances("auroc:0%") == {"auroc": Tolerance(0.0, True)}
    assert parse_tolerances("auroc:0") == {"auroc": Tolerance(0.0)}


@pytest.mark.parametrize("amount, tolerance", [
    ("1e-3", Tolerance(0.001)),
    (".5", Tolerance(0.5)),
    ("0.5", Tolerance(0.5)),
    ("5E-1", Tolerance(0.5)),
    ("2.5e-1", Tolerance(0.25)),
    ("1E+1%", Tolerance(10.0, True)),
    ("1e1%", Tolerance(10.0, True)),
    (".5%", Tolerance(0.5, True)),
    ("007%", Tolerance(7.0, True)),
    ("5 %", Tolerance(5.0, True)),
    (" 5 % ", Tolerance(5.0, True)),
])
def test_numbers_the_grammar_accepts(amount, tolerance):
    assert parse_tolerances(f"auroc:{amount}") == {"auroc": tolerance}


@pytest.mark.parametrize("name", ["a_b", "a.b", "a-b", "a/b", "a@b", "A9", "_", "-", "@", "/x.y-z_w@2"])
def test_names_made_of_each_allowed_character(name):
    assert parse_tolerances(f"{name}:0.5") == {name: Tolerance(0.5)}


@pytest.mark.parametrize("name", ["a#b", "a+b", "a:b", "a b", "a,b", "a%b", "a*", "é"])
def test_names_with_a_disallowed_character(name):
    expr = f"{name}:0.5"
    with pytest.raises(BaselineError) as info:
        parse_tolerances(expr)
    msg = str(info.value)
    if name == "a:b":                    # split at the FIRST ':': the name is 'a', the amount 'b:0.5'
        assert msg == expected(expr, "'b:0.5' is not a non-negative number or percentage")
    elif name == "a,b":                  # split at the ',' first: the entry 'a' has no ':'
        assert msg == expected("a", "missing ':' between metric and tolerance")
    else:
        assert msg == expected(expr, f"metric name {name!r} is not '*' nor made of letters, digits, _.-/@")


def test_whitespace_around_every_piece_is_stripped():
    assert parse_tolerances("  auroc :  0.01 ,\t dice_jaccard\t:\t2 % ,*: 0.5% ") == {
        "auroc": Tolerance(0.01), "dice_jaccard": Tolerance(2.0, True), "*": Tolerance(0.5, True)}
    tol = parse_tolerances(" hd95 : 3 ")
    assert tol == {"hd95": Tolerance(3.0)} and str(tol["hd95"]) == "3" and not tol["hd95"].relative


def test_the_returned_table_keeps_every_entry_in_order():
    tol = parse_tolerances("z:1%,a:0.5,m:0")
    assert list(tol) == ["z", "a", "m"]
    assert [(t.amount, t.relative) for t in tol.values()] == [(1.0, True), (0.5, False), (0.0, False)]


# --- check_tolerance_names --------------------------------------------------------------------------

T = Tolerance(0.01)


def name_error(tolerances, known, **kw) -> str:
    with pytest.raises(BaselineError) as info:
        check_tolerance_names(tolerances, known, **kw)
    return str(info.value)


def test_unknown_names_listed_sorted_with_the_recorded_metrics():
    assert name_error({"zeta": T, "aurco": T, "auroc": T, "*": T}, {"dice", "auroc"}) == (
        "--radbench-fail: no cell in the baseline records metric(s) ['aurco', 'zeta'] "
        "(metrics there: ['auroc', 'dice']). "
        "Fix: use the metric names of the records (e.g. auroc, dice, jaccard), or '*'.")


def test_no_recorded_metric_reads_none():
    assert name_error({"aurco": T}, set()) == (
        "--radbench-fail: no cell in the baseline records metric(s) ['aurco'] (metrics there: none). "
        "Fix: use the metric names of the records (e.g. auroc, dice, jaccard), or '*'.")


def test_option_and_source_are_named_when_given():
    assert name_error({"aurco": T}, {"my_metric"}, option="--fail", source="the run") == (
        "--fail: no cell in the run records metric(s) ['aurco'] (metrics there: ['my_metric']). "
        "Fix: use the metric names of the records (e.g. auroc, dice, jaccard), or '*'.")


def test_accepted_names_return_none():
    # recorded; or defined by radbench (HIGHER_IS_BETTER) though no cell records it; or '*'
    assert check_tolerance_names({"my_metric": T}, {"my_metric"}) is None
    assert check_tolerance_names({"auroc": T}, {"auroc"}) is None
    assert check_tolerance_names({"hd95": T, "wall_time_s": T, "dice_study": T}, {"auroc"}) is None
    assert check_tolerance_names({"hd95": T}, set()) is None
    assert check_tolerance_names({"*": T}, set()) is None
    assert check_tolerance_names({}, set()) is None


# --- compare: the branches test_compare_mutants.py leaves open --------------------------------------

def base_of(cells: dict) -> Baseline:
    """cells: id -> (config_hash, {metric: (value, higher_is_better)})."""
    return Baseline(Path("b.json"), "demo", "0", {
        cid: BaselineCell(h, {n: BaselineMetric(val, hib) for n, (val, hib) in ms.items()})
        for cid, (h, ms) in cells.items()})


def record(cid: str, h: str, extra: dict | None = None, **ms) -> CellResult:
    metrics = {n: Metric(val, higher_is_better=hib) for n, (val, hib) in ms.items()}
    return CellResult(cell_id=cid, model="m", dataset="d", protocol="p", variant="", task="classification",
                      modality="xray", profile="demo", metrics=metrics, config_hash=h, extra=extra or {})


def test_compare_without_noise_awareness_never_asks_a_given_paired_function():
    base = base_of({"c": ("h", {"auroc": (0.8, True)})})
    calls = []

    def paired(r, name):
        calls.append(name)
        raise AssertionError("not noise-aware: the paired test must not run")

    got = compare([record("c", "h", auroc=(0.5, True))], base, {}, noise_aware=False, paired=paired)
    assert calls == []
    assert got == [Verdict("c", "auroc", 0.8, 0.5, pytest.approx(-0.3), "0.01", "regressed", "")]


def test_compare_only_judges_records_baseline_cells_that_did_not_run_get_no_verdict_here():
    """A baseline cell with no record is not compare()'s business: run_gate.cells_not_run lists it
    ("not run") and decides with the narrowed/allow-missing rules."""
    base = base_of({"a": ("h", {"auroc": (0.8, True)}), "b": ("h", {"auroc": (0.8, True)}),
                    "z": ("h", {"auroc": (0.8, True)})})
    assert compare([record("b", "h", auroc=(0.8, True))], base, {}) == [
        Verdict("b", "auroc", 0.8, 0.8, 0.0, "0.01", "ok", "")]
    assert compare([], base, {}) == []


def test_compare_new_metric_nan_and_lower_is_better_in_a_known_cell():
    base = base_of({"c": ("h", {"hd95": (10.0, False), "loss": (1.0, False)})})
    rec = record("c", "h", hd95=(10.2, False), loss=(0.5, False), auroc=(float("nan"), True))
    got = compare([rec], base, {"*": Tolerance(1.0, True)})
    assert got == [
        Verdict("c", "auroc", None, None, None, "1%", "new", "metric not in baseline"),    # NaN -> None
        Verdict("c", "hd95", 10.0, 10.2, pytest.approx(0.2), "1%", "regressed", ""),    # a rise of 2%
        Verdict("c", "loss", 1.0, 0.5, -0.5, "1%", "improved", ""),                      # a fall
    ]
    # within 1% of 10 (0.1) a rise is ok; the default '*' (1%) is the same without a user table
    (v, _, _) = compare([record("c", "h", hd95=(10.1, False), loss=(1.0, False), auroc=(0.5, True))],
                        base, {})
    assert (v.metric, v.verdict, v.tolerance) == ("auroc", "new", "0.01")
    assert [x.verdict for x in compare([record("c", "h", hd95=(10.1, False), loss=(1.0, False))],
                                       base, {})] == ["ok", "ok"]


def test_compare_config_hash_cut_at_12_characters_each_side():
    base = base_of({"c": ("0123456789abcdef", {"auroc": (0.8, True)})})
    (v,) = compare([record("c", "fedcba9876543210", auroc=(0.7, True))], base, {})
    assert v == Verdict("c", "auroc", 0.8, 0.7, pytest.approx(-0.1), "-", "not comparable",
                        "config hash 0123456789ab -> fedcba987654")
    (v,) = compare([record("c", "0123456789abX", auroc=(float("nan"), True))], base, {})
    # only the first 12 characters differ in nothing, yet the hashes differ: still not comparable
    assert v == Verdict("c", "auroc", 0.8, None, None, "-", "not comparable",
                        "config hash 0123456789ab -> 0123456789ab")


def test_compare_noise_aware_sees_each_record_and_metric_of_several_cells():
    base = base_of({"a": ("h", {"auroc": (0.8, True)}), "b": ("h", {"dice": (0.8, True), "auroc": (0.8, True)})})
    seen = []

    def paired(r, name):
        seen.append((r.cell_id, name))
        return None

    got = compare([record("b", "h", dice=(0.5, True), auroc=(0.795, True)), record("a", "h", auroc=(0.1, True))],
                  base, {}, noise_aware=True, paired=paired)
    # only drops beyond the tolerance are tested, in cell then metric order, each with its own record
    assert seen == [("a", "auroc"), ("b", "dice")]
    assert [(v.cell_id, v.metric, v.verdict, v.note) for v in got] == [
        ("a", "auroc", "regressed", "no paired predictions: tolerance only"),
        ("b", "auroc", "ok", ""),
        ("b", "dice", "regressed", "no paired predictions: tolerance only")]


# --- paired_gate: baseline_predictions_path and paired_against --------------------------------------

REGEN = "regenerate it with --radbench-update-baseline (or `radbench compare RUN BASELINE --update`)"


def make_baseline(tmp_path, spec, *, with_predictions=True) -> Baseline:
    run = write_run(tmp_path / "base_run", {CELL: spec})
    path = update_baseline(tmp_path / "demo.json", RunStore(run).load_cells(), profile="demo",
                           run_dirs=[run] if with_predictions else ())
    return load_baseline(path)


def now_run(tmp_path, spec, name="now_run") -> tuple[CellResult, Path]:
    run = write_run(tmp_path / name, {CELL: spec})
    (rec,) = RunStore(run).load_cells()
    return rec, run


SMALL = dict(n_patients=30, images=2)


def test_baseline_predictions_path_of_a_stored_cell(tmp_path):
    base = make_baseline(tmp_path, scored_set(**SMALL))
    path = baseline_predictions_path(base, CELL)
    entry = json.loads((tmp_path / "demo.json").read_text())["cells"][CELL]["predictions"]
    assert path == tmp_path / entry["file"] and path.parent == tmp_path / "demo.predictions"
    assert path.is_file()


def test_baseline_predictions_path_none_for_an_unknown_cell_or_one_without_predictions(tmp_path):
    base = make_baseline(tmp_path, scored_set(**SMALL))
    assert baseline_predictions_path(base, "other-cell") is None
    plain = make_baseline(tmp_path / "plain", 0.8, with_predictions=False)
    assert plain.cells[CELL].predictions is None
    assert baseline_predictions_path(plain, CELL) is None
    scored_no_copy = make_baseline(tmp_path / "nocopy", scored_set(**SMALL), with_predictions=False)
    assert baseline_predictions_path(scored_no_copy, CELL) is None


def test_baseline_predictions_missing_file_message(tmp_path):
    base = make_baseline(tmp_path, scored_set(**SMALL))
    path = baseline_predictions_path(base, CELL)
    path.unlink()
    with pytest.raises(BaselineError) as info:
        baseline_predictions_path(base, CELL)
    assert str(info.value) == f"{path}: predictions of baseline cell {CELL!r} are missing. Fix: {REGEN}."
    path.mkdir()                                   # a folder in its place is not the file either
    with pytest.raises(BaselineError) as info:
        baseline_predictions_path(base, CELL)
    assert str(info.value) == f"{path}: predictions of baseline cell {CELL!r} are missing. Fix: {REGEN}."


def test_baseline_predictions_digest_mismatch_message(tmp_path):
    base = make_baseline(tmp_path, scored_set(**SMALL))
    path = baseline_predictions_path(base, CELL)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(BaselineError) as info:
        baseline_predictions_path(base, CELL)
    assert str(info.value) == (
        f"{path}: predictions of baseline cell 'm-nih-linear' do not match the digest recorded in the "
        f"baseline (edited or replaced). Fix: {REGEN}.")


def test_paired_against_is_the_paired_bootstrap_of_now_minus_baseline_with_2000_resamples_seed_0(tmp_path):
    y, groups, scores = scored_set(**SMALL)
    base = make_baseline(tmp_path, (y, groups, scores))
    worse = scores + 0.8 * np.random.default_rng(5).normal(size=scores.size)
    rec, run = now_run(tmp_path, (y, groups, worse))
    got = paired_against(base, [run])(rec, "auroc")
    assert GATE_RESAMPLES == 2000
    assert isinstance(got, PairedResult)
    now = load_predictions(run / rec.extra["predictions"])
    before = load_predictions(baseline_predictions_path(base, CELL))
    assert got == paired_bootstrap(now, before, "auroc", resamples=2000, seed=0)
    assert got != paired_bootstrap(now, before, "auroc", resamples=2000, seed=1)
    # now - baseline, not the reverse: values by hand from the two score vectors
    assert got.value_a == pytest.approx(auroc(y, worse, "binary"), abs=1e-6)
    assert got.value_b == pytest.approx(auroc(y, scores, "binary"), abs=1e-6)
    assert got.diff == pytest.approx(got.value_a - got.value_b) and got.diff < 0
    assert (got.metric, got.resamples, got.n_items, got.n_groups) == ("auroc", 2000, 60, 30)


def test_paired_against_passes_resamples_and_seed_through(tmp_path):
    y, groups, scores = scored_set(**SMALL)
    base = make_baseline(tmp_path, (y, groups, scores))
    rec, run = now_run(tmp_path, (y, groups, scores + 0.5 * np.random.default_rng(1).normal(size=y.size)))
    now = load_predictions(run / rec.extra["predictions"])
    before = load_predictions(baseline_predictions_path(base, CELL))
    got = paired_against(base, [tmp_path / "elsewhere", run], resamples=40, seed=3)(rec, "auroc")
    assert got == paired_bootstrap(now, before, "auroc", resamples=40, seed=3)
    assert got.resamples == 40 and got != paired_bootstrap(now, before, "auroc", resamples=40, seed=0)


def test_paired_against_none_for_a_metric_without_a_prediction_kind(tmp_path):
    spec = scored_set(**SMALL)
    base = make_baseline(tmp_path, spec)
    rec, run = now_run(tmp_path, spec)
    paired = paired_against(base, [run])
    assert paired(rec, "accuracy") is None and paired(rec, "hd95") is None and paired(rec, "wall_time_s") is None
    assert paired(rec, "auroc") is not None


def test_paired_against_none_for_a_kind_mismatch(tmp_path):
    spec = scored_set(**SMALL)
    base = make_baseline(tmp_path, spec)
    rec, run = now_run(tmp_path, spec)
    # dice is a segmentation metric; both saved predictions are classification
    assert paired_against(base, [run])(rec, "dice") is None
    assert paired_against(base, [run])(rec, "dice_study") is None


def test_paired_against_none_without_baseline_or_run_predictions(tmp_path):
    spec = scored_set(**SMALL)
    rec, run = now_run(tmp_path, spec)
    plain = make_baseline(tmp_path / "plain", spec, with_predictions=False)
    assert paired_against(plain, [run])(rec, "auroc") is None                 # baseline has none
    base = make_baseline(tmp_path / "stored", spec)
    assert paired_against(base, [tmp_path / "elsewhere"])(rec, "auroc") is None  # run file not found
    assert paired_against(base, [run])(record("other", "h", auroc=(0.8, True)), "auroc") is None
    bare = record(CELL, "h", auroc=(0.8, True))                               # record names no file
    assert paired_against(base, [run])(bare, "auroc") is None
    odd = record(CELL, "h", auroc=(0.8, True))
    odd.extra = None                                                          # not a dict: no file
    assert paired_against(base, [run])(odd, "auroc") is None


def test_paired_against_none_for_a_different_test_set(tmp_path):
    y, groups, scores = scored_set(**SMALL)
    base = make_baseline(tmp_path, (y, groups, scores))
    rec, run = now_run(tmp_path, scored_set(n_patients=31, images=2))        # one more patient
    assert paired_against(base, [run])(rec, "auroc") is None
    # the same ids with other labels: align refuses (ConfigError), the gate falls back to the tolerance
    flipped = tmp_path / "flipped"
    pred = classification_predictions([str(i) for i in range(len(y))], groups, 1 - y, scores, "binary")
    rel = save_predictions(flipped, CELL, pred)
    other = record(CELL, "h", extra={"predictions": rel}, auroc=(0.8, True))
    assert paired_against(base, [flipped])(other, "auroc") is None


def test_paired_against_does_not_swallow_an_edited_baseline(tmp_path):
    spec = scored_set(**SMALL)
    base = make_baseline(tmp_path, spec)
    rec, run = now_run(tmp_path, spec)
    stored = baseline_predictions_path(base, CELL)
    stored.write_bytes(stored.read_bytes()[:-1])
    with pytest.raises(BaselineError) as info:
        paired_against(base, [run])(rec, "auroc")
    assert str(info.value).startswith(f"{stored}: predictions of baseline cell 'm-nih-linear' do not match")
