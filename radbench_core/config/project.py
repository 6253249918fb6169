"""A user's project folder (conftest.py + profile + data description) seen the same way everywhere.

Why: pytest loads a project's ``conftest.py`` only when the folder is on its command line, so a
profile named ``--radbench-profile=proj/my_profile.py`` or ``RADBENCH_PROFILE=...`` used to lose the
project's registrations, and the ``radbench`` command (list, prepare, plan, report) saw none at all.
Here the project is: the folder of the profile file, and the current folder; each one's
``conftest.py`` is imported (its folder put on ``sys.path`` so it can import its own modules) and its
``pytest_radbench_register(registry)`` hook called, with no pytest involved.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

from radbench_core.config.extensions import Registries, load_entry_points
from radbench_core.core.errors import ConfigError

HOOK = "pytest_radbench_register"


def project_folders(profile: str | None, cwd: Path | None = None) -> list[Path]:
    """The profile file's folder (when the profile is a ``.py`` path) and the current folder."""
    folders = []
    if profile and str(profile).endswith(".py"):
        folders.append(Path(profile).expanduser().resolve().parent)
    folders.append((cwd or Path.cwd()).resolve())
    return list(dict.fromkeys(folders))


def project_conftests(profile: str | None, cwd: Path | None = None) -> list[Path]:
    """The ``conftest.py`` files of :func:`project_folders` that exist."""
    return [f / "conftest.py" for f in project_folders(profile, cwd) if (f / "conftest.py").is_file()]


def import_conftest(path: Path) -> ModuleType:
    """Import one conftest.py under a name unique to its path; a failure is a ConfigError naming it."""
    path = path.resolve()
    name = "radbench_project_conftest_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))             # so it imports its own modules, as pytest allows
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure in user code is reported naming the file
        raise ConfigError(path, f"failed to import ({type(exc).__name__}: {exc})",
                          "fix the file (it is your project's conftest.py)") from exc
    sys.modules[name] = module
    return module


def call_register_hooks(registries: Registries, conftests: Iterable[Path]) -> list[str]:
    """Call each conftest's ``pytest_radbench_register``; returns the files whose hook ran."""
    called = []
    for path in conftests:
        hook = getattr(import_conftest(path), HOOK, None)
        if hook is None:
            continue
        try:
            hook(registry=registries)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in the user's hook, named by file
            raise ConfigError(f"{path}: {HOOK}", f"raised {type(exc).__name__}: {exc}",
                              "fix the hook in your conftest.py") from exc
        called.append(str(path))
    return called


def load_project(profile: str | None = None, cwd: Path | None = None) -> list[str]:
    """What the ``radbench`` command does before any subcommand: entry points, then project conftests."""
    registries = Registries()
    loaded = load_entry_points(registries)
    return loaded + call_register_hooks(registries, project_conftests(profile, cwd))
