"""The three registries (models, datasets, protocols) and how user code adds to them.

Why a module of its own: registries are plain data on the bottom floor of the package. They import
nothing from radbench but ``errors``, so the spec modules (``models``, ``datasets``, ``protocols``)
can define their built-in entries here and anything above them (builders, loaders, the runner, the
pytest plugin) can read them without an import cycle.

User code adds entries through ``radbench_core.config.extensions`` (a pytest hook or an entry point).
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

from radbench_core.core.errors import ConfigError

T = TypeVar("T")
ID_PATTERN = re.compile(r"^[a-z0-9_]+$")          # the cell-id grammar of radbench_core.core.cells


class Registry(dict, Generic[T]):
    """id -> spec; a dict (so ``MODELS[id]`` and ``dict(MODELS)`` work) that checks what is added.

    ``get`` fails with the valid ids (a typo must never pass silently). A value may be a zero-argument
    ``resolve`` callable wrapped by :func:`lazy` so built-ins import their modules only when used.
    """

    def __init__(self, kind: str, spec_type: type, hint: str) -> None:
        super().__init__()
        self.kind, self.spec_type, self.hint = kind, spec_type, hint
        self.builtin: tuple[str, ...] = ()
        # a second registration of a user id replaces the first (pytester runs several sessions per process)
        self.allow_user_replace = True

    def register(self, spec: Any, *, replace: bool = False) -> Any:
        """Add one spec; a bad id, a wrong type or a clash with an existing id is a ConfigError."""
        if isinstance(spec, _Lazy):
            spec_id = spec.id
        elif isinstance(spec, self.spec_type):
            spec_id = getattr(spec, "id")
        else:
            raise ConfigError(f"{self.kind} registry", f"expected a {self.spec_type.__name__}, got "
                              f"{type(spec).__name__}", f"register {self.spec_type.__name__}(...) objects")
        if not isinstance(spec_id, str) or not ID_PATTERN.match(spec_id):
            raise ConfigError(f"{self.kind} {spec_id!r}", "ids are lower-case letters, digits and _ only "
                              "(they are parts of cell ids such as model-dataset-protocol@variant)",
                              "rename it, e.g. 'my_vit_b16'")
        if spec_id in self and not (replace or (self.allow_user_replace and spec_id not in self.builtin)):
            raise ConfigError(f"{self.kind} {spec_id!r}", "is already registered"
                              + (" (a built-in)" if spec_id in self.builtin else ""),
                              "choose another id, or pass replace=True to override it on purpose")
        dict.__setitem__(self, spec_id, spec)
        return spec

    def get_spec(self, spec_id: Any) -> T:
        """The spec of ``spec_id`` (a spec passes through), or a ConfigError listing the valid ids."""
        if isinstance(spec_id, self.spec_type):
            return spec_id  # type: ignore[return-value]
        if spec_id not in self:
            raise ConfigError(f"{self.kind} {spec_id!r}", f"unknown {self.kind} id; valid ids: "
                              f"{', '.join(self)}", self.hint)
        value = dict.__getitem__(self, spec_id)
        if isinstance(value, _Lazy):
            value = value.resolve()
            dict.__setitem__(self, spec_id, value)
        return value

    def __getitem__(self, spec_id: str) -> T:
        return self.get_spec(spec_id)

    def values(self):  # type: ignore[override]
        return [self.get_spec(k) for k in self]

    def items(self):  # type: ignore[override]
        return [(k, self.get_spec(k)) for k in self]

    @classmethod
    def of_builtins(cls, kind: str, spec_type: type, listing: str, specs) -> "Registry":
        """A registry holding radbench's own ``specs`` (frozen as built-ins); ``listing`` is the
        ``radbench list`` command that shows them, named in the fix of an unknown-id error."""
        registry = cls(kind, spec_type, f"use one of the listed ids (see `{listing}`), or register "
                       "yours with pytest_radbench_register(registry) in conftest.py (docs/extending.md)")
        for spec in specs:
            registry.register(spec)
        registry.freeze_builtins()
        return registry

    def freeze_builtins(self) -> None:
        """Remember which ids ship with radbench (user entries are the others)."""
        self.builtin = tuple(self)

    def user_ids(self) -> tuple[str, ...]:
        return tuple(k for k in self if k not in self.builtin)


class _Lazy:
    """A built-in spec held as ``module:attribute`` until first use (keeps ``--co`` light)."""

    def __init__(self, spec_id: str, target: str) -> None:
        self.id, self.target = spec_id, target

    def resolve(self) -> Any:
        import importlib
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)


def lazy(spec_id: str, target: str) -> _Lazy:
    """A registry value that imports ``module:attribute`` on first lookup."""
    return _Lazy(spec_id, target)
