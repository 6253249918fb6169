"""What the run itself was: interrupted or not, how its cells ended, the machine it ran on.

Why one module: index.html and report.md must say the same thing about an interrupted run (how
many cells finished, the command that continues it) and about the machine, from the manifest that
``fixtures/finish.py`` writes (``interrupted``, ``outcomes``, ``machine``, ``versions``).
"""

from __future__ import annotations

import shlex
from typing import Any, Iterable

OUTCOME_ORDER = ("passed", "resumed", "failed", "skipped")


def resume_command(manifest: dict[str, Any]) -> str:
    """The pytest command that continues the run: same profile and folders, ``--radbench-resume``."""
    parts = ["pytest", "benchmarks"]
    if manifest.get("profile"):
        parts += ["--radbench-profile", str(manifest["profile"])]
    for key, option in (("data_dir", "--radbench-data-dir"), ("weights_dir", "--radbench-weights")):
        if manifest.get(key):
            parts += [option, str(manifest[key])]
    parts += ["--radbench-resume", str(manifest.get("run_dir") or manifest.get("run_id") or "")]
    return " ".join(shlex.quote(p) for p in parts if p)


def interrupted_banner(manifest: dict[str, Any] | None, n_records: int) -> str | None:
    """One sentence for an interrupted run (SIGTERM, Ctrl-C): None when the run was not interrupted."""
    if not manifest or not manifest.get("interrupted"):
        return None
    return (f"This run was interrupted (Ctrl-C or SIGTERM) before every cell ran: {n_records} cell(s) "
            f"finished and are reported here; the tables lack the rest. Continue it with: "
            f"{resume_command(manifest)}")


def outcome_counts(outcomes: dict[str, str], recorded_before: Iterable[str]) -> dict[str, int]:
    """Cells per outcome; a skipped cell whose record this run folder already held counts as "resumed".

    ``outcomes``: pytest node id (or cell id) -> "passed" | "failed" | "skipped";
    ``recorded_before``: cell ids with a record in the run folder that this session did not write.
    """
    before = set(recorded_before)
    counts = dict.fromkeys(OUTCOME_ORDER, 0)
    for node, outcome in outcomes.items():
        cell = node.split("[", 1)[1].rstrip("]") if "[" in node else node
        if outcome == "skipped" and cell in before:
            outcome = "resumed"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def outcome_text(manifest: dict[str, Any] | None) -> str:
    """"12 passed, 30 resumed, 0 failed, 1 skipped" from the manifest; "" when it has no counts."""
    counts = (manifest or {}).get("outcomes") or {}
    keys = [k for k in OUTCOME_ORDER if k in counts] + sorted(k for k in counts if k not in OUTCOME_ORDER)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def machine_rows(manifest: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(what, value) rows of the machine a run ran on: CPU, RAM, GPUs, OS, Python/torch/timm."""
    m = (manifest or {}).get("machine") or {}
    v = (manifest or {}).get("versions") or {}
    rows = []
    if m.get("cpu_model") or m.get("processor") or m.get("cpu_count"):
        cores = f" ({m['cpu_count']} cores)" if m.get("cpu_count") else ""
        rows.append(("CPU", f"{m.get('cpu_model') or m.get('processor') or '?'}{cores}"))
    if m.get("ram_gib"):
        rows.append(("RAM", f"{m['ram_gib']} GiB"))
    if m:
        gpus, mem = m.get("gpus") or [], m.get("gpu_memory_gib") or []
        rows.append(("GPU", ", ".join(f"{name} ({mem[i]} GiB)" if i < len(mem) else name
                                      for i, name in enumerate(gpus)) or "none"))
    if m.get("platform"):
        rows.append(("OS", str(m["platform"])))
    software = ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "timm", "radbench") if k in v)
    if software:
        rows.append(("Software", software))
    return rows


def report_markdown(manifest: dict[str, Any] | None, banners: list[str], n_records: int,
                    tables: Iterable[str], figures: Iterable[str], files: Iterable[str]) -> str:
    """report.md: the page's banners, outcomes and machine, and links to every table, figure and file."""
    lines = ["# radbench report", ""]
    lines += [f"> **{b}**\n" for b in banners]
    lines.append(f"{n_records} cell record(s). Full report: [index.html](index.html).")
    if outcome := outcome_text(manifest):
        lines.append(f"Outcomes of the last session: {outcome}.")
    if rows := machine_rows(manifest):
        lines += ["", "## Machine", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    for title, names in (("Tables", tables), ("Figures", figures), ("Other files", files)):
        names = list(names)
        if names:
            lines += ["", f"## {title}", "", *(f"- [{n}]({n})" for n in names)]
    return "\n".join(lines) + "\n"
