"""The run-vs-study comparison as a companion table, one row per entry the study published.

Why a companion and not inside every entry: a paper's results table holds one number per entry
(optionally its CI); "(study 0.763, Δ +0.037, outside CI)" in each of 40 entries makes it unreadable
and too wide for a page. The companion keeps the whole comparison (ours, our 95% CI, the study's
value, the difference, whether the study's value lies inside our CI) in a form one can also cite.
"""

from __future__ import annotations

from radbench_core.report.table import Column, Entry, Table

VS_STUDY = "_vs_study"                  # file-stem suffix of a table's comparison companion
COLUMNS = (("Ours", "ours"), ("Our 95% CI", "ci"), ("Study", "study"), ("Δ (ours − study)", "delta"),
           ("Study in our CI", "inside"))
_INSIDE = {True: "yes", False: "no", None: "no CI"}


def comparison_table(table: Table) -> Table | None:
    """The entries of ``table`` the study published, next to the study's values; None if none."""
    published = sorted((rc for rc, e in table.entries.items() if e.published is not None))
    if not published:
        return None
    out = Table(f"{table.key}{VS_STUDY}", table.number,
                f"Run vs study for {_name(table)}: each entry the study published, our value and 95% "
                "bootstrap CI, the study's value, the difference, and whether the study's value lies "
                "inside our CI.",
                (*table.row_header, "Column"), [], [Column("", title, "text") for title, _ in COLUMNS],
                extended=True)
    for r, c in published:
        entry = table.entries[(r, c)]
        texts = {"ours": table.text(r, c, compare=False), "ci": table.interval(r, c),
                 "study": f"{entry.published:.3f}", "delta": f"{entry.value - entry.published:+.3f}",
                 "inside": _INSIDE[entry.inside_ci]}
        out.rows.append((*table.rows[r], table.columns[c].title))
        for k, (_, name) in enumerate(COLUMNS):
            out.entries[(len(out.rows) - 1, k)] = Entry(float("nan"), shown=texts[name],
                                                        cell_id=entry.cell_id if k == 0 else "")
    return out


def with_comparisons(tables: dict[str, Table]) -> dict[str, Table]:
    """``tables`` with each table's comparison companion right after it (where it has one)."""
    out: dict[str, Table] = {}
    for key, table in tables.items():
        out[key] = table
        companion = comparison_table(table)
        if companion is not None:
            out[companion.key] = companion
    return out


def _name(table: Table) -> str:
    if table.extended and table.number:
        return f"the extended Table {table.number}"
    return f"Table {table.number}" if table.number else "the other cells"
