"""Tables 3-9 from records with known numbers: the study's rows, "—", marks, published comparison,
the study's segmentation metric, parameter columns, extended tables, CSV/LaTeX variants."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.report.frame import headline_frame, model_label, summary_table
from radbench_core.report.layouts import LAYOUT_BY_KEY
from radbench_core.report.comparison import with_comparisons
from radbench_core.report.tables import (DEMO_NOTE, build_tables, format_count, tex_escape, to_csv,
                                         to_latex, to_markdown)
from radbench_core.core.results import DEMO_WEIGHTS, CellResult, Metric

LAYOUT_KEYS = tuple(LAYOUT_BY_KEY)
SEG = {"mc": "xray", "amos": "ct", "msd_spleen": "ct", "msd_hippocampus": "mri", "msd_heart": "mri"}
CLS = {"nih": "xray", "chexpert": "xray", "sarscov2": "ct", "brain_tumor": "mri"}


def rec(model: str, dataset: str, protocol: str, variant: str = "", value: float = 0.5,
        ci: tuple[float, float] | None = None, trainable: int | None = None,
        total: int | None = None, weights: str = "official",
        study: tuple[float, float, float] | None = None, **extra) -> CellResult:
    task = "segmentation" if dataset in SEG else "classification"
    name = "dice_jaccard" if task == "segmentation" else "auroc"
    lo, hi = ci if ci else (None, None)
    metrics = {name: Metric(value, True, lo, hi)}
    if study:                                  # the study's pooled metric: value, CI
        metrics["dice_jaccard_study"] = Metric(study[0], True, study[1], study[2])
    cell_id = f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else "")
    return CellResult(cell_id=cell_id, model=model, dataset=dataset, protocol=protocol,
                      variant=variant, task=task, modality={**SEG, **CLS}[dataset], profile="test",
                      metrics=metrics, params_trainable=trainable,
                      params_total=total, weights=weights, wall_time_s=1.5, extra=extra)


def rows_of(table) -> dict[str, list[str]]:
    return {table.label(r): [table.text(r, c) for c in range(len(table.columns))]
            for r in range(len(table.rows))}


def marks_of(table, c: int) -> tuple[set[str], set[str]]:
    best, second = table.ranked_rows(c)
    return {table.label(r) for r in best}, {table.label(r) for r in second}


RUN = [rec("dinov2_vits14", "nih", "linear", value=0.80, ci=(0.78, 0.82)),
       rec("dinov2_vits14", "chexpert", "linear", value=0.85),
       rec("dinov2_vitl14", "nih", "linear", value=0.770, ci=(0.760, 0.780)),
       rec("dinov2_vitl14", "chexpert", "linear", value=0.84, ci=(0.83, 0.835)),
       rec("resnet152", "nih", "linear", value=0.79),
       rec("clip_vitl14", "nih", "linear", value=0.99),          # not a Table 3 row
       rec("dinov2_vitl14", "nih", "knn", value=0.95)]           # Table 4, not Table 3


def test_table3_has_the_studys_rows_and_dashes_where_the_run_lacks_them():
    t = build_tables(headline_frame(RUN))["table3_linear_probing"]
    assert t.row_header == ("Method", "Architecture")
    assert t.rows == [("Supervised", "DenseNet201"), ("Supervised", "ResNet152"),
                      ("Supervised", "VGG19"), ("Supervised", "ViT-L/16"), ("DINOv2", "ViT-S/14"),
                      ("DINOv2", "ViT-B/14"), ("DINOv2", "ViT-L/14"), ("DINOv2", "ViT-g/14")]
    assert [c.label for c in t.columns] == ["NIH Chest X-ray", "CheXpert", "SARS-CoV-2", "Brain Tumor"]
    rows = rows_of(t)
    assert rows["Supervised ResNet152"] == ["0.790 (study 0.718, Δ +0.072, no CI)", "—", "—", "—"]
    assert rows["DINOv2 ViT-L/14"][:2] == ["0.770 (study 0.763, Δ +0.007, in CI)",
                                           "0.840 (study 0.821, Δ +0.019, outside CI)"]
    assert rows["DINOv2 ViT-g/14"] == ["—"] * 4
    assert t.missing == 32 - 5 and "27 of the study's 32 entries are missing from this run" in t.caption
    assert marks_of(t, 0) == ({"DINOv2 ViT-S/14"}, {"Supervised ResNet152"})
    assert marks_of(t, 1) == ({"DINOv2 ViT-S/14"}, {"DINOv2 ViT-L/14"})
    assert "CLIP" not in " ".join(t.label(r) for r in range(len(t.rows)))
    ext = build_tables(headline_frame(RUN))["table3_linear_probing_extended"]
    assert rows_of(ext)[f"{model_label('clip_vitl14')} default"][0] == \
        "0.990 (study 0.739, Δ +0.251, no CI)"                  # published in Table 4
    assert rows_of(ext)[f"{model_label('dinov2_vitl14')} default"][0] == \
        "0.770 (study 0.763, Δ +0.007, in CI)"


def test_markdown_latex_csv_marks_grouping_and_ci():
    tables = with_comparisons(build_tables(headline_frame(RUN)))
    t = tables["table3_linear_probing"]
    md = to_markdown(t).splitlines()
    assert md[0].startswith("**Table 3.**") and "second best in italics" in md[0]
    assert "underlined" not in md[0] and "companion table table3_linear_probing_vs_study" in md[0]
    assert md[2] == "| Method | Architecture | NIH Chest X-ray | CheXpert | SARS-CoV-2 | Brain Tumor |"
    assert md[4] == "| Supervised | DenseNet201 | — | — | — | — |"
    assert md[5] == "|  | ResNet152 | _0.790_ | — | — | — |"      # one value per entry, no comparison
    assert md[6] == "|  | VGG19 | — | — | — | — |"                  # the study's Method grouping
    assert md[8] == "| DINOv2 | ViT-S/14 | **0.800** | **0.850** | — | — |"
    assert "| **0.800 [0.780, 0.820]** | **0.850** |" in to_markdown(t, ci=True)   # no CI: none shown
    tex = to_latex(t)
    assert r"\begin{tabular}{llcccc}" in tex and r"\underline{0.840" in tex and r"\textbf{0.800" in tex
    assert r"\caption{Linear probing" in tex and "Table 3" not in tex.split("\n", 1)[1]
    assert "italic" not in tex and "second best underlined" in tex and "study 0.747" not in tex
    assert r"\textbf{0.800} {\scriptsize [0.780, 0.820]}" in to_latex(t, ci=True)
    df = pd.read_csv(io.StringIO(to_csv(t)), comment="#", dtype=str, keep_default_na=False)
    assert list(df.columns[:3]) == ["Method", "Architecture", "NIH Chest X-ray"]
    assert df.iloc[4, 2] == "0.800 [0.780, 0.820]"
    vs = rows_of(tables["table3_linear_probing_vs_study"])
    assert vs["DINOv2 ViT-S/14 NIH Chest X-ray"] == ["0.800", "[0.780, 0.820]", "0.747", "+0.053", "no"]
    assert vs["DINOv2 ViT-S/14 CheXpert"] == ["0.850", "—", "0.805", "+0.045", "no CI"]


SEG_RECS = [
    rec("dinov2_vitl14", "amos", "seg_unet", "448", 0.70, trainable=5_000_000, total=309_000_000,
        study=(0.58, 0.57, 0.60)),
    rec("dinov2_vitl14", "mc", "seg_unet", "448", 0.90, trainable=4_900_000, total=308_900_000),
    rec("unet", "amos", "scratch", "448", 0.75, trainable=31_000_000, total=31_000_000),
    rec("unet", "amos", "scratch", "112", 0.40, trainable=31_000_000, total=31_000_000,
        weights=DEMO_WEIGHTS),
    rec("mae_vitl16", "mc", "seg_unet", "112", 0.60, weights=DEMO_WEIGHTS),
]


def test_segmentation_study_metric_fallback_and_extended_headline():
    tables = build_tables(headline_frame(SEG_RECS))
    t6 = tables["table6_dinov2_vs_scratch"]
    amos = [c.label for c in t6.columns].index("AMOS")
    lab = "DINOv2 ViT-L/14"
    assert t6.text(2, amos) == "0.580 (study 0.592, Δ -0.012, in CI)"     # the study's metric
    assert t6.text(2, amos - 1) == "0.900† (study 0.974, Δ -0.074, no CI)"  # MC: our headline
    assert "†: the record has no study metric" in t6.caption and DEMO_NOTE not in t6.caption
    assert rows_of(t6)["Scratch U-Net"][amos] == "0.750† (study 0.432, Δ +0.318, no CI)"
    ext = tables["table6_dinov2_vs_scratch_extended"]
    er = rows_of(ext)
    assert er[f"{lab} U-Net decoder 448"][[c.label for c in ext.columns].index("AMOS")].startswith("0.700")
    assert er[f"{model_label('unet')} Scratch 112"][:2] == ["31M (100%)", "31M"]
    assert DEMO_NOTE in ext.caption
    t5 = rows_of(tables["table5_segmentation_unet_extended"])
    assert t5[f"{model_label('mae_vitl16')} 112"][0] == "0.600"


def test_an_error_in_the_parameter_counter_is_never_hidden(monkeypatch):
    """Issue 21: an ``except`` around the counter once turned a broken count into a silent fallback."""
    from radbench_core.report import layouts

    def broken(*_):
        raise AttributeError("parameter counter broke")
    monkeypatch.setattr(layouts, "_counts", broken)
    with pytest.raises(AttributeError, match="parameter counter broke"):
        build_tables(headline_frame(SEG_RECS))


@pytest.mark.parametrize("n, text", [(1_138_000_000, "1,138M"), (31_042_434, "31M"),
                                     (17_300_000, "17M"), (7_900_000, "7.9M"), (800_000, "0.8M"),
                                     (1_537, "1,537"), (2_000_000, "2M")])
def test_format_count_as_the_study_prints(n, text):
    assert format_count(n) == text


def test_every_study_table_is_built_even_from_a_tiny_run():
    demo = [rec("dinov2_vits14", "sarscov2", "linear", value=0.6, weights=DEMO_WEIGHTS)]
    t = build_tables(headline_frame(demo))
    assert [k for k in t if not k.endswith("_extended")] == list(LAYOUT_KEYS)
    assert not any(k.endswith("_extended") for k in t)        # the one cell is Table 3's
    assert DEMO_NOTE in t["table3_linear_probing"].caption
    assert DEMO_NOTE in to_csv(t["table3_linear_probing"]).splitlines()[0]
    t9 = t["table9_finetune_lora_bitfit"]
    assert t9.missing == 8 and not [k for k in t9.entries if t9.columns[k[1]].kind == "metric"]
    assert set(build_tables(headline_frame([]))) == set(LAYOUT_KEYS)


def test_tex_escape_and_summary_table():
    assert tex_escape("a_b & 50% #1 {x}") == r"a\_b \& 50\% \#1 \{x\}"
    text = summary_table(RUN[:2] + [rec("unet", "mc", "scratch", value=0.5, weights=DEMO_WEIGHTS)])
    lines = text.splitlines()
    assert lines[0].split() == ["cell", "metric", "value", "95%", "CI", "time"]
    row = next(x for x in lines if x.startswith("dinov2_vits14-nih-linear"))
    assert row.split() == ["dinov2_vits14-nih-linear", "auroc", "0.800", "[0.780,", "0.820]", "1.5s"]
    assert set(lines[1]) == {"-", " "} and all(len(x) <= len(lines[1]) for x in lines[2:4])
    assert "1 cell(s) on random-init (demo) weights" in lines[-1]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=8, max_size=8))
def test_marks_are_column_best_and_second(values):
    models = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")
    recs = [rec(models[i % 4], ("nih", "chexpert")[i // 4], "linear", value=v)
            for i, v in enumerate(values) if v is not None]
    t = build_tables(headline_frame(recs))["table3_linear_probing"]
    for c in range(len(t.columns)):
        col = [t.entries.get((r, c)) for r in range(len(t.rows))]
        rounded = np.array([round(e.value, 3) if e else -np.inf for e in col])
        distinct = sorted(set(rounded[np.isfinite(rounded)]), reverse=True)
        best, second = t.ranked_rows(c)
        assert best == (set(np.flatnonzero(rounded == distinct[0])) if distinct else set())
        assert second == (set(np.flatnonzero(rounded == distinct[1])) if len(distinct) > 1 else set())
        assert sum(t.text(r, c) == "—" for r in range(len(t.rows))) == sum(e is None for e in col)
    assert t.missing == 32 - len(recs)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))


def test_cells_no_study_table_takes_go_to_the_other_cells_table():
    """A user's dataset (labelled by its registry title) and few-shot points are never dropped."""
    from radbench_core.report.frame import headline_frame
    from radbench_core.report.render import to_markdown
    from radbench_core.report.tables import OTHER_KEY, build_tables
    from radbench_core.core.results import CellResult, Metric

    def rec(cell_id, model, dataset, protocol, variant, task, value):
        return CellResult(cell_id=cell_id, model=model, dataset=dataset, protocol=protocol,
                          variant=variant, task=task, modality="xray", profile="mine",
                          metrics={"auroc": Metric(value, True, value - 0.05, value + 0.05)},
                          weights="my weights")
    records = [rec("dinov2_vitl14-nih-fewshot@8", "dinov2_vitl14", "nih", "fewshot", "8",
                   "classification", 0.71),
               rec("dinov2_vitl14-mc-knn", "dinov2_vitl14", "mc", "knn", "", "classification", 0.64),
               rec("dinov2_vitl14-nih-linear", "dinov2_vitl14", "nih", "linear", "", "classification",
                   0.76)]
    tables = build_tables(headline_frame(records))
    other = tables[OTHER_KEY]
    assert other.heading == "Other cells" and "Table 0" not in to_markdown(other)
    shown = {e.cell_id for e in other.entries.values()}
    assert shown == {"dinov2_vitl14-nih-fewshot@8", "dinov2_vitl14-mc-knn"}   # linear is in Table 3
    assert [c.label for c in other.columns] == ["NIH", "MC"]
    assert ("DINOv2 ViT-L/14", "Few-shot", "8") in other.rows


def test_extended_rows_are_model_major_then_protocol_then_variant():
    """Table 9's companion keys rows by model x protocol x variant; every other by model x variant."""
    recs = [rec("dinov2_vitl14", "nih", "lora", value=0.70), rec("dinov2_vits14", "nih", "bitfit", value=0.61),
            rec("dinov2_vitl14", "nih", "finetune", value=0.72), rec("dinov2_vits14", "nih", "lora", value=0.62),
            rec("dinov2_vits14", "nih", "linear", "448", value=0.60), rec("dinov2_vits14", "nih", "linear", value=0.59)]
    ext = build_tables(headline_frame(recs))["table9_finetune_lora_bitfit_extended"]
    assert ext.row_header == ("Model", "Protocol", "Variant")
    s, l = model_label("dinov2_vits14"), model_label("dinov2_vitl14")
    labels = [tuple(row) for row in ext.rows]
    assert [lab[0] for lab in labels] == [s] * 4 + [l] * 2                  # model first (MODEL_ORDER)
    assert [lab[2] for lab in labels[:2]] == ["448", "default"]              # then variant (variant_key) within a protocol
    assert labels[0][1] == labels[1][1] != labels[2][1]
    t3 = build_tables(headline_frame(recs))["table3_linear_probing_extended"]
    assert t3.row_header == ("Model", "Variant")
