"""How user code adds models, datasets and protocols, without editing radbench.

Two ways, both ending in :class:`Registries`:

* a pytest hook in the user's ``conftest.py`` (called once per process, xdist workers included)::

      def pytest_radbench_register(registry):
          registry.add_model(ModelSpec(...))

* a Python entry point of an installed package in the group ``radbench.models``,
  ``radbench.datasets`` or ``radbench.protocols``; its object is a spec, a list of specs, or a
  zero-argument function returning either.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from radbench_core.core.errors import ConfigError

ENTRY_POINT_GROUPS = {"models": "radbench.models", "datasets": "radbench.datasets",
                      "protocols": "radbench.protocols"}


class Registries:
    """What ``pytest_radbench_register(registry)`` receives: one ``add_*`` per kind."""

    def __init__(self) -> None:
        from radbench_core.data.datasets import DATASETS
        from radbench_core.models.specs import MODELS
        from radbench_core.protocols import PROTOCOLS
        self.models, self.datasets, self.protocols = MODELS, DATASETS, PROTOCOLS

    def add_model(self, spec: Any, *, replace: bool = False) -> Any:
        return self.models.register(spec, replace=replace)

    def add_dataset(self, spec: Any, *, replace: bool = False) -> Any:
        return self.datasets.register(spec, replace=replace)

    def add_protocol(self, spec: Any, *, replace: bool = False) -> Any:
        return self.protocols.register(spec, replace=replace)

    def add(self, kind: str, specs: Any, *, replace: bool = False) -> list[Any]:
        """Add a spec, an iterable of specs, or what a zero-argument function returns."""
        target = getattr(self, kind)
        if callable(specs) and not isinstance(specs, target.spec_type):
            specs = specs()
        items = [specs] if isinstance(specs, target.spec_type) else list(_iterable(specs, kind))
        return [target.register(s, replace=replace) for s in items]


def _iterable(specs: Any, kind: str) -> Iterable[Any]:
    if isinstance(specs, (list, tuple)):
        return specs
    raise ConfigError(f"radbench.{kind} entry point", f"resolved to {type(specs).__name__}",
                      "point it at a spec, a list of specs, or a function returning them")


def load_entry_points(registries: Registries,
                      entry_points: Callable[..., Iterable[Any]] | None = None) -> list[str]:
    """Register what installed packages declare in the ``radbench.*`` entry-point groups.

    Returns ``group:name`` of each entry point loaded. A failing entry point is a ConfigError naming it.
    """
    if entry_points is None:
        from importlib.metadata import entry_points as _eps
        entry_points = _eps
    loaded = []
    for kind, group in ENTRY_POINT_GROUPS.items():
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the package's, named here
                raise ConfigError(f"entry point {group}:{ep.name} ({ep.value})",
                                  f"failed to load ({type(exc).__name__}: {exc})",
                                  "fix or uninstall the package that declares it") from exc
            registries.add(kind, obj)
            loaded.append(f"{group}:{ep.name}")
    return loaded
