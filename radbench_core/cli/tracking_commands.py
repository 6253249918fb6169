"""``radbench mlflow RUN_DIR --uri URI``: push a finished run folder into an MLflow tracker.

The same push as ``pytest --radbench-mlflow URI`` at session end (docs/tracking.md); pushing a folder
again logs nothing new for unchanged records, so it is safe to repeat after a tracker outage.
"""

from __future__ import annotations

import argparse
import os


def add_commands(sub) -> None:
    """Register the subcommand on radbench's subparsers."""
    p = sub.add_parser("mlflow", help="log each cell of a run folder as one MLflow run (no duplicates "
                       "on repeat); needs radbench[mlflow]")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--uri", default=os.environ.get("RADBENCH_MLFLOW"), required="RADBENCH_MLFLOW" not in os.environ,
                   help="tracking URI, e.g. sqlite:////abs/path/mlflow.db or http://host:5000 "
                   "[env RADBENCH_MLFLOW]")
    p.add_argument("--experiment", default=os.environ.get("RADBENCH_MLFLOW_EXPERIMENT"),
                   help="experiment name (default: radbench-<profile>) [env RADBENCH_MLFLOW_EXPERIMENT]")
    p.set_defaults(func=cmd_mlflow)


def cmd_mlflow(args: argparse.Namespace) -> int:
    from radbench_core.sinks.mlflow_sink import push_run
    print(push_run(args.run_dir, args.uri, experiment=args.experiment).line())
    return 0
