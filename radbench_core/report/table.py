"""What a report table is: columns, entries and how one entry is printed and ranked.

The data model shared by ``tables.py`` (which fills tables from records and the study's layouts),
``render.py`` (Markdown, CSV, LaTeX) and ``marks.py`` (the significance marks), so that none of
those three imports another to know what a table is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ABSENT = "—"
FALLBACK = "†"
TIED_MARK = "≈"                          # not significantly different from the column's best
SIGNIFICANCE_ALPHA = 0.05
# Said once per caption; each format names its own second-best style (render.py swaps the phrase).
MARKS_NOTE = "Best per column in bold, second best underlined."


@dataclass(frozen=True)
class Column:
    group: str                           # upper header ("NIH Chest X-ray"), "" for one level
    label: str
    kind: str = "metric"                 # "metric" | "params" (trainable and share) | "millions"
    #                                      | "text" (the entry's ``shown`` text as is, never ranked)

    @property
    def title(self) -> str:
        return f"{self.group} / {self.label}" if self.group else self.label


@dataclass(frozen=True)
class Entry:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    higher_is_better: bool = True
    published: float | None = None       # the study's value of this cell (never for its own records)
    note: str = ""                       # FALLBACK: our headline stands in for the study's metric
    total: float | None = None           # "params" columns: the total the share is taken of
    cell_id: str = ""                    # the run cell shown (paired significance)
    metric: str = ""                     # the metric shown (auroc, dice_jaccard_study, ...)
    shown: str = ""                      # "text" columns: the entry as printed; a "params"/"millions"
    #                                      entry with it is the study's printed count (value NaN)

    @property
    def inside_ci(self) -> bool | None:
        if self.published is None or not (_finite(self.ci_low) and _finite(self.ci_high)):
            return None
        return self.ci_low <= self.published <= self.ci_high


@dataclass
class Table:
    key: str                             # file stem, e.g. "table3_linear_probing"
    number: int
    caption: str
    row_header: tuple[str, ...]          # the label columns ("Method", "Architecture")
    rows: list[tuple[str, ...]]
    columns: list[Column]
    entries: dict[tuple[int, int], Entry] = field(default_factory=dict)
    extended: bool = False
    missing: int = 0                     # study entries this run lacks
    # (r, c) -> Holm-adjusted p of the entry vs its column's best (radbench_core.report.marks)
    vs_best: dict[tuple[int, int], float] = field(default_factory=dict)
    title: str = ""                      # heading of a table that is none of the study's (clinical)

    @property
    def heading(self) -> str:
        """"Table 4" for the study's tables and their companions; "Other cells" for the rest."""
        return self.title or (f"Table {self.number}" if self.number else "Other cells")

    def tied_with_best(self, r: int, c: int) -> bool:
        """Not significantly different from the column's best (TIED_MARK); False when untested."""
        p = self.vs_best.get((r, c))
        return p is not None and math.isfinite(p) and p >= SIGNIFICANCE_ALPHA

    def text(self, r: int, c: int, ci: bool = False, compare: bool = True) -> str:
        """One entry as printed: metric to 3 decimals (CI, published comparison), params as the study."""
        entry = self.entries.get((r, c))
        if entry is None:
            return ABSENT
        kind = self.columns[c].kind
        if kind == "text" or (entry.shown and kind != "metric"):   # a count as the study printed it
            return entry.shown or ABSENT
        if kind == "params":
            share = f" ({_percent(100.0 * entry.value / entry.total)})" if entry.total else ""
            return format_count(entry.value) + share
        if kind == "millions":
            return format_count(entry.value)
        out = f"{entry.value:.3f}{entry.note}{TIED_MARK if self.tied_with_best(r, c) else ''}"
        if ci and self.interval(r, c):
            out += f" {self.interval(r, c)}"
        if compare and entry.published is not None:
            where = {True: "in CI", False: "outside CI", None: "no CI"}[entry.inside_ci]
            out += f" (study {entry.published:.3f}, Δ {entry.value - entry.published:+.3f}, {where})"
        return out

    def interval(self, r: int, c: int) -> str:
        """A metric entry's 95% CI as "[low, high]"; "" when it has none (never a made-up interval)."""
        entry = self.entries.get((r, c))
        if entry is None or self.columns[c].kind != "metric" or not (
                _finite(entry.ci_low) and _finite(entry.ci_high)):
            return ""
        return f"[{entry.ci_low:.3f}, {entry.ci_high:.3f}]"

    def ranked_rows(self, c: int) -> tuple[set[int], set[int]]:
        """(best, second best) rows of a metric column; ties at 3 decimals share the mark."""
        if self.columns[c].kind != "metric":
            return set(), set()
        found = {r: e for (r, cc), e in self.entries.items() if cc == c}
        if not found:
            return set(), set()
        sign = 1 if next(iter(found.values())).higher_is_better else -1
        values = {r: sign * round(e.value, 3) for r, e in found.items()}
        distinct = sorted(set(values.values()), reverse=True)
        best = {r for r, v in values.items() if v == distinct[0]}
        second = {r for r, v in values.items() if len(distinct) > 1 and v == distinct[1]}
        return best, second

    def best_rows(self, c: int) -> set[int]:
        return self.ranked_rows(c)[0]

    def label(self, r: int) -> str:
        """A row's label columns as one string (subscripts as ``@size``)."""
        return " ".join(p for p in self.rows[r] if p).replace("_{", " @").replace("}", "")


def format_count(n: float) -> str:
    """Parameter counts as the study prints them: 1,138M, 31M, 0.8M, 1,537."""
    m = n / 1e6
    if m >= 10:
        return f"{m:,.0f}M"
    if m >= 0.1:
        return f"{m:.1f}M".replace(".0M", "M")
    return f"{n:,.0f}"


def _percent(p: float) -> str:
    return f"{p:.0f}%" if p >= 1 else f"{p:.1g}%" if p >= 0.01 else f"{p:.2g}%"


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
