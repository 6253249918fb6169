"""A Table as Markdown, CSV and LaTeX, in the study's print style.

Why separate from ``tables.py``: what goes in a table (the study's layout) and how it is printed
change for different reasons. The first label column (the study's "Method") is printed once per
run of equal values, as the study groups its rows; ``_{448}`` in a label is a subscript.
The LaTeX compiles with pdflatex (plain ASCII out, booktabs, adjustbox shrinks a table wider than
the text to fit); every format prints one value per entry, its 95% CI on request, and leaves the
comparison with the study to the companion table (``comparison.py``).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata

from radbench_core.report.table import MARKS_NOTE, Table

SUBSCRIPT = re.compile(r"_\{([^}]*)\}")
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
        "≈": r"$\approx$", "Δ": r"$\Delta$", "α": r"$\alpha$", "β": r"$\beta$", "μ": r"$\mu$",
        "µ": r"$\mu$", "σ": r"$\sigma$", "×": r"$\times$", "±": r"$\pm$", "≤": r"$\leq$",
        "≥": r"$\geq$", "·": r"$\cdot$", "→": r"$\rightarrow$", "−": "--", "—": "---", "–": "--",
        "†": r"\textdagger{}", "‡": r"\textdaggerdbl{}", "…": r"\ldots{}", "°": r"\textdegree{}",
        "²": r"\textsuperscript{2}", "³": r"\textsuperscript{3}", "‘": "`", "’": "'", "“": "``",
        "”": "''", "\u00a0": "~"}
LATEX_PACKAGES = ("booktabs", "adjustbox")       # what a document needs to \input these tables
MARKS_NOTES = {"md": MARKS_NOTE.replace("underlined", "in italics"), "tex": MARKS_NOTE}


def tex_escape(text: str) -> str:
    """Text as pdflatex-safe ASCII: specials escaped, the symbols reports use (Δ, α, ≈, —, †, ...)
    as LaTeX commands, accented letters without their accent, anything else as ``[U+XXXX]``."""
    return "".join(_TEX.get(ch) or (ch if ch.isascii() else _ascii(ch)) for ch in text)


def _ascii(ch: str) -> str:
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return tex_escape(plain) if plain else f"[U+{ord(ch):04X}]"


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


def _caption(table: Table, fmt: str) -> str:
    return table.caption.replace(MARKS_NOTE, MARKS_NOTES[fmt])


def to_markdown(table: Table, ci: bool = False) -> str:
    """GitHub Markdown with a bold caption line; best **x**, second best _x_; ``ci`` adds 95% CIs."""
    def esc(s: str) -> str:
        return SUBSCRIPT.sub(r"<sub>\1</sub>", s.replace("|", "\\|"))
    head = [*table.row_header, *(c.title for c in table.columns)]
    lines = [f"**{table.heading}.** {esc(_caption(table, 'md'))}", "",
             "| " + " | ".join(esc(h) for h in head) + " |",
             "|" + "---|" * len(table.row_header) + "---:|" * len(table.columns)]
    for r, labels in enumerate(grouped_labels(table)):
        cells = [_mark(table, r, c, esc(table.text(r, c, ci, compare=False)), "**{}**", "_{}_")
                 for c in range(len(table.columns))]
        lines.append("| " + " | ".join([*(esc(x) for x in labels), *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with every value and its 95% CI; caption as a ``#`` line (comparison: the companion)."""
    buf = io.StringIO()
    buf.write(f"# {table.heading}. {table.caption}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*table.row_header, *(c.title for c in table.columns)])
    for r, labels in enumerate(table.rows):
        writer.writerow([*(plain_label(x) for x in labels),
                         *(table.text(r, c, ci=True, compare=False) for c in range(len(table.columns)))])
    return buf.getvalue()


def _tex_label(text: str) -> str:
    parts = SUBSCRIPT.split(text)          # even: text, odd: subscript
    return "".join(tex_escape(p) if i % 2 == 0 else f"$_{{{tex_escape(p)}}}$"
                   for i, p in enumerate(parts))


def to_latex(table: Table, ci: bool = False) -> str:
    """A booktabs table for pdflatex (needs LATEX_PACKAGES); column groups become \\multicolumn
    headers; best \\textbf, second \\underline; ``ci`` adds each 95% CI in small type.

    The caption is the table's own (LaTeX numbers it; the study's number is in a comment) and the
    tabular sits in an adjustbox that shrinks it to the text width only when wider."""
    n, k = len(table.columns), len(table.row_header)
    lines = [f"% radbench: {tex_escape(table.heading)} ({table.key}); needs "
             + ", ".join(rf"\usepackage{{{p}}}" for p in LATEX_PACKAGES),
             r"\begin{table}[tbp]", r"\centering",
             rf"\caption{{{tex_escape(plain_label(_caption(table, 'tex')))}}}",
             rf"\label{{tab:{table.key}}}", r"\begin{adjustbox}{max width=\textwidth}",
             r"\begin{tabular}{" + "l" * k + "c" * n + "}", r"\toprule"]
    groups = column_spans([c.group for c in table.columns])
    if any(g for g, _, _ in groups):
        lines.append(" & ".join([""] * k + [rf"\multicolumn{{{b - a}}}{{c}}{{{tex_escape(g)}}}"
                                            for g, a, b in groups]) + r" \\")
        lines.append(" ".join(rf"\cmidrule(lr){{{a + k + 1}-{b + k}}}" for g, a, b in groups if g))
    lines.append(" & ".join(tex_escape(h) for h in [*table.row_header,
                                                    *(c.label for c in table.columns)]) + r" \\")
    lines.append(r"\midrule")
    for r, labels in enumerate(grouped_labels(table)):
        cells = [_mark(table, r, c, tex_escape(table.text(r, c, compare=False)), r"\textbf{{{}}}",
                       r"\underline{{{}}}") + _tex_interval(table, r, c, ci) for c in range(n)]
        lines.append(" & ".join([*(_tex_label(x) for x in labels), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{adjustbox}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _tex_interval(table: Table, r: int, c: int, ci: bool) -> str:
    interval = table.interval(r, c) if ci else ""
    return rf" {{\scriptsize {interval}}}" if interval else ""


def latex_document(inputs: list[str], title: str = "radbench tables") -> str:
    """A standalone pdflatex document that \\input's each table file (landscape pages, so a wide
    table shrinks less); what a paper's preamble needs is LATEX_PACKAGES."""
    lines = [r"\documentclass[landscape]{article}", r"\usepackage[margin=2cm]{geometry}",
             *(rf"\usepackage{{{p}}}" for p in LATEX_PACKAGES),
             r"\begin{document}", rf"\section*{{{tex_escape(title)}}}",
             *(rf"\input{{{name}}}" + "\n" + r"\clearpage" for name in inputs), r"\end{document}"]
    return "\n".join(lines) + "\n"
