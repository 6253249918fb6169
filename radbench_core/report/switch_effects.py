"""What the study's choices did: a run with every switch at the study's value against a run of the
same cells with every switch at ours, one table per switch family.

Why from two runs: a switch changes how a cell is computed, so its effect is the difference between
the same cell computed both ways. A cell belongs to a family when a switch of that family has
different values in the two records (``CellResult.switches``), so a family's table covers exactly
the cells it touches; a cell touched by several families counts in each (the ``alone`` column
counts the cells no other family touched, where the difference is that family's alone).

Per cell: the headline metric's difference sound - study and, where both runs saved predictions on
the same test items, the paired bootstrap over test patients (eval/paired.py); a switch that
changes the test set (a split rule, Table 8's cap) leaves that cell without a paired test, said so.
Per family: cells, mean difference, cells up / down, cells whose paired p < 0.05, and the same after
Holm over the family's cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from radbench_core.config.switches import SWITCHES
from radbench_core.core.errors import ConfigError
from radbench_core.core.results import CellResult, RunStore
from radbench_core.eval.multiple import holm
from radbench_core.eval.paired import paired_bootstrap
from radbench_core.eval.predictions import find_predictions, load_predictions

ALPHA = 0.05
HEADLINE = {"classification": "auroc", "segmentation": "dice_jaccard"}


@dataclass(frozen=True)
class CellEffect:
    cell_id: str
    metric: str
    study: float
    sound: float
    families: tuple[str, ...]          # families whose switches differ between the two records
    switches: tuple[str, ...] = ()     # those switch ids
    p_value: float = math.nan          # paired bootstrap (patients), NaN when not testable
    note: str = ""                     # why there is no paired test

    @property
    def diff(self) -> float:
        return self.sound - self.study


@dataclass(frozen=True)
class FamilyEffect:
    family: str
    switches: tuple[str, ...]          # the switch ids that differ on at least one of its cells
    cells: int
    mean_diff: float
    up: int
    down: int
    alone: int
    tested: int
    significant: int                   # paired p < ALPHA
    significant_holm: int              # after Holm over the family's tested cells
    metric: str                        # the headline metric of these cells


def _family_of() -> dict[str, str]:
    return {s.id: s.family for s in SWITCHES}


def differing_switches(study: CellResult, sound: CellResult) -> list[str]:
    """Switch ids whose value differs between the two records of one cell."""
    ids = set(study.switches) | set(sound.switches)
    return sorted(i for i in ids if study.switches.get(i) != sound.switches.get(i))


def _headline(rec: CellResult) -> tuple[str, float] | None:
    name = HEADLINE.get(rec.task)
    metric = rec.metrics.get(name) if name else None
    if metric is None or metric.value is None or not math.isfinite(metric.value):
        return None
    return name, float(metric.value)


def _paired_p(study: CellResult, sound: CellResult, roots: tuple[Path, Path], metric: str,
              resamples: int, seed: int) -> tuple[float, str]:
    paths = [find_predictions(r.extra, [root]) for r, root in ((study, roots[0]), (sound, roots[1]))]
    if None in paths:
        return math.nan, "no saved predictions"
    try:
        result = paired_bootstrap(load_predictions(paths[1]), load_predictions(paths[0]), metric,
                                  resamples=resamples, seed=seed)
    except ConfigError as exc:                 # different test sets (a split or cap switch)
        return math.nan, str(exc.problem or exc)
    return result.p_value, ""


def cell_effects(study_dir: str | Path, sound_dir: str | Path, *, resamples: int = 1000,
                 seed: int = 0) -> list[CellEffect]:
    """Every cell recorded in both runs whose switches differ, with its difference and paired p."""
    study_dir, sound_dir = Path(study_dir), Path(sound_dir)
    study = {r.cell_id: r for r in RunStore(study_dir).load_cells()}
    sound = {r.cell_id: r for r in RunStore(sound_dir).load_cells()}
    if not study or not sound:
        empty = study_dir if not study else sound_dir
        raise ConfigError(empty, "holds no cell records (cells/*.json)",
                          "pass two finished run folders, e.g. reports/runs/<id>")
    families = _family_of()
    out = []
    for cell_id in sorted(set(study) & set(sound)):
        a, b = study[cell_id], sound[cell_id]
        differ = differing_switches(a, b)
        ha, hb = _headline(a), _headline(b)
        if not differ or ha is None or hb is None:
            continue
        p, note = _paired_p(a, b, (study_dir, sound_dir), ha[0], resamples, seed)
        fams = tuple(sorted({families.get(i, "other") for i in differ}))
        out.append(CellEffect(cell_id, ha[0], ha[1], hb[1], fams, tuple(differ), p, note))
    return out


def family_effects(cells: Sequence[CellEffect]) -> list[FamilyEffect]:
    """One summary per (family, headline metric) over the cells it touches (families in switch-table
    order): AUROC and Dice differences are never averaged together."""
    order = list(dict.fromkeys(s.family for s in SWITCHES))
    families = _family_of()
    out = []
    for family in order + sorted({f for c in cells for f in c.families} - set(order)):
        for metric in sorted({c.metric for c in cells if family in c.families}):
            mine = [c for c in cells if family in c.families and c.metric == metric]
            diffs = np.asarray([c.diff for c in mine])
            ps = [c.p_value for c in mine]
            tested = [p for p in ps if math.isfinite(p)]
            adjusted = [p for p in holm(ps) if math.isfinite(p)]
            ids = sorted({i for c in mine for i in c.switches if families.get(i, "other") == family})
            out.append(FamilyEffect(
                family, tuple(ids), len(mine), float(diffs.mean()), int((diffs > 0).sum()),
                int((diffs < 0).sum()), sum(len(c.families) == 1 for c in mine), len(tested),
                sum(p < ALPHA for p in tested), sum(p < ALPHA for p in adjusted), metric))
    return out


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.4f}"


def switch_effects_markdown(study_dir: str | Path, sound_dir: str | Path, *, resamples: int = 1000,
                            seed: int = 0) -> str:
    """The report section: a summary row per family, then each family's cells."""
    cells = cell_effects(study_dir, sound_dir, resamples=resamples, seed=seed)
    if not cells:
        raise ConfigError(f"{study_dir} vs {sound_dir}", "no cell of both runs has a switch with "
                          "different values", "run the same cells with --radbench-switches study "
                          "and with --radbench-switches sound")
    fams = family_effects(cells)
    lines = [f"## What the study's choices did (sound - study, {Path(sound_dir).name} vs "
             f"{Path(study_dir).name})", "",
             f"Paired test: bootstrap over test patients ({resamples} draws), p < {ALPHA}; Holm over "
             "each family's cells. A cell touched by several families counts in each; `alone` counts "
             "those touched by that family only.", "",
             "| family | switches | cells | mean difference | up / down | alone | paired p < 0.05 "
             "(Holm) of tested |", "|---|---|---|---|---|---|---|"]
    for f in fams:
        lines.append(f"| {f.family} | {', '.join(f'`{s}`' for s in f.switches)} | {f.cells} | "
                     f"{_fmt(f.mean_diff)} {f.metric} | {f.up} / {f.down} | {f.alone} | "
                     f"{f.significant} ({f.significant_holm}) of {f.tested} |")
    for f in fams:
        lines += ["", f"### {f.family} ({f.metric})", "", "| cell | study | sound | difference | paired p |",
                  "|---|---|---|---|---|"]
        for c in cells:
            if f.family in c.families and c.metric == f.metric:
                p = f"{c.p_value:.3g}" if math.isfinite(c.p_value) else f"n/a ({c.note})"
                lines.append(f"| {c.cell_id} | {c.study:.4f} | {c.sound:.4f} | {_fmt(c.diff)} | {p} |")
    return "\n".join(lines) + "\n"


__all__ = ["CellEffect", "FamilyEffect", "cell_effects", "family_effects", "switch_effects_markdown"]
