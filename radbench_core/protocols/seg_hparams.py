"""Hyperparameters of the segmentation protocols: the study's (PAPER) and a fast demo (DEMO).

PAPER follows the study's section 3.3 / appendix B.4 and its released code: Dice loss, learning rates
{1e-2, 5e-2, 1e-3, 5e-3} swept, batch 16, SGD with momentum 0.9 and no weight decay under a cosine
schedule, best (epoch, rate) on validation mean Dice. The study does not fix the epoch count per
dataset in the paper; 50 is the count its released scripts use (Montgomery decoder run, scratch U-Net).

Keys read by radbench_core.protocols.segmentation:
  decoder            "linear" | "unet" (frozen-backbone protocols; the registry also pins it)
  decoder_channels   widths of the 4 U-Net decoder blocks, deepest first
  lrs, epochs, batch_size, eval_batch_size, optimizer ("sgd" | "adamw"), momentum, weight_decay
  val_every          validate (and allow selection) every this many epochs
  cache_maps         keep the frozen patch maps of unaugmented train/val slices in memory
  augment            whether the runner should build the train SliceDataset with augmentation
                     (flips p=0.25 + rotation up to 90 degrees); maps are only cached without it
  bootstrap_resamples  test-item bootstrap resamples for the 95% CI
  n_examples, examples_path   qualitative predictions saved as .npz (path set per cell by the runner)
  demo               scratch models: build the tiny demo variant
  shots, seeds       few-shot: training images (int or "all", set from the cell's variant) and seeds
"""

from __future__ import annotations

from typing import Any

PAPER_LRS = [1e-2, 5e-2, 1e-3, 5e-3]

_PAPER_COMMON: dict[str, Any] = {
    "lrs": PAPER_LRS, "epochs": 50, "batch_size": 16, "eval_batch_size": 16, "optimizer": "sgd",
    "momentum": 0.9, "weight_decay": 0.0, "val_every": 1, "cache_maps": False, "augment": True,
    "bootstrap_resamples": 1000, "n_examples": 4,
}

PAPER: dict[str, dict[str, Any]] = {
    "seg_linear": {**_PAPER_COMMON, "decoder": "linear"},
    "seg_unet": {**_PAPER_COMMON, "decoder": "unet", "decoder_channels": (256, 128, 64, 32)},
    "scratch": {**_PAPER_COMMON, "demo": False},
    "seg_fewshot": {**_PAPER_COMMON, "decoder": "unet", "decoder_channels": (256, 128, 64, 32),
                    "seeds": [0, 1, 2]},
}

_DEMO_COMMON: dict[str, Any] = {
    "lrs": [5e-2], "epochs": 6, "batch_size": 8, "eval_batch_size": 16, "optimizer": "sgd",
    "momentum": 0.9, "weight_decay": 0.0, "val_every": 1, "cache_maps": True, "augment": False,
    "bootstrap_resamples": 200, "n_examples": 4,
}

DEMO: dict[str, dict[str, Any]] = {
    "seg_linear": {**_DEMO_COMMON, "decoder": "linear"},
    "seg_unet": {**_DEMO_COMMON, "decoder": "unet", "decoder_channels": (32, 16, 16, 8)},
    # demo only: the tiny random-init scratch U-Net barely moves under SGD in a short schedule
    "scratch": {**_DEMO_COMMON, "demo": True, "optimizer": "adamw", "lrs": [5e-3]},
    "seg_fewshot": {**_DEMO_COMMON, "decoder": "unet", "decoder_channels": (32, 16, 16, 8),
                    "seeds": [0, 1]},
}
