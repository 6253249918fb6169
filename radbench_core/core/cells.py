"""A cell = one model x one dataset x one protocol (+ variant), and its stable id.

``dinov2_vitl14-amos-seg_unet@448``: model, dataset, protocol, then ``@variant`` (resolution or
shot count). A few-shot cell may also name its input size: ``dinov2_vitl14-mc-seg_fewshot@4_448px``
is 4 shots at 448 px (Figure 5's MC bottom row); the ``px`` suffix keeps "4_448" from reading as
anything else. Ids are what users select with ``-k`` and what baselines are keyed by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from radbench_core.core.errors import ConfigError

_ID = re.compile(r"^(?P<model>[a-z0-9_]+)-(?P<dataset>[a-z0-9_]+)-(?P<protocol>[a-z0-9_]+)"
                 r"(?:@(?P<variant>[A-Za-z0-9_]+))?$")
_SHOTS_AT = re.compile(r"^(?P<shots>[a-z0-9]+)_(?P<size>[0-9]+)px$")


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


def shots_and_size(variant: str) -> tuple[str, Optional[int]]:
    """A few-shot variant -> (shots, input size or None): ``"4"`` -> ``("4", None)``, ``"4_448px"``
    -> ``("4", 448)``, ``"all"`` -> ``("all", None)``."""
    match = _SHOTS_AT.match(variant)
    return (match["shots"], int(match["size"])) if match else (variant, None)


def shots_variant(shots: int | str, size: int | None = None) -> str:
    """The inverse of :func:`shots_and_size`."""
    return f"{shots}_{size}px" if size else str(shots)
