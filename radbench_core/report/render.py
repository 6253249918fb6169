"""A Table as Markdown, CSV and LaTeX, in the study's print style.

Why separate from ``tables.py``: what goes in a table (the study's layout) and how it is printed
change for different reasons. The first label column (the study's "Method") is printed once per
run of equal values, as the study groups its rows; ``_{448}`` in a label is a subscript.
"""

from __future__ import annotations

import csv
import io
import re
from radbench_core.report.table import Table

SUBSCRIPT = re.compile(r"_\{([^}]*)\}")
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "≈": r"$\approx$"}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters so labels like ``ViT-L/16 (IN21k)`` or ``50%`` compile."""
    return "".join(_TEX.get(ch, ch) for ch in text)


def column_spans(groups: list[str]) -> list[tuple[str, int, int]]:
    """Consecutive equal group names as (name, start, end) column spans."""
    out: list[tuple[str, int, int]] = []
    for i, g in enumerate(groups):
        if out and out[-1][0] == g:
            out[-1] = (g, out[-1][1], i + 1)
        else:
            out.append((g, i, i + 1))
    return out


def grouped_labels(table: Table) -> list[tuple[str, ...]]:
    """Row labels with the first column blank where it repeats the row above (the study's grouping)."""
    out = []
    for r, labels in enumerate(table.rows):
        same = r > 0 and len(labels) > 1 and labels[0] == table.rows[r - 1][0]
        out.append(("",) + tuple(labels[1:]) if same else tuple(labels))
    return out


def plain_label(text: str) -> str:
    return SUBSCRIPT.sub(r" (\1)", text)


def _mark(table: Table, r: int, c: int, text: str, best: str, second: str) -> str:
    top, runner_up = table.ranked_rows(c)
    return best.format(text) if r in top else second.format(text) if r in runner_up else text


def to_markdown(table: Table, ci: bool = False) -> str:
    """GitHub Markdown with a bold caption line; best **x**, second best _x_."""
    def esc(s: str) -> str:
        return SUBSCRIPT.sub(r"<sub>\1</sub>", s.replace("|", "\\|"))
    head = [*table.row_header, *(c.title for c in table.columns)]
    lines = [f"**{table.heading}.** {esc(table.caption)}", "",
             "| " + " | ".join(esc(h) for h in head) + " |",
             "|" + "---|" * len(table.row_header) + "---:|" * len(table.columns)]
    for r, labels in enumerate(grouped_labels(table)):
        cells = [_mark(table, r, c, esc(table.text(r, c, ci)), "**{}**", "_{}_")
                 for c in range(len(table.columns))]
        lines.append("| " + " | ".join([*(esc(x) for x in labels), *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with every value, its 95% CI and the published comparison; caption as a ``#`` line."""
    buf = io.StringIO()
    buf.write(f"# {table.heading}. {table.caption}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*table.row_header, *(c.title for c in table.columns)])
    for r, labels in enumerate(table.rows):
        writer.writerow([*(plain_label(x) for x in labels),
                         *(table.text(r, c, ci=True) for c in range(len(table.columns)))])
    return buf.getvalue()


def _tex_label(text: str) -> str:
    parts = SUBSCRIPT.split(text)          # even: text, odd: subscript
    return "".join(tex_escape(p) if i % 2 == 0 else f"$_{{{tex_escape(p)}}}$"
                   for i, p in enumerate(parts))


def to_latex(table: Table, ci: bool = False) -> str:
    """A booktabs table; column groups become \\multicolumn headers; best \\textbf, second \\underline."""
    n, k = len(table.columns), len(table.row_header)
    lines = [r"\begin{table}[t]", r"\centering",
             rf"\caption{{{table.heading}. {tex_escape(plain_label(table.caption))}}}",
             rf"\label{{tab:{table.key}}}", r"\begin{tabular}{" + "l" * k + "c" * n + "}", r"\toprule"]
    groups = column_spans([c.group for c in table.columns])
    if any(g for g, _, _ in groups):
        lines.append(" & ".join([""] * k + [rf"\multicolumn{{{b - a}}}{{c}}{{{tex_escape(g)}}}"
                                            for g, a, b in groups]) + r" \\")
        lines.append(" ".join(rf"\cmidrule(lr){{{a + k + 1}-{b + k}}}" for g, a, b in groups if g))
    lines.append(" & ".join(tex_escape(h) for h in [*table.row_header,
                                                    *(c.label for c in table.columns)]) + r" \\")
    lines.append(r"\midrule")
    for r, labels in enumerate(grouped_labels(table)):
        cells = [_mark(table, r, c, tex_escape(table.text(r, c, ci)), r"\textbf{{{}}}",
                       r"\underline{{{}}}") for c in range(n)]
        lines.append(" & ".join([*(_tex_label(x) for x in labels), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
