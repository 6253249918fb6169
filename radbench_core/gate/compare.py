"""Regression gating: compare recorded cells with a committed, diffable baseline.

The gate is one-sided: each metric declares ``higher_is_better``, so an improvement never fails and
only a move in the bad direction beyond the tolerance is a regression. Tolerances come from a small
grammar (``"auroc:0.01,dice_jaccard:2%"``, see docs/gating.md) on top of :data:`DEFAULT_TOLERANCES`.
The baseline file itself (format, reading, writing) lives in ``baseline.py``; the rules both front
ends share (nothing compared, cells not run) in ``run_gate.py``; the paired noise test in
``paired_gate.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from radbench_core.gate.baseline import (BASELINE_FORMAT, BASELINE_VERSION, REGEN,  # noqa: F401
                                         Baseline, BaselineCell, BaselineMetric, _cell_entry, _doc,
                                         _number, half_width, load_baseline, obtained_path,
                                         update_baseline, write_obtained)
from radbench_core.core.errors import BaselineError
from radbench_core.core.results import CellResult
from radbench_core.eval.metrics import HIGHER_IS_BETTER

OPTION = "--radbench-fail"
GRAMMAR = "comma-separated metric:ABS or metric:N% (relative to the baseline value), '*' = any metric"
EXAMPLE = '--radbench-fail "auroc:0.01,dice_jaccard:2%,*:1%"'
ALL_METRICS = "(all)"          # the metric column of a per-cell verdict
FAILING = ("regressed", "missing")
_ORDER = {"regressed": 0, "missing": 1, "not run": 2, "not comparable": 3, "new": 4, "improved": 5,
          "ok": 6}
_NAME = re.compile(r"^(\*|[A-Za-z0-9_.\-/@]+)$")
_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?$")


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move in its bad direction: absolute, or percent of the baseline value."""
    amount: float
    relative: bool = False

    def allowed(self, baseline: float) -> float:
        return abs(baseline) * self.amount / 100.0 if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.relative else f"{self.amount:g}"


# Every metric of HIGHER_IS_BETTER that lives in [0, 1], the study's pooled Dice/Jaccard included:
# an absolute tolerance >= 1 on one of them switches its gate off.
BOUNDED_METRICS = frozenset({"auroc", "auroc_val", "accuracy", "dice", "jaccard", "dice_jaccard",
                             "dice_study", "jaccard_study", "dice_jaccard_study"})

# The study compares models whose scores differ by a few points, so one point (0.01 absolute) of a
# [0, 1] metric flags a real drop while absorbing seed/hardware noise. Any other metric has an
# unknown scale, so it gets 1% of its own baseline value.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    **{name: Tolerance(0.01) for name in sorted(BOUNDED_METRICS)}, "*": Tolerance(1.0, relative=True),
}


def parse_tolerances(expr: str, *, option: str = OPTION) -> dict[str, Tolerance]:
    """Parse the --radbench-fail grammar so a typo fails at argument parsing, not after a long run."""
    def bad(piece: str, problem: str) -> BaselineError:
        example = EXAMPLE.replace(OPTION, option)
        return BaselineError(option, f"{problem} in {piece!r}; expected {GRAMMAR}", f"write e.g. {example}")

    if not expr or not expr.strip():
        raise bad(expr, "empty tolerance expression")
    out: dict[str, Tolerance] = {}
    for raw in expr.split(","):
        piece = raw.strip()
        if not piece:
            raise bad(expr, "an empty entry (doubled or trailing comma)")
        if ":" not in piece:
            raise bad(piece, "missing ':' between metric and tolerance")
        name, _, amount = (s.strip() for s in piece.partition(":"))
        if not name:
            raise bad(piece, "empty metric name")
        if not _NAME.match(name):
            raise bad(piece, f"metric name {name!r} is not '*' nor made of letters, digits, _.-/@")
        relative = amount.endswith("%")
        number = amount[:-1].strip() if relative else amount
        if number.startswith("-"):
            raise bad(piece, "a negative tolerance")
        if not _NUMBER.match(number):
            raise bad(piece, f"{amount!r} is not a non-negative number or percentage")
        if name in out:
            raise bad(piece, f"metric {name!r} given twice")
        value = float(number)
        if not math.isfinite(value):
            raise bad(piece, f"the tolerance {amount!r} is not finite")
        if relative and value >= 100:
            raise bad(piece, f"a tolerance of {value:g}% lets any drop pass (the gate would be off)")
        if not relative and name in BOUNDED_METRICS | {"*"} and value >= 1:
            raise bad(piece, f"an absolute tolerance of {value:g} on a metric in [0, 1] lets any drop "
                             "pass (the gate would be off); use a percentage for other scales")
        out[name] = Tolerance(value, relative)
    return out


def check_tolerance_names(tolerances: dict[str, Tolerance], known: set[str], *,
                          option: str = OPTION, source: str = "the baseline") -> None:
    """A tolerance for a metric that radbench does not define and no cell records is a typo that
    silently gates nothing (``aurco:0.01``)."""
    unknown = sorted(n for n in tolerances if n != "*" and n not in known and n not in HIGHER_IS_BETTER)
    if unknown:
        raise BaselineError(option, f"no cell in {source} records metric(s) {unknown} (metrics there: "
                                    f"{sorted(known) or 'none'})",
                            "use the metric names of the records (e.g. auroc, dice, jaccard), or '*'")


def nothing_compared(verdicts: Sequence[Verdict]) -> bool:
    """True when no metric was actually compared (all 'new' or 'not comparable', or no verdict)."""
    return not any(v.verdict in ("ok", "improved", "regressed", "missing") for v in verdicts)


def tolerance_for(metric: str, tolerances: dict[str, Tolerance]) -> Tolerance:
    """User's exact metric, then user's '*', then the default for the metric, then the default '*'."""
    for table in (tolerances, DEFAULT_TOLERANCES):
        for key in (metric, "*"):
            if key in table:
                return table[key]
    raise AssertionError("DEFAULT_TOLERANCES has a '*' entry")  # pragma: no cover


@dataclass
class Verdict:
    cell_id: str
    metric: str
    baseline: float | None
    now: float | None
    delta: float | None
    tolerance: str
    verdict: str        # "ok" | "improved" | "regressed" | "new" | "not comparable" | "missing"
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING


def _compare_metric(cell_id: str, name: str, base: BaselineMetric, now: float | None,
                    hib: bool, tol: Tolerance, paired_test=None) -> Verdict:
    """One metric's verdict. ``paired_test()`` (noise-aware gate only) returns the paired test of
    now - baseline on the same test items, or None when either side saved no predictions."""
    if base.value is None:       # baseline undefined (e.g. AUROC with one class): nothing to lose
        verdict = "ok" if now is None else "improved"
        return Verdict(cell_id, name, None, now, None, str(tol), verdict, "baseline value undefined")
    if now is None:
        return Verdict(cell_id, name, base.value, None, None, str(tol), "regressed",
                       "value is NaN/undefined now")
    delta = now - base.value
    worse = -delta if hib else delta
    allowed = tol.allowed(base.value)                # a relative tolerance is of the BASELINE value
    eps = 1e-9 * max(1.0, abs(base.value))          # a drop of exactly the tolerance passes
    note = ""
    if worse > allowed + eps:
        verdict = "regressed"
        if paired_test is not None:
            verdict, note = noise_verdict(paired_test(), hib)
    elif -worse > allowed + eps:
        verdict = "improved"
    else:
        verdict = "ok"
    return Verdict(cell_id, name, base.value, now, delta, str(tol), verdict, note)


def noise_verdict(test, hib: bool) -> tuple[str, str]:
    """A drop beyond the tolerance stays a regression unless the paired test on the same items
    cannot tell it from no change (its 95% CI of now - baseline reaches 0); no test: tolerance only."""
    if test is None:
        return "regressed", "no paired predictions: tolerance only"
    counts = f"paired on {test.n_items} items / {test.n_groups} patients, B={test.resamples}"
    ci = f"95% CI [{test.ci_low:+.4f}, {test.ci_high:+.4f}], p={test.p_value:.3g}"
    significant = (test.ci_high < 0) if hib else (test.ci_low > 0)
    if significant:
        return "regressed", f"{ci}; {counts}"
    return "ok", f"drop not significant: {ci}; {counts}"


def compare(records: Sequence[CellResult], baseline: Baseline,
            tolerances: dict[str, Tolerance], *, noise_aware: bool = False,
            paired=None) -> list[Verdict]:
    """One verdict per (cell, metric); a changed config is one 'not comparable' verdict per cell.

    ``noise_aware`` (opt-in): a drop beyond the tolerance fails only when the paired test of
    now - baseline on the same test items, ``paired(record, metric)``, finds it (:func:`noise_verdict`).
    """
    out: list[Verdict] = []
    for rec in sorted(records, key=lambda r: r.cell_id):
        base = baseline.cells.get(rec.cell_id)
        if base is None:
            for name in sorted(rec.metrics):
                m = rec.metrics[name]
                out.append(Verdict(rec.cell_id, name, None, _number(m.value), None,
                                   str(tolerance_for(name, tolerances)), "new", "cell not in baseline"))
            continue
        if base.config_hash != rec.config_hash:
            was, now = base.config_hash[:12] or "-", rec.config_hash[:12] or "-"
            names = sorted(set(base.metrics) | set(rec.metrics))
            for name in names or [ALL_METRICS]:     # both values shown, never compared
                b, m = base.metrics.get(name), rec.metrics.get(name)
                bv, nv = (b.value if b else None), (_number(m.value) if m else None)
                out.append(Verdict(rec.cell_id, name, bv, nv,
                                   None if bv is None or nv is None else nv - bv, "-", "not comparable",
                                   f"config hash {was} -> {now}"))
            continue
        for name in sorted(set(base.metrics) | set(rec.metrics)):
            tol = tolerance_for(name, tolerances)
            b, m = base.metrics.get(name), rec.metrics.get(name)
            if b is None:
                out.append(Verdict(rec.cell_id, name, None, _number(m.value), None, str(tol), "new",
                                   "metric not in baseline"))
            elif m is None:
                out.append(Verdict(rec.cell_id, name, b.value, None, None, str(tol), "missing",
                                   "metric no longer recorded"))
            elif m.higher_is_better != b.higher_is_better:
                out.append(Verdict(rec.cell_id, name, b.value, _number(m.value), None, str(tol),
                                   "not comparable", "higher_is_better changed"))
            else:
                test = ((lambda r=rec, n=name: paired(r, n)) if noise_aware and paired is not None
                        else (lambda: None) if noise_aware else None)
                out.append(_compare_metric(rec.cell_id, name, b, _number(m.value), b.higher_is_better,
                                           tol, test))
    return out


def has_regressions(verdicts: Sequence[Verdict]) -> bool:
    """True when the gate must fail: a regressed or a missing metric."""
    return any(v.failed for v in verdicts)


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def render_verdicts(verdicts: Sequence[Verdict], failure: str | None = None) -> str:
    """A fixed-width table, regressions first, then a one-line tally; readable in a CI log."""
    header = ("cell", "metric", "baseline", "now", "Δ", "tol", "verdict")
    ordered = sorted(verdicts, key=lambda v: (_ORDER.get(v.verdict, 9), v.cell_id, v.metric))
    rows = [(v.cell_id, v.metric, _fmt(v.baseline), _fmt(v.now), _fmt(v.delta, True), v.tolerance,
             v.verdict + (f" ({v.note})" if v.note and v.verdict != "new" else "")) for v in ordered]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    tally: dict[str, int] = {}
    for v in ordered:
        tally[v.verdict] = tally.get(v.verdict, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(tally.items(), key=lambda kv: _ORDER.get(kv[0], 9)))
    if has_regressions(verdicts) or failure:
        outcome = " -> FAILED" + (f": {failure}" if failure else "")
    elif nothing_compared(verdicts):
        outcome = " -> nothing compared"
    else:
        outcome = " -> passed"
    lines.append(f"radbench gate: {summary or 'no cells compared'}{outcome}")
    return "\n".join(lines) + "\n"
