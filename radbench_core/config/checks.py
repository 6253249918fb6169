"""Start-up checks of a profile: every name it uses must exist, every key must be one that is read.

Why: a typo in a profile (``"lr": ...`` for ``"lrs"``, a dataset id off by a letter, a protocol with
no hyperparameters) must be a usage error naming the key and the valid ones before any cell runs,
not a silently ignored setting or a failure in every cell hours later. Dict lookups only: ``--co``
stays fast.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from radbench_core.core.errors import ConfigError

# keys the runner itself puts into (or reads from) a cell's hyperparameters
RUNNER_KEYS = frozenset({"demo", "shots", "mode", "decoder", "max_items", "resolution",
                         "features", "head_lr"})


def known_hparam_keys(protocol_id: str) -> frozenset[str]:
    """Keys a profile may set for a protocol: the built-in paper and demo keys of that protocol (or of
    the built-in protocols sharing its function), the keys it declares, and the runner's keys."""
    from radbench_core.protocols import PROTOCOLS, get_protocol
    from radbench_core.config import hparams as cls_h
    from radbench_core.config import seg_hparams as seg_h
    spec = get_protocol(protocol_id)
    same_function = [pid for pid in PROTOCOLS.builtin if get_protocol(pid).function == spec.function]
    keys: set[str] = set(RUNNER_KEYS) | set(spec.hparam_keys)
    for table in (cls_h.PAPER, cls_h.DEMO, seg_h.PAPER, seg_h.DEMO):
        for pid in (protocol_id, *same_function):
            keys |= set(table.get(pid, {}))
    return frozenset(keys)


def declares_its_keys(protocol_id: str) -> bool:
    """Built-in protocols (and those sharing a built-in's function) know their keys; a user protocol
    knows them only when its ProtocolSpec lists ``hparam_keys``."""
    from radbench_core.protocols import PROTOCOLS, get_protocol
    spec = get_protocol(protocol_id)
    return bool(spec.hparam_keys) or protocol_id in PROTOCOLS.builtin or any(
        get_protocol(pid).function == spec.function for pid in PROTOCOLS.builtin)


def _where(profile: Any) -> str:
    return f"profile {profile.name!r}"


def validate_profile(profile: Any) -> None:
    """Raise a ConfigError naming the first unknown id, missing entry, unknown key or bad load option."""
    from radbench_core.core.cells import parse_protocol
    from radbench_core.data.datasets import DATASETS, LoadOptions, get_dataset
    from radbench_core.models.specs import get_model
    from radbench_core.protocols import PROTOCOLS, get_protocol
    where = _where(profile)
    for grid in profile.grids:
        for model in grid.models:
            get_model(model)
        for dataset in grid.datasets:
            get_dataset(dataset)
        for entry in grid.protocols:
            get_protocol(parse_protocol(entry)[0])
    used = sorted({cell.protocol for cell in profile.cells()})
    for protocol in used:
        if protocol not in profile.hparams:
            raise ConfigError(where, f"cells use protocol {protocol!r} but hparams has no {protocol!r} entry "
                              f"(entries: {', '.join(profile.hparams) or 'none'})",
                              f"add hparams={{{protocol!r}: {{...}}}} (start from a built-in profile with "
                              "get_profile('demo').extend(...) to inherit its entries)")
    for protocol, values in profile.hparams.items():
        if protocol not in PROTOCOLS:
            raise ConfigError(f"{where} hparams[{protocol!r}]", f"unknown protocol; valid ids: {', '.join(PROTOCOLS)}",
                              "fix the protocol id or register the protocol")
        if not declares_its_keys(protocol):
            continue                       # a user protocol that declares no keys: nothing to check
        unknown = sorted(set(values) - known_hparam_keys(protocol))
        if unknown:
            raise ConfigError(f"{where} hparams[{protocol!r}]", f"unknown key(s) {unknown}; valid keys: "
                              f"{', '.join(sorted(known_hparam_keys(protocol)))}",
                              "fix the key, or declare it in the protocol's ProtocolSpec(hparam_keys=...)")
    fields = {f.name for f in dataclasses.fields(LoadOptions)} - {"splits_dir", "split_file", "max_items"}
    for kind, table in (("load_options", profile.load_options), ("split_files", profile.split_files)):
        for dataset in table:
            if dataset not in DATASETS:
                raise ConfigError(f"{where} {kind}[{dataset!r}]", f"unknown dataset; valid ids: {', '.join(DATASETS)}",
                                  "fix the dataset id or register the dataset")
    for dataset, values in profile.load_options.items():
        bad = sorted(set(values) - fields)
        if bad:
            raise ConfigError(f"{where} load_options[{dataset!r}]", f"unknown option(s) {bad}; valid: "
                              f"{', '.join(sorted(fields))}", "split files go in split_files={dataset: path}")
