"""Each cell of a run folder as one MLflow run, and never twice.

A cell's MLflow run is found by its tag ``radbench_key`` = ``<cell id>@<config hash>``: the record's
identity (cell, hyperparameters, resolution, load options, seed, data folder, weights file,
switches; ``radbench_core.run.identity``). Pushing a run folder again (a resumed session, a repeated
session, ``radbench mlflow`` on the same folder) therefore finds the run it made before:

- the same record (sha256 of its JSON unchanged): nothing is logged;
- another record of the same identity (a rerun after a code change, a repeated session): the run is
  updated in place: metrics logged again at the next step (MLflow keeps the history, the run shows
  the newest), tags and artifacts replaced, ``radbench_revision`` counts the updates;
- another identity (other hyperparameters, seed, weights...): a new run, as the gate would call the
  two records not comparable.

MLflow is imported only here and only when a push is asked for (``pip install 'radbench[mlflow]'``).
Every tracker failure becomes one :class:`TrackerError` line; the run folder is only read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from radbench_core.core.errors import RadbenchError
from radbench_core.core.results import CellResult, RunStore
from radbench_core.eval.predictions import find_predictions

KEY_TAG = "radbench_key"
SHA_TAG = "record_sha256"
REVISION_TAG = "radbench_revision"
EXPERIMENT_PREFIX = "radbench-"
INSTALL_FIX = "pip install 'radbench[mlflow]' (or mlflow-skinny sqlalchemy alembic)"
URI_FIX = ("pass a reachable tracking URI, e.g. sqlite:////abs/path/mlflow.db or http://host:5000, "
           "then push the run folder with `radbench mlflow RUN_DIR --uri URI`")
# a tracker that does not answer is given up on after seconds, not MLflow's default minutes
_QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]+")
_RESERVED_PARAMS = ("seed", "config_hash", "weights", "deterministic", "device")


class TrackerError(RadbenchError):
    """The experiment tracker could not take the records (not installed, unreachable, refused)."""


@dataclass
class PushSummary:
    uri: str
    experiments: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"mlflow: {len(self.created)} cell run(s) created, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged in experiment {', '.join(self.experiments)} at {self.uri}")


def tracking_uri(raw: str) -> str:
    """A bare ``path/to/store.db`` means a local sqlite store; every other URI is MLflow's."""
    if "://" not in raw and not raw.startswith("file:") and raw.endswith(".db"):
        return "sqlite:///" + str(Path(raw).resolve())
    return raw


def run_key(record: CellResult) -> str:
    return f"{record.cell_id}@{record.config_hash}"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:6000]


def cell_params(record: CellResult) -> dict[str, str]:
    """Hyperparameters by their own names, switches as ``switch.<id>``, and the identity's run parts."""
    params = {"seed": str(record.seed), "config_hash": record.config_hash, "weights": _text(record.weights),
              "deterministic": str(record.deterministic), "device": record.device}
    for key, value in record.hparams.items():
        name = _BAD_KEY.sub("_", str(key))
        params["hp." + name if name in _RESERVED_PARAMS else name] = _text(value)
    for key, value in record.switches.items():
        params["switch." + _BAD_KEY.sub("_", str(key))] = _text(value)
    return params


def cell_metrics(record: CellResult) -> dict[str, float]:
    """Every metric with its CI as ``<metric>_ci_low`` / ``_ci_high``, plus cost; None (non-finite) is left out."""
    out: dict[str, float] = {}
    for name, metric in record.metrics.items():
        key = _BAD_KEY.sub("_", name)
        for suffix, value in (("", metric.value), ("_ci_low", metric.ci_low), ("_ci_high", metric.ci_high)):
            if value is not None:
                out[key + suffix] = float(value)
    for name in ("wall_time_s", "peak_memory_mb", "params_trainable", "params_total"):
        if getattr(record, name) is not None:
            out[name] = float(getattr(record, name))
    return out


def cell_tags(record: CellResult, run_dir: Path, manifest: dict[str, Any], sha: str) -> dict[str, str]:
    tags = {"model": record.model, "dataset": record.dataset, "protocol": record.protocol,
            "variant": record.variant or "", "task": record.task, "modality": record.modality,
            "profile": record.profile, "demo": str(record.is_demo).lower(), "cell_id": record.cell_id,
            "config_hash": record.config_hash, "radbench_version": record.radbench_version,
            "weights": _text(record.weights), "status": record.status,
            "deviations": ",".join(record.deviations), KEY_TAG: run_key(record), SHA_TAG: sha,
            "radbench_run": run_dir.name, "radbench_run_dir": str(run_dir.resolve()),
            "mlflow.runName": record.cell_id}
    if manifest.get("git_sha"):
        tags["git_sha"] = str(manifest["git_sha"])
    return tags


@contextlib.contextmanager
def _quiet_and_quick() -> Iterator[None]:
    """MLflow's HTTP retries capped for this push unless the user set them; MLflow's and alembic's
    INFO lines (creating a new sqlite store) kept out of the session's output."""
    added = {k: v for k, v in _QUICK_HTTP.items() if k not in os.environ}
    os.environ.update(added)
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def push_run(run_dir: str | Path, uri: str, *, experiment: str | None = None) -> PushSummary:
    """Log every record of ``run_dir`` into the tracker at ``uri`` (experiment ``radbench-<profile>``
    unless ``experiment`` is given). Raises :class:`TrackerError` (one line) on any tracker failure."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    records = store.load_cells()
    if not records:
        raise TrackerError(store.cells_dir, "no cell records to log",
                           "pass a run folder whose cells/ holds records (reports/runs/<run id>)")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise TrackerError("--radbench-mlflow", f"MLflow is not installed ({exc})", INSTALL_FIX) from exc
    uri = tracking_uri(uri)
    summary = PushSummary(uri)
    done = 0
    try:
        with _quiet_and_quick():
            client = MlflowClient(tracking_uri=uri)
            manifest = store.read_manifest()
            experiment_ids: dict[str, str] = {}
            for record in records:
                name = experiment or EXPERIMENT_PREFIX + record.profile
                if name not in experiment_ids:
                    experiment_ids[name] = _experiment_id(client, name, uri)
                    summary.experiments.append(name)
                experiment_id = experiment_ids[name]
                outcome = _push_cell(client, experiment_id, record, store, manifest)
                getattr(summary, outcome).append(record.cell_id)
                done += 1
    except RadbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - any tracker failure (MlflowException, HTTP, SQL) is one line
        pushed = f"{done} of {len(records)} cells were logged before it; " if done else ""
        raise TrackerError(uri, f"the MLflow tracker failed ({_first_line(exc)}); {pushed}the run folder "
                           f"{run_dir} is intact", URI_FIX) from exc
    return summary


def _experiment_id(client: Any, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_local_artifacts(uri, name))


def _local_artifacts(uri: str, name: str) -> str | None:
    """A local sqlite store keeps artifacts beside its database (MLflow's default is ./mlruns of
    whatever folder the push runs in); servers choose their own."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):])
    return (database.parent / "mlartifacts" / _BAD_KEY.sub("_", name)).resolve().as_uri()


def _existing_run(client: Any, experiment_id: str, key: str) -> Any:
    runs = client.search_runs([experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}'",
                              order_by=["attributes.start_time ASC"], max_results=10)
    return runs[0] if runs else None         # the oldest, should a concurrent push have made two


def _push_cell(client: Any, experiment_id: str, record: CellResult, store: RunStore,
               manifest: dict[str, Any]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    record_path = store.cell_path(record.cell_id)
    sha = hashlib.sha256(record_path.read_bytes()).hexdigest()
    previous = _existing_run(client, experiment_id, run_key(record))
    if previous is not None and previous.data.tags.get(SHA_TAG) == sha:
        return "unchanged"
    if previous is None:
        run_id, revision, known = client.create_run(experiment_id, run_name=record.cell_id).info.run_id, 0, {}
    else:
        run_id, known = previous.info.run_id, previous.data.params
        revision = int(previous.data.tags.get(REVISION_TAG, "0")) + 1
    tags = {**cell_tags(record, store.run_dir, manifest, sha), REVISION_TAG: str(revision)}
    now = int(time.time() * 1000)
    # params are immutable in MLflow: only new names are logged (same identity, same values)
    params = [Param(k, v) for k, v in cell_params(record).items() if k not in known]
    metrics = [Metric(k, v, now, revision) for k, v in cell_metrics(record).items()]
    tag_list = [RunTag(k, v) for k, v in tags.items()]
    for start in range(0, max(len(params), len(tag_list), 1), 100):
        client.log_batch(run_id, metrics=metrics if start == 0 else (), params=params[start:start + 100],
                         tags=tag_list[start:start + 100])
    client.log_artifact(run_id, str(record_path), "record")
    predictions = find_predictions(record.extra, [store.run_dir])
    if predictions is not None:
        client.log_artifact(run_id, str(predictions), "predictions")
    client.set_terminated(run_id, "FINISHED")
    return "created" if previous is None else "updated"


__all__ = ["PushSummary", "TrackerError", "cell_metrics", "cell_params", "cell_tags",
           "push_run", "run_key", "tracking_uri"]
