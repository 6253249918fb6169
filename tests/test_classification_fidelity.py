"""Deviations of the classification protocols follow the cell's hyperparameters (issue 13)."""

from __future__ import annotations

from radbench_core.core.cells import Cell
from radbench_core.config.fidelity import deviations_in_effect
from radbench_core.config.profiles import get_profile
from radbench_core.protocols import PROTOCOLS
from radbench_core.run.runner import cell_hparams


def _deviations(profile: str, model: str, dataset: str, protocol: str) -> set[str]:
    p = get_profile(profile)
    hp = cell_hparams(Cell(model, dataset, protocol), PROTOCOLS[protocol], p)
    return set(deviations_in_effect(model, dataset, protocol, hp))


def test_linear_cached_features_is_opt_in():
    assert "linear_cached_features" not in _deviations("paper", "dinov2_vitl14", "nih", "linear")
    assert "linear_cached_features" in _deviations("demo", "dinov2_vitl14", "nih", "linear")


def test_knn_switches_are_deviations_in_sound_and_the_study_in_paper():
    sound = _deviations("sound", "dinov2_vitl14", "nih", "knn")
    assert {"knn_k_on_val", "knn_no_self_neighbour"} <= sound
    assert "knn_no_self_neighbour" not in _deviations("sound", "dinov2_vitl14", "sarscov2", "knn")
    assert not {"knn_k_on_val", "knn_no_self_neighbour"} & _deviations("paper", "dinov2_vitl14", "nih", "knn")
    hp = get_profile("paper").hparams_for("knn")
    assert (hp["k_selection"], hp["mlknn_self_neighbour"]) == ("test", True)


def test_finetune_family_deviations():
    assert "finetune_head_lr_from_cached_probe" not in _deviations("paper", "dinov2_vitl14", "nih", "finetune")
    assert "finetune_head_lr_from_cached_probe" in _deviations("sound", "dinov2_vitl14", "nih", "finetune")
    # a switch: the study's refit in paper, our snapshot (a deviation) in sound
    for protocol in ("finetune", "lora", "bitfit"):
        assert "finetune_no_trainval_refit" not in _deviations("paper", "dinov2_vitl14", "nih", protocol)
        assert "finetune_no_trainval_refit" in _deviations("sound", "dinov2_vitl14", "nih", protocol)
    bitfit = _deviations("paper", "dinov2_vitl14", "chexpert", "bitfit")
    assert "bitfit_rates_from_lora" in bitfit and "finetune_head_lr_from_cached_probe" not in bitfit
