"""Weight resolution and strict loading, through load_backbone's real code path at demo size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from radbench_core.core.errors import WeightsError, WeightsMissing
from radbench_core.models.features import Backbone, load_backbone
from radbench_core.models.specs import MODELS, get_model
from radbench_core.models.weights import (WEIGHTS_ENV, describe_mismatch, expected_filenames, file_digest, find_weights,
                                   unwrap_state_dict)

BACKBONES = sorted(m for m, s in MODELS.items() if s.arch != "seg_scratch")
X = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))


def source(model_id: str) -> Backbone:
    return load_backbone(model_id, demo=True, resolution=112)


def reload(model_id: str, weights_dir: Path, **kwargs) -> Backbone:
    return load_backbone(model_id, demo=False, resolution=112, weights_dir=weights_dir,
                         arch_kwargs=get_model(model_id).demo_kwargs, **kwargs)


def state(bb: Backbone) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in bb.model.state_dict().items()}


def assert_same_features(a: Backbone, b: Backbone) -> None:
    with torch.inference_mode():
        for key, value in a.pooled(X).items():
            assert torch.equal(value, b.pooled(X)[key]), key
        assert all(torch.equal(p, q) for p, q in zip(a.patch_maps(X), b.patch_maps(X)))
        assert torch.equal(a.head_features(X), b.head_features(X))


@pytest.mark.parametrize("model_id", BACKBONES)
def test_safetensors_round_trip_is_bit_identical(model_id: str, tmp_path: Path) -> None:
    original = source(model_id)
    path = tmp_path / f"{model_id}.safetensors"
    save_file(state(original), path)
    loaded = reload(model_id, tmp_path)
    assert loaded.weights == f"{path} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    assert_same_features(original, loaded)


def test_pth_saved_with_torch_save_loads_with_weights_only(tmp_path: Path) -> None:
    original = source("dinov2_vitb14")
    torch.save(state(original), tmp_path / "dinov2_vitb14.pth")
    assert_same_features(original, reload("dinov2_vitb14", tmp_path))


def test_wrapped_and_prefixed_checkpoints_load(tmp_path: Path) -> None:
    original = source("resnet152")
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state(original).items()}}
    torch.save(wrapped, tmp_path / "resnet152.pth.tar")
    assert_same_features(original, reload("resnet152", tmp_path))
    assert unwrap_state_dict({"model": {"model.a": torch.ones(1)}}, "x") == {"a": torch.ones(1)}


def test_msn_checkpoint_layout_loads(tmp_path: Path) -> None:
    original = source("msn_vitl16")
    encoder = {f"module.{k}": v for k, v in state(original).items()}
    encoder.update({"module.fc.fc1.weight": torch.randn(16, 64), "module.fc.fc1.bias": torch.zeros(16)})
    checkpoint = {"target_encoder": encoder, "encoder": {"x": torch.zeros(1)}, "prototypes": torch.zeros(4, 8),
                  "epoch": 600}
    torch.save(checkpoint, tmp_path / "msn_vitl16.pth.tar")
    assert_same_features(original, reload("msn_vitl16", tmp_path))


def test_official_sam_layout_is_converted(tmp_path: Path) -> None:
    original = source("sam_vitl16")
    official = {f"image_encoder.{k.replace('mlp.fc', 'mlp.lin')}": v for k, v in state(original).items()}
    official.update({"image_encoder.neck.0.weight": torch.zeros(16, 64, 1, 1),
                     "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": torch.zeros(2, 128),
                     "mask_decoder.iou_token.weight": torch.zeros(1, 256)})
    save_file(official, tmp_path / "sam_vitl16.safetensors")
    assert_same_features(original, reload("sam_vitl16", tmp_path))


def test_safetensors_is_preferred_and_env_var_names_the_directory(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    save_file(state(source("vgg19")), tmp_path / "vgg19.safetensors")
    torch.save({"junk": torch.zeros(1)}, tmp_path / "vgg19.pth")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    found = find_weights(get_model("vgg19"))
    assert found.path == tmp_path / "vgg19.safetensors"
    bb = load_backbone("vgg19", demo=False, resolution=112, arch_kwargs=get_model("vgg19").demo_kwargs)
    assert bb.weights.startswith(str(tmp_path / "vgg19.safetensors"))


def test_hugging_face_cache_is_used_without_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    spec = get_model("densenet201")
    original = source("densenet201")
    repo = tmp_path / "hub" / f"models--timm--{spec.timm_name}"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    save_file(state(original), snapshot / "model.safetensors")
    loaded = load_backbone("densenet201", demo=False, resolution=112, arch_kwargs=spec.demo_kwargs,
                           hf_cache_dir=tmp_path / "hub")
    assert loaded.weights == "hf-cache:timm/densenet201.tv_in1k"
    assert_same_features(original, loaded)


def test_wrong_architecture_names_the_file_and_a_key(tmp_path: Path) -> None:
    save_file(state(source("resnet152")), tmp_path / "mae_vitl16.safetensors")
    with pytest.raises(WeightsError) as info:
        reload("mae_vitl16", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mae_vitl16.safetensors") in message and "not a MAE ViT-L/16" in message
    assert "missing keys (e.g. cls_token" in message and "102 unexpected keys (e.g. bn1." in message


def test_shape_mismatch_is_reported_with_shapes(tmp_path: Path) -> None:
    save_file(state(source("dinov2_vitl14")), tmp_path / "dinov2_vitb14.safetensors")
    with pytest.raises(WeightsError, match=r"shape mismatches \(e\.g\. cls_token \(1, 1, 64\) vs expected "
                                           r"\(1, 1, 48\)"):
        reload("dinov2_vitb14", tmp_path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file_fails_clearly(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"dinov2_vits14{suffix}"
    if suffix == ".pth":
        torch.save(state(source("dinov2_vits14")), path)
    else:
        save_file(state(source("dinov2_vits14")), path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(WeightsError) as info:
        reload("dinov2_vits14", tmp_path)
    assert str(path) in str(info.value) and "cannot read the weights file" in str(info.value)
    assert "corrupt" in str(info.value) and "Fix: download it again" in str(info.value)


def test_pickled_objects_are_never_unpickled(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "resnet152.pth")
    with pytest.raises(WeightsError, match="never unpickled with weights_only=False"):
        reload("resnet152", tmp_path)


def test_file_without_tensors_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "args": {"lr": 0.1}}, tmp_path / "resnet152.pt")
    with pytest.raises(WeightsError, match=r"expected a state dict of tensors, found dict with keys \['epoch', "):
        reload("resnet152", tmp_path)


def test_no_weights_anywhere_names_the_expected_files_and_hub_id(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsMissing) as info:
        load_backbone("dinov2_vitl14", demo=False, weights_dir=tmp_path, hf_cache_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"weights dir {tmp_path}:")
    assert all(name in message for name in ["dinov2_vitl14.safetensors", "dinov2_vitl14.pth",
                                            "dinov2_vitl14.pth.tar"])
    assert "timm/vit_large_patch14_dinov2.lvd142m" in message and "--radbench-weights" in message
    with pytest.raises(WeightsMissing) as info:
        load_backbone("msn_vitl16", demo=False, weights_dir=tmp_path / "absent", hf_cache_dir=tmp_path)
    assert "directory does not exist" in str(info.value) and "facebookresearch/msn" in str(info.value)
    assert "no Hugging Face repo" in str(info.value)


def test_helpers_against_references(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"radbench" * 1000)
    assert file_digest(path) == hashlib.sha256(b"radbench" * 1000).hexdigest()[:16]
    assert expected_filenames(get_model("vgg19")) == ["vgg19.safetensors", "vgg19.pth", "vgg19.pt", "vgg19.pth.tar"]
    got = {"a": torch.zeros(2), "b": torch.zeros(3), "x": torch.zeros(1)}
    want = {"a": torch.zeros(2), "b": torch.zeros(4), "c": torch.zeros(1)}
    assert describe_mismatch(got, want) == ("1 missing keys (e.g. c), 1 unexpected keys (e.g. x), "
                                            "1 shape mismatches (e.g. b (3,) vs expected (4,))")
    assert describe_mismatch(want, want) == ""


def test_a_file_of_another_geometry_is_refused_unless_resampling_is_asked_by_name(tmp_path: Path) -> None:
    """timm's converter would resample a position table of another grid silently; radbench refuses it
    naming the key and both shapes, and resamples only for a spec that names the key."""
    import dataclasses

    from radbench_core.models.specs import MODELS
    weights = state(source("dinov2_vits14"))
    grid = weights["pos_embed"]
    weights["pos_embed"] = torch.randn(1, 1 + 6 * 6, grid.shape[-1])       # a 6x6 table, not the model's
    save_file(weights, tmp_path / "dinov2_vits14.safetensors")
    with pytest.raises(WeightsError, match=rf"pos_embed \(1, 37, {grid.shape[-1]}\) vs expected "
                                           rf"\({', '.join(map(str, grid.shape))}\).*resample_weights=\('pos_embed',\)"):
        reload("dinov2_vits14", tmp_path)
    spec = dataclasses.replace(get_model("dinov2_vits14"), id="resampled_dino", resample_weights=("pos_embed",))
    MODELS.register(spec)
    try:
        save_file(weights, tmp_path / "resampled_dino.safetensors")
        loaded = reload("resampled_dino", tmp_path).model.state_dict()
        assert tuple(loaded["pos_embed"].shape) == tuple(grid.shape)
        assert torch.equal(loaded["cls_token"], weights["cls_token"])
    finally:
        dict.pop(MODELS, "resampled_dino", None)
