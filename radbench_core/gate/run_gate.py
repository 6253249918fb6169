"""One gate, one set of rules, for ``pytest --radbench-baseline`` and ``radbench compare``.

Both front ends parse the tolerances with :func:`parse_tolerances` and call :func:`gate`, so a bad
tolerance, a run that compared nothing, or baseline cells that did not run get the same verdict on
either path (tests/test_gate_paths.py feeds both the same table of bad inputs).

Rules: a regressed or missing metric fails; nothing compared fails unless allowed; a baseline cell
that did not run is listed ("not run") and fails unless the run was narrowed on purpose (-k, -m,
node ids, a shard) or the user allowed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from radbench_core.core.results import CellResult
from radbench_core.gate.baseline import Baseline, load_baseline, write_obtained
from radbench_core.gate.compare import (ALL_METRICS, Tolerance, Verdict, check_tolerance_names,
                                        compare, has_regressions, nothing_compared, parse_tolerances)

NOT_RUN = "not run"


@dataclass(frozen=True)
class GateRules:
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    noise_aware: bool = False
    narrowed: bool = False            # the run selected cells on purpose (-k, -m, node ids, shard)
    allow_missing_cells: bool = False
    allow_nothing: bool = False
    option_names: dict[str, str] = field(default_factory=lambda: {
        "allow_nothing": "--radbench-gate-allow-nothing",
        "allow_missing": "--radbench-gate-allow-missing", "update": "--radbench-update-baseline"})


@dataclass
class GateOutcome:
    verdicts: list[Verdict]
    failure: str | None = None        # one line; None when the gate passed

    @property
    def passed(self) -> bool:
        return self.failure is None


def cells_not_run(records: Sequence[CellResult], baseline: Baseline) -> list[Verdict]:
    """One 'not run' verdict per baseline cell this run has no record of."""
    ran = {r.cell_id for r in records}
    return [Verdict(cell_id, ALL_METRICS, None, None, None, "-", NOT_RUN, "cell in the baseline, not in this run")
            for cell_id in sorted(set(baseline.cells) - ran)]


def gate(records: Sequence[CellResult], baseline: Baseline, rules: GateRules, *,
         paired: Callable[[CellResult, str], object] | None = None) -> GateOutcome:
    """Verdicts and the one-line failure (or None); ``paired`` feeds the noise-aware gate."""
    verdicts = compare(records, baseline, rules.tolerances, noise_aware=rules.noise_aware, paired=paired)
    missing = cells_not_run(records, baseline)
    verdicts = verdicts + missing
    names = rules.option_names
    if has_regressions(verdicts):
        n = sum(v.failed for v in verdicts)
        return GateOutcome(verdicts, f"{n} regressed/missing metric(s) against {baseline.path}")
    if nothing_compared(verdicts) and not rules.allow_nothing:
        return GateOutcome(verdicts, f"no cell could be compared with {baseline.path} (all new or not "
                                     f"comparable); pass {names['allow_nothing']} if that is expected, "
                                     f"or update the baseline with {names['update']}")
    if missing and not (rules.narrowed or rules.allow_missing_cells):
        return GateOutcome(verdicts, f"{len(missing)} cell(s) of {baseline.path} did not run (e.g. "
                                     f"{missing[0].cell_id}); run them, narrow the run on purpose "
                                     f"(-k, shard), or pass {names['allow_missing']}")
    return GateOutcome(verdicts)


def gate_run(records: Sequence[CellResult], baseline_path: str | Path, *, fail: str | None,
             fail_option: str, noise_aware: bool, narrowed: str | None, allow_missing: bool,
             allow_nothing: bool, run_dirs: Sequence[str | Path],
             option_names: dict[str, str]) -> tuple[GateOutcome, Path | None]:
    """What both front ends do: parse, read, gate, and write ``.obtained`` unless all was ok.

    Raises BaselineError (one line) for a bad tolerance or an unreadable baseline: the caller turns
    it into a usage error (pytest) or exit status 2 (``radbench compare``)."""
    from radbench_core.gate.paired_gate import paired_against
    tolerances = parse_tolerances(fail, option=fail_option) if fail is not None else {}
    baseline = load_baseline(baseline_path)
    recorded = {n for c in baseline.cells.values() for n in c.metrics} | {n for r in records for n in r.metrics}
    check_tolerance_names(tolerances, recorded, option=fail_option, source=f"{baseline_path} or the run")
    rules = GateRules(tolerances, noise_aware=noise_aware, narrowed=bool(narrowed),
                      allow_missing_cells=allow_missing, allow_nothing=allow_nothing,
                      option_names=option_names)
    paired = paired_against(baseline, run_dirs) if noise_aware else None
    outcome = gate(records, baseline, rules, paired=paired)
    obtained = None
    if any(v.verdict not in ("ok", NOT_RUN) for v in outcome.verdicts) or not outcome.passed:
        obtained = write_obtained(baseline_path, records)
    return outcome, obtained
