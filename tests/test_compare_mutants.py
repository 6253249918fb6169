"""gate/compare.py: the cases mutation testing found unchecked (issue 21, docs/testing.md).

Each test pins a value by hand: which verdicts count as "compared", the paired noise verdict at the
edges of its CI, the rendered table cell by cell, and the messages of the tolerance grammar.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from radbench_core.core.results import CellResult, Metric
from radbench_core.gate.baseline import Baseline, BaselineCell, BaselineMetric
from radbench_core.gate.compare import (Tolerance, Verdict, _compare_metric, _fmt, compare, has_regressions,
                                        noise_verdict, nothing_compared, render_verdicts)


def v(verdict: str, cell: str = "c", metric: str = "auroc", note: str = "") -> Verdict:
    return Verdict(cell, metric, 0.8, 0.8, 0.0, "0.01", verdict, note)


# --- nothing_compared ------------------------------------------------------------------------------

@pytest.mark.parametrize("verdict", ["ok", "improved", "regressed", "missing"])
def test_each_compared_verdict_alone_means_something_was_compared(verdict):
    assert nothing_compared([v(verdict)]) is False
    assert nothing_compared([v("new"), v("not comparable"), v(verdict)]) is False


def test_only_new_or_not_comparable_means_nothing_compared():
    assert nothing_compared([v("new"), v("not comparable"), v("not run")]) is True


# --- noise_verdict ---------------------------------------------------------------------------------

def paired(low: float, high: float, p: float = 0.01):
    return SimpleNamespace(ci_low=low, ci_high=high, p_value=p, n_items=40, n_groups=12, resamples=500)


def test_no_paired_test_is_the_tolerance_alone():
    assert noise_verdict(None, True) == ("regressed", "no paired predictions: tolerance only")
    assert noise_verdict(None, False) == ("regressed", "no paired predictions: tolerance only")


def test_higher_is_better_regresses_only_when_the_whole_ci_is_below_zero():
    counts = "paired on 40 items / 12 patients, B=500"
    assert noise_verdict(paired(-0.05, -0.01, 0.0123), True) == (
        "regressed", f"95% CI [-0.0500, -0.0100], p=0.0123; {counts}")
    assert noise_verdict(paired(-0.05, 0.0, 0.2), True) == (
        "ok", f"drop not significant: 95% CI [-0.0500, +0.0000], p=0.2; {counts}")
    # a CI wholly above zero is an improvement, not a regression, for a higher-is-better metric
    assert noise_verdict(paired(0.3, 0.6), True)[0] == "ok"


def test_lower_is_better_regresses_only_when_the_whole_ci_is_above_zero():
    assert noise_verdict(paired(0.5, 0.9), False)[0] == "regressed"     # a rise of 0.5..0.9 (e.g. hd95)
    assert noise_verdict(paired(0.0, 0.9), False)[0] == "ok"            # the CI reaches 0
    assert noise_verdict(paired(-0.9, -0.5), False)[0] == "ok"          # a fall is better
    assert noise_verdict(paired(0.002, 0.01), False)[0] == "regressed"


# --- the rendered table ----------------------------------------------------------------------------

def test_fmt_renders_none_signed_and_unsigned():
    assert _fmt(None) == "-" and _fmt(None, True) == "-"
    assert _fmt(0.12345) == "0.1235" and _fmt(0.12345, True) == "+0.1235"
    assert _fmt(-0.5, True) == "-0.5000" and _fmt(0.0, True) == "+0.0000"


VERDICTS = [
    Verdict("b", "auroc", 0.9, 0.85, -0.05, "0.01", "regressed", "x"),
    Verdict("a", "dice", 0.5, 0.6, 0.1, "2%", "improved"),
    Verdict("c", "(all)", None, None, None, "-", "not run", "gone"),
    Verdict("a", "jac", None, 0.3, None, "0.01", "new", "cell not in baseline"),
    Verdict("a", "auroc", 0.8, 0.8, 0.0, "0.01", "ok"),
    Verdict("d", "hd95", 3.0, None, None, "1%", "missing", "metric no longer recorded"),
    Verdict("a", "accuracy", 0.7, 0.2, -0.5, "-", "not comparable", "config hash h1 -> h2"),
    Verdict("a", "accuracy", 0.7, 0.72, 0.02, "0.01", "improved"),
]

TABLE = """\
cell  metric    baseline     now        Δ   tol  verdict
----  --------  --------  ------  -------  ----  -------------------------------------
b     auroc       0.9000  0.8500  -0.0500  0.01  regressed (x)
d     hd95        3.0000       -        -    1%  missing (metric no longer recorded)
c     (all)            -       -        -     -  not run (gone)
a     accuracy    0.7000  0.2000  -0.5000     -  not comparable (config hash h1 -> h2)
a     jac              -  0.3000        -  0.01  new
a     accuracy    0.7000  0.7200  +0.0200  0.01  improved
a     dice        0.5000  0.6000  +0.1000    2%  improved
a     auroc       0.8000  0.8000  +0.0000  0.01  ok
radbench gate: 1 regressed, 1 missing, 1 not run, 1 not comparable, 1 new, 2 improved, 1 ok -> FAILED
"""


def test_render_verdicts_whole_table_by_hand():
    """Columns padded to their widest cell, numbers right-aligned, verdict order regressed, missing,
    not run, not comparable, new, improved, ok (then cell, metric), notes shown except for 'new'."""
    assert render_verdicts(VERDICTS) == TABLE
    assert render_verdicts(VERDICTS, "3 metrics").endswith("1 ok -> FAILED: 3 metrics\n")


def test_render_verdicts_outcome_lines():
    ok = [v("ok", "a"), v("improved", "b")]
    assert render_verdicts(ok).splitlines()[-1] == "radbench gate: 1 improved, 1 ok -> passed"
    assert render_verdicts(ok, "1 cell(s) did not run").splitlines()[-1] == \
        "radbench gate: 1 improved, 1 ok -> FAILED: 1 cell(s) did not run"
    assert render_verdicts([v("new")]).splitlines()[-1] == "radbench gate: 1 new -> nothing compared"
    assert render_verdicts([v("ok", "a"), v("ok", "b")]).splitlines()[-1] == "radbench gate: 2 ok -> passed"
    assert render_verdicts([]) == ("cell  metric  baseline  now  Δ  tol  verdict\n"
                                   "----  ------  --------  ---  -  ---  -------\n"
                                   "radbench gate: no cells compared -> nothing compared\n")


# --- compare and _compare_metric: every field of every branch ----------------------------------------

def base_of(cells: dict) -> Baseline:
    """cells: id -> (config_hash, {metric: (value, higher_is_better)})."""
    return Baseline(Path("b.json"), "demo", "0", {
        cid: BaselineCell(h, {n: BaselineMetric(val, hib) for n, (val, hib) in ms.items()})
        for cid, (h, ms) in cells.items()})


def record(cid: str, h: str, **ms) -> CellResult:
    metrics = {n: Metric(val, higher_is_better=hib) for n, (val, hib) in ms.items()}
    return CellResult(cell_id=cid, model="m", dataset="d", protocol="p", variant="", task="classification",
                      modality="xray", profile="demo", metrics=metrics, config_hash=h)


def test_compare_metric_fields_of_each_branch():
    t = Tolerance(2.0, relative=True)
    assert _compare_metric("c", "dice", BaselineMetric(None), 0.4, True, t) == \
        Verdict("c", "dice", None, 0.4, None, "2%", "improved", "baseline value undefined")
    assert _compare_metric("c", "dice", BaselineMetric(None), None, True, t) == \
        Verdict("c", "dice", None, None, None, "2%", "ok", "baseline value undefined")
    assert _compare_metric("c", "dice", BaselineMetric(0.5), None, True, t) == \
        Verdict("c", "dice", 0.5, None, None, "2%", "regressed", "value is NaN/undefined now")
    assert _compare_metric("c", "dice", BaselineMetric(0.5), 0.25, True, t) == \
        Verdict("c", "dice", 0.5, 0.25, -0.25, "2%", "regressed", "")
    assert _compare_metric("c", "hd95", BaselineMetric(10.0, False), 9.0, False, Tolerance(0.5)) == \
        Verdict("c", "hd95", 10.0, 9.0, -1.0, "0.5", "improved", "")


def test_compare_metric_edges_of_the_tolerance():
    # absolute 0.01 at a baseline of 0.8: exactly 0.01 down is ok; 0.0101 is not; 0.0101 up improves
    t = Tolerance(0.01)
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.79, True, t).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.7899, True, t).verdict == "regressed"
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.81, True, t).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.8101, True, t).verdict == "improved"
    # exactly at the slack (baseline 0, tolerance 0, slack 1e-9, all exact in binary): still ok
    assert _compare_metric("c", "a", BaselineMetric(0.0), -1e-9, True, Tolerance(0)).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(0.0), 1e-9, True, Tolerance(0)).verdict == "ok"
    # lower is better: a rise is the bad direction
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.8101, False, t).verdict == "regressed"
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.7899, False, t).verdict == "improved"
    # a relative tolerance of a negative baseline is positive (abs): 10% of -2 allows 0.2
    assert _compare_metric("c", "a", BaselineMetric(-2.0), -2.19, True, Tolerance(10, True)).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(-2.0), -2.21, True, Tolerance(10, True)).verdict \
        == "regressed"
    # the slack of 1e-9 scales with a large baseline (1e6: 1e-3), never below 1e-9 for a small one
    # (at 1e-3: a drop of 0.5e-9 passes, 1.5e-9 fails)
    assert _compare_metric("c", "a", BaselineMetric(1e6), 1e6 - 0.0005, True, Tolerance(0)).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(1e6), 1e6 - 0.002, True, Tolerance(0)).verdict \
        == "regressed"
    assert _compare_metric("c", "a", BaselineMetric(1e-3), 1e-3 - 5e-10, True, Tolerance(0)).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(1e-3), 1e-3 - 1.5e-9, True, Tolerance(0)).verdict \
        == "regressed"


def test_compare_metric_asks_the_paired_test_only_for_a_drop_beyond_the_tolerance():
    asked = []

    def test():
        asked.append(1)
        return SimpleNamespace(ci_low=-0.2, ci_high=-0.1, p_value=0.001, n_items=9, n_groups=3, resamples=10)

    t = Tolerance(0.01)
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.79, True, t, test).verdict == "ok"
    assert _compare_metric("c", "a", BaselineMetric(0.8), 0.9, True, t, test).verdict == "improved"
    assert asked == []
    v = _compare_metric("c", "a", BaselineMetric(0.8), 0.6, True, t, test)
    assert asked == [1] and v.verdict == "regressed"
    assert v.note == "95% CI [-0.2000, -0.1000], p=0.001; paired on 9 items / 3 patients, B=10"


def test_compare_every_branch_field_by_field():
    base = base_of({"kept": ("h1", {"auroc": (0.8, True), "gone": (0.5, True), "flip": (0.5, True)}),
                    "moved": ("h2" * 10, {"auroc": (0.9, True), "old": (0.3, True)}),
                    "empty": ("h3", {})})
    records = [
        record("new", "h9", dice=(0.7, True), auroc=(float("nan"), True)),
        record("kept", "h1", auroc=(0.7, True), flip=(0.5, False), fresh=(0.4, True)),
        record("moved", "h5" * 10, auroc=(0.6, True), extra=(0.2, True)),
        record("empty", "h4"),
    ]
    tol = {"auroc": Tolerance(0.05), "*": Tolerance(3.0, True)}
    got = compare(records, base, tol)
    assert got == [
        Verdict("empty", "(all)", None, None, None, "-", "not comparable", "config hash h3 -> h4"),
        Verdict("kept", "auroc", 0.8, 0.7, pytest.approx(-0.1), "0.05", "regressed", ""),
        Verdict("kept", "flip", 0.5, 0.5, None, "3%", "not comparable", "higher_is_better changed"),
        Verdict("kept", "fresh", None, 0.4, None, "3%", "new", "metric not in baseline"),
        Verdict("kept", "gone", 0.5, None, None, "3%", "missing", "metric no longer recorded"),
        Verdict("moved", "auroc", 0.9, 0.6, pytest.approx(-0.3), "-", "not comparable",
                "config hash h2h2h2h2h2h2 -> h5h5h5h5h5h5"),
        Verdict("moved", "extra", None, 0.2, None, "-", "not comparable",
                "config hash h2h2h2h2h2h2 -> h5h5h5h5h5h5"),
        Verdict("moved", "old", 0.3, None, None, "-", "not comparable",
                "config hash h2h2h2h2h2h2 -> h5h5h5h5h5h5"),
        Verdict("new", "auroc", None, None, None, "0.05", "new", "cell not in baseline"),
        Verdict("new", "dice", None, 0.7, None, "3%", "new", "cell not in baseline"),   # user "*" beats the default
    ]
    assert has_regressions(got) and not has_regressions(got[2:4])
    # an empty config hash shows as "-"
    (v,) = compare([record("empty", "")], base, {})
    assert v.note == "config hash h3 -> -"
    (v,) = compare([record("x", "h")], base_of({"x": ("", {})}), {})
    assert v.note == "config hash - -> h"


def test_compare_noise_aware_passes_record_and_metric_to_the_paired_test():
    base = base_of({"c": ("h", {"auroc": (0.8, True), "dice": (0.8, True)})})
    rec = record("c", "h", auroc=(0.5, True), dice=(0.5, True))
    calls = []

    def paired(r, name):
        calls.append((r.cell_id, name))
        return SimpleNamespace(ci_low=-0.4, ci_high=0.1, p_value=0.3, n_items=5, n_groups=5, resamples=7)

    got = compare([rec], base, {}, noise_aware=True, paired=paired)
    assert calls == [("c", "auroc"), ("c", "dice")]
    assert [(v.metric, v.verdict) for v in got] == [("auroc", "ok"), ("dice", "ok")]
    assert got[0].note.startswith("drop not significant: 95% CI [-0.4000, +0.1000], p=0.3; ")
    got = compare([rec], base, {}, noise_aware=True)              # no paired function: tolerance only
    assert [(v.verdict, v.note) for v in got] == [("regressed", "no paired predictions: tolerance only")] * 2
    got = compare([rec], base, {})                                 # not noise-aware: never asked
    assert [(v.verdict, v.note) for v in got] == [("regressed", "")] * 2


def test_a_new_cell_sorted_first_does_not_end_the_comparison():
    base = base_of({"b": ("h", {"auroc": (0.8, True)})})
    got = compare([record("b", "h", auroc=(0.5, True)), record("a", "h", auroc=(0.9, True))], base, {})
    assert [(v.cell_id, v.verdict) for v in got] == [("a", "new"), ("b", "regressed")]
