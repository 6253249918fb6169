"""The layering contract is real: lint-imports passes on the tree and fails on a planted upward import.

The planted imports sit inside functions (the kind that hid two cycles before the re-layout), and
they are planted in a copy of the package, never in the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(REPO / "radbench_core", root / "radbench_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _plant(root: Path, module: str, line: str) -> tuple[Path, str]:
    """Append a function holding ``line`` to ``module``; returns the file and its original text."""
    path = root / (module.replace(".", "/") + ".py")
    original = path.read_text()
    path.write_text(original + f"\n\ndef _planted():\n    {line}\n")
    return path, original


def test_the_tree_keeps_its_contracts(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("radbench_core.core.results", "from radbench_core.run import runner", "layers below them"),
    ("radbench_core.eval.metrics", "import radbench_core.report.tables", "layers below them"),
    ("radbench_core.models.features", "from radbench_core.data.datasets import splits", "layers below them"),
    ("radbench_core.run.sharding", "import pytest", "never imports pytest"),
    ("radbench_core.report.frame", "from radbench_core.report import html", "no cycle"),
])
def test_a_planted_upward_import_breaks_the_contract(tree, module, line, contract):
    path, original = _plant(tree, module, line)
    try:
        result = _lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken) or contract in result.stdout, result.stdout
    assert module in result.stdout
