"""Exceptions that carry an actionable message: the file (or option), what was expected, the fix.

Every error a user can trigger derives from :class:`RadbenchError`, so the plugin can turn it into a
failed (or skipped) cell with a readable reason instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


def explain(where: str | Path, problem: str, fix: str) -> str:
    """The one message format: ``<where>: <problem>. Fix: <fix>``."""
    return f"{where}: {problem.rstrip('.')}. Fix: {fix.rstrip('.')}."


class RadbenchError(Exception):
    """Base class: bad input or configuration, never a bug in radbench."""

    def __init__(self, where: str | Path, problem: str, fix: str):
        self.where = str(where)
        self.problem = problem
        self.fix = fix
        super().__init__(explain(where, problem, fix))


class ConfigError(RadbenchError):
    """A bad option value, an unknown model/dataset/protocol/profile name."""


class DatasetError(RadbenchError):
    """A dataset on disk does not look like its documented native layout."""


class DatasetMissing(RadbenchError):
    """The dataset is not there at all: the cell is skipped with this reason."""


class WeightsError(RadbenchError):
    """A weights file exists but is corrupt or of the wrong architecture."""


class WeightsMissing(RadbenchError):
    """No weights were found: the cell is skipped with this reason."""


class BaselineError(RadbenchError):
    """A malformed baseline file or tolerance expression."""


class StorageError(RadbenchError):
    """Results could not be written (unwritable directory, full disk)."""
