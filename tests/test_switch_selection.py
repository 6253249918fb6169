"""Switches ``linear_epoch_on_val``, ``fewshot_select_on_val_no_refit`` and ``fewshot_own_grid``.

Observed on the computation: the (head, epoch) the linear probe picks against validation AUROCs
recomputed with scikit-learn from each head's weights, the number of epochs its refit trains, and
for few-shot the items, rates, epochs and batch every head training call receives.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radbench_core.config.profiles import get_profile
from radbench_core.config.switches import STUDY, SOUND, switch_values
from radbench_core.core.errors import ConfigError
from radbench_core.protocols import fewshot, linear
from radbench_core.protocols.linear import HeadConfig, head_input, run_linear, train_heads
from synthetic import frozen_features

LRS = (1.0, 1e-1, 1e-3)


def _hp(**extra) -> dict:
    return {"lrs": LRS, "n_blocks": (1,), "avgpool": (False,), "epochs": 6, "batch_size": 16,
            "features": "cached", "bootstrap": 10, **extra}


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """Every train_heads call of the protocols: items, configs, epochs, batch size."""
    seen: list[dict] = []

    def spy(train_features, train_labels, configs, **kw):
        seen.append({"n": len(train_features["cls"]), "lrs": [c.lr for c in configs],
                     "epochs": kw["epochs"], "batch_size": kw["batch_size"],
                     "val": kw.get("val_features") is not None})
        return train_heads(train_features, train_labels, configs, **kw)
    monkeypatch.setattr(linear, "train_heads", spy)
    monkeypatch.setattr(fewshot, "train_heads", spy)
    return seen


def _sklearn_val_aurocs(inputs, configs, epochs: int) -> np.ndarray:
    """(heads, epochs) validation AUROC of each head's weights after each epoch, via scikit-learn:
    a head trained alone for e epochs is the sweep's head after e epochs except for the cosine
    schedule, so the final column is recomputed from the sweep's own final weights instead."""
    sweep = train_heads(inputs.features["train"], inputs.labels["train"], configs, label_kind="binary",
                        num_classes=2, epochs=epochs, batch_size=16, seed=0)
    out = []
    for h, cfg in enumerate(configs):
        w, b = sweep.final[h]
        x = head_input(inputs.features["val"], cfg.n_blocks, cfg.avgpool)
        logits = x @ w.numpy() + b.numpy()
        p1 = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
        out.append(roc_auc_score(inputs.labels["val"], p1))
    return np.asarray(out)


def test_linear_final_picks_the_best_head_after_the_last_epoch_and_refits_every_epoch(calls):
    inputs = frozen_features(64, 0.2, "binary", 2, seed=11, blocks=1, patch=False)
    result = run_linear(inputs, _hp(epoch_selection="final"), seed=0)
    configs = [HeadConfig(lr, 1, False) for lr in LRS]
    last = _sklearn_val_aurocs(inputs, configs, 6)
    assert result.chosen["lr"] == LRS[int(np.argmax(last))]
    assert result.chosen["epochs"] == 6
    assert [c["epochs"] for c in calls] == [6, 6] and calls[1]["n"] == 64 + 32     # refit: train + val
    assert result.metrics["auroc_val"].value == pytest.approx(last.max(), abs=1e-6)
    # on this case the head best after the last epoch is neither the one best after the first
    # epoch nor ours (the best (head, epoch)): the switch changes the head, not only the epochs
    ours = run_linear(inputs, _hp(epoch_selection="best_val"), seed=0)
    assert ours.chosen["lr"] != result.chosen["lr"] and ours.chosen["epochs"] < 6


def test_linear_best_val_may_stop_early_and_final_never_does(calls):
    """On a case where some head peaks before the last epoch, ours refits for fewer epochs."""
    inputs = frozen_features(64, 0.2, "binary", 2, seed=11, blocks=1, patch=False)
    ours = run_linear(inputs, _hp(epoch_selection="best_val"), seed=0)
    sweep = train_heads(inputs.features["train"], inputs.labels["train"],
                        [HeadConfig(lr, 1, False) for lr in LRS], label_kind="binary", num_classes=2,
                        epochs=6, batch_size=16, seed=0, val_features=inputs.features["val"],
                        val_labels=inputs.labels["val"])
    head, epoch = np.unravel_index(np.nanargmax(sweep.val_auroc), sweep.val_auroc.shape)
    assert epoch < 5, "the tiny case must have a head peaking before the last epoch"
    assert ours.chosen["epochs"] == epoch + 1 and ours.chosen["lr"] == LRS[head]
    assert calls[1]["epochs"] == epoch + 1


def test_an_unknown_epoch_selection_is_a_config_error():
    with pytest.raises(ConfigError, match="epoch_selection"):
        run_linear(frozen_features(20, 0.4, "binary", 2, blocks=1, patch=False),
                   _hp(epoch_selection="test"), seed=0)


def _fewshot_hp(**extra) -> dict:
    return {"shots": 2, "sampler": "seeded", "seeds": 1, "lrs": (1e-1, 1e-2), "n_blocks": (1,),
            "avgpool": (False,), "epochs": 5, "batch_size": 256, **extra}


def test_fewshot_study_selection_refits_on_the_sample_plus_all_of_val(calls):
    inputs = frozen_features(60, 0.5, "multiclass", 3, seed=1, blocks=1, patch=False)
    study = fewshot.run_fewshot(inputs, _fewshot_hp(fewshot_selection="final_refit_val"), seed=0)
    sample = calls[0]["n"]
    assert sample == 6                                     # 2 patients x 3 classes, one image each
    assert [c["n"] for c in calls] == [sample, sample + 30] and [c["val"] for c in calls] == [True, False]
    assert calls[1]["epochs"] == 5 and len(calls[1]["lrs"]) == 1
    calls.clear()
    ours = fewshot.run_fewshot(inputs, _fewshot_hp(), seed=0)
    assert [c["n"] for c in calls] == [sample]             # no refit
    assert study.metrics["auroc"].value != ours.metrics["auroc"].value


def test_fewshot_study_grid_replaces_rates_epochs_and_batch(calls):
    inputs = frozen_features(60, 0.5, "multiclass", 3, seed=1, blocks=1, patch=False)
    grid = switch_values(STUDY)["fewshot_own_grid"]
    fewshot.run_fewshot(inputs, _fewshot_hp(fewshot_grid=grid), seed=0)
    assert calls == [{"n": 6, "lrs": list(grid["lrs"]), "epochs": 10, "batch_size": 128, "val": True}]
    assert len(grid["lrs"]) == 8
    calls.clear()
    fewshot.run_fewshot(inputs, _fewshot_hp(fewshot_grid=switch_values(SOUND)["fewshot_own_grid"]), seed=0)
    assert calls == [{"n": 6, "lrs": [1e-1, 1e-2], "epochs": 5, "batch_size": 256, "val": True}]
    with pytest.raises(ConfigError, match="fewshot_grid"):
        fewshot.run_fewshot(inputs, _fewshot_hp(fewshot_grid={"lrs": (1e-2,)}), seed=0)
    with pytest.raises(ConfigError, match="fewshot_selection"):
        fewshot.run_fewshot(inputs, _fewshot_hp(fewshot_selection="test"), seed=0)


@pytest.mark.parametrize("protocol,key,study", [
    ("linear", "epoch_selection", "final"), ("linear_subset", "epoch_selection", "final"),
    ("fewshot", "fewshot_selection", "final_refit_val"), ("fewshot", "fewshot_grid", dict)])
def test_paper_hands_the_study_value_and_sound_the_code_default(protocol, key, study):
    paper, sound = get_profile("paper").hparams_for(protocol), get_profile("sound").hparams_for(protocol)
    assert isinstance(paper[key], dict) if study is dict else paper[key] == study
    assert key not in sound                     # the protocol's default: the sound value
    # only the named protocols get it: the knn cell never sees these keys
    assert key not in get_profile("paper").hparams_for("knn")
