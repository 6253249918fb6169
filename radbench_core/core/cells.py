"""A cell = one model x one dataset x one protocol (+ variant), and its stable id.

``dinov2_vitl14-amos-seg_unet@448``: model, dataset, protocol, then ``@variant`` (resolution or
shot count). Ids are what users select with ``-k`` and what baselines are keyed by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radbench_core.core.errors import ConfigError

_ID = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<dataset>[a-z0-9_]+)-(?P<protocol>[a-z0-9_]+)"
                 r"(?:@(?P<variant>[A-Za-z0-9_]+))?$")


@dataclass(frozen=True, order=True)
class Cell:
    model: str
    dataset: str
    protocol: str
    variant: str = ""

    @property
    def id(self) -> str:
        base = f"{self.model}-{self.dataset}-{self.protocol}"
        return f"{base}@{self.variant}" if self.variant else base

    def __str__(self) -> str:
        return self.id


def parse_cell_id(cell_id: str) -> Cell:
    match = _ID.match(cell_id)
    if not match:
        raise ConfigError(f"cell {cell_id!r}", "not a cell id",
                          "write cells as <model>-<dataset>-<protocol>[@<variant>], "
                          "e.g. dinov2_vitl14-amos-seg_unet@448")
    return Cell(match["model"], match["dataset"], match["protocol"], match["variant"] or "")


def parse_protocol(entry: str) -> tuple[str, str]:
    """``"fewshot@8"`` -> ``("fewshot", "8")``."""
    protocol, _, variant = entry.partition("@")
    return protocol, variant
