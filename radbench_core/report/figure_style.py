"""How every radbench figure is drawn: an Agg-bound Figure and the demo watermark.

Shared by ``figures.py`` (the study's figures) and ``figures_examples.py`` (PCA, masks), so neither
imports the other for its canvas or its marking.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radbench_core.report.ranking import DEMO_TEXT

DEMO_SUFFIX = "DEMO: random-init weights"
DEMO_COLOR = "#b00020"
DEMO_GID = "radbench-demo-watermark"


def new_figure(width: float, height: float) -> Figure:
    """A Figure bound to the Agg canvas: no pyplot state, no display needed."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def mark_demo(fig: Figure) -> Figure:
    """Stamp a demo figure in the image itself: a diagonal watermark and a title suffix.

    Figures get copied into slides without their captions, so the marking cannot live only in
    the HTML around them.
    """
    width, height = fig.get_size_inches()      # bold glyphs ~0.62 em wide; 28 deg fits the diagonal
    length = min(0.9 * 72 * width, 1.7 * 72 * height)
    size = max(8.0, length / (0.62 * len(DEMO_TEXT)))
    fig.text(0.5, 0.5, DEMO_TEXT, rotation=28, ha="center", va="center", fontsize=size,
             fontweight="bold", color=DEMO_COLOR, alpha=0.3, zorder=1000, gid=DEMO_GID,
             in_layout=False)
    title = fig.get_suptitle()
    fig.suptitle(f"{title} [{DEMO_SUFFIX}]" if title else DEMO_SUFFIX, color=DEMO_COLOR,
                 fontsize=10, fontweight="bold")
    return fig
