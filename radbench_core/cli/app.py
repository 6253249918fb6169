"""The ``radbench`` command: list registries, build reports, gate runs, prepare data, submit shards.

Bad input (any :class:`~radbench_core.core.errors.RadbenchError`) prints one line to stderr and exits 2,
never a traceback. Heavy modules are imported inside each command so ``radbench list`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from radbench_core.core.errors import ConfigError, RadbenchError

REGISTRIES = {  # kind -> (module, attribute, the columns worth a line)
    "models": ("radbench_core.models.specs", "MODELS", ("label", "paradigm", "timm_name", "patch_size",
                                                  "native_resolution")),
    "protocols": ("radbench_core.protocols", "PROTOCOLS", ("task", "inputs", "description")),
    "profiles": ("radbench_core.config.profiles", "PROFILES", ("description",)),
}
_BARE = ("label", "title", "description")      # shown without a key= prefix


def _out(text: str = "") -> None:
    print(text, file=sys.stdout)


def _scalar(value: Any) -> str | None:
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = str(value)
        return text if len(text) <= 72 else text[:69] + "..."
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return ",".join(map(str, value)) if len(value) <= 4 and all(
            isinstance(v, (str, int, float)) for v in value) else f"({len(value)})"
    return None   # callables and nested objects are not listed


def _describe(name: str, obj: Any, columns: Sequence[str]) -> list[str]:
    if dataclasses.is_dataclass(obj):
        names = [c for c in columns if hasattr(obj, c)] or [f.name for f in dataclasses.fields(obj)]
        pairs = [(k, _scalar(getattr(obj, k))) for k in names if k not in ("id", "name")]
        row = [name, *(v if k in _BARE else f"{k}={v}" for k, v in pairs if v is not None)]
        if callable(getattr(obj, "cells", None)):
            row.append(f"{len(obj.cells())} cells")
        return row
    if callable(obj):
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        return [name, doc[0] if doc else getattr(obj, "__name__", "")]
    return [name, _scalar(obj) or type(obj).__name__]


def _load_registry(kind: str) -> dict[str, Any]:
    module_name, attr, _ = REGISTRIES[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"radbench list {kind}", f"{module_name} is not available in this install",
                          "update radbench (the module is missing)") from exc
    registry = getattr(module, attr, None)
    if registry is None and kind == "profiles":            # built on demand: names + get_profile()
        return {name: module.get_profile(name) for name in module.PROFILE_NAMES}
    if registry is None:
        raise ConfigError(f"radbench list {kind}", f"{module_name} has no {attr} registry",
                          "update radbench (the registry is missing)")
    if isinstance(registry, dict):
        return {str(k): v for k, v in registry.items()}
    return {str(getattr(v, "id", getattr(v, "name", v))): v for v in registry}


def _dataset_rows() -> list[list[str]]:
    from radbench_core.data.datasets import DATASETS, get_dataset
    rows = []
    for dataset_id in DATASETS:                  # built-in first, then registered (conftest, entry points)
        try:
            s = get_dataset(dataset_id)
        except ModuleNotFoundError as exc:       # its loader module is not in this install
            rows.append([dataset_id, f"(loader not available: {exc})"])
            continue
        rows.append([s.id, s.title, s.modality, s.task, s.label_kind, f"{s.num_classes} classes",
                     f"folder={s.folder}"])
    return rows


def _registry_rows(kind: str) -> list[list[str]]:
    if kind == "datasets":
        return _dataset_rows()
    columns = REGISTRIES[kind][2]
    return [_describe(name, obj, columns) for name, obj in _load_registry(kind).items()]


def _table(rows: list[list[str]]) -> str:
    width = max((len(r[0]) for r in rows), default=0)
    return "\n".join(f"  {r[0].ljust(width)}  " + "  ".join(r[1:]) for r in rows)


def cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else ["models", "datasets", "protocols", "profiles"]
    status = 0
    for kind in kinds:
        try:
            rows = _registry_rows(kind)
        except RadbenchError as exc:
            if args.kind:
                raise
            print(f"radbench: {exc}", file=sys.stderr)
            status = 2
            continue
        _out(f"{kind} ({len(rows)}):")
        _out(_table(rows))
    return status


PUBLISHED_OUT = Path("reports") / "published"


def cmd_report_published(out: str | None, screenshot: bool = False) -> int:
    """Write the study's published numbers as records under OUT/cells and build their report.

    Why: anyone can check that the report lays the study's numbers out as the study did.
    """
    from radbench_core.report import build_report
    from radbench_core.report.published import PUBLISHED_WEIGHTS, published_records
    from radbench_core.core.results import RunStore
    store = RunStore(Path(out) if out else PUBLISHED_OUT)
    records = published_records()
    for rec in records:
        store.write_cell(rec)
    manifest = {"profile": "published", "weights": PUBLISHED_WEIGHTS,
                "source": "Baharoon et al. 2023, arXiv 2312.02366, Tables 3-9"}
    store.write_manifest(manifest)
    index = build_report(records, store.run_dir, manifest=manifest, verdicts=None)
    _out(f"{len(records)} published cell(s) written to {store.cells_dir}")
    _out(str(index))
    return _screenshot(index) if screenshot else 0


def _screenshot(index: Path) -> int:
    """``--screenshot``: open the page in headless Chromium, save screenshots/, list what is wrong.

    No browser on this machine: one line, status 0 (the report itself was written)."""
    from radbench_core.report.browser import SCREENSHOT_DIR, check_report, missing_browser
    if (why := missing_browser()) is not None:
        print(f"radbench: --screenshot skipped: {why}", file=sys.stderr)
        return 0
    check = check_report(index, Path(index).parent / SCREENSHOT_DIR)
    _out(f"screenshots ({len(check.screenshots)}): {Path(index).parent / SCREENSHOT_DIR}")
    _out(f"page: {check.captioned_tables} report tables, {len(check.images)} figures, "
         f"{len(check.links)} links, {len(check.problems)} problem(s)")
    for line in check.problems:
        print(f"radbench: {index}: {line}", file=sys.stderr)
    return 1 if check.problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.published:
        if args.run_dirs:
            raise ConfigError("--published", "run dirs were given too",
                              "run `radbench report --published [--out DIR]` on its own")
        return cmd_report_published(args.out, args.screenshot)
    if not args.run_dirs:
        raise ConfigError("radbench report", "no run dir given",
                          "pass RUN_DIR (e.g. reports/latest), or --published for the study's numbers")
    from radbench_core.run.sharding import merge_runs
    records, manifest = merge_runs(args.run_dirs)
    if args.out is None and len(args.run_dirs) > 1:
        raise ConfigError("--out", "several run dirs were given and no output folder",
                          "pass --out DIR for the merged report")
    out_dir = Path(args.out or args.run_dirs[0])
    from radbench_core.report import build_report
    index = build_report(records, out_dir, manifest=manifest, verdicts=None, run_dirs=args.run_dirs,
                         ci_in_tables=args.ci)
    _out(str(index))
    return _screenshot(index) if args.screenshot else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from radbench_core.gate import compare as gating
    from radbench_core.gate.run_gate import gate_run
    from radbench_core.run.sharding import merge_runs
    if args.fail is not None:
        gating.parse_tolerances(args.fail, option="--fail")     # a typo fails before any reading
    records, manifest = merge_runs([args.run_dir])
    if args.update:
        profiles = sorted({r.profile for r in records})
        if len(profiles) != 1:
            raise ConfigError(args.run_dir, f"the run mixes profiles {profiles}",
                              "update the baseline from a run of one profile")
        path = gating.update_baseline(args.baseline, records, profile=profiles[0], run_dirs=[args.run_dir])
        _out(f"baseline updated: {path} ({len(records)} cells recorded)")
        return 0
    outcome, obtained = gate_run(
        records, args.baseline, fail=args.fail, fail_option="--fail", noise_aware=args.noise_aware,
        narrowed=manifest.get("narrowed"), allow_missing=args.allow_missing,
        allow_nothing=args.allow_nothing, run_dirs=[args.run_dir],
        option_names={"allow_nothing": "--allow-nothing", "allow_missing": "--allow-missing",
                      "update": "--update"})
    _out(gating.render_verdicts(outcome.verdicts, outcome.failure).rstrip("\n"))
    if obtained is not None:
        _out(f"obtained values written to {obtained}")
    return 0 if outcome.passed else 1


def cmd_prepare(args: argparse.Namespace) -> int:
    from radbench_core.data.datasets import get_dataset, open_dataset
    spec = get_dataset(args.dataset)
    if args.demo:
        from radbench_core.data.source import prepare_phantom
        root = Path(prepare_phantom(spec.id, size="small"))
        _out(f"demo phantom of {spec.title} written to {root} (synthetic, not a real dataset)")
    else:
        data_dir = args.data_dir or os.environ.get("RADBENCH_DATA_DIR")
        if not data_dir:
            raise ConfigError("--data-dir", "no data directory given and RADBENCH_DATA_DIR is not set",
                              f"pass --data-dir DIR, the folder that holds {spec.folder}/")
        root = Path(data_dir) / spec.folder
    index = open_dataset(spec, root)
    _out(f"{spec.title} at {root}: {len(index.items)} items")
    for split in ("train", "val", "test"):
        ids = index.splits.get(split, [])
        patients = {index.items[i].patient for i in ids}
        _out(f"  {split:<5}  {len(ids):>6} items  {len(patients):>6} patients")
    if args.write_splits:
        from radbench_core.core.atomic import atomic_write_json
        splits = {s: [index.items[i].key for i in index.splits.get(s, [])] for s in ("train", "val", "test")}
        atomic_write_json(Path(args.write_splits), splits)
        _out(f"split written to {args.write_splits}; edit it and pass --radbench-splits {spec.id}="
             f"{args.write_splits}")
    return 0


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def cmd_submit(args: argparse.Namespace) -> int:
    from radbench_core.core.results import new_run_id
    from radbench_core.run.submit import submit_shards, wait_all
    slurm = {}
    for item in args.slurm:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--slurm", f"{item!r} is not KEY=VALUE",
                              "write e.g. --slurm slurm_partition=gpu")
        slurm[key] = _parse_value(value)
    run_dir = Path(args.run_dir or Path("reports") / "runs" / new_run_id())
    jobs = submit_shards(args.shards, args.pytest_args, run_dir=run_dir,
                         executor="local" if args.local else "auto", slurm=slurm)
    _out(f"submitted {len(jobs)} shard(s) into {run_dir}: " + " ".join(str(j.job_id) for j in jobs))
    if not (args.local or args.wait):
        _out(f"when they finish: radbench report {run_dir}")
        return 0
    codes = wait_all(jobs)
    for i, code in enumerate(codes, start=1):
        _out(f"  shard {i}/{len(codes)}: exit {code}" + ("  (no cells in this shard)" if code == 5 else ""))
    _out(f"merge them with: radbench report {run_dir}")
    return 0 if all(c in (0, 5) for c in codes) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list models, datasets, protocols or profiles")
    p.add_argument("kind", nargs="?", choices=["models", "datasets", "protocols", "profiles"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("report", help="build the report of one run, or merge several (shards)")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the run dir; "
                   f"{PUBLISHED_OUT} with --published)")
    p.add_argument("--published", action="store_true",
                   help="write the study's published numbers as records and report them")
    p.add_argument("--ci", action="store_true",
                   help="print each entry's 95%% CI in the Markdown and LaTeX tables too")
    p.add_argument("--screenshot", action="store_true",
                   help="open index.html in headless Chromium (Playwright + an installed chromium): "
                   "save screenshots/ and report console errors, undecoded figures, broken links")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="gate a finished run against a baseline (exit 1 on regressions)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("--fail", metavar="EXPR", help='tolerances, e.g. "auroc:0.01,dice_jaccard:2%%"')
    p.add_argument("--update", action="store_true", help="write/merge the baseline from this run instead")
    p.add_argument("--noise-aware", action="store_true", help="a drop beyond the tolerance fails only "
                   "when the paired test on the same test items finds it (docs/gating.md)")
    p.add_argument("--allow-nothing", action="store_true", help="pass when no cell could be compared")
    p.add_argument("--allow-missing", action="store_true", help="pass when baseline cells did not run "
                   "(a run narrowed with -k/-m/shard is allowed already)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("prepare", help="check that a dataset folder indexes, or write its demo phantom")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the datasets (or RADBENCH_DATA_DIR)")
    p.add_argument("--demo", action="store_true", help="write the synthetic phantom instead")
    p.add_argument("--write-splits", metavar="FILE", help="write the split as a split file "
                   '({"train": [item keys], "val": [...], "test": [...]}) to edit and pass back')
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("submit", help="run N shards as a SLURM job array (or locally with --local)")
    p.add_argument("--shards", type=int, required=True, metavar="N")
    p.add_argument("--local", action="store_true", help="no SLURM: run the shards on this machine")
    p.add_argument("--run-dir", metavar="DIR", help="shared run folder (default reports/runs/<new id>)")
    p.add_argument("--wait", action="store_true", help="wait for SLURM jobs and report exit codes")
    p.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="submitit parameter, e.g. slurm_partition=gpu, gpus_per_node=1 (repeatable)")
    p.set_defaults(func=cmd_submit, pytest_args=[])

    p = sub.add_parser("convert-weights", help="convert a TorchScript checkpoint (OpenAI CLIP .pt) to "
                       "safetensors once; radbench never loads TorchScript during a run")
    p.add_argument("model", metavar="MODEL", help="model id the file is for, e.g. clip_vitl14")
    p.add_argument("source", metavar="FILE", help="the TorchScript file, e.g. ViT-L-14.pt")
    p.add_argument("--weights", metavar="DIR", help="weights folder to write MODEL.safetensors into "
                   "(default: RADBENCH_WEIGHTS, else the source's folder)")
    p.set_defaults(func=cmd_convert_weights)

    from radbench_core.cli.stats_commands import add_commands      # compare-models, plan (issue 17)
    add_commands(sub)
    from radbench_core.cli.tracking_commands import add_commands as add_tracking   # mlflow (issue 25)
    add_tracking(sub)
    return parser


def cmd_convert_weights(args: argparse.Namespace) -> int:
    """TorchScript -> <weights>/<model>.safetensors, saying what it does (the load is not sandboxed)."""
    import os
    from pathlib import Path

    from radbench_core.models.checkpoint_formats import convert_torchscript
    from radbench_core.models.specs import get_model
    spec = get_model(args.model)
    folder = Path(args.weights or os.environ.get("RADBENCH_WEIGHTS") or Path(args.source).parent)
    target = folder / f"{spec.id}.safetensors"
    _out(f"reading {args.source} with torch.jit.load (TorchScript: trust only the official file), "
         f"keeping the image tower's tensors")
    counts = convert_torchscript(Path(args.source), target)
    _out(f"wrote {target}: {counts['kept']} tensors ({counts['dropped']} text-tower tensors left out); "
         f"it loads as {spec.label} from --radbench-weights {folder}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status instead of raising."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:            # argparse already printed usage and the error
        return int(exc.code or 0)
    if extra:
        if args.command != "submit":
            print("radbench: error: arguments after '--' are only for `radbench submit`", file=sys.stderr)
            return 2
        args.pytest_args = extra
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        from radbench_core.config.project import load_project   # the same entries as a pytest run
        load_project(getattr(args, "profile", None) or os.environ.get("RADBENCH_PROFILE"))
        return func(args)
    except RadbenchError as exc:
        print(f"radbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
