"""The switch-effects report: two synthetic run folders with known differences.

Four kNN cells differ in the selection switch (k on test vs val), two linear cells in the loss
switch, one cell in both; one cell has the same switches in both runs (not counted). Means and
counts are hand-computed; the paired p of a cell is recomputed with eval/paired.py directly and
the "sound far better" cell must come out significant, the "equal scores" cell must not.
"""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.cli.app import main
from radbench_core.core.errors import ConfigError
from radbench_core.core.results import CellResult, Metric, RunStore
from radbench_core.eval.paired import paired_bootstrap
from radbench_core.eval.predictions import classification_predictions, load_predictions, save_predictions
from radbench_core.report.switch_effects import cell_effects, family_effects, switch_effects_markdown

N = 120
LABELS = np.random.default_rng(0).integers(0, 2, N)


def _scores(quality: float, seed: int) -> np.ndarray:
    """Scores whose AUROC grows with ``quality`` (0: noise)."""
    rng = np.random.default_rng(seed)
    return LABELS * quality + rng.normal(size=N)


def _write(run, cell: str, auroc: float, switches: dict, scores: np.ndarray | None) -> None:
    model, dataset, protocol = cell.split("-")
    extra = {}
    if scores is not None:
        pred = classification_predictions([f"i{j}" for j in range(N)], [f"p{j // 2}" for j in range(N)],
                                          LABELS, scores, "binary")
        extra["predictions"] = save_predictions(run.run_dir, cell, pred)
    run.write_cell(CellResult(cell, model, dataset, protocol, "", "classification", "xray", "demo",
                              {"auroc": Metric(auroc)}, extra=extra, switches=switches))


# cell -> (study auroc, sound auroc, study switches, sound switches, study quality, sound quality)
K = {"knn_k_on_val": "test"}, {"knn_k_on_val": "val"}
LOSS = {"multilabel_loss_mean": "batch_sum"}, {"multilabel_loss_mean": "mean"}
BOTH = ({**K[0], **LOSS[0]}, {**K[1], **LOSS[1]})
CELLS = {
    "m1-nih-knn": (0.70, 0.72, *K, 1.0, 1.0),
    "m2-nih-knn": (0.80, 0.78, *K, 1.0, 1.0),
    "m3-nih-knn": (0.60, 0.65, *K, 1.0, 1.0),
    "m4-nih-knn": (0.90, 0.91, *K, 0.0, 3.0),          # sound's scores far better: significant
    "m1-nih-linear": (0.75, 0.70, *LOSS, 1.0, 1.0),
    "m2-nih-linear": (0.66, 0.66, *LOSS, 1.0, 1.0),    # unchanged
    "m5-nih-both": (0.50, 0.60, *BOTH, 1.0, 1.0),
    "m6-nih-same": (0.50, 0.90, *K[:1], *K[:1], 1.0, 1.0),   # same switches: no effect counted
}


@pytest.fixture
def runs(tmp_path):
    study, sound = RunStore(tmp_path / "study"), RunStore(tmp_path / "sound")
    for i, (cell, (a, b, sa, sb, qa, qb)) in enumerate(CELLS.items()):
        _write(study, cell, a, sa, _scores(qa, 2 * i))
        _write(sound, cell, b, sb, _scores(qb, 2 * i + 1) if cell != "m1-nih-linear" else None)
    return study.run_dir, sound.run_dir


def test_families_hand_computed(runs):
    cells = cell_effects(*runs, resamples=300)
    assert sorted(c.cell_id for c in cells) == sorted(set(CELLS) - {"m6-nih-same"})
    fams = {f.family: f for f in family_effects(cells)}
    assert set(fams) == {"selection", "loss"}
    sel, loss = fams["selection"], fams["loss"]
    # selection: knn m1..m4 (+0.02, -0.02, +0.05, +0.01) and both (+0.10)
    assert sel.cells == 5 and sel.mean_diff == pytest.approx((0.02 - 0.02 + 0.05 + 0.01 + 0.10) / 5)
    assert (sel.up, sel.down, sel.alone) == (4, 1, 4)
    assert sel.switches == ("knn_k_on_val",)
    # loss: linear m1 (-0.05), m2 (0), both (+0.10)
    assert loss.cells == 3 and loss.mean_diff == pytest.approx((-0.05 + 0.0 + 0.10) / 3)
    assert (loss.up, loss.down, loss.alone) == (1, 1, 2)
    assert loss.tested == 2                        # m1-nih-linear has no sound predictions
    assert sel.tested == 5 and sel.significant >= 1 and sel.significant_holm <= sel.significant


def test_cell_p_is_the_paired_bootstrap_of_the_saved_predictions(runs):
    cells = {c.cell_id: c for c in cell_effects(*runs, resamples=300)}
    study, sound = (RunStore(r) for r in runs)
    for cell in ("m4-nih-knn", "m1-nih-knn"):
        a = load_predictions(study.run_dir / study.read_cell(cell).extra["predictions"])
        b = load_predictions(sound.run_dir / sound.read_cell(cell).extra["predictions"])
        assert cells[cell].p_value == paired_bootstrap(b, a, "auroc", resamples=300).p_value
    assert cells["m4-nih-knn"].p_value < 0.05
    assert cells["m1-nih-linear"].note == "no saved predictions"


def test_markdown_and_cli(runs, tmp_path, capsys):
    text = switch_effects_markdown(*runs, resamples=200)
    assert "| selection | `knn_k_on_val` | 5 | +0.0320 auroc | 4 / 1 | 4 |" in text
    assert "| loss | `multilabel_loss_mean` | 3 | +0.0167 auroc | 1 / 1 | 2 |" in text
    assert "m6-nih-same" not in text
    out = tmp_path / "effects.md"
    assert main(["switch-effects", str(runs[0]), str(runs[1]), "--resamples", "200", "--out", str(out)]) == 0
    assert out.read_text() == text == capsys.readouterr().out


def test_runs_without_differing_switches_are_a_config_error(runs, tmp_path):
    with pytest.raises(ConfigError, match="no cell of both runs"):
        switch_effects_markdown(runs[0], runs[0], resamples=10)
    with pytest.raises(ConfigError, match="holds no cell records"):
        cell_effects(runs[0], tmp_path / "empty")


def test_two_plugin_runs_with_each_side_feed_the_table(project):
    """End to end: a tiny profile's kNN cell run with --radbench-switches study, then sound; the
    records carry each side's values and the table has the families kNN's switches belong to."""
    from conftest import records, run
    profile = project.write_profile()
    dirs = {}
    for side in ("study", "sound"):
        result = run(project, f"--radbench-profile={profile}", "-k", "dinov2_vits14 and knn",
                     f"--radbench-run-dir=runs/{side}", f"--radbench-switches={side}", "--radbench-no-report")
        result.assert_outcomes(passed=1)
        dirs[side] = project.path / "runs" / side
        recs = records(dirs[side])
        assert {r["profile"] for r in recs.values()} == {f"tiny+{side}"}
        knn = recs["dinov2_vits14-nih-knn"]["switches"]
        assert knn["knn_k_on_val"] == ("test" if side == "study" else "val")
        assert knn["knn_plain_resize"] == ("resize256_crop224" if side == "study" else "resize")
    fams = {f.family: f for f in family_effects(cell_effects(dirs["study"], dirs["sound"], resamples=100))}
    # NIH's validation split follows the study's rule on the study side (make_val_set), a data switch
    assert set(fams) == {"selection", "input", "data"} and fams["selection"].cells == 1
    assert fams["data"].switches == ("patient_split_70_10_20",)
    assert fams["selection"].switches == ("knn_k_on_val", "knn_no_self_neighbour")
    bad = run(project, f"--radbench-profile={profile}", "--co", "--radbench-switches=paper")
    assert "--radbench-switches: expected study or sound" in bad.stderr.str()
