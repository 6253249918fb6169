"""Switches: each place where the study, as it ran, differs from the sound way, with both values.

The ``paper`` profile sets every switch to the study's value (what its released code did, even
where that is flawed: test-set selection, a loss summed over the batch, BatchNorm in train mode at
scoring), so its numbers are the study's. The ``sound`` profile runs the same cells with every
switch at the value we argue for. ``demo`` keeps the sound values (its baseline numbers were taken
that way). A switch's value reaches the protocol through ``hparams[switch.key]`` (merged in by
``Profile.hparams_for``), and the code that reads it is what a switch test observes; each record
carries the switches that touch its cell (``CellResult.switches``), and a switch at its sound value
is also listed in ``CellResult.deviations`` by its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STUDY, SOUND = "study", "sound"
MULTILABEL_PROTOCOLS = ("linear", "linear_subset", "fewshot", "finetune", "lora", "bitfit")
SEG_PROTOCOLS = ("seg_linear", "seg_unet", "seg_fewshot", "scratch", "scratch_fewshot")
# backbones whose own input constants are not ImageNet's (tests check this list against the specs)
NON_IMAGENET_MODELS = ("clip_vitl14", "openclip_vith14", "vit_l16_in21k")
SCRATCH_MODELS = ("unet", "transunet")          # ours: 0.5 / 0.5; the study's notebooks: ImageNet
# the study's Hugging Face ViTs (its dinov2/eval/utils.py wrappers return hidden_states[-n:])
HF_VIT_MODELS = ("clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16", "vit_l16_in21k")
BACKBONE_PROTOCOLS = ("knn", "linear", "linear_subset", "fewshot", "finetune", "lora", "bitfit",
                      "seg_linear", "seg_unet", "seg_fewshot")


@dataclass(frozen=True)
class Switch:
    id: str                          # the deviation id recorded while the switch is at its sound value
    family: str                      # report grouping: "loss", "batchnorm", "selection", "data", ...
    name: str                        # the setting, in words
    key: str                         # hparams key the protocol (or the runner) reads
    study: Any                       # the study's value (the paper profile)
    sound: Any                       # our value (the sound and demo profiles)
    study_text: str                  # the study's value, in words
    sound_text: str                  # ours, in words
    source: str                      # "repo <file>:<lines>" or "paper <section>"
    why: str                         # why the sound value is sound
    protocols: tuple[str, ...] = ()  # () = every protocol
    datasets: tuple[str, ...] = ()   # () = every dataset
    models: tuple[str, ...] = ()     # () = every model
    load_option: str = ""            # a data switch: the LoadOptions field its value goes to
    # (protocol, hparams key, value): on that protocol the switch acts only while hparams[key] is
    # value (the augmentation, on the linear probe, only when its heads train on augmented images)
    only_when: tuple[tuple[str, str, Any], ...] = ()

    def affects(self, model: str, dataset: str, protocol: str) -> bool:
        return ((not self.protocols or protocol in self.protocols)
                and (not self.datasets or dataset in self.datasets)
                and (not self.models or model in self.models))

    def acts(self, protocol: str, hparams: dict[str, Any]) -> bool:
        """Whether the code this switch names runs for a cell of ``protocol`` with ``hparams``."""
        return all(hparams.get(key) == value for p, key, value in self.only_when if p == protocol)

    def value(self, side: str) -> Any:
        return self.study if side == STUDY else self.sound


SWITCHES: tuple[Switch, ...] = (
    Switch("multilabel_loss_mean", "loss", "multi-label loss reduction", "multilabel_loss",
           "batch_sum", "mean",
           "per item the mean BCE over classes, summed over the batch (= B x the mean), so every "
           "learning rate acts B (32-128) times larger",
           "BCE averaged over the batch and the classes (known labels only)",
           "repo dinov2/eval/classification/linear.py:318-328",
           "a loss that grows with the batch size ties the learning-rate grid to the batch; the "
           "stated rates then mean what they say",
           protocols=MULTILABEL_PROTOCOLS, datasets=("nih", "chexpert")),
    Switch("seg_bn_eval_at_scoring", "batchnorm", "BatchNorm mode when scoring decoders and scratch "
           "models", "bn_at_scoring", "train", "eval",
           "train mode: evaluate() puts only the encoder in eval mode, the decoders (and the scratch "
           "U-Net / TransUNet, whose notebooks never call eval()) normalise with each test batch's "
           "statistics", "eval mode: running statistics from training",
           "repo dinov2/eval/segmentation/utils.py:361; unet.ipynb; transunet.ipynb",
           "with batch statistics an item's prediction depends on the other items of its batch "
           "(the U-Net's last layer is BN on the class channels, so the argmax moves)",
           protocols=SEG_PROTOCOLS),
    Switch("amos_all_cases", "data", "AMOS cases", "amos_cases", 150, None,
           "150 CT cases", "every CT case of the release (300)",
           "paper A.1 (AMOS, 150 cases); repo dinov2/data/datasets/amos.py",
           "more test volumes give a tighter interval; the 150 are not a published list",
           protocols=SEG_PROTOCOLS, datasets=("amos",), load_option="subset"),
    Switch("patient_split_70_10_20", "data", "split rule where no official split exists", "split_rule",
           "study", "ours",
           "the study's make_splits / data_split / make_val_set counts, by systematic sampling in folder "
           "order: Montgomery 69 / 23 / 46 images (test every 3rd, val every 4th of the rest); brain "
           "tumour 70 test and 50 val patients of 233; MSD Spleen 15 test, 10 val of 41 volumes, "
           "Hippocampus 80 / 60 of 260, Heart 4 / 4 of 20 (inferred from its split lengths); SARS-CoV-2 "
           "70 test, 50 val of 210 patients; brain tumour and SARS-CoV-2 unstratified (paper A.1: "
           "systematic sampling of the evaluation set; the class is not looked at); NIH val = the "
           "last 10,002 rows of train_val_list.txt (patients not kept apart)",
           "70 / 10 / 20 % of patients, systematic in natural order (brain tumour and SARS-CoV-2 "
           "stratified by class; NIH: 10 % of the train_val patients as val)",
           "repo dinov2/data/datasets/mc.py make_splits; brain_tumor.py make_splits; msd_spleen.py, "
           "msd_hipp.py data_split; msd_heart.py split lengths; sars_cov_2_ct.py make_splits; "
           "nih_chest_xray.py make_val_set. The study's own split folders (train/ val/ test/), where "
           "a user has them, are read as they are with --radbench-splits DATASET=FOLDER and win over "
           "both values",
           "a third of the data as test and a sixth as val leaves the decoder half the images to learn "
           "from; the 70/10/20 split is the same rule on every dataset, and keeps a patient's images "
           "in one split; stratifying by class keeps every class in a small val or test split (else "
           "its AUROC is undefined)", datasets=("mc", "brain_tumor", "msd_spleen", "msd_hippocampus", "msd_heart",
                                     "sarscov2", "nih"),
           load_option="split_rule"),
    Switch("input_norm_per_model", "input", "input normalisation constants", "input_norm",
           "imagenet", "model",
           "ImageNet mean/std after the per-image min-max, for every model (make_normalize_transform's "
           "default), the scratch U-Net and TransUNet included (their notebooks' transforms)",
           "each model's own constants (CLIP/OpenCLIP: CLIP's; ViT-L/16: its checkpoint's 0.5/0.5); "
           "the scratch models 0.5 / 0.5 (inputs in [-1, 1])",
           "repo dinov2/data/transforms.py make_normalize_transform; unet.ipynb; transunet.ipynb",
           "a model sees inputs scaled as in its pre-training; ImageNet constants shift and scale "
           "CLIP's and ViT-L/16's inputs (x 2.2 for ViT-L/16); a model trained from scratch has no "
           "pre-training statistics, and [-1, 1] is centred for every modality",
           models=NON_IMAGENET_MODELS + SCRATCH_MODELS),
    Switch("seg_fewshot_random_seeds", "sampling", "few-shot segmentation images", "fewshot_sample",
           "systematic", "random",
           "one evenly spaced sample, np.arange(0, n, n / shots).round(), one run",
           "a random sample per seed (3 seeds), mean and spread over them",
           "repo dinov2/data/wrappers.py:17",
           "one fixed sample measures that sample; several draws say how much the choice of n "
           "images moves the score", protocols=("seg_fewshot", "scratch_fewshot")),
    Switch("knn_k_on_val", "selection", "kNN: k chosen on", "k_selection", "test", "val",
           "the test set: every k scored on test, the best reported", "validation AUROC",
           "repo dinov2/eval/classification/mlknn.py",
           "choosing k on the test set makes the reported AUROC optimistic",
           protocols=("knn",)),
    Switch("knn_no_self_neighbour", "selection", "ML-kNN statistics", "mlknn_self_neighbour",
           True, False,
           "each training item counts as its own first neighbour (MLkNN ignore_first_neighbours=0)",
           "the item itself left out", "repo dinov2/eval/utils.py",
           "an item as its own neighbour inflates the neighbour counts of its own labels",
           protocols=("knn",), datasets=("nih", "chexpert")),
    # --- switches branch ---
    Switch("table8_cap_every_split", "data", "Table 8: splits the subset cap applies to", "subset_splits",
           "train", "every",
           "the train split only, rows np.arange(0, n, n / k).round() (SystemicSamplerWrapper on "
           "train_dataset), val and test in full",
           "every split, test included (NIH test 2,000 of 25,596)",
           "repo dinov2/eval/classification/linear.py:433-435; dinov2/data/wrappers.py:26-30",
           "a capped test set keeps the 1024 px extraction affordable; its wider interval is in the "
           "record (ci_unit, n_items)", protocols=("linear_subset",), datasets=("nih", "chexpert"),
           load_option="subset_splits"),
    Switch("linear_epoch_on_val", "selection", "linear probe: evaluation epoch", "epoch_selection",
           "final", "best_val",
           "no epoch choice: every head trained for all epochs, the best head on val after the last "
           "iteration, refit on train + val for all epochs, scored on test at the end",
           "the best (head, epoch) on val, refit on train + val for epoch + 1 epochs",
           "repo dinov2/eval/classification/linear.py:359-383 (mid-run val scores discarded), 579-601",
           "an early-stopped head is not over-trained on small sets; the epoch is chosen on val, "
           "never on test", protocols=("linear", "linear_subset")),
    Switch("fewshot_select_on_val_no_refit", "selection", "few-shot classification: head choice and "
           "refit", "fewshot_selection", "final_refit_val", "best_val",
           "the best head on val after the last epoch, refit for all epochs on the n-shot sample + "
           "the whole val split (the README command passes --val-dataset; `shots == None or "
           "num_samples == None` is true when shots is set), scored on test at the end",
           "the best (head, epoch) on val, that snapshot scored on test, no refit",
           "repo dinov2/eval/classification/linear.py:535-601 (539); README.md (--val-dataset)",
           "merging the whole val split makes an n-shot cell a many-shot one",
           protocols=("fewshot",)),
    Switch("fewshot_own_grid", "hparams", "few-shot classification: rates, epochs, batch",
           "fewshot_grid", {"lrs": (1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 1e-5), "epochs": 10,
                            "batch_size": 128}, "own",
           "the linear probe's: B.2's 8 rates, the script's default 10 epochs, batch 128 (capped at "
           "the sample size)", "the profile's own few-shot grid (paper: 1e-1 / 1e-2 / 1e-3, 50 "
           "epochs, batch 256)",
           "repo dinov2/eval/classification/linear.py:176-199 (defaults), 437 (batch cap); paper B.2",
           "a head on 2-30 images takes a few steps per epoch: more epochs, fewer and larger rates",
           protocols=("fewshot",)),
    Switch("cls_augment_square_crop", "augmentation", "classification training augmentation",
           "cls_augment", "random_resized_crop", "square_crop",
           "RandomResizedCrop(scale [0.75, 1], ratio [3/4, 4/3], bicubic, no antialias) to the input "
           "size, horizontal flip p = 0.5", "a square crop of [0.75, 1] of the area, horizontal flip "
           "p = 0.5, the bilinear antialiased resize of every input",
           "repo dinov2/data/transforms.py:75-95; paper A.2",
           "an aspect-ratio jitter stretches anatomy; an antialiased resize does not alias when it "
           "shrinks", protocols=("linear", "linear_subset", "fewshot", "finetune", "lora", "bitfit"),
           only_when=(("linear", "features", "augmented"), ("linear_subset", "features", "augmented"),
                      ("fewshot", "features", "augmented"))),
    Switch("knn_plain_resize", "input", "kNN input", "knn_input", "resize256_crop224", "resize",
           "Resize to 256/224 of the input size, then CenterCrop to the input size "
           "(make_classification_eval_transform's defaults)", "the whole image resized to the input "
           "size (the cache the linear probe reads)",
           "repo dinov2/eval/classification/mlknn.py:177; dinov2/data/transforms.py:100-115",
           "a centre crop drops the image border (lung apices, costophrenic angles)",
           protocols=("knn",)),
    Switch("seg_test_once", "selection", "segmentation: reported epoch", "report_epoch",
           "best_on_test", "final",
           "the best of the refit's test scores (pooled Dice, scored every 5 epochs and at the end): "
           "paper 4 reports the best checkpoint; the released code runs the refit's periodic "
           "evaluations on the TEST loader and logs each, its return value being the last (the text "
           "is followed here, as the published numbers are the best checkpoint's); with refit=False "
           "(the demo's segmentation) the selected sweep run is rerun (same rate, seed, epochs) and "
           "the best of its test scores reported",
           "the refit's final state, tested once",
           "paper 4; repo dinov2/eval/segmentation/segmentation.py:337-349 (eval_period), 526-545 "
           "(val_data_loader=test_data_loader), 185 (eval_period_epochs=5)",
           "picking the epoch by its test score makes the reported number optimistic",
           protocols=("seg_linear", "seg_unet", "scratch")),
    # --- swmodel branch: the feature / input side ---
    Switch("vit_tokens_after_final_norm", "features", "tokens of the Hugging Face ViTs", "vit_tokens",
           "hidden_states", "final_norm",
           "the block outputs before the final LayerNorm (transformers' hidden_states[-n:]; CLIP and "
           "OpenCLIP: before post_layernorm): the class tokens of kNN, the linear probe, few-shot and "
           "the fine-tune / LoRA / BitFit head, the mean patch token, the U-Net decoder's 5 maps; the "
           "linear decoder reads the last block through a fresh parameter-free LayerNorm (eps 1e-6, "
           "the wrappers' self.norm). DINOv2's tokens were normalised",
           "every ViT's class and patch tokens after its own final LayerNorm",
           "repo dinov2/eval/utils.py:60-249 (ViTLargeImagenet21k, ViTLargeMSN, CLIPLarge, OpenCLIPHuge, "
           "MAEViTLargeImagenet1k: forward, forward_features, get_intermediate_layers); "
           "dinov2/eval/segmentation/utils.py:30-39",
           "the study normalised DINOv2's tokens but not the other ViTs'; each model's own final "
           "LayerNorm for every model keeps the comparison like for like",
           protocols=BACKBONE_PROTOCOLS, models=HF_VIT_MODELS),
    Switch("cls_eval_resize_antialiased", "input", "classification input resize", "eval_resize",
           "bicubic", "bilinear_antialias",
           "Resize((R, R), BICUBIC) on the image tensor, which torchvision 0.15 runs without "
           "antialiasing, then the per-image min-max (RescaleImage) of the resized (kNN: cropped) "
           "image (make_classification_eval_transform, every eval split and the kNN bank)",
           "bilinear with antialiasing (as PIL), of the image min-max scaled once at decoding",
           "repo dinov2/data/transforms.py:100-115 (eval), 26-39 (RescaleImage); "
           "dinov2/eval/classification/linear.py:425-426; mlknn.py:177; conda.yaml (torchvision 0.15)",
           "a bicubic shrink without antialiasing aliases: a 1024 px X-ray at 224 px keeps every "
           "4.6th pixel's neighbourhood and fine texture becomes moire",
           protocols=("knn", "linear", "linear_subset", "fewshot", "finetune", "lora", "bitfit")),
    Switch("fewshot_cached_features", "augmentation", "few-shot classification: head-training images",
           "features", "augmented", "cached",
           "the n-shot sample through the train transform (RandomResizedCrop + flip) every epoch, and "
           "in the refit the val images too (make_datasets gives train the train transform; "
           "FewShotDatasetWrapper keeps it; the refit's val set is built with train_transform)",
           "the cached unaugmented features of the sample (and of val in a refit), one backbone pass",
           "repo dinov2/eval/classification/linear.py:425-433 (train transform, FewShotDatasetWrapper), "
           "539-544 (the refit: val with train_transform, concatenated); dinov2/data/wrappers.py",
           "the cached features of a few images need no backbone pass per epoch and make the head "
           "deterministic; the augmentation (switch cls_augment_square_crop) acts when this is on "
           "the study's side", protocols=("fewshot",)),
    # --- swproto branch (protocol / data side) ---
    Switch("finetune_no_trainval_refit", "selection", "fine-tune / LoRA / BitFit: the model scored "
           "on test", "final_model", "head_refit_trainval", "best_val_snapshot",
           "each backbone rate's state after its last epoch (no epoch choice), the best on val; then "
           "a NEW linear head at the head rate trained for all epochs on train + val (val with the "
           "training transform), the tuned backbone frozen in eval mode (the refit's optimiser holds "
           "only the head), scored on test at the end; which of its separate backbone-rate runs the "
           "study kept its code does not say (Table 4: 'only the best is shown'): here the best on val",
           "the best (backbone rate, epoch) snapshot on val, backbone and head as trained, scored on test",
           "repo dinov2/eval/classification/linear.py:540-601 (retrain: setup_linear_classifiers, "
           "optimiser over the new head only; the backbone left in eval mode by evaluate()); paper A.1",
           "the model scored is the one selected: the backbone was chosen together with its own "
           "head, and a new head trained on the frozen backbone is a model no validation score "
           "vouches for",
           protocols=("finetune", "lora", "bitfit")),
    Switch("finetune_head_lr_from_cached_probe", "hparams", "fine-tune: the probe that gives the head "
           "rate", "head_lr_probe", "as_run", "cached",
           "the linear probe as the linear cell runs it: its heads trained on augmented images every "
           "epoch (where the linear hyperparameters say features='augmented')",
           "the same probe on the cached unaugmented features (no backbone pass after the linear cell)",
           "paper B.1 (the head rate is the best linear-probe rate); paper A.2 (augmented training)",
           "a cost choice, not a soundness one: the head rate is one pick among a few rates, read "
           "off cached features at no backbone pass, where an augmented probe inside every "
           "fine-tune cell repeats the linear cell's backbone passes", protocols=("finetune",),
           only_when=(("finetune", "head_lr", "linear"),)),
)


def switches() -> dict[str, Switch]:
    return {s.id: s for s in SWITCHES}


def switch_values(side: str) -> dict[str, Any]:
    """Every switch id -> its value on one side (``"study"`` for paper, ``"sound"`` otherwise)."""
    return {s.id: s.value(side) for s in SWITCHES}


def hparams_with_switches(protocol: str, hparams: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` of one protocol with the value of every switch that touches it under its key."""
    out = dict(hparams)
    for s in SWITCHES:
        if s.id in values and (not s.protocols or protocol in s.protocols):
            out[s.key] = values[s.id]
    return out


def load_option_overrides(dataset: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """LoadOptions fields the data switches of this dataset set (only those ``hparams`` name)."""
    return {s.load_option: hparams[s.key] for s in SWITCHES
            if s.load_option and dataset in s.datasets and s.key in hparams}


def switches_in_effect(model: str, dataset: str, protocol: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """Switch id -> value for every switch that touches this cell (the record's ``switches``).

    A switch absent from ``hparams`` runs its sound value (the code's default).
    """
    return {s.id: hparams.get(s.key, s.sound) for s in SWITCHES
            if s.affects(model, dataset, protocol) and s.acts(protocol, hparams)}


def switched_off_study(model: str, dataset: str, protocol: str, hparams: dict[str, Any]) -> list[str]:
    """Ids of the switches of this cell that are not at the study's value (its deviations)."""
    return [sid for sid, value in switches_in_effect(model, dataset, protocol, hparams).items()
            if value != switches()[sid].study]


def switches_markdown() -> list[str]:
    """The switch table of docs/fidelity.md: both values, the source, the cells each touches."""
    def esc(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    def scope(s: Switch) -> str:
        parts = [f"{label}: {', '.join(ids)}" for label, ids in
                 (("protocols", s.protocols), ("datasets", s.datasets), ("models", s.models)) if ids]
        parts += [f"{p} only with {k}={v!r}" for p, k, v in s.only_when]
        return "; ".join(parts) or "every cell"
    lines = ["## Switches: the study's way (`paper`) and the sound way (`sound`)", "",
             "Each difference between the study as it ran and the sound way is a switch. `paper` sets "
             "every switch to the study's value, `sound` (same cells) and `demo` to ours. A profile "
             "sets one with `extend(..., switches={id: value})`; the protocol reads "
             "`hparams[key]`. Every record lists the switches of its cell (`switches`), and the id "
             "of each one not at the study's value (`deviations`). `--radbench-switches study|sound` "
             "runs any profile's cells with every switch at one side; `radbench switch-effects "
             "RUN_STUDY RUN_SOUND` tables what each family changed (docs/statistics.md).", "",
             "| switch (id) | family | key: study / sound | study (source) | sound | cells | why |",
             "|---|---|---|---|---|---|---|"]
    for s in SWITCHES:
        lines.append(f"| `{s.id}` | {esc(s.family)} | `{s.key}`: `{s.study!r}` / `{s.sound!r}` | "
                     f"{esc(s.study_text)} ({esc(s.source)}) | {esc(s.sound_text)} | {esc(scope(s))} | "
                     f"{esc(s.why)} |")
    return lines
