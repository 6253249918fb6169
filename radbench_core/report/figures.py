"""The study's figures as matplotlib Figures (Agg canvas, no display), saved as PNG + SVG.

Each ``plot_*`` function returns the Figure (so tests can inspect its axes) or None when the run
holds no cell it needs; ``build_figures`` saves whatever could be drawn and skips the rest.
Figures 2 and 6 (patch-feature PCA, predicted masks) read example arrays: see figures_examples.
Figure 1 ranks the study's six models (see ranking; its numbers also go to ``fig1_ranking.csv``);
Figure 5 is the study's 2 x 2 grid (NIH / MC; DINOv2 ViT-L/14 vs weakly-/self-supervised, then vs
supervised models). A figure drawn from any demo cell carries a diagonal watermark and a title
suffix in the image itself (``mark_demo``), since figures travel without their captions.
"""

from __future__ import annotations

import io
import textwrap
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from radbench_core.core.atomic import atomic_write_bytes, atomic_write_text
from radbench_core.report.frame import (DATASET_ORDER, METRIC_LABEL, MODEL_ORDER, dataset_label,
                                        headline_frame, model_label, order_key, variant_key)
from radbench_core.report.ranking import (DEMO_TEXT, FIGURE1_MODELS, RULE_TEXT, Figure1Ranking,
                                          figure1_csv, rank_models)
from radbench_core.core.results import CellResult
from radbench_core.report.figure5_all import with_all_points
from radbench_core.report.figure_style import (DEMO_COLOR, DEMO_GID, DEMO_SUFFIX, mark_demo, new_figure,
                                               place_labels)

FIGURES = {  # file stem -> title shown in the HTML report, in the study's order
    "fig1_ranking": "Figure 1. Classification vs segmentation rank of the six weakly-/self-supervised "
                    "models",
    "fig2_pca": "Figure 2. PCA of patch features (first 3 components as RGB)",
    "fig3_linear_probing": "Figure 3. Linear probing AUROC per dataset",
    "fig4_decoders": "Figure 4. Linear vs U-Net decoder per segmentation dataset",
    "fig5_fewshot": "Figure 5. Few-shot learning curves: NIH and MC, DINOv2 ViT-L/14 vs the others",
    "fig6_masks": "Figure 6. Image, ground truth, linear and U-Net decoder masks",
}
FEWSHOT_REFERENCE = "dinov2_vitl14"
FEWSHOT_ROWS = (("weakly-/self-supervised", ("clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16")),
                ("supervised", ("vit_l16_in21k", "densenet201", "resnet152", "vgg19", "unet", "transunet")))
FEWSHOT_COLUMNS = (  # protocols, dataset, panel title, x label, y label
    (("fewshot",), "nih", "NIH", "Patients per class", METRIC_LABEL["auroc"]),
    (("seg_fewshot", "scratch_fewshot"), "mc", "MC", "Training patients", METRIC_LABEL["dice_jaccard"]))


def model_color(model: str):
    """One fixed colour per model across all figures."""
    from matplotlib import colormaps
    i = order_key(MODEL_ORDER)(model)[0]
    return colormaps["tab20"](i % 20)


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically (rendered into memory first)."""
    import matplotlib
    paths = []
    demo = any(t.get_gid() == DEMO_GID for t in fig.texts)
    note = {"Description": DEMO_TEXT} if demo else {}
    for fmt, extra in (("png", {"dpi": 120, "metadata": note}),
                       ("svg", {"metadata": {"Date": None, **note}})):
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": stem}):     # same figure -> same SVG bytes
            fig.savefig(buf, format=fmt, **extra)
        paths.append(atomic_write_bytes(Path(out_dir) / f"{stem}.{fmt}", buf.getvalue()))
    return paths


def _any_demo(cells: pd.DataFrame) -> bool:
    return "is_demo" in cells and bool(cells["is_demo"].fillna(False).astype(bool).any())


def plot_ranking(ranking: Figure1Ranking) -> Figure | None:
    """Figure 1: segmentation rank (x) vs classification rank (y) of the six compared models."""
    ranks = ranking.table
    both = ranks.dropna(subset=["cls_rank", "seg_rank"])
    if both.empty:
        return None
    fig = new_figure(7.5, 6.0)
    ax = fig.add_subplot()
    for row in both.itertuples():
        ax.scatter(row.seg_rank, row.cls_rank, s=60, color=model_color(row.model), label=row.label)
    n = int(max(both["cls_rank"].max(), both["seg_rank"].max()))
    ax.set_xticks(range(1, n + 1))
    ax.set_yticks(range(1, n + 1))
    ax.set_xlim(0.5, n + 1.5)                       # room right of the last rank for its label
    ax.set_ylim(0.5, n + 0.5)
    ax.set_xlabel("Segmentation rank (1 = best)")
    ax.set_ylabel("Classification rank (1 = best)")
    ax.set_title("Average rank over datasets")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.supxlabel(textwrap.fill(ranking_caption(ranking), 130), fontsize=6.5)
    if ranking.is_demo:
        mark_demo(fig)
    place_labels(ax, list(zip(both["seg_rank"], both["cls_rank"])), list(both["label"]))
    return fig


def ranking_caption(ranking: Figure1Ranking) -> str:
    """What Figure 1 ranks and what it leaves out: models not plotted (and why), datasets left out,
    models of the six absent from the run."""
    ranks = ranking.table
    both = ranks.dropna(subset=["cls_rank", "seg_rank"])
    counts = ", ".join(f"{r.label} {r.n_cls_datasets}/{r.n_seg_datasets}" for r in both.itertuples())
    caption = f"{RULE_TEXT} Datasets (classification/segmentation): {counts}."
    notes = []
    for r in ranks[ranks["cls_rank"].isna() != ranks["seg_rank"].isna()].itertuples():
        ranked, unranked = (("classification", "segmentation") if pd.notna(r.cls_rank)
                            else ("segmentation", "classification"))
        has = unranked in ranking.present.get(r.model, set())
        notes.append(f"{r.label} (its {unranked} cells are not at the compared size or datasets)"
                     if has else f"{r.label} ({ranked} only)")
    if notes:
        caption += " Not plotted: " + ", ".join(notes) + "."
    left_out = [n for n in ranking.notes if "left out" in n]
    if left_out:
        caption += " Left out: " + "; ".join(left_out) + "."
    absent = [model_label(m) for m in FIGURE1_MODELS if m not in set(ranks["model"])]
    if absent:
        caption += " Not in this run: " + ", ".join(absent) + "."
    return caption


def _yerr(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which bars have a 95% CI, and their (lower, upper) error lengths; a bar without one gets no
    error bar at all (a published value has no interval: a zero-length bar would claim one)."""
    has = (group["ci_low"].notna() & group["ci_high"].notna()).to_numpy()
    value = group["value"].to_numpy(dtype=float)
    lo = value - group["ci_low"].astype(float).to_numpy()
    hi = group["ci_high"].astype(float).to_numpy() - value
    return has, np.clip(np.vstack([lo, hi])[:, has], 0.0, None)


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
        ax.bar(x, group["value"], width=width, color=model_color(model), label=model_label(model))
        has, err = _yerr(group)
        if has.any():
            ax.errorbar(x[has], group["value"].to_numpy(dtype=float)[has], yerr=err, fmt="none",
                        ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_xticks(range(len(datasets)), [dataset_label(d) for d in datasets])
    ax.set_xlabel("Dataset")
    ax.set_ylabel(METRIC_LABEL["auroc"] + " (linear probe, default input size)")
    ax.set_ylim(max(0.0, float(cells["value"].min()) - 0.1), 1.0)
    with_ci = (cells["ci_low"].notna() & cells["ci_high"].notna())
    ax.set_title("Error bars: 95% bootstrap CI" if with_ci.all() else "no CI: no error bar"
                 if not with_ci.any() else "Error bars: 95% bootstrap CI where recorded", fontsize=8)
    ax.legend(fontsize=7, ncols=2)
    return mark_demo(fig) if _any_demo(cells) else fig


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
        sizes = {m: max(sub[sub["model"] == m]["variant"], key=variant_key) for m in models}
        for k, (protocol, label, hatch) in enumerate((("seg_linear", "Linear decoder", ""),
                                                      ("seg_unet", "U-Net decoder", "//"))):
            xs, ys = [], []
            for i, model in enumerate(models):
                hit = sub[(sub["model"] == model) & (sub["variant"] == sizes[model])
                          & (sub["protocol"] == protocol)]
                if not hit.empty:
                    xs.append(i + (k - 0.5) * 0.4)
                    ys.append(float(hit["value"].iloc[0]))
            ax.bar(xs, ys, width=0.4, label=label, hatch=hatch,
                   color="tab:blue" if k == 0 else "tab:orange")
        ax.set_xticks(range(len(models)), [_at_size(model_label(m), sizes[m]) for m in models],
                      rotation=45, ha="right", fontsize=7)
        ax.set_title(dataset_label(dataset) + ("" if len(set(sizes.values())) == 1 else
                                               "\n(input sizes differ: see labels)"), fontsize=9)
        metrics = sorted(set(sub["metric"]))
        ax.set_ylabel(METRIC_LABEL.get(metrics[0], metrics[0]) if len(metrics) == 1
                      else "mixed: " + " / ".join(METRIC_LABEL.get(m, m) for m in metrics), fontsize=8)
        ax.set_ylim(0.0, 1.0)
    axes[0].legend(fontsize=7)
    return mark_demo(fig) if _any_demo(cells) else fig


def _at_size(label: str, variant: str) -> str:
    """A model's label with the input size its bars were run at ("DINOv2 ViT-L/14 @448 px")."""
    return f"{label} @{variant} px" if variant.isdigit() else f"{label} ({variant})" if variant else label


def _curve(group: pd.DataFrame, shots: list[str]) -> tuple[list[int], np.ndarray, np.ndarray]:
    xs, means, sds = [], [], []
    for row in sorted(group.itertuples(), key=lambda r: variant_key(r.variant)):
        values = np.asarray(row.per_seed if row.per_seed else [row.value], dtype=float)
        xs.append(shots.index(row.variant))
        means.append(values.mean())
        sds.append(values.std(ddof=1) if values.size > 1 else 0.0)
    return xs, np.asarray(means), np.asarray(sds)


def _fewshot_panel(ax, cells: pd.DataFrame, models: tuple[str, ...], shots: list[str],
                   title: str, xlabel: str, ylabel: str) -> None:
    """One panel of Figure 5: DINOv2 ViT-L/14 and the compared models present, +-1 SD bands."""
    ax.set_title(title, fontsize=9)
    mine = cells[cells["model"].isin((FEWSHOT_REFERENCE, *models))]
    if mine.empty:
        ax.text(0.5, 0.5, "no cell of these models in this run", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    for model, group in sorted(mine.groupby("model"), key=lambda kv: order_key(MODEL_ORDER)(kv[0])):
        xs, mean, sd = _curve(group, shots)
        ref = model == FEWSHOT_REFERENCE
        ax.plot(xs, mean, marker="o", color=model_color(model), label=model_label(model),
                linewidth=2.5 if ref else 1.5, zorder=3 if ref else 2)
        ax.fill_between(xs, mean - sd, mean + sd, alpha=0.2, color=model_color(model))
    ax.set_xticks(range(len(shots)), shots)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def plot_fewshot(hf: pd.DataFrame) -> Figure | None:
    """Figure 5: NIH few-shot classification and MC few-shot segmentation (columns); DINOv2 ViT-L/14
    against weakly-/self-supervised models (top row) and supervised models (bottom row).

    Each point is the mean over seeds with a +-1 SD band (from per_seed); a panel none of whose
    models has a cell says so. The "All" points are the table cells (figure5_all), as the study drew
    them.
    """
    columns = [(hf[hf["protocol"].isin(protocols) & (hf["dataset"] == dataset)], *rest)
               for protocols, dataset, *rest in FEWSHOT_COLUMNS]
    rows_models = {m for _, models in FEWSHOT_ROWS for m in models} | {FEWSHOT_REFERENCE}
    if not any(c["model"].isin(rows_models).any() for c, *_ in columns):
        return None
    fig = new_figure(11.0, 8.0)
    axes = fig.subplots(len(FEWSHOT_ROWS), len(columns), squeeze=False)
    used = []
    for j, (cells, title, xlabel, ylabel) in enumerate(columns):
        cells = cells[cells["model"].isin(rows_models)]
        dataset = FEWSHOT_COLUMNS[j][1]
        panels = [with_all_points(cells, hf, dataset, (FEWSHOT_REFERENCE, *models), row_title)
                  for row_title, models in FEWSHOT_ROWS]
        shots = sorted(set().union(*(set(p["variant"]) for p in panels)), key=variant_key)
        for i, (row_title, models) in enumerate(FEWSHOT_ROWS):
            _fewshot_panel(axes[i, j], panels[i], models, shots, f"{title}: DINOv2 vs {row_title}",
                           xlabel, ylabel)
        used += [p[p["model"].isin(rows_models)] for p in panels]
    return mark_demo(fig) if _any_demo(pd.concat(used)) else fig


def build_figures(records: Iterable[CellResult], out_dir: Path,
                  roots: list[Path] | None = None) -> dict[str, list[Path]]:
    """Draw and save every figure the records support; absent inputs skip that figure silently."""
    from radbench_core.report.figures_examples import plot_masks_from, plot_pca_from
    records = list(records)
    hf = headline_frame(records)
    roots = [Path(r) for r in (roots or [])]
    ranking = rank_models(records)
    makers = {
        "fig1_ranking": lambda: plot_ranking(ranking),
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
    csv = Path(out_dir) / "fig1_ranking.csv"
    if "fig1_ranking" in made:
        made["fig1_ranking"].append(atomic_write_text(csv, figure1_csv(ranking)))
    else:
        csv.unlink(missing_ok=True)
    return made
