"""The study's figures as matplotlib Figures (Agg canvas, no display), saved as PNG + SVG.

Each ``plot_*`` function returns the Figure (so tests can inspect its axes) or None when the run
holds no cell it needs; ``build_figures`` saves whatever could be drawn and skips the rest.
Figures 2 and 6 (patch-feature PCA, predicted masks) read example arrays: see figures_examples.
"""

from __future__ import annotations

import io
import textwrap
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radbench_core.atomic import atomic_write_bytes
from radbench_core.report.frame import (DATASET_ORDER, METRIC_LABEL, MODEL_ORDER, dataset_label,
                                        headline_frame, model_label, order_key, variant_key)
from radbench_core.report.ranking import rank_models
from radbench_core.results import CellResult

FIGURES = {  # file stem -> title shown in the HTML report, in the study's order
    "fig1_ranking": "Figure 1. Classification vs segmentation rank",
    "fig2_pca": "Figure 2. PCA of patch features (first 3 components as RGB)",
    "fig3_linear_probing": "Figure 3. Linear probing AUROC per dataset",
    "fig4_decoders": "Figure 4. Linear vs U-Net decoder per segmentation dataset",
    "fig5_fewshot": "Figure 5. Few-shot learning curves",
    "fig6_masks": "Figure 6. Image, ground truth, linear and U-Net decoder masks",
}


def new_figure(width: float, height: float) -> Figure:
    """A Figure bound to the Agg canvas: no pyplot state, no display needed."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def model_color(model: str):
    """One fixed colour per model across all figures."""
    from matplotlib import colormaps
    i = order_key(MODEL_ORDER)(model)[0]
    return colormaps["tab20"](i % 20)


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically (rendered into memory first)."""
    import matplotlib
    paths = []
    for fmt, extra in (("png", {"dpi": 120}), ("svg", {"metadata": {"Date": None}})):
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": stem}):     # same figure -> same SVG bytes
            fig.savefig(buf, format=fmt, **extra)
        paths.append(atomic_write_bytes(Path(out_dir) / f"{stem}.{fmt}", buf.getvalue()))
    return paths


def plot_ranking(ranks: pd.DataFrame) -> Figure | None:
    """Figure 1: segmentation rank (x) vs classification rank (y), one labelled point per model."""
    both = ranks.dropna(subset=["cls_rank", "seg_rank"])
    if both.empty:
        return None
    fig = new_figure(6.5, 5.5)
    ax = fig.add_subplot()
    for row in both.itertuples():
        ax.scatter(row.seg_rank, row.cls_rank, s=60, color=model_color(row.model),
                   label=model_label(row.model))
        ax.annotate(model_label(row.model), (row.seg_rank, row.cls_rank), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("Segmentation rank (1 = best)")
    ax.set_ylabel("Classification rank (1 = best)")
    ax.set_title("Average rank over datasets")
    ax.margins(0.15)
    ax.legend(fontsize=7, loc="best")
    only = ranks[ranks["cls_rank"].isna() != ranks["seg_rank"].isna()]
    if not only.empty:
        notes = [f"{model_label(r.model)} ({'classification' if pd.notna(r.cls_rank) else 'segmentation'}"
                 " only)" for r in only.itertuples()]
        fig.supxlabel(textwrap.fill("Not plotted: " + ", ".join(notes), 110), fontsize=7)
    return fig


def _yerr(group: pd.DataFrame) -> np.ndarray:
    lo = np.where(group["ci_low"].notna(), group["value"] - group["ci_low"].astype(float), 0.0)
    hi = np.where(group["ci_high"].notna(), group["ci_high"].astype(float) - group["value"], 0.0)
    return np.clip(np.vstack([lo, hi]), 0.0, None)


def plot_linear_bars(hf: pd.DataFrame) -> Figure | None:
    """Figure 3: linear-probing AUROC per dataset (groups) and model (bars), 95% CI error bars."""
    cells = hf[(hf["task"] == "classification") & (hf["protocol"] == "linear") & (hf["variant"] == "")]
    if cells.empty:
        return None
    datasets = sorted(set(cells["dataset"]), key=order_key(DATASET_ORDER))
    models = sorted(set(cells["model"]), key=order_key(MODEL_ORDER))
    width = 0.8 / len(models)
    fig = new_figure(max(6.0, 1.2 * len(datasets) * max(1, len(models)) ** 0.5), 4.5)
    ax = fig.add_subplot()
    for j, model in enumerate(models):
        group = cells[cells["model"] == model]
        x = np.array([datasets.index(d) for d in group["dataset"]]) + (j - (len(models) - 1) / 2) * width
        ax.bar(x, group["value"], width=width, yerr=_yerr(group), capsize=2,
               color=model_color(model), label=model_label(model))
    ax.set_xticks(range(len(datasets)), [dataset_label(d) for d in datasets])
    ax.set_xlabel("Dataset")
    ax.set_ylabel(METRIC_LABEL["auroc"])
    ax.set_ylim(max(0.0, float(cells["value"].min()) - 0.1), 1.0)
    ax.legend(fontsize=7, ncols=2)
    return fig


def plot_decoders(hf: pd.DataFrame) -> Figure | None:
    """Figure 4: per segmentation dataset, linear vs U-Net decoder bars per model (its top resolution)."""
    cells = hf[(hf["task"] == "segmentation") & hf["protocol"].isin(["seg_linear", "seg_unet"])]
    if cells.empty:
        return None
    datasets = sorted(set(cells["dataset"]), key=order_key(DATASET_ORDER))
    fig = new_figure(3.2 * len(datasets), 4.0)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        sub = cells[cells["dataset"] == dataset]
        models = sorted(set(sub["model"]), key=order_key(MODEL_ORDER))
        for k, (protocol, label, hatch) in enumerate((("seg_linear", "Linear decoder", ""),
                                                      ("seg_unet", "U-Net decoder", "//"))):
            xs, ys = [], []
            for i, model in enumerate(models):
                mine = sub[sub["model"] == model]
                top = max(mine["variant"], key=variant_key)
                hit = mine[(mine["variant"] == top) & (mine["protocol"] == protocol)]
                if not hit.empty:
                    xs.append(i + (k - 0.5) * 0.4)
                    ys.append(float(hit["value"].iloc[0]))
            ax.bar(xs, ys, width=0.4, label=label, hatch=hatch,
                   color="tab:blue" if k == 0 else "tab:orange")
        ax.set_xticks(range(len(models)), [model_label(m) for m in models], rotation=45, ha="right",
                      fontsize=7)
        ax.set_title(dataset_label(dataset))
        ax.set_ylabel(METRIC_LABEL["dice_jaccard"])
        ax.set_ylim(0.0, 1.0)
    axes[0].legend(fontsize=7)
    return fig


def _curve(group: pd.DataFrame, shots: list[str]) -> tuple[list[int], np.ndarray, np.ndarray]:
    xs, means, sds = [], [], []
    for row in sorted(group.itertuples(), key=lambda r: variant_key(r.variant)):
        values = np.asarray(row.per_seed if row.per_seed else [row.value], dtype=float)
        xs.append(shots.index(row.variant))
        means.append(values.mean())
        sds.append(values.std(ddof=1) if values.size > 1 else 0.0)
    return xs, np.asarray(means), np.asarray(sds)


def plot_fewshot(hf: pd.DataFrame) -> Figure | None:
    """Figure 5: headline metric vs shots, mean over seeds with a +-1 SD band (from per_seed)."""
    panels = [(p, t, x) for p, t, x in (
        ("fewshot", "Classification", "Patients per class (shots)"),
        ("seg_fewshot", "Segmentation", "Training patients (shots)")) if (hf["protocol"] == p).any()]
    if not panels:
        return None
    fig = new_figure(5.5 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (protocol, title, xlabel) in zip(axes, panels):
        cells = hf[hf["protocol"] == protocol]
        shots = sorted(set(cells["variant"]), key=variant_key)
        for (model, dataset), group in sorted(cells.groupby(["model", "dataset"]),
                                              key=lambda kv: (order_key(MODEL_ORDER)(kv[0][0]),
                                                              order_key(DATASET_ORDER)(kv[0][1]))):
            xs, mean, sd = _curve(group, shots)
            line, = ax.plot(xs, mean, marker="o", label=f"{model_label(model)} — {dataset_label(dataset)}")
            ax.fill_between(xs, mean - sd, mean + sd, alpha=0.2, color=line.get_color())
        ax.set_xticks(range(len(shots)), shots)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(METRIC_LABEL["auroc" if protocol == "fewshot" else "dice_jaccard"])
        ax.set_title(title)
        ax.legend(fontsize=7)
    return fig


def build_figures(records: Iterable[CellResult], out_dir: Path,
                  roots: list[Path] | None = None) -> dict[str, list[Path]]:
    """Draw and save every figure the records support; absent inputs skip that figure silently."""
    from radbench_core.report.figures_examples import plot_masks_from, plot_pca_from
    records = list(records)
    hf = headline_frame(records)
    roots = [Path(r) for r in (roots or [])]
    makers = {
        "fig1_ranking": lambda: plot_ranking(rank_models(records)),
        "fig2_pca": lambda: plot_pca_from(records, roots),
        "fig3_linear_probing": lambda: plot_linear_bars(hf),
        "fig4_decoders": lambda: plot_decoders(hf),
        "fig5_fewshot": lambda: plot_fewshot(hf),
        "fig6_masks": lambda: plot_masks_from(records, roots),
    }
    made = {}
    for stem, make in makers.items():
        try:
            fig = make()
        except Exception as exc:  # noqa: BLE001 - one odd record must not cost the whole report
            warnings.warn(f"report: {stem} skipped, it could not be drawn ({type(exc).__name__}: {exc})",
                          RuntimeWarning, stacklevel=2)
            continue
        if fig is not None:
            made[stem] = save_figure(fig, out_dir, stem)
    return made
