"""Tables 3-9 from records with known numbers: every entry, bold best, "—", CSV/LaTeX variants."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.report.frame import headline_frame, model_label, summary_table
from radbench_core.report.tables import (DEMO_NOTE, build_tables, tex_escape, to_csv, to_latex,
                                         to_markdown)
from radbench_core.results import DEMO_WEIGHTS, CellResult, Metric

SEG = {"mc": "xray", "amos": "ct", "msd_spleen": "ct", "msd_hippocampus": "mri", "msd_heart": "mri"}
CLS = {"nih": "xray", "chexpert": "xray", "sarscov2": "ct", "brain_tumor": "mri"}


def rec(model: str, dataset: str, protocol: str, variant: str = "", value: float = 0.5,
        ci: tuple[float, float] | None = None, trainable: int | None = None,
        total: int | None = None, weights: str = "official", **extra) -> CellResult:
    task = "segmentation" if dataset in SEG else "classification"
    name = "dice_jaccard" if task == "segmentation" else "auroc"
    lo, hi = ci if ci else (None, None)
    cell_id = f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else "")
    return CellResult(cell_id=cell_id, model=model, dataset=dataset, protocol=protocol,
                      variant=variant, task=task, modality={**SEG, **CLS}[dataset], profile="test",
                      metrics={name: Metric(value, True, lo, hi)}, params_trainable=trainable,
                      params_total=total, weights=weights, wall_time_s=1.5, extra=extra)


def rows_of(table) -> dict[str, list[str]]:
    return {label: [table.text(r, c) for c in range(len(table.columns))]
            for r, label in enumerate(table.rows)}


def bold_of(table) -> dict[str, set[str]]:
    return {table.columns[c].title: {table.rows[r] for r in table.best_rows(c)}
            for c in range(len(table.columns))}


T3 = [rec("dinov2_vits14", "nih", "linear", value=0.80, ci=(0.78, 0.82)),
      rec("dinov2_vits14", "chexpert", "linear", value=0.85),
      rec("dinov2_vitl14", "nih", "linear", value=0.83),
      rec("dinov2_vitl14", "chexpert", "linear", value=0.84),
      rec("dinov2_vitl14", "sarscov2", "linear", value=0.90),
      rec("resnet152", "nih", "linear", value=0.79),
      rec("clip_vitl14", "nih", "linear", value=0.99),          # not a Table 3 model
      rec("dinov2_vitl14", "nih", "knn", value=0.95)]           # not Table 3's protocol
S, L, R = model_label("dinov2_vits14"), model_label("dinov2_vitl14"), model_label("resnet152")


def test_table3_every_entry_bold_and_absent():
    t = build_tables(headline_frame(T3))["table3_linear_probing"]
    assert [c.title for c in t.columns] == ["NIH", "CheXpert", "SARS-CoV-2"]   # brain tumor: no cell
    assert rows_of(t) == {S: ["0.800", "0.850", "—"], L: ["0.830", "0.840", "0.900"],
                          R: ["0.790", "—", "—"]}
    assert bold_of(t) == {"NIH": {L}, "CheXpert": {S}, "SARS-CoV-2": {L}}
    assert t.text(0, 0, ci=True) == "0.800 [0.780, 0.820]"
    assert "AUROC" in t.caption and DEMO_NOTE not in t.caption
    md = to_markdown(t).splitlines()
    assert md[0].startswith("**Table 3.**") and "AUROC" in md[0]
    assert md[2] == "| Model | NIH | CheXpert | SARS-CoV-2 |"
    assert md[4] == f"| {S} | 0.800 | **0.850** | — |"
    assert md[5] == f"| {L} | **0.830** | 0.840 | **0.900** |"
    assert md[6] == f"| {R} | 0.790 | — | — |"
    assert f"| {S} | 0.800 [0.780, 0.820] |" in to_markdown(t, ci=True)


def test_table3_csv_and_latex():
    t = build_tables(headline_frame(T3))["table3_linear_probing"]
    text = to_csv(t)
    assert text.startswith("# Table 3. ") and "AUROC" in text.splitlines()[0]
    df = pd.read_csv(io.StringIO(text), comment="#", dtype=str, keep_default_na=False)
    assert list(df.columns) == ["Model", "NIH", "CheXpert", "SARS-CoV-2"]
    assert df.set_index("Model").loc[S].tolist() == ["0.800 [0.780, 0.820]", "0.850", "—"]
    assert df.set_index("Model").loc[R].tolist() == ["0.790", "—", "—"]
    tex = to_latex(t)
    assert r"\begin{tabular}{lccc}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"\caption{Table 3. " in tex and r"\label{tab:table3_linear_probing}" in tex
    assert rf"{S} & 0.800 & \textbf{{0.850}} & — \\" in tex
    assert rf"{L} & \textbf{{0.830}} & 0.840 & \textbf{{0.900}} \\" in tex
    assert "0.800 [0.780, 0.820]" in to_latex(t, ci=True)


SEG_RECS = [
    rec("dinov2_vitl14", "amos", "seg_unet", "448", 0.70, trainable=5_000_000, total=309_000_000),
    rec("dinov2_vitl14", "mc", "seg_unet", "448", 0.90, trainable=4_900_000, total=308_900_000),
    rec("dinov2_vitg14", "amos", "seg_unet", "448", 0.72, trainable=6_000_000, total=1_142_000_000),
    rec("unet", "amos", "scratch", "224", 0.75, trainable=31_000_000, total=31_000_000),
    rec("transunet", "mc", "scratch", "224", 0.91, trainable=105_000_000, total=105_000_000),
]


def test_table6_every_entry_with_params():
    t = build_tables(headline_frame(SEG_RECS))["table6_dinov2_vs_scratch"]
    lab = {m: model_label(m) for m in ("dinov2_vitl14", "dinov2_vitg14", "unet", "transunet")}
    rl = f"{lab['dinov2_vitl14']} + U-Net decoder (frozen) @448"
    rg = f"{lab['dinov2_vitg14']} + U-Net decoder (frozen) @448"
    ru, rt = f"{lab['unet']} (scratch) @224", f"{lab['transunet']} (scratch) @224"
    assert [c.title for c in t.columns] == ["MC", "AMOS", "Parameters / Trainable (M)",
                                            "Parameters / Total (M)"]
    assert rows_of(t) == {rl: ["0.900", "0.700", "5.00", "309.0"],       # the row's largest cell
                          rg: ["—", "0.720", "6.00", "1142.0"],
                          ru: ["—", "0.750", "31.00", "31.00"],
                          rt: ["0.910", "—", "105.0", "105.0"]}
    assert bold_of(t) == {"MC": {rt}, "AMOS": {ru}, "Parameters / Trainable (M)": set(),
                          "Parameters / Total (M)": set()}
    tex = to_latex(t)
    assert r"\multicolumn{2}{c}{Parameters}" in tex and r"\cmidrule(lr){4-5}" in tex
    assert "(Dice + Jaccard) / 2" in t.caption


T9 = [rec("dinov2_vitb14", "nih", "finetune", value=0.85, trainable=86_600_000, total=86_600_000),
      rec("dinov2_vitb14", "chexpert", "finetune", value=0.88, trainable=86_603_845, total=86_603_845),
      rec("dinov2_vitb14", "nih", "linear", value=0.80, trainable=10_766, total=86_610_766),
      rec("dinov2_vitb14", "nih", "lora", value=0.84, trainable=305_678, total=86_905_678),
      rec("dinov2_vitb14", "nih", "bitfit", value=0.83, trainable=113_000, total=86_600_000),
      rec("dinov2_vitb14", "chexpert", "bitfit", value=0.88, trainable=110_000, total=86_600_000),
      rec("resnet152", "nih", "linear", value=0.99, trainable=28_686, total=58_000_000)]


def test_table9_every_entry_and_percentages():
    t = build_tables(headline_frame(T9))["table9_finetune_lora_bitfit"]
    b = model_label("dinov2_vitb14")
    assert t.rows == [f"{b} — Fine-tune", f"{b} — Linear", f"{b} — LoRA", f"{b} — BitFit"]
    assert [c.title for c in t.columns] == ["NIH", "CheXpert", "Parameters / Trainable (M)",
                                            "Parameters / Trainable (% of total)"]
    pct = {k: f"{100 * tr / tot:.2f}%" for k, tr, tot in
           (("ft", 86_603_845, 86_603_845), ("lin", 10_766, 86_610_766),
            ("lora", 305_678, 86_905_678), ("bit", 113_000, 86_600_000))}
    assert pct == {"ft": "100.00%", "lin": "0.01%", "lora": "0.35%", "bit": "0.13%"}
    assert rows_of(t) == {f"{b} — Fine-tune": ["0.850", "0.880", "86.60", pct["ft"]],
                          f"{b} — Linear": ["0.800", "—", "0.0108", pct["lin"]],
                          f"{b} — LoRA": ["0.840", "—", "0.306", pct["lora"]],
                          f"{b} — BitFit": ["0.830", "0.880", "0.113", pct["bit"]]}
    best = bold_of(t)
    assert best["NIH"] == {f"{b} — Fine-tune"}
    assert best["CheXpert"] == {f"{b} — Fine-tune", f"{b} — BitFit"}      # a tie: both bold
    assert r"100.00\%" in to_latex(t) and "100.00%" in to_csv(t)


def test_tables_4_5_7_8_layouts():
    recs = [rec("dinov2_vitl14", "nih", p, value=v) for p, v in
            (("knn", 0.70), ("linear", 0.80), ("finetune", 0.85))] + [
        rec("clip_vitl14", "chexpert", "linear", value=0.75),
        rec("mae_vitl16", "amos", "seg_unet", "224", 0.60),
        rec("dinov2_vitl14", "amos", "seg_unet", "448", 0.80),
        rec("dinov2_vitl14", "amos", "seg_linear", "448", 0.65),
        rec("vit_l16_in21k", "amos", "seg_linear", "448", 0.55),
        rec("sam_vitl16", "nih", "linear", value=0.78)]
    tables = build_tables(headline_frame(recs))
    t4 = tables["table4_knn_linear_finetune"]
    assert [c.title for c in t4.columns] == ["NIH / kNN", "NIH / Linear", "NIH / Fine-tune",
                                             "CheXpert / Linear"]
    assert rows_of(t4)[model_label("dinov2_vitl14")] == ["0.700", "0.800", "0.850", "—"]
    t5 = tables["table5_segmentation_unet"]
    assert [c.title for c in t5.columns] == ["AMOS / 224 px", "AMOS / 448 px"]
    assert rows_of(t5) == {model_label("mae_vitl16"): ["0.600", "—"],
                           model_label("dinov2_vitl14"): ["—", "0.800"]}
    t7 = tables["table7_dinov2_vs_in21k_segmentation"]
    assert [c.title for c in t7.columns] == ["AMOS / Linear", "AMOS / U-Net"]
    assert rows_of(t7) == {f"{model_label('dinov2_vitl14')} @448": ["0.650", "0.800"],
                           f"{model_label('vit_l16_in21k')} @448": ["0.550", "—"]}
    t8 = tables["table8_sam_vs_dinov2"]
    assert "no 1024 px cells" in t8.caption
    assert rows_of(t8) == {model_label("sam_vitl16"): ["0.780"], model_label("dinov2_vitl14"): ["0.800"]}
    hi = build_tables(headline_frame(recs + [rec("sam_vitl16", "nih", "linear", "1024", 0.81)]))
    assert "at 1024 px" in hi["table8_sam_vs_dinov2"].caption
    assert rows_of(hi["table8_sam_vs_dinov2"]) == {model_label("sam_vitl16"): ["0.810"]}


def test_demo_caption_partial_and_empty():
    demo = [rec("dinov2_vits14", "sarscov2", "linear", value=0.6, weights=DEMO_WEIGHTS)]
    t = build_tables(headline_frame(demo))
    assert list(t) == ["table3_linear_probing"]                  # the rest have no cells: omitted
    assert DEMO_NOTE in t["table3_linear_probing"].caption
    assert DEMO_NOTE in to_csv(t["table3_linear_probing"]).splitlines()[0]
    assert build_tables(headline_frame([])) == {}
    half = build_tables(headline_frame(T3[::2] + SEG_RECS[::2] + T9[::2]))
    assert {"table3_linear_probing", "table6_dinov2_vs_scratch", "table9_finetune_lora_bitfit"} <= set(half)


def test_tex_escape_and_summary_table():
    assert tex_escape("a_b & 50% #1 {x}") == r"a\_b \& 50\% \#1 \{x\}"
    text = summary_table(T3[:2] + [rec("unet", "mc", "scratch", value=0.5, weights=DEMO_WEIGHTS)])
    lines = text.splitlines()
    assert lines[0].split() == ["cell", "metric", "value", "95%", "CI", "time"]
    row = next(x for x in lines if x.startswith("dinov2_vits14-nih-linear"))
    assert row.split() == ["dinov2_vits14-nih-linear", "auroc", "0.800", "[0.780,", "0.820]", "1.5s"]
    assert set(lines[1]) == {"-", " "} and all(len(x) <= len(lines[1]) for x in lines[2:4])
    assert "1 cell(s) on random-init (demo) weights" in lines[-1]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=8, max_size=8))
def test_bold_is_column_best(values):
    models = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")
    recs = [rec(models[i % 4], ("nih", "chexpert")[i // 4], "linear", value=v)
            for i, v in enumerate(values) if v is not None]
    tables = build_tables(headline_frame(recs))
    if not recs:
        assert tables == {}
        return
    t = tables["table3_linear_probing"]
    for c in range(len(t.columns)):
        col = [t.entries.get((r, c)) for r in range(len(t.rows))]
        rounded = np.array([round(e.value, 3) if e else -np.inf for e in col])
        assert t.best_rows(c) == set(np.flatnonzero(rounded == rounded.max()))
        assert sum(t.text(r, c) == "—" for r in range(len(t.rows))) == sum(e is None for e in col)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))
