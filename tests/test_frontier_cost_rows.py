"""Beyond the study (issue 24): docs/performance.md has a CPU extraction-cost row for every new model,
and its GFLOP/image column is the count ``radbench plan --profile frontier`` charges (no drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from radbench_core.config.profiles import get_profile
from radbench_core.models.specs import FRONTIER, get_model
from radbench_core.plan.estimate import plan
from radbench_core.plan.flops import backbone_flops

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
SECTION = "## Beyond the study (issue 24): CPU extraction cost per image of the new models"


def _rows() -> dict[str, tuple[int, float, float, float]]:
    """label -> (px, GFLOP/image, s/image, GFLOP/s) from the section's table."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for match in re.finditer(r"^\| ([^|]+?) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", body, re.M):
        rows[match.group(1)] = (int(match.group(2)), *(float(match.group(i)) for i in (3, 4, 5)))
    return rows


def test_every_new_model_has_a_cpu_row_whose_arithmetic_holds() -> None:
    rows = _rows()
    assert {get_model(m).label for m in FRONTIER} <= set(rows)
    for model_id in FRONTIER:
        px, gflop, seconds, rate = rows[get_model(model_id).label]
        assert px == 224 and seconds > 0
        assert gflop == pytest.approx(round(backbone_flops(model_id, px) / 1e9, 1), abs=1e-9), model_id
        assert rate == pytest.approx(gflop / seconds, rel=0.03, abs=0.15), model_id


def test_plan_charges_each_new_models_documented_gflop() -> None:
    profile = get_profile("frontier")
    cells = [c for c in profile.cells() if c.protocol == "knn" and c.dataset == "nih"]
    by_model = {c.model: e for c, e in zip(cells, plan(profile, cells, gpu="H200").estimates)}
    rows = _rows()
    for model_id in FRONTIER:
        estimate = by_model[model_id]
        assert estimate.resolution == 224 and estimate.gpu_hours > 0
        assert estimate.forward_gflop == pytest.approx(rows[get_model(model_id).label][1], abs=0.05), model_id
