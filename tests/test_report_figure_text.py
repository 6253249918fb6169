"""Figures say what they show: no overlapping labels (measured on the Agg-rendered figure), Figure 1
says what it could not rank, Figure 3 draws error bars only where there is an interval, Figure 4
names the input size of every bar."""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.container import ErrorbarContainer

from radbench_core.core.results import CellResult, Metric
from radbench_core.report.figure_style import figure_texts
from radbench_core.report.figures import plot_decoders, plot_linear_bars, plot_ranking
from radbench_core.report.frame import headline_frame, model_label
from radbench_core.report.published import published_records
from radbench_core.report.ranking import FIGURE1_MODELS, rank_models

SEG = ("mc", "amos")


def rec(model, dataset, protocol, variant="", value=0.5, ci=None) -> CellResult:
    task = "segmentation" if dataset in SEG else "classification"
    name = "dice_jaccard" if task == "segmentation" else "auroc"
    lo, hi = ci if ci else (None, None)
    return CellResult(cell_id=f"{model}-{dataset}-{protocol}" + (f"@{variant}" if variant else ""),
                      model=model, dataset=dataset, protocol=protocol, variant=variant, task=task,
                      modality="xray", profile="t", metrics={name: Metric(value, True, lo, hi)},
                      weights="official")


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts whose rendered boxes overlap (Agg renderer, after layout)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in figure_texts(fig)]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def test_figure1_labels_never_overlap_published_or_all_tied():
    assert overlapping_texts(plot_ranking(rank_models(published_records()))) == []
    tied = [rec(m, d, p, v, 0.7) for m in FIGURE1_MODELS
            for d, p, v in (("nih", "linear", ""), ("mc", "seg_unet", "224"))]
    fig = plot_ranking(rank_models(tied))                 # all six on one point (3.5, 3.5)
    labels = [t for t in fig.axes[0].texts]
    assert sorted(t.get_text() for t in labels) == sorted(model_label(m) for m in FIGURE1_MODELS)
    assert overlapping_texts(fig) == []


def test_figure1_on_a_partial_run_ranks_what_is_there_and_says_what_is_missing():
    a, b, c = "dinov2_vitl14", "clip_vitl14", "mae_vitl16"
    recs = [rec(a, "nih", "linear", value=0.8), rec(b, "nih", "linear", value=0.7),
            rec(c, "nih", "linear", value=0.6), rec(a, "chexpert", "linear", value=0.8),
            rec(a, "mc", "seg_unet", "224", 0.9), rec(b, "mc", "seg_unet", "224", 0.8),
            rec(c, "mc", "seg_unet", "448", 0.7)]          # MAE: segmentation, but not at 224 px
    fig = plot_ranking(rank_models(recs))
    note = " ".join(" ".join(t.get_text() for t in fig.texts).split())
    assert f"{model_label(c)} (its segmentation cells are not at the compared size or datasets)" in note
    assert "classification only" not in note
    assert "chexpert left out (1 of 3 models have a value)" in note
    assert f"Not in this run: {model_label('openclip_vith14')}" in note
    assert sorted(t.get_text() for t in fig.axes[0].texts) == sorted(map(model_label, (a, b)))


def test_figure3_error_bars_only_where_there_is_an_interval():
    published = plot_linear_bars(headline_frame(published_records())).axes[0]
    assert not [c for c in published.containers if isinstance(c, ErrorbarContainer)]
    assert "no CI" in published.get_title()
    recs = [rec("dinov2_vitl14", "nih", "linear", value=0.8, ci=(0.75, 0.82)),
            rec("clip_vitl14", "nih", "linear", value=0.7)]
    ax = plot_linear_bars(headline_frame(recs)).axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1                                 # CLIP has no CI: no bar drawn for it
    segments = bars[0].lines[2][0].get_segments()
    assert len(segments) == 1 and np.allclose(sorted(segments[0][:, 1]), [0.75, 0.82])
    assert "where recorded" in ax.get_title()


def test_figure4_names_each_bars_input_size_where_sizes_mix():
    recs = [rec("dinov2_vitl14", "amos", "seg_unet", "448", 0.6),
            rec("mae_vitl16", "amos", "seg_unet", "224", 0.55)]
    ax = plot_decoders(headline_frame(recs)).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        f"{model_label('dinov2_vitl14')} @448 px", f"{model_label('mae_vitl16')} @224 px"]
    assert "input sizes differ" in ax.get_title() and ax.get_ylabel() == "(Dice + Jaccard) / 2"
