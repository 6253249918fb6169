"""The model registry: ids, labels, timm names, parameter counts against the study's Tables 2 and 6."""

from __future__ import annotations

import pytest
import timm
import torch

from radbench_core.core.errors import ConfigError
from radbench_core.models.architectures import create_architecture, reference_parameter_count
from radbench_core.models.specs import FRONTIER, MODELS, PARADIGMS, ModelSpec, count_parameters, demo_seed, get_model, preprocessing

STUDY_IDS = {"dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14", "clip_vitl14", "openclip_vith14",
             "mae_vitl16", "msn_vitl16", "sam_vitl16", "vit_l16_in21k", "densenet201", "resnet152", "vgg19",
             "unet", "transunet"}
FAMILIES = {"dinov2", "clip", "mae", "msn", "sam", "supervised_vit", "cnn", "scratch", "dinov3", "siglip"}
# The study's Table 2 (backbones) and Table 6 (scratch segmentation models), millions of parameters.
STUDY_PARAMS_M = {"dinov2_vits14": 21, "dinov2_vitb14": 86, "dinov2_vitl14": 300, "dinov2_vitg14": 1100,
                  "clip_vitl14": 300, "openclip_vith14": 632, "mae_vitl16": 300, "msn_vitl16": 300,
                  "sam_vitl16": 300, "vit_l16_in21k": 300, "densenet201": 20, "resnet152": 60, "vgg19": 144,
                  "unet": 31, "transunet": 324}


def test_registry_holds_every_model_of_the_study() -> None:
    assert STUDY_IDS <= set(MODELS)
    assert set(MODELS) - STUDY_IDS <= {"dinov2_vitl14_reg4", *FRONTIER}
    assert all(spec.id == key for key, spec in MODELS.items())


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_spec_fields_are_consistent(model_id: str) -> None:
    spec = MODELS[model_id]
    assert spec.paradigm in PARADIGMS and spec.family in FAMILIES
    assert spec.arch in ("vit", "sam", "cnn", "seg_scratch")
    assert set(spec.tasks) <= {"classification", "segmentation"} and spec.tasks
    assert spec.label and spec.patch_size > 0 and spec.native_resolution >= 224
    if spec.arch == "seg_scratch":
        assert spec.paradigm == "from scratch" and spec.tasks == ("segmentation",)
        return
    assert timm.is_model(spec.timm_arch), spec.timm_name
    if spec.layout in ("dinov2_hub", "dinov3"):   # Meta's release file or timm's hub copy: both load
        assert spec.source_note and spec.timm_name in timm.list_pretrained(spec.timm_name)
    if spec.layout not in ("timm", "dinov2_hub", "dinov3"):  # a Hugging Face / open_clip / SAM release
        assert "." not in spec.timm_name and spec.source_note
    elif spec.hub_id:  # a tagged timm name whose pretrained weights timm knows
        assert spec.timm_name in timm.list_pretrained(spec.timm_name)
        cfg = timm.get_pretrained_cfg(spec.timm_name)
        # torchvision's V2 recipe trains at 176 px and evaluates at 224 (timm's test_input_size)
        evaluated = (cfg.test_input_size or cfg.input_size)[-1] if ".tv2_" in spec.timm_name else cfg.input_size[-1]
        assert spec.hub_id == cfg.hf_hub_id and spec.native_resolution == evaluated
    else:
        assert spec.id == "msn_vitl16" and "msn" in spec.source_note.lower()


def test_study_labels_and_paradigms() -> None:
    assert get_model("dinov2_vitl14").label == "DINOv2 ViT-L/14"
    assert get_model("clip_vitl14").paradigm == "weakly-supervised"
    assert get_model("vgg19").paradigm == "supervised" and get_model("vgg19").patch_size == 32
    assert get_model("msn_vitl16").timm_name == "vit_large_patch16_224"
    assert get_model("sam_vitl16").timm_name == "samvit_large_patch16.sa1b"
    assert {s.id for s in MODELS.values() if s.family == "dinov2"} >= {"dinov2_vits14", "dinov2_vitg14"}


@pytest.mark.parametrize("model_id", sorted(STUDY_PARAMS_M))
def test_full_size_parameter_count_matches_the_study(model_id: str) -> None:
    """Within 5% of the study; the position table is left out (its size is a pretraining choice:
    with DINOv2's 37x37 table ViT-S/14 counts 22.06M, 5.03% above the study's 21M)."""
    spec = get_model(model_id)
    counted = reference_parameter_count(spec, exclude_pos_embed=True) / 1e6
    assert spec.study_params_m == STUDY_PARAMS_M[model_id]
    assert abs(counted - STUDY_PARAMS_M[model_id]) <= 0.05 * STUDY_PARAMS_M[model_id], counted


def test_position_table_is_counted_unless_excluded() -> None:
    spec = get_model("dinov2_vits14")
    full, without = reference_parameter_count(spec), reference_parameter_count(spec, exclude_pos_embed=True)
    assert full == 22_056_192                      # timm's / the official checkpoint's exact count
    assert full - without == (518 // 14) ** 2 * 384 + 384   # 37x37 patches + the class token, width 384


def test_full_size_build_on_meta_uses_no_memory() -> None:
    with torch.device("meta"):
        model = create_architecture(get_model("dinov2_vitg14"))
    assert all(p.is_meta for p in model.parameters())
    assert model.embed_dim == 1536 and len(model.blocks) == 40 and model.patch_embed.patch_size == (14, 14)


def test_unknown_id_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_model("dinov3_vitl14")
    message = str(info.value)
    assert "'dinov3_vitl14'" in message and "unknown model id" in message
    assert "dinov2_vitl14" in message and "transunet" in message and "Fix:" in message


def test_scratch_model_has_no_timm_architecture() -> None:
    with pytest.raises(ConfigError, match="build_scratch_model"):
        create_architecture(get_model("unet"))


def test_get_model_passes_a_spec_through_and_specs_hash() -> None:
    spec = get_model("mae_vitl16")
    assert get_model(spec) is spec
    assert len({spec, get_model("mae_vitl16"), get_model("msn_vitl16")}) == 2


def test_demo_seed_depends_on_the_id_only() -> None:
    assert demo_seed("dinov2_vitl14") == demo_seed("dinov2_vitl14")
    assert len({demo_seed(i) for i in MODELS}) == len(MODELS)


def test_dinov2_demo_variants_differ_in_width() -> None:
    widths = [get_model(f"dinov2_vit{s}14").demo_kwargs["embed_dim"] for s in "sblg"]
    assert widths == sorted(widths) and len(set(widths)) == 4


def test_preprocessing_follows_the_weights() -> None:
    clip_mean, clip_std = preprocessing(get_model("clip_vitl14"))
    assert clip_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert clip_std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert preprocessing(get_model("msn_vitl16")) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert preprocessing(get_model("dinov2_vitl14"))[0] == pytest.approx((0.485, 0.456, 0.406))
    assert preprocessing(get_model("sam_vitl16"))[1] == pytest.approx((0.229, 0.224, 0.225))


def test_count_parameters_splits_trainable_from_frozen() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))   # 16 + 10 parameters
    assert count_parameters(net) == (26, 26)
    net[0].requires_grad_(False)
    assert count_parameters(net) == (10, 26)


def test_model_spec_is_frozen() -> None:
    spec = get_model("resnet152")
    with pytest.raises(AttributeError):
        spec.label = "x"  # type: ignore[misc]
    assert isinstance(spec, ModelSpec) and spec.timm_arch == "resnet152"
