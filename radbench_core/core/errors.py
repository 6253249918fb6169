"""Exceptions that carry an actionable message: the file (or option), what was expected, the fix.

Every error a user can trigger derives from :class:`RadbenchError`, so the plugin can turn it into a
failed (or skipped) cell with a readable reason instead of a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path


def explain(where: str | Path, problem: str, fix: str) -> str:
    """The one message format: ``<where>: <problem>. Fix: <fix>``."""
    return f"{where}: {problem.rstrip('.')}. Fix: {fix.rstrip('.')}."


_EXPLAINED = re.compile(r"^(?P<where>.+?): (?P<problem>.+)\. Fix: (?P<fix>.+)\.$", re.S)


def _last_error_line(text: str) -> str:
    """The ``Kind: message`` line at the end of a formatted traceback (or the text itself)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        head, sep, rest = line.partition(": ")
        if sep and head.strip().split(".")[-1].endswith(("Error", "Missing")):
            return rest.strip()
    return lines[-1].strip() if lines else text


class RadbenchError(Exception):
    """Base class: bad input or configuration, never a bug in radbench.

    Built from ``(where, problem, fix)``. A single string is also accepted and parsed back into the
    three parts: torch's DataLoader re-raises a worker's exception as ``Kind(formatted traceback)``,
    and this keeps the kind and the one-line message instead of a long traceback.
    """

    def __init__(self, where: str | Path, problem: str | None = None, fix: str | None = None):
        if problem is None:
            text = _last_error_line(str(where))
            match = _EXPLAINED.match(text)
            where, problem, fix = (match["where"], match["problem"], match["fix"]) if match \
                else ("radbench", text, "see the message above")
        self.where = str(where)
        self.problem = problem
        self.fix = fix or ""
        super().__init__(explain(where, problem, self.fix))

    def __reduce__(self):
        return (type(self), (self.where, self.problem, self.fix))


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


class NumericalError(RadbenchError):
    """A non-finite tensor (weights, features, loss) or an undefined headline metric."""
