"""Figures that cannot be mistaken: a figure drawn from any demo cell carries the demo mark in the
image itself (diagonal watermark + title suffix), in the PNG pixels and in the SVG text."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.image import imread
from PIL import Image

from radbench_core.report.figures import (DEMO_GID, DEMO_SUFFIX, build_figures, plot_fewshot,
                                          plot_linear_bars, plot_ranking)
from radbench_core.report.frame import headline_frame
from radbench_core.report.ranking import DEMO_TEXT, rank_models
from radbench_core.core.results import DEMO_WEIGHTS, CellResult
from tests.test_report_figures import full_records

A, B = "dinov2_vitl14", "clip_vitl14"


def with_weights(recs: list[CellResult], weights: str) -> list[CellResult]:
    for r in recs:
        r.weights = weights
    return recs


def render(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    buf.seek(0)
    return imread(buf)[..., :3]


def watermark(fig):
    return next(t for t in fig.texts if t.get_gid() == DEMO_GID)


def test_every_demo_figure_is_marked_in_png_and_svg(tmp_path):
    made = build_figures(with_weights(full_records(tmp_path), DEMO_WEIGHTS), tmp_path / "fig",
                         roots=[tmp_path])
    assert len(made) == 6
    for stem in made:
        svg = (tmp_path / "fig" / f"{stem}.svg").read_text(encoding="utf-8")
        assert DEMO_TEXT in svg and DEMO_SUFFIX in svg, stem
        assert Image.open(tmp_path / "fig" / f"{stem}.png").info.get("Description") == DEMO_TEXT
    assert DEMO_TEXT in (tmp_path / "fig" / "fig1_ranking.csv").read_text(encoding="utf-8")


def test_real_figures_carry_no_mark(tmp_path):
    made = build_figures(full_records(tmp_path), tmp_path / "fig", roots=[tmp_path])
    assert len(made) == 6
    for stem in made:
        assert "DEMO" not in (tmp_path / "fig" / f"{stem}.svg").read_text(encoding="utf-8"), stem
        assert "Description" not in Image.open(tmp_path / "fig" / f"{stem}.png").info
    assert "DEMO" not in (tmp_path / "fig" / "fig1_ranking.csv").read_text(encoding="utf-8")


def test_watermark_is_drawn_in_the_pixels(tmp_path):
    hf = headline_frame(with_weights(full_records(tmp_path), DEMO_WEIGHTS))
    fig = plot_linear_bars(hf)
    assert DEMO_SUFFIX in fig.get_suptitle()
    marked = render(fig)
    mark = watermark(fig)
    fig.set_dpi(80)                                           # window extent in the PNG's pixels
    box = mark.get_window_extent(fig.canvas.get_renderer())
    mark.set_visible(False)
    clean = render(fig)
    changed = np.abs(marked - clean).sum(axis=2) > 0.05
    assert changed.sum() > 2000                               # a big, visible stamp
    ys, xs = np.nonzero(changed)
    height = marked.shape[0]
    assert xs.min() >= box.x0 - 3 and xs.max() <= box.x1 + 3
    assert height - ys.max() >= box.y0 - 3 and height - ys.min() <= box.y1 + 3
    # the stamp pulls pixels towards its red: red gains on green wherever it is drawn
    delta = marked[changed] - clean[changed]
    assert (delta[:, 0] - delta[:, 1] > 0).mean() > 0.9


def test_only_figures_built_from_demo_cells_are_marked(tmp_path):
    recs = full_records(tmp_path)
    for r in recs:                              # few-shot cells on demo weights, the rest real
        if r.protocol in ("fewshot", "seg_fewshot"):
            r.weights = DEMO_WEIGHTS
    hf = headline_frame(recs)
    assert not any(t.get_gid() == DEMO_GID for t in plot_linear_bars(hf).texts)
    assert DEMO_SUFFIX in plot_fewshot(hf).get_suptitle()
    assert not rank_models(recs).is_demo
    assert not any(t.get_gid() == DEMO_GID for t in plot_ranking(rank_models(recs)).texts)
    next(r for r in recs if r.cell_id == f"{B}-chexpert-linear").weights = DEMO_WEIGHTS
    assert watermark(plot_ranking(rank_models(recs))).get_text() == DEMO_TEXT   # one ranked cell
