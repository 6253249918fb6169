"""Registries: bottom floor (no import cycle), checked registration, hook and entry points."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from radbench_core.core.errors import ConfigError
from radbench_core.config.extensions import Registries, load_entry_points
from radbench_core.models.specs import MODELS, ModelSpec, get_model
from radbench_core.protocols import PROTOCOLS, ProtocolSpec

ROOT = Path(__file__).resolve().parent.parent


def imports_of(module: Path) -> set[str]:
    """Every radbench module a file imports, at the top or inside functions."""
    return {node.module for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("radbench_core")}


def test_the_registries_sit_on_the_bottom_floor() -> None:
    """The model registry is plain data: it imports the core's errors and registry, no builder.

    Cycles and upward imports in general are the import-linter contracts' job (tests/test_layers.py).
    """
    assert imports_of(ROOT / "radbench_core/core/registry.py") == {"radbench_core.core.errors"}
    assert imports_of(ROOT / "radbench_core/models/specs.py") == {"radbench_core.core.errors",
                                                                  "radbench_core.core.registry"}


def test_importing_the_registries_imports_no_builder() -> None:
    code = ("import sys, radbench_core.models.specs, radbench_core.data.datasets, radbench_core.protocols;"
            "print(sorted(m for m in sys.modules if m.startswith(('timm', 'radbench_core.models.features', "
            "'radbench_core.models.architectures', 'radbench_core.data.datasets.nih'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def spec(id: str = "my_vit", **kw) -> ModelSpec:
    fields = dict(id=id, label="Mine", paradigm="self-supervised", family="mine", arch="vit",
                  timm_name="vit_small_patch16_224", patch_size=16, native_resolution=224,
                  tasks=("classification",))
    return ModelSpec(**{**fields, **kw})


def test_register_checks_type_id_and_clashes() -> None:
    reg = Registries()
    try:
        reg.add_model(spec())
        assert get_model("my_vit").label == "Mine" and "my_vit" in MODELS.user_ids()
        reg.add_model(spec(label="Again"))                     # a user id may be registered again
        assert get_model("my_vit").label == "Again"
        with pytest.raises(ConfigError, match="'dinov2_vitl14': is already registered \\(a built-in\\)"):
            reg.add_model(spec("dinov2_vitl14"))
        with pytest.raises(ConfigError, match="lower-case letters"):
            reg.add_model(spec("My-ViT"))
        with pytest.raises(ConfigError, match="expected a ModelSpec, got dict"):
            reg.add_model({"id": "x"})
        with pytest.raises(ConfigError, match="arch 'transformer' is not one of"):
            spec(arch="transformer")
        with pytest.raises(ConfigError, match="needs a builder"):
            spec(arch="module")
    finally:
        dict.pop(MODELS, "my_vit", None)
    with pytest.raises(ConfigError, match="unknown model id; valid ids: dinov2_vits14, .*register yours"):
        get_model("my_vit")


def test_entry_points_register_specs_lists_and_factories() -> None:
    proto = ProtocolSpec("ep_proto", "classification", "frozen", "x:y")
    eps = {"radbench.models": [SimpleNamespace(name="one", value="pkg:SPEC", load=lambda: spec("ep_a")),
                               SimpleNamespace(name="many", value="pkg:make", load=lambda: lambda: [spec("ep_b")])],
           "radbench.protocols": [SimpleNamespace(name="p", value="pkg:P", load=lambda: proto)]}
    try:
        loaded = load_entry_points(Registries(), lambda group: eps.get(group, []))
        assert loaded == ["radbench.models:one", "radbench.models:many", "radbench.protocols:p"]
        assert get_model("ep_b").id == "ep_b" and PROTOCOLS["ep_proto"] is proto
    finally:
        for key in ("ep_a", "ep_b"):
            dict.pop(MODELS, key, None)
        dict.pop(PROTOCOLS, "ep_proto", None)

    def broken():
        raise ImportError("no module named pkg")
    bad = {"radbench.datasets": [SimpleNamespace(name="d", value="pkg:D", load=broken)]}
    with pytest.raises(ConfigError, match="entry point radbench.datasets:d .*ImportError: no module named pkg"):
        load_entry_points(Registries(), lambda group: bad.get(group, []))


def test_hook_registration_error_is_one_usage_line(pytester) -> None:
    pytester.makeconftest('''
from fixtures import PLUGINS as pytest_plugins

def pytest_radbench_register(registry):
    from radbench_core.models.specs import ModelSpec
    registry.add_model(ModelSpec(id="Bad-Id", label="x", paradigm="supervised", family="x", arch="vit",
                                 timm_name="vit_small_patch16_224", patch_size=16, native_resolution=224,
                                 tasks=("classification",)))
''')
    import os
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{pytester.path}"
    result = pytester.runpytest_subprocess("--co", "-p", "no:cacheprovider", f"--radbench-cache-dir={pytester.path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest_radbench_register: model 'Bad-Id': ids are lower-case letters*Fix:*"])
