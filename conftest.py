"""Thin: load radbench's pytest plugins. Everything of substance lives in fixtures/."""

from fixtures import PLUGINS as pytest_plugins  # noqa: F401
