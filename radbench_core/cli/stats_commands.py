"""``radbench compare-models`` and ``radbench plan``: the subcommands of issue 17.

Separate from cli.py so each command's parsing and printing stays in one small place.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(sub) -> None:
    """Register the subcommands on radbench's subparsers."""
    p = sub.add_parser("compare-models", help="paired significance matrix of the cells of one "
                       "dataset and protocol in a run (bootstrap over test patients, Holm)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--dataset", required=True)
    p.add_argument("--protocol", required=True)
    p.add_argument("--variant", default=None, help="only cells of this variant (e.g. 448)")
    p.add_argument("--metric", default=None, help="default: the headline (auroc, dice_jaccard)")
    p.add_argument("--resamples", type=int, default=2000, help="paired bootstrap draws of the "
                   "patients (default 2000: the bootstrap SE behind each p moves < 2%% with the seed)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_compare_models)

    p = sub.add_parser("switch-effects", help="what the study's choices did: per switch family, the "
                       "headline difference sound - study over the cells it touches, with paired tests")
    p.add_argument("study_run", metavar="RUN_STUDY", help="run with --radbench-switches study")
    p.add_argument("sound_run", metavar="RUN_SOUND", help="the same cells with --radbench-switches sound")
    p.add_argument("--resamples", type=int, default=1000, help="paired bootstrap draws (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE", help="also write the Markdown to FILE")
    p.set_defaults(func=cmd_switch_effects)

    p = sub.add_parser("plan", help="estimate FLOPs, GPU time, memory and cache disk of a profile "
                       "before running it")
    p.add_argument("--profile", default="paper")
    p.add_argument("-k", dest="keyword", default=None, help="pytest-style -k expression on cell ids")
    p.add_argument("-m", dest="marker", default=None, help="pytest-style -m expression on markers")
    p.add_argument("--gpu", default="H200")
    p.add_argument("--calibration", default=None, metavar="JSON",
                   help="efficiencies measured by benchmarks/gpu_training.py")
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="also print N shards balanced by estimated time")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--summary", action="store_true", help="no per-cell lines")
    p.set_defaults(func=cmd_plan)


def cmd_switch_effects(args: argparse.Namespace) -> int:
    from radbench_core.core.atomic import atomic_write_text
    from radbench_core.report.switch_effects import switch_effects_markdown
    text = switch_effects_markdown(args.study_run, args.sound_run, resamples=args.resamples, seed=args.seed)
    print(text, end="")
    if args.out:
        atomic_write_text(Path(args.out), text)
    return 0


def cmd_compare_models(args: argparse.Namespace) -> int:
    from radbench_core.core.errors import ConfigError
    from radbench_core.report.frame import headline
    from radbench_core.run.sharding import merge_runs
    from radbench_core.report.marks import format_matrix, run_predictions
    from radbench_core.eval.significance import pairwise
    records, _ = merge_runs(args.run_dirs)
    chosen = [r for r in records if r.dataset == args.dataset and r.protocol == args.protocol
              and (args.variant is None or r.variant == args.variant)]
    store = run_predictions(chosen, [Path(d) for d in args.run_dirs])
    with_preds = [r for r in chosen if store.get(r.cell_id) is not None]
    if len(with_preds) < 2:
        raise ConfigError(f"compare-models --dataset {args.dataset} --protocol {args.protocol}",
                          f"{len(chosen)} cell(s) in the run, {len(with_preds)} with recorded test "
                          "predictions; need two", "run at least two models of that dataset and "
                          "protocol; a protocol of your own must return ProtocolResult(..., "
                          "extra=radbench_core.protocols.base.test_predictions(labels, scores))")
    metric = args.metric or headline(with_preds[0])[0]
    values = {r.cell_id: r.metrics[metric].value for r in with_preds if metric in r.metrics}
    if len(values) < 2:
        recorded = sorted({n for r in with_preds for n in r.metrics})
        raise ConfigError(f"compare-models --metric {metric}", f"{len(values)} of {len(with_preds)} "
                          f"cells record {metric!r} (they record {recorded})",
                          "pass --metric with one of those names")
    if args.resamples < 1:
        raise ConfigError("compare-models --resamples", f"{args.resamples} resamples", "pass 1 or more")
    order = sorted(values, key=lambda c: -values[c])
    comparisons = pairwise({c: store.get(c) for c in order}, metric, resamples=args.resamples,
                           seed=args.seed)
    print(format_matrix({"metric": metric, "order": order, "values": values, "comparisons": comparisons}))
    print(pair_details(comparisons, order))
    return 0


def pair_details(comparisons, order: list[str]) -> str:
    """One line per pair: difference with its 95% CI, the corrected p and how it was obtained, the
    bootstrap p with its Monte Carlo error, B, and the item and patient counts."""
    lines = ["pair  diff [95% CI]  p_holm (method)  bootstrap p +- MC error  B  items  patients"]
    for c in comparisons:
        r = c.result
        lines.append(f"{order.index(c.a) + 1} vs {order.index(c.b) + 1}  {r.diff:+.4f} "
                     f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]  {c.p_holm:.3g} ({c.p_method})  "
                     f"{r.p_value:.4f} +- {r.mc_error:.4f}  B={r.resamples}  {r.n_items}  {r.n_groups}")
    return "\n".join(lines)


def _select(profile, keyword: str | None, marker: str | None):
    """The profile's cells a ``pytest -k/-m`` run would keep (pytest's own expression matcher)."""
    from radbench_core.data.datasets import get_dataset
    from radbench_core.run.selection import matches
    from radbench_core.models.specs import get_model
    from radbench_core.protocols import get_protocol
    cells = profile.cells()
    if keyword:
        cells = [c for c in cells if matches(keyword, lambda s, _c=c: s.lower() in _c.id.lower())]
    if marker:

        def marks(c):
            return {get_model(c.model).family, get_dataset(c.dataset).modality, get_dataset(c.dataset).task,
                    get_protocol(c.protocol).id}
        cells = [c for c in cells if matches(marker, lambda s, _c=c: s in marks(_c))]
    return cells


def cmd_plan(args: argparse.Namespace) -> int:
    from radbench_core.plan.estimate import format_plan, plan
    from radbench_core.config.profiles import get_profile
    from radbench_core.run.sharding import balance_shards
    profile = get_profile(args.profile)
    cells = _select(profile, args.keyword, args.marker)
    result = plan(profile, cells, gpu=args.gpu, calibration=args.calibration)
    print(f"plan of profile {profile.name!r}: {len(cells)} cell(s) on {args.gpu}")
    print(format_plan(result, top=args.top, per_cell=not args.summary))
    if args.shards:
        assignment = balance_shards({e.cell_id: e.gpu_hours for e in result.estimates}, args.shards)
        loads = [sum(e.gpu_hours for e in result.estimates if assignment[e.cell_id] == k)
                 for k in range(1, args.shards + 1)]
        for k, hours in enumerate(loads, 1):
            n = sum(1 for v in assignment.values() if v == k)
            print(f"shard {k}/{args.shards}: {n} cells, {hours:,.2f} GPU hours")
    return 0
