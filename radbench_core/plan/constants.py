"""Numbers the planner multiplies: GPUs, architectures, efficiencies, bytes and passes per step.

Dataset sizes are not here: each dataset's spec declares them beside its loader (``DatasetSpec.size``).

Every entry says where it comes from. Values marked ASSUMED are ours and are printed as such by
``radbench plan``; a calibration JSON from ``benchmarks/gpu_training.py`` replaces them.
"""

from __future__ import annotations

# Dense bf16 tensor-core peak (no sparsity) and memory, NVIDIA data sheets.
GPUS: dict[str, dict[str, float]] = {
    "H200": {"peak_tflops": 989.4, "memory_gib": 141.0},
    "H100": {"peak_tflops": 989.4, "memory_gib": 80.0},
    "A100": {"peak_tflops": 312.0, "memory_gib": 80.0},
    "L40S": {"peak_tflops": 362.0, "memory_gib": 48.0},
    "A10": {"peak_tflops": 125.0, "memory_gib": 24.0},
}

# Fraction of peak bf16 achieved. "extract": measured on an H200 with benchmarks/gpu_throughput.py
# (README: DINOv2 ViT-L/14 Backbone.pooled, 2,099 img/s at 224 px = 34.4 %, 493 img/s at 448 px =
# 36.0 %). The training paths were NOT measured: ASSUMED 30 % until a calibration file says otherwise.
EFFICIENCY: dict[str, float] = {"extract": 0.344, "extract_448": 0.360, "finetune": 0.30,
                                "peft": 0.30, "seg_decoder": 0.30, "scratch": 0.30}
ASSUMED = frozenset({"finetune", "peft", "seg_decoder", "scratch"})

# Measured inference peak memory (same benchmark, batch 128): 2.6 GiB at 224 px, 6.8 GiB at 448 px
# for ViT-L/14; the planner's activation constant is fitted to the 224 px value.
MEASURED_EXTRACT_GIB = {224: 2.6, 448: 6.8}

# ViT shapes (depth, width, heads, MLP hidden / width) of the timm architectures in models.py.
VIT_SHAPES: dict[str, tuple[int, int, int, float]] = {
    "vit_small": (12, 384, 6, 4.0), "vit_base": (12, 768, 12, 4.0), "vit_large": (24, 1024, 16, 4.0),
    "vit_huge": (32, 1280, 16, 4.0), "vit_giant": (40, 1536, 24, 4.0),   # DINOv2 g: SwiGLU 2x4096 ~ 4x
    "samvit_large": (24, 1024, 16, 4.0), "samvit_base": (12, 768, 12, 4.0),
    "vit_so400m": (27, 1152, 16, 4304 / 1152),      # SigLIP / MedSigLIP shape-optimised 400M
}

# CNN forward cost at 224 px in GFLOP (= 2 x the multiply-adds torchvision's model docs list as
# "GFLOPS": DenseNet201 4.29, ResNet152 11.51, VGG19 19.63); scaled by (resolution / 224)^2.
CNN_GFLOPS_224: dict[str, float] = {"densenet201": 8.58, "resnet152": 23.02, "vgg19": 39.26}

BYTES_BF16 = 2
TRAIN_BYTES_PER_PARAM = 16      # fp32 weight + grad + SGD momentum + bf16 copy (ASSUMED layout)
# Activation memory kept for backward per layer and token: 34 x width bytes (Korthikanti et al.
# 2022, "Reducing activation recomputation", 16-bit, no recomputation; flash attention).
ACT_BYTES_PER_TOKEN_WIDTH = 34
FEATURE_BYTES = 2               # the feature cache stores fp16

# A training step is a forward and a backward (twice the forward): 3 forward passes' FLOPs. PEFT
# skips the frozen matrices' weight gradients: 2 (ASSUMED).
TRAIN_STEP_PASSES, PEFT_STEP_PASSES = 3.0, 2.0
# Activations kept for backward and their gradients: two bf16 copies of every activation element.
ACTIVATION_COPIES = 2
# The feature cache keeps 5 vectors per item (the last 4 class tokens + the patch mean); a CNN's
# pooled vector is charged at 4096 wide (VGG19's classifier width, the widest of the three).
FEATURE_VECTORS_PER_ITEM = 5
CNN_FEATURE_WIDTH = 4096
