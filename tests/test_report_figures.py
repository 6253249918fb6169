"""Figures: files exist (PNG signature, SVG), axes labels and legend entries, PCA against sklearn,
Figure 1 as the study's six models, Figure 5 as its 2 x 2 grid."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from radbench_core.report.figures import (build_figures, plot_decoders, plot_fewshot,
                                          plot_linear_bars, plot_ranking, save_figure)
from radbench_core.report.figures_examples import pca_rgb, plot_masks_from, plot_pca_from
from radbench_core.report.frame import headline_frame, model_label
from radbench_core.report.ranking import rank_models
from radbench_core.core.results import CellResult, Metric

SEG = {"mc": "xray", "amos": "ct", "msd_hippocampus": "mri"}
PNG = b"\x89PNG\r\n\x1a\n"


def rec(model, dataset, protocol, variant="", value=0.5, ci=None, weights="official",
        **extra) -> CellResult:
    task = "segmentation" if dataset in SEG else "classification"
    name = "dice_jaccard" if task == "segmentation" else "auroc"
    lo, hi = ci if ci else (None, None)
    return CellResult(cell_id=f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else ""),
                      model=model, dataset=dataset, protocol=protocol, variant=variant, task=task,
                      modality=SEG.get(dataset, "xray"), profile="t",
                      metrics={name: Metric(value, True, lo, hi)}, extra=extra, weights=weights)


def write_examples(run_dir: Path, name: str, seed: int, features: bool = True) -> str:
    rng = np.random.default_rng(seed)
    arrays = {"image": rng.random((3, 16, 16)), "truth": rng.integers(0, 3, (3, 16, 16)),
              "pred": rng.integers(0, 3, (3, 16, 16))}
    if features:
        arrays["features"] = rng.standard_normal((3, 4, 4, 8)).astype(np.float16)
    rel = f"examples/{name}.npz"
    (run_dir / "examples").mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / rel, **arrays)
    return rel


A, B, C = "dinov2_vitl14", "clip_vitl14", "resnet152"


def full_records(run_dir: Path) -> list[CellResult]:
    recs = [rec(m, d, "linear", value=v, ci=(v - 0.02, v + 0.02))
            for m, d, v in ((A, "nih", 0.8), (B, "nih", 0.75), (C, "nih", 0.7), (A, "chexpert", 0.82),
                            (B, "chexpert", 0.6))]
    for i, (m, v) in enumerate(((A, 0.8), (B, 0.7))):
        for j, d in enumerate(("mc", "amos", "msd_hippocampus")):
            ex = write_examples(run_dir, f"{m}-{d}-unet", 10 * i + j)
            recs.append(rec(m, d, "seg_unet", "448", v, examples=ex))
    recs.append(rec(A, "mc", "seg_linear", "448", 0.6,
                    examples=write_examples(run_dir, "lin", 7, features=False)))
    recs += [rec(A, "nih", "fewshot", str(n), 0.6 + 0.05 * i, per_seed=[0.55 + 0.05 * i, 0.65 + 0.05 * i])
             for i, n in enumerate((1, 2, 4, 8))]
    recs += [rec(A, "mc", "seg_fewshot", v, 0.5 + 0.1 * i, per_seed=[0.5 + 0.1 * i])
             for i, v in enumerate(("1", "4", "all"))]
    recs.append(rec("sam_vitl16", "amos", "seg_unet", "448", 0.9))        # segmentation only
    return recs


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_every_figure_written(tmp_path):
    recs = full_records(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        made = build_figures(recs, tmp_path / "figures", roots=[tmp_path])
    assert sorted(made) == ["fig1_ranking", "fig2_pca", "fig3_linear_probing", "fig4_decoders",
                            "fig5_fewshot", "fig6_masks"]
    for stem, paths in made.items():
        png, svg = tmp_path / "figures" / f"{stem}.png", tmp_path / "figures" / f"{stem}.svg"
        assert paths[:2] == [png, svg]
        assert paths[2:] == ([tmp_path / "figures" / "fig1_ranking.csv"] if stem == "fig1_ranking" else [])
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 1000
        assert b"<svg" in svg.read_bytes()[:2000]


def test_figures_are_byte_deterministic(tmp_path):
    hf = headline_frame(full_records(tmp_path))
    first = save_figure(plot_fewshot(hf), tmp_path / "one", "fig5_fewshot")
    second = save_figure(plot_fewshot(hf), tmp_path / "two", "fig5_fewshot")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_ranking_figure_points_and_note(tmp_path):
    recs = full_records(tmp_path) + [rec("mae_vitl16", "amos", "seg_unet", "448", 0.9)]
    fig = plot_ranking(rank_models(recs))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Segmentation rank (1 = best)"
    assert ax.get_ylabel() == "Classification rank (1 = best)"
    assert legend_texts(ax) == [model_label(B), model_label(A)]    # the six only, in the study's order
    offsets = [tuple(c.get_offsets()[0]) for c in ax.collections]
    # cls: A first on nih and chexpert; seg: only AMOS has all three -> MAE 1, A 2, B 3
    assert offsets == [(3.0, 2.0), (2.0, 1.0)]
    note = " ".join(" ".join(t.get_text() for t in fig.texts).split())
    assert f"{model_label('mae_vitl16')} (segmentation only)" in note
    assert "A dataset counts only when every ranked model has a value" in note
    assert f"{model_label(A)} 2/1" in note and "resnet" not in note.lower()
    assert "DEMO" not in fig.get_suptitle()


def test_bar_and_curve_figures(tmp_path):
    hf = headline_frame(full_records(tmp_path))
    ax = plot_linear_bars(hf).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Dataset", "AUROC (linear probe, default input size)")
    assert legend_texts(ax) == [model_label(m) for m in (A, B, C)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["NIH", "CheXpert"]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [0.6, 0.7, 0.75, 0.8, 0.82]
    fig4 = plot_decoders(hf)
    assert [a.get_title() for a in fig4.axes] == ["MC", "AMOS", "Hippocampus"]
    assert legend_texts(fig4.axes[0]) == ["Linear decoder", "U-Net decoder"]
    assert fig4.axes[0].get_ylabel() == "(Dice + Jaccard) / 2"
    extra = [rec(C, "nih", "fewshot", n, 0.5) for n in ("1", "2", "4", "8", "16")]
    extra += [rec(B, "mc", "seg_fewshot", v, 0.4) for v in ("1", "all")]
    extra += [rec("dinov2_vits14", "nih", "fewshot", "1", 0.9), rec(A, "brain_tumor", "fewshot", "1", 0.9)]
    fig5 = plot_fewshot(headline_frame(full_records(tmp_path) + extra))
    nih_top, mc_top, nih_bottom, mc_bottom = fig5.axes
    assert nih_top.get_xlabel() == "Patients per class" and nih_top.get_ylabel() == "AUROC"
    assert mc_top.get_xlabel() == "Training patients"
    assert nih_top.get_title() == "NIH: DINOv2 vs weakly-/self-supervised"
    assert mc_bottom.get_title() == "MC: DINOv2 vs supervised"
    assert legend_texts(nih_top) == [model_label(A)]               # no weakly/self-supervised on NIH
    assert legend_texts(mc_top) == [model_label(A), model_label(B)]
    assert legend_texts(nih_bottom) == [model_label(A), model_label(C)]
    assert legend_texts(mc_bottom) == [model_label(A)]
    # NIH's "All" point is the linear-probe cell (A 0.8, C 0.7; figure5_all)
    assert [t.get_text() for t in nih_top.get_xticklabels()] == ["1", "2", "4", "8", "16", "all"]
    assert [t.get_text() for t in mc_top.get_xticklabels()] == ["1", "4", "all"]
    assert np.allclose(nih_top.lines[0].get_ydata(), [0.6, 0.65, 0.7, 0.75, 0.8])   # per_seed means
    assert list(nih_bottom.lines[1].get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert np.allclose(mc_top.lines[0].get_ydata(), [0.5, 0.6, 0.7])
    assert list(mc_top.lines[1].get_xdata()) == [0, 2]                           # "1" and "all"


def test_fewshot_panel_without_data_says_so():
    hf = headline_frame([rec(C, "nih", "fewshot", n, 0.5) for n in ("1", "2")])
    axes = plot_fewshot(hf).axes
    said = ["no cell of these models in this run" in " ".join(t.get_text() for t in ax.texts)
            for ax in axes]
    assert said == [True, True, False, True]
    assert axes[2].get_legend() is not None
    assert plot_fewshot(headline_frame([rec("dinov2_vits14", "nih", "fewshot", "1", 0.5)])) is None


def test_missing_inputs_skip_figures(tmp_path):
    only_cls = [rec(A, "nih", "linear", value=0.8), rec(B, "nih", "knn", value=0.7)]
    made = build_figures(only_cls, tmp_path, roots=[tmp_path])
    assert list(made) == ["fig3_linear_probing"]
    hf = headline_frame(only_cls)
    assert plot_decoders(hf) is None and plot_fewshot(hf) is None
    assert plot_ranking(rank_models(only_cls)) is None
    gone = [rec(A, "mc", "seg_unet", "448", 0.8, examples="examples/missing.npz"),
            rec(A, "mc", "seg_linear", "448", 0.7, examples="examples/missing.npz")]
    assert plot_pca_from(gone, [tmp_path]) is None and plot_masks_from(gone, [tmp_path]) is None
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "missing.npz").write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable example arrays"):
        assert plot_masks_from(gone, [tmp_path]) is None
    assert build_figures([], tmp_path) == {}


def test_pca_and_mask_figures(tmp_path):
    recs = full_records(tmp_path)
    fig2 = plot_pca_from(recs, [tmp_path])
    titles = [a.get_title() for a in fig2.axes if a.get_title()]
    assert [t.split("\n")[0] for t in titles] == ["MC (xray)", "MC (xray)", "AMOS (ct)", "AMOS (ct)",
                                                  "Hippocampus (mri)", "Hippocampus (mri)"]
    assert fig2.axes[0].get_ylabel() == "Image"
    fig6 = plot_masks_from(recs, [tmp_path])
    assert [a.get_title() for a in fig6.axes[:4]] == ["Image", "Ground truth", "Linear decoder",
                                                      "U-Net decoder"]
    assert len(fig6.axes) == 12 and model_label(A) in fig6.get_suptitle()


def test_pca_rgb_recovers_foreground_and_matches_sklearn():
    rng = np.random.default_rng(0)
    n, h, w, d = 2, 6, 6, 16
    feats = 0.05 * rng.standard_normal((n, h, w, d))
    fg = np.zeros((n, h, w), bool)
    fg[:, 2:4, 1:5] = True
    feats[fg] += rng.standard_normal(d) * 3 + rng.standard_normal((fg.sum(), d))
    rgb, mask = pca_rgb(feats)
    assert np.array_equal(mask, fg)
    assert rgb.shape == (n, h, w, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.all(rgb[~fg] == 0)
    ref = PCA(3).fit_transform(feats[fg])
    for k in range(3):            # each channel is an affine (min-max) image of one component
        corr = np.corrcoef(rgb[fg][:, k], ref[:, k])[0, 1]
        assert abs(corr) > 0.999
        assert np.isclose(rgb[fg][:, k].min(), 0) and np.isclose(rgb[fg][:, k].max(), 1)
    again, _ = pca_rgb(feats)
    assert np.array_equal(rgb, again)
