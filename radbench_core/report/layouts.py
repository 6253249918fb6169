"""The study's Tables 3-9 as data: row sets, row order, column order, labels and parameter columns.

Why: "the paper's tables" must mean the study's rows and columns, whatever a run holds. Each row
and column names the cell it takes (model, dataset, protocol, variant); a run's cell that no study
row takes goes to the table's extended companion (built in ``tables.py``). Parameter counts of
Tables 6 and 9 are computed from the full-size architectures with one output class, as the study
counted them (Table 6 caption), never typed in; each such row also carries the entries the study
printed (``RowSpec.printed``), shown only when the report lays out the study's own numbers
(``radbench report --published``), where a computed count under the study's caption would misquote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

SEG_DATASETS = ("mc", "amos", "msd_heart", "msd_hippocampus", "msd_spleen")      # the study's order
CLS_DATASETS = ("nih", "chexpert", "sarscov2", "brain_tumor")
SEG_HEADS = {"mc": "MC", "amos": "AMOS", "msd_heart": "MSD Heart", "msd_hippocampus": "MSD Hipp",
             "msd_spleen": "MSD Spleen"}
CLS_HEADS = {"nih": "NIH Chest X-ray", "chexpert": "CheXpert", "sarscov2": "SARS-CoV-2",
             "brain_tumor": "Brain Tumor"}


@dataclass(frozen=True)
class RowSpec:
    labels: tuple[str, ...]          # what the study prints in its label columns
    model: str
    protocol: str = ""               # "" = the column's protocol
    variant: str | None = None       # None = the layout's variant
    params: str = ""                 # "" | "decoder" | "scratch" | "finetune:<mode>"
    printed: tuple[str, ...] = ()    # the study's parameter entries as printed (paper Tables 6, 9)


@dataclass(frozen=True)
class ColSpec:
    group: str                       # upper header ("NIH Chest X-ray"), "" for one level
    label: str
    dataset: str
    protocol: str = ""               # "" = the row's protocol


@dataclass(frozen=True)
class Layout:
    key: str
    number: int
    title: str
    caption: str
    task: str                        # "classification" | "segmentation"
    row_header: tuple[str, ...]
    rows: tuple[RowSpec, ...]
    cols: tuple[ColSpec, ...]
    variant: str = ""
    params: tuple[str, ...] = ()     # leading parameter columns: "trainable_pct", "total"

    def cell_id(self, row: RowSpec, col: ColSpec) -> str:
        protocol = row.protocol or col.protocol
        variant = self.variant if row.variant is None else row.variant
        base = f"{row.model}-{col.dataset}-{protocol}"
        return f"{base}@{variant}" if variant else base

    @property
    def protocols(self) -> frozenset[str]:
        return frozenset(r.protocol for r in self.rows if r.protocol) | frozenset(
            c.protocol for c in self.cols if c.protocol)


def _sup(arch: str, model: str, **kw) -> RowSpec:
    return RowSpec(("Supervised", arch), model, **kw)


def _dino(arch: str, sub: str = "", **kw) -> RowSpec:
    """A DINOv2 row; ``sub`` is printed as a subscript of the architecture (``ViT-L/14_{448}``)."""
    label = f"{arch}_{{{sub}}}" if sub else arch
    return RowSpec(("DINOv2", label), "dinov2_vit" + arch[4:].replace("/", "").lower(), **kw)


_SUPERVISED = (_sup("DenseNet201", "densenet201"), _sup("ResNet152", "resnet152"),
               _sup("VGG19", "vgg19"), _sup("ViT-L/16", "vit_l16_in21k"))
_OTHERS = (RowSpec(("MAE", "ViT-L/16"), "mae_vitl16"), RowSpec(("MSN", "ViT-L/16"), "msn_vitl16"),
           RowSpec(("CLIP", "ViT-L/14"), "clip_vitl14"),
           RowSpec(("OpenCLIP", "ViT-H/14"), "openclip_vith14"))
_SEG_COLS = tuple(ColSpec("", SEG_HEADS[d], d, "seg_unet") for d in SEG_DATASETS)

LAYOUTS: tuple[Layout, ...] = (
    Layout("table3_linear_probing", 3, "Table 3. Linear probing vs supervised models",
           "Linear probing of DINOv2 (all sizes) and supervised models on X-ray, CT and MRI "
           "classification.", "classification", ("Method", "Architecture"),
           (*_SUPERVISED, *(_dino(a) for a in ("ViT-S/14", "ViT-B/14", "ViT-L/14", "ViT-g/14"))),
           tuple(ColSpec("", CLS_HEADS[d], d, "linear") for d in CLS_DATASETS)),
    Layout("table4_knn_linear_finetune", 4, "Table 4. kNN, linear probing and fine-tuning",
           "kNN, linear probing and end-to-end fine-tuning on the large X-ray datasets.",
           "classification", ("Method", "Architecture"),
           (*_SUPERVISED, *_OTHERS, _dino("ViT-L/14"), _dino("ViT-g/14")),
           tuple(ColSpec(CLS_HEADS[d], label, d, p) for d in ("nih", "chexpert")
                 for p, label in (("knn", "kNN"), ("linear", "Linear-probing"),
                                  ("finetune", "Fine-tuning")))),
    Layout("table5_segmentation_unet", 5, "Table 5. Segmentation with a U-Net decoder",
           "U-Net decoder on frozen backbones at 224 px; DINOv2 also at 448 px (the subscript).",
           "segmentation", ("Method", "Architecture"),
           (*(RowSpec(r.labels, r.model, variant="224") for r in _OTHERS),      # printed without size
            *(_dino(a, v, variant=v) for a in ("ViT-L/14", "ViT-g/14") for v in ("224", "448"))),
           _SEG_COLS),
    Layout("table6_dinov2_vs_scratch", 6, "Table 6. Frozen DINOv2 vs segmentation models from scratch",
           "Frozen DINOv2 with a U-Net decoder (448 px) vs U-Net and TransUNet trained from scratch "
           "(448 px).", "segmentation", ("Method", "Architecture"),
           (RowSpec(("Scratch", "U-Net"), "unet", "scratch", params="scratch",
                    printed=("31M (100%)", "31M")),
            RowSpec(("Scratch", "TransUnet"), "transunet", "scratch", params="scratch",
                    printed=("324M (100%)", "324M")),
            _dino("ViT-L/14", protocol="seg_unet", params="decoder", printed=("17M (5%)", "317M")),
            _dino("ViT-g/14", protocol="seg_unet", params="decoder", printed=("38M (3%)", "1,138M"))),
           tuple(ColSpec("", SEG_HEADS[d], d, "") for d in SEG_DATASETS), variant="448",
           params=("trainable_pct", "total")),
    Layout("table7_dinov2_vs_in21k_segmentation", 7, "Table 7. DINOv2 vs supervised ImageNet-21k ViT",
           "U-Net decoder on a frozen DINOv2 ViT-L/14 vs a ViT-L/16 pre-trained with labels on "
           "ImageNet-21k.", "segmentation", ("Method", "Architecture", "Image Size"),
           (RowSpec(("Supervised", "ViT-L/16", "224"), "vit_l16_in21k", variant="224"),
            RowSpec(("DINOv2", "ViT-L/14", "224"), "dinov2_vitl14", variant="224"),
            RowSpec(("DINOv2", "ViT-L/14", "448"), "dinov2_vitl14", variant="448")),
           tuple(ColSpec("", "Montgomery County" if d == "mc" else SEG_HEADS[d], d, "seg_unet")
                 for d in SEG_DATASETS)),
    Layout("table8_sam_vs_dinov2", 8, "Table 8. SAM vs DINOv2 on X-ray classification",
           "Linear probe on a fixed subset of each dataset at 1024 px; SAM's class token is the mean "
           "of its patch embeddings.", "classification", ("Method", "Architecture"),
           (RowSpec(("SAM", "ViT-L/16"), "sam_vitl16"), RowSpec(("DINOv2", "ViT-L/14"), "dinov2_vitl14")),
           tuple(ColSpec("", CLS_HEADS[d], d, "linear_subset") for d in ("nih", "chexpert")),
           variant="1024"),
    Layout("table9_finetune_lora_bitfit", 9, "Table 9. Parameter-efficient fine-tuning of DINOv2 ViT-g/14",
           "Fine-tuning, linear probing, LoRA and BitFit on DINOv2 ViT-g/14.", "classification",
           ("Method",),
           tuple(RowSpec((label,), "dinov2_vitg14", p, params=f"finetune:{mode}", printed=(printed,))
                 for label, p, mode, printed in (("Fine-tuning", "finetune", "full", "1,100M (100%)"),
                                                 ("Linear-probing", "linear", "linear", "1,500 (1e-6%)"),
                                                 ("LoRA", "lora", "lora", "8M (0.7%)"),
                                                 ("BitFit", "bitfit", "bitfit", "0.8M (0.07%)"))),
           tuple(ColSpec("", CLS_HEADS[d], d) for d in ("nih", "chexpert")),
           params=("trainable_pct",)),
)
LAYOUT_BY_KEY = {lay.key: lay for lay in LAYOUTS}


def study_parameter_counts(row: RowSpec, variant: str) -> tuple[int, int] | None:
    """(trainable, total) of a Table 6/9 row with one output class, or None if not computable here.

    The counting functions build the full-size architecture on the meta device. They are radbench's
    own code, so an error in them propagates: catching it (as an ``except AttributeError`` once did)
    turned a broken counter into a silently missing column and a skipped test (issue 21).
    """
    if not row.params:
        return None
    return _counts(row.params, row.model, variant)


@lru_cache(maxsize=None)
def _counts(kind: str, model: str, variant: str) -> tuple[int, int]:
    if kind == "decoder":
        from radbench_core.protocols.decoders import parameter_counts
        trainable, total = parameter_counts(model, "unet", int(variant), num_classes=1)
    elif kind == "scratch":
        from radbench_core.models.scratch_models import parameter_counts
        trainable, total = parameter_counts(model, num_classes=1)
    else:
        from radbench_core.config.hparams import PAPER
        from radbench_core.protocols.finetune import parameter_counts
        mode = kind.partition(":")[2]
        trainable, total = parameter_counts(model, mode, num_classes=1, hparams=PAPER.get(mode, {}))
    return int(trainable), int(total)
