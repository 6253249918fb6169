"""Hyperparameters of the segmentation protocols: the study's (PAPER) and a fast demo (DEMO).

PAPER follows the study's section 3.3 / appendix B.4 and its released code (repo
dinov2/eval/segmentation/segmentation.py, unet.ipynb, transunet.ipynb): Dice loss, learning rates
{1e-2, 5e-2, 1e-3, 5e-3} swept, batch 16, SGD with momentum 0.9 and no weight decay under a per-step
cosine schedule; each rate's final state is scored on validation (Dice pooled over all slices), and
the chosen rate is retrained on train + val and tested. The paper leaves the epoch count per dataset
to an unpublished drive; 50 is the count of the released Montgomery decoder script. Scratch U-Net /
TransUNet (notebooks): 448 px, batch 8, 7 rates 1e-4..1e-1, a 50-epoch sweep then a 100-epoch refit.

Keys read by radbench_core.protocols.segmentation / seg_training:
  decoder            "linear" | "unet" (frozen-backbone protocols; the registry also pins it)
  lrs, batch_size, eval_batch_size, optimizer ("sgd" | "adamw"), momentum, weight_decay
  sweep_epochs       epochs of each rate's run in the sweep (default: epochs)
  epochs             epochs of the refit (and of the sweep when sweep_epochs is unset)
  refit              retrain the chosen rate on train + val before testing (the study's last step)
  select_epoch       "last" (the study: each run's final state) | "best" (any validated epoch)
  select_metric      "dice_study" (the study: pooled val Dice at the training resolution) | "dice"
  val_every          with select_epoch="best": validate every this many epochs
  cache_maps         keep the frozen patch maps of unaugmented train/val slices in memory
  augment            whether the runner should build the train SliceDataset with augmentation
                     (flips p=0.25 + rotation up to 90 degrees); maps are only cached without it
  bootstrap_resamples  test-item bootstrap resamples for the 95% CI
  n_examples         qualitative predictions saved as .npz (the runner gives SegInputs.examples_path)
  demo               scratch models: build the tiny demo variant
  shots, seeds       few-shot: training images (int or "all", set from the cell's variant) and seeds
"""

from __future__ import annotations

from typing import Any

PAPER_LRS = [1e-2, 5e-2, 1e-3, 5e-3]
SCRATCH_LRS = [1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1]

_PAPER_COMMON: dict[str, Any] = {
    "lrs": PAPER_LRS, "epochs": 50, "sweep_epochs": 50, "batch_size": 16, "eval_batch_size": 16,
    "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "refit": True, "select_epoch": "last",
    "select_metric": "dice_study", "val_every": 1, "cache_maps": False, "augment": True,
    "bootstrap_resamples": 1000, "n_examples": 4,
}

PAPER: dict[str, dict[str, Any]] = {
    "seg_linear": {**_PAPER_COMMON, "decoder": "linear"},
    "seg_unet": {**_PAPER_COMMON, "decoder": "unet"},
    "scratch": {**_PAPER_COMMON, "demo": False, "lrs": SCRATCH_LRS, "batch_size": 8,
                "eval_batch_size": 8, "sweep_epochs": 50, "epochs": 100},
    # few-shot: the study retrains the chosen rate on the same n images (val is not merged), which
    # with the same seed and epochs is the selected run itself, so no refit is run
    "seg_fewshot": {**_PAPER_COMMON, "decoder": "unet", "refit": False, "seeds": [0, 1, 2]},
}
# Figure 5's supervised MC comparison: the scratch models on the same n images and seeds
# (448 px, the only size in the study's scratch notebooks)
PAPER["scratch_fewshot"] = {**PAPER["scratch"], "refit": False, "seeds": [0, 1, 2], "resolution": 448}

# demo: one rate, 6 epochs (10 until 2026-12-03, cut to keep `make bench` within 15 minutes: the
# U-Net decoders were half the demo's time); the study's decoder (BN + ReLU on its class channels)
# needs the larger rate to move within the short schedule
_DEMO_COMMON: dict[str, Any] = {
    "lrs": [1e-1], "epochs": 6, "batch_size": 8, "eval_batch_size": 16, "optimizer": "sgd",
    "momentum": 0.9, "weight_decay": 0.0, "refit": False, "select_epoch": "best",
    "select_metric": "dice", "val_every": 1, "cache_maps": True, "augment": False,
    "bootstrap_resamples": 200, "n_examples": 4,
}

DEMO: dict[str, dict[str, Any]] = {
    "seg_linear": {**_DEMO_COMMON, "decoder": "linear"},
    "seg_unet": {**_DEMO_COMMON, "decoder": "unet"},
    # demo only: the tiny random-init scratch models barely move under SGD in a short schedule
    "scratch": {**_DEMO_COMMON, "demo": True, "optimizer": "adamw", "lrs": [1e-2], "epochs": 5,
                "select_epoch": "last", "select_metric": "dice_study"},
    "seg_fewshot": {**_DEMO_COMMON, "decoder": "unet", "seeds": [0, 1]},
}
# few images: more epochs for the same order of steps as the full-data cell
DEMO["scratch_fewshot"] = {**DEMO["scratch"], "seeds": [0, 1], "epochs": 12}
