"""The study's pretrained weights: ResNet152 is torchvision's DEFAULT (V2), found without a download."""

from __future__ import annotations

import timm
import torchvision

from radbench_core.config.fidelity import deviations_in_effect
from radbench_core.config.profiles import get_profile
from radbench_core.models.specs import get_model


def test_resnet152_loads_the_file_the_studys_default_weights_name():
    spec = get_model("resnet152")
    study = torchvision.models.ResNet152_Weights.DEFAULT          # the study's utils.py:254
    assert study == torchvision.models.ResNet152_Weights.IMAGENET1K_V2
    cfg = timm.models.get_pretrained_cfg(spec.timm_name.split(".")[0] + "." + spec.timm_name.split(".")[1])
    assert cfg.url.rsplit("/", 1)[-1] == study.url.rsplit("/", 1)[-1] == "resnet152-f82ba261.pth"
    assert spec.hub_id == "timm/resnet152.tv2_in1k"


def test_vit_l16_is_the_studys_checkpoint_in_every_profile_and_no_longer_a_deviation():
    """Loading it is tested in test_study_vit_l16.py; here: no profile records a weights deviation."""
    assert get_model("vit_l16_in21k").hub_id == "google/vit-large-patch16-224"
    for name in ("paper", "sound"):
        hp = get_profile(name).hparams_for("linear")
        assert not [d for d in deviations_in_effect("vit_l16_in21k", "nih", "linear", hp) if "weights" in d]
