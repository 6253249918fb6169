"""Any nn.Module as a radbench backbone: forward(x) -> (B, D) features and an ``embed_dim`` of D.

radbench normalises the images (ImageNet mean/std unless ``norm=`` says otherwise), batches them,
caches the features and runs every classification protocol on them.
"""

import torch
from torch import nn

from radbench_core.models.specs import ModelSpec


class SmallCNN(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.embed_dim = width
        self.body = nn.Sequential(nn.Conv2d(3, width // 2, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


SMALL_CNN = ModelSpec(
    id="small_cnn", label="SmallCNN (ours)", paradigm="from scratch", family="ours", arch="module",
    builder="my_module:SmallCNN", timm_name="", patch_size=4, native_resolution=224,
    tasks=("classification",), demo_kwargs=dict(width=16))
