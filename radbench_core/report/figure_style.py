"""How every radbench figure is drawn: an Agg-bound Figure and the demo watermark.

Shared by ``figures.py`` (the study's figures) and ``figures_examples.py`` (PCA, masks), so neither
imports the other for its canvas or its marking.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

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


# label offsets (points) tried in turn: right of the point, then below/above it, then to its left
_OFFSETS = [(4, dy, "left") for dy in (4, -12, 16, -24, 28, -36, 40)] + \
           [(-4, dy, "right") for dy in (4, -12, 16, -24, 28, -36, 40)]


def figure_texts(fig: Figure) -> list[Text]:
    """Every visible, non-empty text of a figure except the demo watermark (which overlaps by design)."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
            and t.get_gid() != DEMO_GID]


def place_labels(ax, points: list[tuple[float, float]], labels: list[str], fontsize: float = 8) -> None:
    """Label each point next to it without covering another text: each label takes the first offset
    whose box overlaps no text drawn so far and stays inside the axes.

    Why: ranks tie (several models on one point) and neighbouring ranks sit a label's width apart, so
    fixed offsets print labels on top of each other. The layout is settled first (one draw) and the
    labels stay out of it, so the boxes measured here are the boxes saved."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = [t.get_window_extent(renderer) for t in figure_texts(fig)]
    inside = ax.get_window_extent(renderer)
    for (x, y), label in zip(points, labels):
        best = None
        for dx, dy, ha in _OFFSETS:
            note = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha,
                               fontsize=fontsize, in_layout=False)
            box = note.get_window_extent(renderer)
            free = not any(box.overlaps(t) for t in taken) and (
                inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1)
            if free or best is None:
                if best is not None:
                    best[0].remove()
                best = (note, box)
                if free:
                    break
            else:
                note.remove()
        taken.append(best[1])
