"""Linear probe: batched heads == heads alone == torch.optim.SGD; signal vs noise; selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import auroc
from radbench_core.protocols.base import FrozenInputs
from synthetic import frozen_features
from radbench_core.protocols.losses import classification_loss
from radbench_core.protocols.linear import (HeadConfig, head_configs, head_input, head_seed,
                                            run_linear, train_heads)


def synthetic(n: int, signal: float, kind: str, n_classes: int, seed: int = 0, dim: int = 12,
              blocks: int = 4, patch: bool = True) -> FrozenInputs:
    """10 % of multi-label targets are "uncertain" (NaN) and must be ignored."""
    return frozen_features(n, signal, kind, n_classes, seed, dim=dim, blocks=blocks, patch=patch,
                           uncertain=0.1)


HP = {"lrs": (1e-1, 1e-2), "epochs": 8, "batch_size": 64, "bootstrap": 100}


@pytest.mark.parametrize("kind,n_classes", [("multiclass", 3), ("binary", 2), ("multilabel", 3)])
def test_linear_scores_well_on_signal_and_near_chance_on_noise(kind: str, n_classes: int) -> None:
    good = run_linear(synthetic(300, 0.8, kind, n_classes), HP, seed=0)
    noise = run_linear(synthetic(400, 0.0, kind, n_classes, seed=1), HP, seed=0)
    assert good.metrics["auroc"].value > 0.85
    assert abs(noise.metrics["auroc"].value - 0.5) < 0.1
    m = good.metrics["auroc"]
    assert m.ci_low <= m.value <= m.ci_high
    assert set(good.chosen) == {"lr", "n_blocks", "avgpool", "epochs", "features"}
    assert good.extra["n_heads"] == 8
    d_in = 12 * good.chosen["n_blocks"] + 12 * good.chosen["avgpool"]
    assert good.params_trainable == (d_in + 1) * (2 if kind == "binary" else n_classes)


def test_best_head_of_the_sweep_equals_that_head_trained_alone() -> None:
    inputs = synthetic(200, 0.3, "multiclass", 3, seed=4)
    configs = head_configs((0.5, 1e-1, 1e-2, 1e-3), (1, 4), (False, True), inputs.features["train"])
    common = dict(label_kind="multiclass", num_classes=3, epochs=6, batch_size=32, seed=11,
                  val_features=inputs.features["val"], val_labels=inputs.labels["val"])
    sweep = train_heads(inputs.features["train"], inputs.labels["train"], configs, **common)
    head, epoch = sweep.best_index()
    assert sweep.val_auroc[head, epoch] == np.nanmax(sweep.val_auroc)
    alone = train_heads(inputs.features["train"], inputs.labels["train"], [configs[head]], **common)
    np.testing.assert_allclose(alone.val_auroc[0], sweep.val_auroc[head], atol=1e-6)
    for got, want in zip(alone.final[0] + alone.best[0], sweep.final[head] + sweep.best[head]):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    # a different head order does not change any head either
    shuffled = train_heads(inputs.features["train"], inputs.labels["train"], configs[::-1], **common)
    torch.testing.assert_close(shuffled.final[len(configs) - 1 - head][0], sweep.final[head][0],
                               atol=1e-6, rtol=1e-6)


def test_manual_momentum_sgd_equals_torch_optim_sgd_with_cosine_decay() -> None:
    inputs = synthetic(50, 0.5, "multiclass", 3, seed=5)
    cfg = HeadConfig(0.05, 1, True)
    epochs, bs, seed = 3, 16, 2
    ours = train_heads(inputs.features["train"], inputs.labels["train"], [cfg],
                       label_kind="multiclass", num_classes=3, epochs=epochs, batch_size=bs, seed=seed)
    x = torch.as_tensor(head_input(inputs.features["train"], 1, True))
    y = torch.as_tensor(inputs.labels["train"])
    g = torch.Generator().manual_seed(head_seed(seed, cfg))
    lin = torch.nn.Linear(x.shape[1], 3)
    with torch.no_grad():
        lin.weight.copy_((torch.randn(x.shape[1], 3, generator=g) * 0.01).T)
        lin.bias.zero_()
    opt = torch.optim.SGD(lin.parameters(), lr=cfg.lr, momentum=0.9)
    steps = epochs * math.ceil(len(x) / bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for b0 in range(0, len(x), bs):
            idx = perm[b0:b0 + bs]
            opt.zero_grad()
            F.cross_entropy(lin(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    torch.testing.assert_close(ours.final[0][0], lin.weight.detach().T, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.final[0][1], lin.bias.detach(), atol=1e-5, rtol=1e-4)


def test_multilabel_loss_ignores_nan_targets() -> None:
    logits = torch.tensor([[[0.5, -1.0], [2.0, 0.3]]])          # one head, 2 items, 2 labels
    target = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    loss = classification_loss(logits, target, "multilabel")
    terms = [-math.log(torch.sigmoid(torch.tensor(0.5)).item()),
             -math.log(1 - torch.sigmoid(torch.tensor(2.0)).item()),
             -math.log(torch.sigmoid(torch.tensor(0.3)).item())]
    assert loss.shape == (1,) and loss.item() == pytest.approx(sum(terms) / 3, rel=1e-6)


def test_cnn_features_use_pooled_features_only_and_selection_retrains_on_train_val() -> None:
    inputs = synthetic(120, 0.8, "multiclass", 3, blocks=1, patch=False)
    configs = head_configs((0.1, 0.01), (1, 4), (False, True), inputs.features["train"])
    assert configs == [HeadConfig(0.1, 1, False), HeadConfig(0.01, 1, False)]
    result = run_linear(inputs, HP, seed=3)
    assert result.chosen["n_blocks"] == 1 and result.chosen["avgpool"] is False
    assert 1 <= result.chosen["epochs"] <= HP["epochs"]
    assert result.extra["n_heads"] == 2
    # the reported test AUROC is that of the chosen config retrained on train+val
    feats = {k: np.concatenate([inputs.features["train"][k], inputs.features["val"][k]])
             for k in inputs.features["train"]}
    labels = np.concatenate([inputs.labels["train"], inputs.labels["val"]])
    cfg = HeadConfig(result.chosen["lr"], 1, False)
    refit = train_heads(feats, labels, [cfg], label_kind="multiclass", num_classes=3,
                        epochs=result.chosen["epochs"], batch_size=HP["batch_size"], seed=3)
    expected = auroc(inputs.labels["test"], refit.scores(inputs.features["test"], 0, "final"),
                     "multiclass")
    assert result.metrics["auroc"].value == pytest.approx(expected, abs=1e-12)
    again = run_linear(inputs, HP, seed=3)
    assert again.metrics == result.metrics and again.chosen == result.chosen


def test_bad_linear_inputs_name_the_problem() -> None:
    inputs = synthetic(30, 1.0, "multiclass", 3, blocks=1, patch=False)
    with pytest.raises(ConfigError, match=r"no head fits features with 1 block\(s\) and no patch"):
        head_configs((0.1,), (4,), (True,), inputs.features["train"])
    with pytest.raises(ConfigError, match=r"epochs=0, batch_size=8.*Fix: set positive"):
        train_heads(inputs.features["train"], inputs.labels["train"], [HeadConfig(0.1, 1, False)],
                    label_kind="multiclass", num_classes=3, epochs=0, batch_size=8, seed=0)
    with pytest.raises(ConfigError, match=r"multiclass targets must be \(N,\) ints in 0\.\.1"):
        train_heads(inputs.features["train"], inputs.labels["train"], [HeadConfig(0.1, 1, False)],
                    label_kind="multiclass", num_classes=2, epochs=1, batch_size=8, seed=0)
    with pytest.raises(ConfigError, match=r"train_heads: a head needs 4 blocks and patch tokens, "
                                          r"the features have 1 block\(s\)"):
        train_heads(inputs.features["train"], inputs.labels["train"], [HeadConfig(0.1, 4, True)],
                    label_kind="multiclass", num_classes=3, epochs=1, batch_size=8, seed=0)
    with pytest.raises(ConfigError, match=r"multilabel targets must be \(N, 4\)"):
        train_heads(inputs.features["train"], np.zeros((30, 3)), [HeadConfig(0.1, 1, False)],
                    label_kind="multilabel", num_classes=4, epochs=1, batch_size=8, seed=0)


def test_a_diverging_head_is_never_selected_and_leaves_the_others_alone() -> None:
    inputs = synthetic(120, 0.8, "multiclass", 3, seed=6)
    for split in inputs.features.values():
        split["cls"] = split["cls"] * np.float16(1000)
    configs = [HeadConfig(1e38, 1, False), HeadConfig(1e-4, 1, False)]
    common = dict(label_kind="multiclass", num_classes=3, epochs=3, batch_size=32, seed=0,
                  val_features=inputs.features["val"], val_labels=inputs.labels["val"])
    sweep = train_heads(inputs.features["train"], inputs.labels["train"], configs, **common)
    assert np.isnan(sweep.val_auroc[0]).all()                 # overflowed to inf/NaN
    alone = train_heads(inputs.features["train"], inputs.labels["train"], configs[1:], **common)
    np.testing.assert_allclose(sweep.val_auroc[1], alone.val_auroc[0], atol=1e-6)
    assert sweep.best_index()[0] == 1
    result = run_linear(inputs, {**HP, "lrs": (1e38, 1e-4), "n_blocks": (1,), "avgpool": (False,)},
                        seed=0)
    assert result.chosen["lr"] == 1e-4 and result.metrics["auroc"].value > 0.85


def test_missing_hyperparameters_and_the_profiles_are_usable() -> None:
    from radbench_core.config.hparams import DEMO, PAPER
    inputs = synthetic(40, 1.0, "binary", 2)
    with pytest.raises(ConfigError, match=r"hparams\['epochs'\] of protocol 'linear': missing value"
                                          r".*PAPER\['linear'\]"):
        run_linear(inputs, {"lrs": (0.1,), "batch_size": 8}, seed=0)
    assert PAPER["linear"]["lrs"] == (1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 1e-5)
    assert PAPER["knn"]["ks"] == (100, 200, 400, 800, 1000) and PAPER["knn"]["temperature"] == 0.07
    assert (PAPER["lora"]["r"], PAPER["lora"]["alpha"], PAPER["lora"]["dropout"]) == (48, 16, 0.1)
    assert set(DEMO) == set(PAPER) and all(set(PAPER[k]) == set(DEMO[k]) for k in PAPER)
    result = run_linear(inputs, DEMO["linear"], seed=0)      # the demo grid runs as given
    assert result.extra["n_heads"] == 2 * 2 * 2 and result.metrics["auroc"].value > 0.8


# --- the study's settings and its augmented head training ------------------------------------------

def test_paper_linear_probe_is_the_studys_and_the_demo_uses_cached_features() -> None:
    from radbench_core.config.profiles import get_profile
    hp = get_profile("paper").hparams_for("linear")
    assert hp["lrs"] == (1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 1e-5)
    assert (tuple(hp["n_blocks"]), tuple(hp["avgpool"])) == ((1, 4), (False, True))
    assert (hp["batch_size"], hp["momentum"], hp["weight_decay"], hp["schedule"]) == (128, 0.9, 0.0, "cosine")
    assert (hp["epochs"], hp["features"]) == (10, "augmented")     # repo default epochs; paper A.2
    assert get_profile("demo").hparams_for("linear")["features"] == "cached"


class Draws:
    """Per-epoch features of a split: fixed arrays (+ optional noise), recording which epochs ran."""

    def __init__(self, features: dict, noise: float = 0.0):
        self.features, self.noise, self.epochs = features, noise, []

    def __call__(self, epoch: int) -> dict:
        self.epochs.append(epoch)
        rng = np.random.default_rng(epoch)
        return {k: np.asarray(v, np.float32) + self.noise * rng.normal(size=np.shape(v)).astype(np.float32)
                for k, v in self.features.items()}


def test_augmented_training_equals_cached_when_every_draw_is_the_same() -> None:
    inputs = synthetic(120, 0.8, "multiclass", 3)
    cached = run_linear(inputs, {**HP, "features": "cached"}, seed=0)
    train, val = Draws(inputs.features["train"]), Draws(inputs.features["val"])
    inputs.augmented = {"train": train, "val": val}
    augmented = run_linear(inputs, {**HP, "features": "augmented"}, seed=0)
    assert augmented.metrics == cached.metrics
    assert {k: v for k, v in augmented.chosen.items() if k != "features"} == \
        {k: v for k, v in cached.chosen.items() if k != "features"}
    refit_epochs = list(range(augmented.chosen["epochs"]))
    assert train.epochs == list(range(HP["epochs"])) + refit_epochs     # one draw per epoch
    assert val.epochs == refit_epochs                                    # val joins only the refit


def test_a_new_draw_each_epoch_changes_the_heads_but_not_val_and_test_features() -> None:
    inputs = synthetic(120, 0.3, "binary", 2)
    test_before = {k: np.array(v) for k, v in inputs.features["test"].items()}
    inputs.augmented = {"train": Draws(inputs.features["train"], noise=0.5),
                        "val": Draws(inputs.features["val"], noise=0.5)}
    noisy = run_linear(inputs, {**HP, "features": "augmented"}, seed=0)
    cached = run_linear(inputs, {**HP, "features": "cached"}, seed=0)
    assert noisy.extra["val_auroc_best_per_head"] != cached.extra["val_auroc_best_per_head"]
    assert noisy.metrics["auroc"].value != cached.metrics["auroc"].value
    assert noisy.metrics["auroc"].value > 0.7
    assert all(np.array_equal(v, inputs.features["test"][k]) for k, v in test_before.items())


def test_augmented_training_without_draws_or_with_a_bad_source_is_a_config_error() -> None:
    inputs = synthetic(60, 0.8, "binary", 2)
    with pytest.raises(ConfigError, match=r"features'\]='augmented' but no augmented.*run_cell"):
        run_linear(inputs, {**HP, "features": "augmented"}, seed=0)
    with pytest.raises(ConfigError, match=r"hparams\['features'\]='raw'"):
        run_linear(inputs, {**HP, "features": "raw"}, seed=0)
    with pytest.raises(ConfigError, match=r"weight_decay=0.1"):
        run_linear(inputs, {**HP, "weight_decay": 0.1}, seed=0)
    shrinking = {"train": lambda e: {k: np.asarray(v)[: 60 - e] for k, v in inputs.features["train"].items()},
                 "val": Draws(inputs.features["val"])}
    inputs.augmented = shrinking
    with pytest.raises(ConfigError, match=r"epoch 1 gave features of shape"):
        run_linear(inputs, {**HP, "features": "augmented"}, seed=0)
