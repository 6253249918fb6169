"""Switch ``finetune_head_lr_from_cached_probe``: the probe that gives a fine-tune cell its head rate.

Observed on the computation, in real demo fine-tune cells: the inputs and hyperparameters the linear
probe is called with inside the fine-tune cell (cached features only, or an augmented draw per epoch
that differs from the cached features), and that the rate it returns is the head rate the
fine-tune trains with; the record carries the switch, and the deviation only on our side.
"""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.config.profiles import Grid, Profile, _hparams, get_profile
from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.run import inputs as inputs_mod

HPARAMS = {**_hparams(paper=False)}
# the linear cell as the study runs it (augmented images every epoch), kept short for the test
HPARAMS["linear"] = {**HPARAMS["linear"], "features": "augmented", "epochs": 3, "lrs": (1.0, 1e-3)}


def _profile(value: str) -> Profile:
    return Profile(name="t", description="test", demo=True,
                   grids=(Grid(("dinov2_vits14",), ("nih",), ("finetune",)),), hparams=HPARAMS,
                   cls_resolution=42, phantom_size="tiny", batch_size=16, num_workers=0,
                   switches={"finetune_head_lr_from_cached_probe": value})


@pytest.fixture
def probes(monkeypatch) -> list[dict]:
    """Each linear-probe call inside a fine-tune cell: its features setting, whether augmented
    draws were given and how far epoch 0's train draw is from the cached train features, its rate."""
    seen: list[dict] = []
    real = inputs_mod.get_protocol

    def spying(pid):
        spec = real(pid)

        class Wrapped:
            def resolve(self):
                fn = spec.resolve()

                def call(frozen, hparams, seed):
                    out = fn(frozen, hparams, seed)
                    aug = frozen.augmented
                    gap = (None if aug is None else float(np.abs(aug["train"](0)["cls"]
                                                                 - frozen.features["train"]["cls"]).max()))
                    seen.append({"features": hparams["features"], "augmented": aug is not None,
                                 "gap": gap, "lr": out.chosen["lr"]})
                    return out
                return call
        return Wrapped()
    monkeypatch.setattr(inputs_mod, "get_protocol", spying)
    return seen


def test_a_demo_finetune_cell_takes_its_head_rate_from_the_probe_of_each_value(tmp_path, probes):
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    recs = {}
    for value in ("as_run", "cached"):
        ctx = RunContext(profile=_profile(value), cache_dir=tmp_path / "c", run_dir=tmp_path / value,
                         progress=False)
        recs[value] = run_cell(Cell("dinov2_vits14", "nih", "finetune"), ctx, BackbonePool(),
                               FeatureCache(tmp_path / "c" / "features"))
    study, ours = probes
    assert study["features"] == "augmented" and study["augmented"] and study["gap"] > 1e-3
    assert ours["features"] == "cached" and not ours["augmented"]
    for value, probe in (("as_run", study), ("cached", ours)):
        assert recs[value].hparams["head_lr"] == probe["lr"]          # the rate the fine-tune used
        assert recs[value].switches["finetune_head_lr_from_cached_probe"] == value
    assert "finetune_head_lr_from_cached_probe" in recs["cached"].deviations
    assert "finetune_head_lr_from_cached_probe" not in recs["as_run"].deviations


def test_profiles_and_bad_values():
    assert get_profile("paper").hparams_for("finetune")["head_lr_probe"] == "as_run"
    assert inputs_mod.head_lr_probe_rule(get_profile("sound").hparams_for("finetune")) == "cached"
    assert "head_lr_probe" not in get_profile("paper").hparams_for("lora")   # LoRA's head rate is stated
    with pytest.raises(ConfigError, match=r"hparams\['head_lr_probe'\]='augmented'.*Fix: use one of"):
        inputs_mod.head_lr_probe_rule({"head_lr_probe": "augmented"})
