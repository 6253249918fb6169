"""gate/compare.py: the cases mutation testing found unchecked (issue 21, docs/testing.md).

Each test pins a value by hand: which verdicts count as "compared", the paired noise verdict at the
edges of its CI, the rendered table cell by cell, and the messages of the tolerance grammar.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from radbench_core.gate.compare import Verdict, _fmt, noise_verdict, nothing_compared, render_verdicts


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
