"""Hyperparameters of the classification protocols: the study's (PAPER) and a shrunk DEMO set.

Plain dicts keyed by protocol id, read by the protocol functions as their ``hparams`` argument.
Values the study states (issue 5) are marked "study"; the others are the DINOv2 evaluation
defaults or our choice and are marked as such so nobody mistakes them for the paper's.
"""

from __future__ import annotations

from typing import Any


LINEAR_LRS = (1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 1e-5)                     # study
BACKBONE_LRS = (5e-4, 1e-4, 5e-5, 1e-5, 5e-6, 1e-6, 5e-7, 1e-7)                   # study

# Fine-tuning schedule of the study (paper B.1 + repo dinov2/eval/classification/linear.py): SGD with
# momentum 0.9, no weight decay, CosineAnnealingLR stepped every iteration down to 0, no warm-up.
_SGD_COSINE = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"}
FINETUNE_EPOCHS = {"nih": 20, "chexpert": 10, "*": 10}          # study B.1 ("*": datasets it did not run)
FINETUNE_BATCH = {"cnn": 128, "vit": 32, "sam": 32}             # study B.1: 128 for CNNs, 32 for ViTs

PAPER: dict[str, dict[str, Any]] = {
    "knn": {"ks": (100, 200, 400, 800, 1000),          # study
            "temperature": 0.07,                       # DINOv2's kNN (repo knn.py default)
            "smoothing": 1.0,                          # study: ML-kNN s = 1 (repo MLkNN default)
            "k_selection": "val",                      # ours; the repo picks k on test ("test")
            "mlknn_self_neighbour": False,             # ours; the repo's ML-kNN counts an item as its own
                                                       # first neighbour when fitting (True)
            "chunk_size": 1024, "bootstrap": 1000},
    "linear": {"lrs": LINEAR_LRS,                      # study
               "n_blocks": (1, 4), "avgpool": (False, True),   # study (DINOv2's grid)
               "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine",   # repo linear.py
               "epochs": 10,                           # repo default (the study's per-dataset epochs
                                                       # are unpublished)
               "batch_size": 128,                      # study B.2
               "features": "augmented",                # study A.2: heads trained on augmented images
               "bootstrap": 1000},
    "fewshot": {"shots": 8,                            # the cell's variant: 1, 2, 4, 8 or 16
                "shot_grid": (1, 2, 4, 8, 16),         # study
                "sampler": "study",                    # study: repo get_fewshot_in_nih ("seeded": ours)
                "seeds": 1,                            # study: one deterministic sample, one run
                "lrs": (1e-1, 1e-2, 1e-3),             # ours: a small grid
                "n_blocks": (1, 4), "avgpool": (False, True),
                "momentum": 0.9, "epochs": 50, "batch_size": 256},
    "finetune": {"mode": "full",
                 "backbone_lrs": BACKBONE_LRS,         # study
                 "head_lr": "linear",                  # study: the best linear-probe rate, selected per
                                                       # (model, dataset) by the runner
                 **_SGD_COSINE, "epochs": FINETUNE_EPOCHS, "batch_size": FINETUNE_BATCH,
                 "bootstrap": 1000},
    "lora": {"mode": "lora", "r": 48, "alpha": 16, "dropout": 0.1,     # study B.3
             "target_modules": ("qkv", "fc1", "fc2"), "bias": "lora_only",   # repo linear.py
             "lora_swiglu_ffn": False,                 # repo: the study's ViT-g names its SwiGLU FFN
                                                       # w12/w3, so fc1/fc2 matched nothing there
             "backbone_lrs": (2e-4,), "head_lr": 5e-3,                  # study B.3
             **_SGD_COSINE, "epochs": FINETUNE_EPOCHS, "batch_size": FINETUNE_BATCH,
             "bootstrap": 1000},
    "bitfit": {"mode": "bitfit",
               "backbone_lrs": (2e-4,), "head_lr": 5e-3,   # ours: LoRA's rates (the study states none)
               **_SGD_COSINE, "epochs": FINETUNE_EPOCHS, "batch_size": FINETUNE_BATCH,
               "bootstrap": 1000},
}

DEMO: dict[str, dict[str, Any]] = {
    "knn": {**PAPER["knn"], "ks": (5, 10, 20), "bootstrap": 200},
    # phantoms have ~100 training items: short epochs, so more of them for the same number of steps
    "linear": {**PAPER["linear"], "lrs": (1e-1, 1e-2), "epochs": 100, "batch_size": 32,
               "features": "cached", "bootstrap": 200},
    "fewshot": {**PAPER["fewshot"], "shots": 2, "lrs": (1e-1, 1e-2), "epochs": 100,
                "batch_size": 32},
    "finetune": {**PAPER["finetune"], "backbone_lrs": (1e-4,), "epochs": 2,
                 "batch_size": 8, "bootstrap": 200},
    "lora": {**PAPER["lora"], "r": 4, "epochs": 2, "batch_size": 8, "bootstrap": 200},
    "bitfit": {**PAPER["bitfit"], "epochs": 2, "batch_size": 8, "bootstrap": 200},
}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {"paper": PAPER, "demo": DEMO}
