"""Switch ``finetune_no_trainval_refit``: which model of a fine-tune cell is scored on test.

Observed on the computation: every training pass the protocol runs (how many slices, which items and
labels, whether the backbone is in train mode and whether its weights move), the rate it keeps
against validation AUROCs recomputed with scikit-learn, and the test scores recomputed from the
returned backbone and head. Then a real demo fine-tune cell under each value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from radbench_core.config.profiles import Grid, Profile, _hparams, get_profile
from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.protocols import finetune
from radbench_core.protocols.finetune import predict_items, run_finetune
from radbench_core.protocols.finetune_refit import final_model_rule
from test_finetune import easy_task

HP = {"epochs": 3, "batch_size": 16, "backbone_lrs": (3e-2, 1e-3), "head_lr": 5e-2, "bootstrap": 20,
      "mode": "full"}


@pytest.fixture
def passes(monkeypatch) -> list[dict]:
    """Every training epoch: slices, items and labels seen, backbone mode, whether its weights moved."""
    seen: list[dict] = []
    real = finetune._train_epoch

    def spy(backbone, head, loader, y_train, *args, **kw):
        before = [p.detach().clone() for p in backbone.parameters()]
        batches = [(b["item"], b["label"]) for b in loader]       # one pass: items with their labels
        items = [int(i) for it, _ in batches for i in it]
        labels = [int(v) for _, lab in batches for v in lab]
        real(backbone, head, loader, y_train, *args, **kw)
        seen.append({"slices": len(loader.dataset), "items": items, "labels": labels,
                     "targets": [int(y_train[i]) for i in items], "train_mode": backbone.training,
                     "moved": any(not torch.equal(a, p) for a, p in zip(before, backbone.parameters()))})
    monkeypatch.setattr(finetune, "_train_epoch", spy)
    return seen


def test_study_refits_a_new_head_on_train_and_val_over_the_frozen_last_epoch_backbone(passes):
    inputs = easy_task(30, 0.1, seed=3)
    n_train, n_val = len(inputs.labels["train"]), len(inputs.labels["val"])
    slices = {s: len(inputs.datasets[s]) for s in ("train", "val")}
    result = run_finetune(inputs, {**HP, "final_model": "head_refit_trainval"}, seed=0)
    sweep, refit = passes[:6], passes[6:]
    assert [p["slices"] for p in sweep] == [slices["train"]] * 6
    assert all(p["train_mode"] and p["moved"] for p in sweep)
    # the refit: 3 epochs over every train and val slice, item ids past the train items are val's,
    # each slice trained on its own item's label; the backbone in eval mode and never updated
    assert len(refit) == 3 and [p["slices"] for p in refit] == [slices["train"] + slices["val"]] * 3
    for p in refit:
        assert sorted(set(p["items"])) == list(range(n_train + n_val))
        assert p["targets"] == p["labels"]
        assert not p["train_mode"] and not p["moved"]
    # the rate kept: the best validation AUROC after the last epoch (no epoch choice)
    last = [result.extra["val_auroc_by_lr"][f"{lr:g}"][-1] for lr in HP["backbone_lrs"]]
    assert result.chosen["backbone_lr"] == HP["backbone_lrs"][int(np.argmax(last))]
    assert result.chosen["epochs"] == 3 and result.chosen["final_model"] == "head_refit_trainval"
    assert result.metrics["auroc_val"].value == pytest.approx(max(last))
    # the test scores are the refitted head's on that backbone, and sklearn's AUROC of them
    scores = result.extra["test_predictions"]["scores"]
    assert result.metrics["auroc"].value == pytest.approx(roc_auc_score(inputs.labels["test"], scores))


def test_ours_scores_the_best_snapshot_and_trains_nothing_after_the_sweep(passes):
    inputs = easy_task(30, 0.1, seed=3)
    ours = run_finetune(inputs, {**HP, "final_model": "best_val_snapshot"}, seed=0)
    assert len(passes) == 6 and all(p["moved"] for p in passes)
    history = ours.extra["val_auroc_by_lr"]
    flat = [(v, lr, e) for lr in HP["backbone_lrs"] for e, v in enumerate(history[f"{lr:g}"])]
    best = max(flat, key=lambda t: t[0])          # first of equal values wins, as max does
    assert (ours.chosen["backbone_lr"], ours.chosen["epochs"]) == (best[1], best[2] + 1)
    # the scored model is the returned snapshot: its scores recomputed equal the recorded ones
    scores = ours.extra["test_predictions"]["scores"]
    assert ours.metrics["auroc"].value == pytest.approx(roc_auc_score(inputs.labels["test"], scores))
    study = run_finetune(easy_task(30, 0.1, seed=3), {**HP, "final_model": "head_refit_trainval"}, seed=0)
    assert study.metrics["auroc"].value != ours.metrics["auroc"].value


def test_the_refit_head_is_what_the_test_scores_come_from(monkeypatch):
    from radbench_core.protocols import finetune_refit
    inputs = easy_task(24, 0.6, seed=5)
    kept = {}
    real = finetune_refit.refit_head

    def spy(inputs_, hparams, backbone, *args, **kw):
        head = real(inputs_, hparams, backbone, *args, **kw)
        kept["backbone"], kept["head"] = backbone, head
        return head
    monkeypatch.setattr(finetune_refit, "refit_head", spy)
    result = run_finetune(inputs, {**HP, "final_model": "head_refit_trainval"}, seed=0)
    again = predict_items(kept["backbone"], kept["head"], inputs.datasets["test"], len(inputs.labels["test"]),
                          "binary", 16, "cpu")
    np.testing.assert_allclose(result.extra["test_predictions"]["scores"], again, atol=1e-6)


def test_profiles_and_bad_values():
    for protocol in ("finetune", "lora", "bitfit"):
        assert get_profile("paper").hparams_for(protocol)["final_model"] == "head_refit_trainval"
        assert final_model_rule(get_profile("sound").hparams_for(protocol)) == "best_val_snapshot"
        assert "final_model" not in get_profile("demo").hparams_for(protocol)
    assert "final_model" not in get_profile("paper").hparams_for("linear")
    with pytest.raises(ConfigError, match=r"hparams\['final_model'\]='refit'.*Fix: use one of"):
        final_model_rule({"final_model": "refit"})


HPARAMS = {**_hparams(paper=False)}
HPARAMS["finetune"] = {**HPARAMS["finetune"], "head_lr": 1e-2}     # no linear probe for the head rate


def _profile(value: str | None) -> Profile:
    return Profile(name="t", description="test", demo=True, grids=(Grid(("dinov2_vits14",), ("nih",),
                                                                         ("finetune",)),),
                   hparams=HPARAMS, cls_resolution=42, phantom_size="tiny", batch_size=16,
                   num_workers=0, switches={} if value is None else {"finetune_no_trainval_refit": value})


def test_a_demo_finetune_cell_under_each_value(tmp_path):
    """A real demo cell: the record carries the switch, the deviation only on our side, and the
    scored model differs (the test AUROC moves; the head's epochs are the full run on the study's)."""
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    recs = {}
    for value in ("head_refit_trainval", "best_val_snapshot"):
        ctx = RunContext(profile=_profile(value), cache_dir=tmp_path / "c", run_dir=tmp_path / value,
                         progress=False)
        recs[value] = run_cell(Cell("dinov2_vits14", "nih", "finetune"), ctx, BackbonePool(),
                               FeatureCache(tmp_path / "c" / "features"))
    study, ours = recs["head_refit_trainval"], recs["best_val_snapshot"]
    assert study.switches["finetune_no_trainval_refit"] == "head_refit_trainval"
    assert ours.switches["finetune_no_trainval_refit"] == "best_val_snapshot"
    assert "finetune_no_trainval_refit" in ours.deviations
    assert "finetune_no_trainval_refit" not in study.deviations
    assert study.hparams["final_model"] == "head_refit_trainval"
    assert study.metrics["auroc"].value != ours.metrics["auroc"].value
    assert study.config_hash != ours.config_hash
