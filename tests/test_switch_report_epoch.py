"""Switch ``seg_test_once``: the study reports the best of its refit's periodic TEST scores.

Observed on the computation: with ``report_epoch="best_on_test"`` the refit is scored on the test
split every ``test_every`` epochs and at the end (the study's eval_period on the test loader), and the
reported pooled Dice is the best of those scores, from that epoch's head; with ``"final"`` (ours)
nothing is scored on test during the refit and the reported value is the final head's, which equals
the last of the study-side scores (same seed, same training).
"""

from __future__ import annotations

import pytest

from radbench_core.config.profiles import get_profile
from radbench_core.core.errors import ConfigError
from radbench_core.protocols.seg_training import report_epoch_rule
from radbench_core.protocols.segmentation import run_seg_decoder
from test_segmentation import TinyViTBackbone, hp, index, seg_inputs  # noqa: F401

SETTINGS = dict(lrs=[5.0], decoder="linear", epochs=6, refit=True, select_epoch="last", select_metric="dice_study",
                bootstrap_resamples=0, test_every=1)


def _run(index, rule):
    return run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(**SETTINGS, report_epoch=rule), seed=0)


def test_study_side_reports_the_best_test_score_of_the_refit_and_ours_the_final_state(index):
    study, ours = _run(index, "best_on_test"), _run(index, "final")
    tested = [r for r in study.extra["history"] if r.get("refit") and r.get("test_dice_study") is not None]
    assert [r["epoch"] for r in tested] == list(range(SETTINGS["epochs"]))    # every epoch (test_every=1)
    scores = [r["test_dice_study"] for r in tested]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    assert best != len(scores) - 1, "the case must have a best epoch before the last one"
    assert study.metrics["dice_study"].value == pytest.approx(scores[best], abs=1e-12)
    assert study.chosen["epoch"] == tested[best]["epoch"] and study.chosen["report_epoch"] == "best_on_test"
    # ours: no test scoring inside the refit; the final head, i.e. the study side's last score
    assert not any(r.get("refit") and r.get("test_dice_study") is not None for r in ours.extra["history"])
    assert ours.metrics["dice_study"].value == pytest.approx(scores[-1], abs=1e-12)
    assert study.metrics["dice_study"].value > ours.metrics["dice_study"].value


def test_profiles_set_the_switch_and_a_bad_value_is_a_config_error():
    for protocol in ("seg_linear", "seg_unet", "scratch"):
        assert report_epoch_rule(get_profile("paper").hparams_for(protocol)) == "best_on_test"
        assert report_epoch_rule(get_profile("sound").hparams_for(protocol)) == "final"
        assert report_epoch_rule(get_profile("demo").hparams_for(protocol)) == "final"
    assert report_epoch_rule(get_profile("paper").hparams_for("seg_fewshot")) == "final"
    with pytest.raises(ConfigError, match="report_epoch"):
        report_epoch_rule({"report_epoch": "best"})


def test_without_a_refit_the_study_rule_reports_the_best_test_score_of_the_selected_run(index):
    """report_epoch="best_on_test" with refit=False (the demo's segmentation under the study side)
    used to act like "final"; it now reruns the selected run (same rate, seed, epochs) scored on
    test every epoch and reports the best of those scores. The rerun is the selected run: its last
    test score is exactly the final-state score ours reports."""
    settings = {**SETTINGS, "refit": False, "lrs": [5.0, 0.5]}
    study = run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(**settings, report_epoch="best_on_test"), seed=0)
    ours = run_seg_decoder(seg_inputs(index, TinyViTBackbone()), hp(**settings, report_epoch="final"), seed=0)
    tested = [r for r in study.extra["history"] if r.get("rerun") and r.get("test_dice_study") is not None]
    assert [r["epoch"] for r in tested] == list(range(settings["epochs"]))
    assert {r["lr"] for r in tested} == {ours.chosen["lr"]} and study.chosen["lr"] == ours.chosen["lr"]
    scores = [r["test_dice_study"] for r in tested]
    assert ours.metrics["dice_study"].value == pytest.approx(scores[-1], abs=1e-12)
    assert study.metrics["dice_study"].value == pytest.approx(max(scores), abs=1e-12)
    assert max(scores) > scores[-1], "the case must have a best epoch before the last one"
    assert study.chosen["epoch"] == tested[scores.index(max(scores))]["epoch"]
    assert not any(r.get("rerun") for r in ours.extra["history"])
