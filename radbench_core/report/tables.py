"""The study's Tables 3-9, filled from whatever cells a run holds, as Markdown, CSV and LaTeX.

Each table is a grid: rows (model, or model x protocol/resolution) x columns (dataset, or dataset x
protocol/resolution). Rows and columns with no cell at all are dropped, so a partial run
(``-k dinov2``) gives partial tables; a missing cell inside the grid shows "—"; a table with no
cells is not built. The best value of each metric column is bold.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import pandas as pd

from radbench_core.report.frame import (DATASET_ORDER, METRIC_LABEL, MODEL_ORDER, PROTOCOL_LABELS,
                                        dataset_label, model_label, order_key, variant_key)

ABSENT = "—"
DEMO_NOTE = "random-init (demo) weights — not a real result"
DINOV2 = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")
Key = tuple[str, str, str, str]          # (model, dataset, protocol, variant)
TABLES = {  # file stem -> title, in the study's order (build_tables returns the non-empty ones)
    "table3_linear_probing": "Table 3. Linear probing",
    "table4_knn_linear_finetune": "Table 4. kNN, linear probing and fine-tuning",
    "table5_segmentation_unet": "Table 5. Segmentation with a U-Net decoder",
    "table6_dinov2_vs_scratch": "Table 6. Frozen DINOv2 vs scratch U-Net / TransUNet",
    "table7_dinov2_vs_in21k_segmentation": "Table 7. DINOv2 vs supervised ViT on segmentation",
    "table8_sam_vs_dinov2": "Table 8. SAM vs DINOv2 on X-ray classification",
    "table9_finetune_lora_bitfit": "Table 9. Fine-tuning vs linear vs LoRA vs BitFit",
}


@dataclass(frozen=True)
class Column:
    group: str                           # upper header ("NIH"), "" when the table has one level
    label: str
    kind: str = "metric"                 # "metric" | "millions" | "percent"

    @property
    def title(self) -> str:
        return f"{self.group} / {self.label}" if self.group else self.label


@dataclass(frozen=True)
class Entry:
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    higher_is_better: bool = True


@dataclass
class Table:
    key: str                             # file stem, e.g. "table3_linear_probing"
    number: int
    caption: str
    row_header: str
    rows: list[str]
    columns: list[Column]
    entries: dict[tuple[int, int], Entry] = field(default_factory=dict)

    def text(self, r: int, c: int, ci: bool = False) -> str:
        """One entry as printed: metric to 3 decimals (optionally with its CI), params in millions."""
        entry = self.entries.get((r, c))
        if entry is None:
            return ABSENT
        kind = self.columns[c].kind
        if kind == "millions":
            m = entry.value / 1e6
            return f"{m:.1f}" if m >= 100 else f"{m:.2f}" if m >= 1 else f"{m:.3g}"
        if kind == "percent":
            return f"{entry.value:.2f}%" if entry.value >= 0.01 else f"{entry.value:.2g}%"
        out = f"{entry.value:.3f}"
        if ci and _finite(entry.ci_low) and _finite(entry.ci_high):
            out += f" [{entry.ci_low:.3f}, {entry.ci_high:.3f}]"
        return out

    def best_rows(self, c: int) -> set[int]:
        """Rows holding the best value of a metric column (ties at 3 decimals all count)."""
        if self.columns[c].kind != "metric":
            return set()
        found = {r: e for (r, cc), e in self.entries.items() if cc == c}
        if not found:
            return set()
        values = {r: round(e.value, 3) for r, e in found.items()}
        pick = max if next(iter(found.values())).higher_is_better else min
        best = pick(values.values())
        return {r for r, v in values.items() if v == best}


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _grid(hf: pd.DataFrame, key: str, number: int, caption: str, row_header: str,
          rows: list[tuple[str, dict]], cols: list[tuple[Column, dict]],
          params: tuple[str, ...] = ()) -> Table | None:
    """Fill rows x cols from the headline frame; drop empty rows/columns; append parameter columns."""
    index: dict[Key, dict] = {}
    for rec in hf.to_dict("records"):
        index.setdefault((rec["model"], rec["dataset"], rec["protocol"], rec["variant"]), rec)
    cells: dict[tuple[int, int], dict] = {}
    for r, (_, rf) in enumerate(rows):
        for c, (_, cf) in enumerate(cols):
            both = {**rf, **cf}
            rec = index.get((both["model"], both["dataset"], both["protocol"], both["variant"]))
            if rec is not None:
                cells[(r, c)] = rec
    keep_r = sorted({r for r, _ in cells})
    keep_c = sorted({c for _, c in cells})
    if not cells:
        return None
    table = Table(key, number, caption, row_header, [rows[r][0] for r in keep_r],
                  [cols[c][0] for c in keep_c])
    for (r, c), rec in cells.items():
        table.entries[(keep_r.index(r), keep_c.index(c))] = Entry(
            rec["value"], _num(rec["ci_low"]), _num(rec["ci_high"]), bool(rec["higher_is_better"]))
    demo = any(rec["is_demo"] for rec in cells.values())
    _add_params(table, cells, keep_r, params)
    if demo:
        table.caption += f" Weights: {DEMO_NOTE}."
    return table


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _add_params(table: Table, cells: dict, keep_r: list[int], params: tuple[str, ...]) -> None:
    """Per row, the parameter counts of its cell with the most trainable parameters."""
    if not params:
        return
    chosen: dict[int, dict] = {}
    for (r, _), rec in cells.items():
        tr = _num(rec["params_trainable"])
        if tr is not None and (r not in chosen or tr > _num(chosen[r]["params_trainable"])):
            chosen[r] = rec
    if not chosen:
        return
    labels = {"trainable": ("Trainable (M)", "millions"), "total": ("Total (M)", "millions"),
              "percent": ("Trainable (% of total)", "percent")}
    for what in params:
        values = {}
        for r, rec in chosen.items():
            tr, total = _num(rec["params_trainable"]), _num(rec["params_total"])
            v = tr if what == "trainable" else total if what == "total" else (
                100.0 * tr / total if total else None)
            if v is not None:
                values[keep_r.index(r)] = v
        if values:
            label, kind = labels[what]
            table.columns.append(Column("Parameters", label, kind))
            for r, v in values.items():
                table.entries[(r, len(table.columns) - 1)] = Entry(v)


def _present(hf: pd.DataFrame, column: str, order: tuple[str, ...], **where: object) -> list[str]:
    sel = hf
    for k, v in where.items():
        sel = sel[sel[k].isin(v)] if isinstance(v, (list, tuple, set)) else sel[sel[k] == v]
    return sorted(set(sel[column]), key=order_key(order))


def _variants(hf: pd.DataFrame, **where: object) -> list[str]:
    return sorted(_present(hf, "variant", (), **where), key=variant_key)


def build_tables(hf: pd.DataFrame) -> dict[str, Table]:
    """Every study table that has at least one cell, keyed by file stem, in table order."""
    cls = _present(hf, "dataset", DATASET_ORDER, task="classification")
    seg = _present(hf, "dataset", DATASET_ORDER, task="segmentation")
    auroc, dj = METRIC_LABEL["auroc"], METRIC_LABEL["dice_jaccard"]
    tables: list[Table | None] = []

    rows = [(model_label(m), {"model": m}) for m in
            (*DINOV2, "densenet201", "resnet152", "vgg19", "vit_l16_in21k")]
    cols = [(Column("", dataset_label(d)), {"dataset": d, "protocol": "linear", "variant": ""})
            for d in cls]
    tables.append(_grid(hf, "table3_linear_probing", 3,
                        f"Linear probing, DINOv2 sizes vs supervised CNNs and ViT: {auroc} on the "
                        "test split; best per column in bold.", "Model", rows, cols))

    models = _present(hf, "model", MODEL_ORDER, task="classification")
    rows = [(model_label(m), {"model": m}) for m in models]
    cols = [(Column(dataset_label(d), PROTOCOL_LABELS[p]), {"dataset": d, "protocol": p, "variant": ""})
            for d in ("nih", "chexpert") for p in ("knn", "linear", "finetune")]
    tables.append(_grid(hf, "table4_knn_linear_finetune", 4,
                        f"kNN, linear probing and fine-tuning on NIH and CheXpert: {auroc}; "
                        "best per column in bold.", "Model", rows, cols))

    t5_models = ("mae_vitl16", "msn_vitl16", "clip_vitl14", "openclip_vith14", "dinov2_vitl14",
                 "dinov2_vitg14")
    rows = [(model_label(m), {"model": m}) for m in t5_models]
    cols = [(Column(dataset_label(d), f"{v} px" if v else "default"),
             {"dataset": d, "protocol": "seg_unet", "variant": v})
            for d in seg for v in _variants(hf, model=t5_models, dataset=d, protocol="seg_unet")]
    tables.append(_grid(hf, "table5_segmentation_unet", 5,
                        f"Segmentation with a U-Net decoder on frozen backbones at each input "
                        f"resolution in the run: {dj}; best per column in bold.", "Model", rows, cols))

    rows = []
    for m, p, suffix in [*((m, "seg_unet", "+ U-Net decoder (frozen)") for m in DINOV2),
                         ("unet", "scratch", "(scratch)"), ("transunet", "scratch", "(scratch)")]:
        for v in _variants(hf, model=m, protocol=p, task="segmentation"):
            label = f"{model_label(m)} {suffix}" + (f" @{v}" if v else "")
            rows.append((label, {"model": m, "protocol": p, "variant": v}))
    cols = [(Column("", dataset_label(d)), {"dataset": d}) for d in seg]
    tables.append(_grid(hf, "table6_dinov2_vs_scratch", 6,
                        f"Frozen DINOv2 with a U-Net decoder vs U-Net and TransUNet trained from "
                        f"scratch: {dj}; parameters in millions, taken from the row's cell with the "
                        "most trainable parameters (output heads differ by class count).",
                        "Model", rows, cols, params=("trainable", "total")))

    rows = [(f"{model_label(m)}" + (f" @{v}" if v else ""), {"model": m, "variant": v})
            for m in (*DINOV2, "vit_l16_in21k")
            for v in _variants(hf, model=m, protocol=("seg_linear", "seg_unet"))]
    cols = [(Column(dataset_label(d), PROTOCOL_LABELS[p].replace(" decoder", "")),
             {"dataset": d, "protocol": p}) for d in seg for p in ("seg_linear", "seg_unet")]
    tables.append(_grid(hf, "table7_dinov2_vs_in21k_segmentation", 7,
                        f"DINOv2 vs supervised ImageNet-21k ViT-L/16 on segmentation with linear and "
                        f"U-Net decoders, one row per model and input resolution: {dj}.",
                        "Model", rows, cols))

    t8 = ("sam_vitl16", "dinov2_vitl14")
    hi_res = "1024" in _variants(hf, model=t8, dataset=("nih", "chexpert"), protocol="linear")
    rows = [(model_label(m), {"model": m}) for m in t8]
    cols = [(Column("", dataset_label(d)), {"dataset": d, "protocol": "linear",
                                            "variant": "1024" if hi_res else ""})
            for d in ("nih", "chexpert")]
    note = ("at 1024 px input" if hi_res else
            "no 1024 px cells in this run, so the default-resolution linear probes are shown")
    tables.append(_grid(hf, "table8_sam_vs_dinov2", 8,
                        f"SAM vs DINOv2 on X-ray classification with a linear probe, {note}: {auroc}.",
                        "Model", rows, cols))

    rows = [(f"{model_label(m)} — {PROTOCOL_LABELS[p]}", {"model": m, "protocol": p})
            for m in _present(hf, "model", MODEL_ORDER, protocol=("finetune", "lora", "bitfit"))
            for p in ("finetune", "linear", "lora", "bitfit")]
    cols = [(Column("", dataset_label(d)), {"dataset": d, "variant": ""}) for d in cls]
    tables.append(_grid(hf, "table9_finetune_lora_bitfit", 9,
                        f"Fine-tuning vs linear probing vs LoRA vs BitFit: {auroc}; trainable "
                        "parameters in millions and as a percentage of the total.",
                        "Model — protocol", rows, cols, params=("trainable", "percent")))
    return {t.key: t for t in tables if t is not None}


def to_markdown(table: Table, ci: bool = False) -> str:
    """GitHub Markdown with a bold caption line; best per column as **x**."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|")
    head = [table.row_header] + [c.title for c in table.columns]
    lines = [f"**Table {table.number}.** {esc(table.caption)}", "",
             "| " + " | ".join(esc(h) for h in head) + " |",
             "|---|" + "".join("---:|" for _ in table.columns)]
    for r, label in enumerate(table.rows):
        cells = [_bold(table, r, c, table.text(r, c, ci), "**{}**") for c in range(len(table.columns))]
        lines.append("| " + " | ".join(esc(x) for x in [label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """CSV with every value and its 95% CI; the first line is the caption as a ``#`` comment."""
    buf = io.StringIO()
    buf.write(f"# Table {table.number}. {table.caption}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([table.row_header] + [c.title for c in table.columns])
    for r, label in enumerate(table.rows):
        writer.writerow([label] + [table.text(r, c, ci=True) for c in range(len(table.columns))])
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters so labels like ``ViT-L/16 (IN21k)`` or ``50%`` compile."""
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(table: Table, ci: bool = False) -> str:
    """A booktabs table; column groups become \\multicolumn headers, best per column \\textbf."""
    n = len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering",
             rf"\caption{{Table {table.number}. {tex_escape(table.caption)}}}",
             rf"\label{{tab:{table.key}}}", r"\begin{tabular}{l" + "c" * n + "}", r"\toprule"]
    groups = column_spans([c.group for c in table.columns])
    if any(g for g, _, _ in groups):
        lines.append(" & ".join([""] + [rf"\multicolumn{{{b - a}}}{{c}}{{{tex_escape(g)}}}"
                                        for g, a, b in groups]) + r" \\")
        lines.append(" ".join(rf"\cmidrule(lr){{{a + 2}-{b + 1}}}" for g, a, b in groups if g))
    lines.append(" & ".join(tex_escape(h) for h in [table.row_header] +
                            [c.label for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    for r, label in enumerate(table.rows):
        cells = [_bold(table, r, c, tex_escape(table.text(r, c, ci)), r"\textbf{{{}}}")
                 for c in range(n)]
        lines.append(" & ".join([tex_escape(label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _bold(table: Table, r: int, c: int, text: str, fmt: str) -> str:
    return fmt.format(text) if r in table.best_rows(c) else text


def column_spans(groups: list[str]) -> list[tuple[str, int, int]]:
    """Consecutive equal group names as (name, start, end) column spans."""
    out: list[tuple[str, int, int]] = []
    for i, g in enumerate(groups):
        if out and out[-1][0] == g:
            out[-1] = (g, out[-1][1], i + 1)
        else:
            out.append((g, i, i + 1))
    return out
