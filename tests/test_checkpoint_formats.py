"""Every official checkpoint layout loads with all tensors equal (synthetic files in the exact key layout).

torchvision files are made by torchvision's own classes at demo size (key names exactly the release's;
DenseNet's written in the old ``norm.1`` style of densenet201-c1103571.pth), OpenAI's CLIP file is a
TorchScript archive of a module written like openai/CLIP's model.py, the DINOv2 hub and MAE files
carry their extra keys and wrappers. Each load is compared tensor by tensor and against the reference
network's own forward.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from radbench_core.models.checkpoint_formats import is_torchscript
from radbench_core.cli.app import main as cli_main
from radbench_core.core.errors import WeightsError
from radbench_core.models.features import load_backbone
from radbench_core.models.specs import get_model

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def reload(model_id: str, folder: Path, resolution: int = 64):
    return load_backbone(model_id, demo=False, resolution=resolution, weights_dir=folder,
                         arch_kwargs=get_model(model_id).demo_kwargs)


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values everywhere (BN statistics included) so equality means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) * 0.2 + (0.9 if "running_var" in name else -0.1))
    return module.eval()


def test_torchvision_densenet201_file_loads(tmp_path: Path) -> None:
    from torchvision.models import DenseNet
    ref = randomise(DenseNet(growth_rate=16, block_config=(1, 1, 1, 1), num_init_features=32, bn_size=2))
    old_style = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    official = {old_style.sub(r"\1.\2", k): v for k, v in ref.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in official          # the release's layout
    torch.save(official, tmp_path / "densenet201.pth")
    bb = reload("densenet201", tmp_path)
    loaded = bb.model.state_dict()
    for key, value in ref.state_dict().items():
        if not key.startswith("classifier"):
            assert torch.equal(loaded[key], value), key
    with torch.inference_mode():
        x = bb.normalize(X)
        expected = nn.functional.adaptive_avg_pool2d(torch.relu(ref.features(x)), 1).flatten(1)
        assert torch.allclose(bb.head_features(x), expected, atol=1e-5)


def test_torchvision_resnet152_file_loads(tmp_path: Path) -> None:
    from torchvision.models.resnet import Bottleneck, ResNet
    source = load_backbone("resnet152", demo=True, resolution=64)
    layout = ResNet(Bottleneck, [1, 1, 1, 1])                   # key names of resnet152-*.pth at depth 1
    official = {k: v.clone() for k, v in randomise(source.model, 3).state_dict().items()}
    official.update({"fc.weight": torch.randn(1000, 256), "fc.bias": torch.zeros(1000)})
    assert set(official) == set(layout.state_dict())
    torch.save(official, tmp_path / "resnet152.pth")
    loaded = reload("resnet152", tmp_path).model.state_dict()
    assert all(torch.equal(loaded[k], official[k]) for k in loaded)


def test_torchvision_vgg19_file_loads(tmp_path: Path) -> None:
    from torchvision.models.vgg import VGG, make_layers
    cfg = get_model("vgg19").demo_kwargs["vgg_cfg"]
    ref = VGG(make_layers(cfg))
    ref.classifier = nn.Sequential(nn.Linear(64 * 49, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 4096),
                                   nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))
    randomise(ref, 5)
    torch.save(ref.state_dict(), tmp_path / "vgg19.pth")
    bb = reload("vgg19", tmp_path, resolution=64)
    loaded = bb.model.state_dict()
    assert torch.equal(loaded["pre_logits.fc1.weight"].flatten(1), ref.state_dict()["classifier.0.weight"])
    assert torch.equal(loaded["pre_logits.fc2.weight"].flatten(1), ref.state_dict()["classifier.3.weight"])
    assert all(torch.equal(loaded[k], v) for k, v in ref.state_dict().items() if k.startswith("features"))
    with torch.inference_mode():
        x = bb.normalize(X)
        fc7 = ref.classifier[:5](torch.flatten(ref.avgpool(ref.features(x)), 1))   # torchvision's fc7
        assert torch.allclose(bb.head_features(x), fc7, atol=1e-4)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):      # openai/CLIP clip/model.py, same attribute names
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, d * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d * 4, d))]))
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class OpenAIVisual(nn.Module):
    def __init__(self, resolution: int, patch: int, width: int, layers: int, heads: int, out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn((resolution // patch) ** 2 + 1, width) * 0.1)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, out) * width ** -0.5)

    def pre_proj(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer.resblocks(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_proj(x) @ self.proj


class OpenAICLIP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.visual = OpenAIVisual(224, 14, 64, 4, 4, 32)
        self.token_embedding = nn.Embedding(100, 32)        # a text tower the conversion leaves out
        self.ln_final = nn.LayerNorm(32)
        self.text_projection = nn.Parameter(torch.randn(32, 32))
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)


def test_openai_torchscript_clip_is_refused_then_converted_by_the_cli(tmp_path: Path, capsys) -> None:
    clip = randomise(OpenAICLIP(), 7)
    image = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    scripted = torch.jit.trace(clip, image)
    weights = tmp_path / "weights"
    weights.mkdir()
    official = weights / "clip_vitl14.pt"
    torch.jit.save(scripted, str(official))
    assert is_torchscript(official)
    with pytest.raises(WeightsError, match="TorchScript.*radbench convert-weights clip_vitl14"):
        reload("clip_vitl14", weights, 224)
    official.rename(tmp_path / "ViT-L-14.pt")
    assert cli_main(["convert-weights", "clip_vitl14", str(tmp_path / "ViT-L-14.pt"), "--weights", str(weights)]) == 0
    out = capsys.readouterr().out
    assert "torch.jit.load" in out and "5 text-tower tensors left out" in out
    bb = reload("clip_vitl14", weights, 224)
    loaded = bb.model.state_dict()
    source = clip.visual.state_dict()
    assert torch.equal(loaded["blocks.2.attn.qkv.weight"], source["transformer.resblocks.2.attn.in_proj_weight"])
    assert torch.equal(loaded["cls_token"].flatten(), source["class_embedding"])
    with torch.inference_mode():
        assert torch.allclose(bb.head_features(image), clip.visual.pre_proj(image), atol=1e-5)


def test_dinov2_hub_file_with_mask_token_loads(tmp_path: Path) -> None:
    source = load_backbone("dinov2_vits14", demo=True, resolution=56)
    official = {k: v.clone() for k, v in randomise(source.model, 9).state_dict().items()}
    official["mask_token"] = torch.zeros(1, official["cls_token"].shape[-1])   # dinov2_vits14_pretrain.pth
    assert "blocks.0.ls1.gamma" in official
    torch.save(official, tmp_path / "dinov2_vits14.pth")
    loaded = reload("dinov2_vits14", tmp_path, 56).model.state_dict()
    assert set(loaded) == set(official) - {"mask_token"}
    assert all(torch.equal(loaded[k], official[k]) for k in loaded)


def test_mae_release_file_loads(tmp_path: Path) -> None:
    source = load_backbone("mae_vitl16", demo=True, resolution=64)
    encoder = {k: v.clone() for k, v in randomise(source.model, 11).state_dict().items()}
    torch.save({"model": encoder}, tmp_path / "mae_vitl16.pth")             # mae_pretrain_vit_large.pth
    loaded = reload("mae_vitl16", tmp_path).model.state_dict()
    assert loaded.keys() == encoder.keys()
    assert all(torch.equal(loaded[k], encoder[k]) for k in loaded)


def test_torchvision_2017_files_without_batch_counters_load_as_torchvision_loads_them(tmp_path: Path) -> None:
    """densenet201-c1103571.pth and resnet152-b121ed2d.pth predate BatchNorm's num_batches_tracked:
    torchvision loads them strictly (torch sets the counters to 0), and so does radbench."""
    from torchvision.models import DenseNet
    ref = randomise(DenseNet(growth_rate=16, block_config=(1, 1, 1, 1), num_init_features=32, bn_size=2))
    old_style = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    official = {old_style.sub(r"\1.\2", k): v for k, v in ref.state_dict().items()
                if not k.endswith("num_batches_tracked")}
    assert not any(k.endswith("num_batches_tracked") for k in official)
    DenseNet(growth_rate=16, block_config=(1, 1, 1, 1), num_init_features=32, bn_size=2).load_state_dict(
        {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}, strict=False)
    torch.save(official, tmp_path / "densenet201.pth")
    loaded = reload("densenet201", tmp_path).model.state_dict()
    for key, value in ref.state_dict().items():
        if not key.startswith("classifier") and not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key
    assert all(int(v) == 0 for k, v in loaded.items() if k.endswith("num_batches_tracked"))

    source = load_backbone("resnet152", demo=True, resolution=64)
    resnet = {k: v.clone() for k, v in randomise(source.model, 3).state_dict().items()
              if not k.endswith("num_batches_tracked")}
    torch.save(resnet, tmp_path / "resnet152.pth")
    loaded = reload("resnet152", tmp_path).model.state_dict()
    assert all(torch.equal(loaded[k], resnet[k]) for k in resnet)
