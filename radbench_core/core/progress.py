"""Where each process is inside its cell (phase, epoch i of n, ETA), as a tiny status file.

Long cells (a ViT-g fine-tune, a 3D decoder) run for hours with pytest saying nothing, and xdist
workers cannot print to the terminal at all. So the code that does the work reports cheaply here
(``update("train", done=3, total=10, unit="epoch")``, throttled), each process writes one JSON
status file (temporary file + rename, no fsync: it is a display, not a record), and the pytest plugin
(fixtures/progress.py) reads those files on the controller and prints a live line. Without
:func:`configure` every call is a no-op, so scripts and unit tests pay nothing. No pytest here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Status:
    """One process's position. Times are ``time.time()`` seconds (shared by processes on one host).

    ``done``/``total`` count the phase's main loop (epochs); ``sub_done``/``sub_total`` the loop
    inside one of its steps (batches), cleared whenever the main counter moves.
    """

    worker: str
    cell: str | None = None
    phase: str = ""
    done: int | None = None
    total: int | None = None
    unit: str = ""
    sub_done: int | None = None
    sub_total: int | None = None
    sub_unit: str = ""
    cell_started: float = 0.0
    phase_started: float = 0.0
    updated: float = 0.0            # when the counters last moved

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Status":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def fraction_done(s: Status) -> float | None:
    """Share of the phase done, counting the inner loop as a part of the current main step."""
    sub = s.sub_done / s.sub_total if s.sub_total and s.sub_done is not None else None
    if s.total:
        step = min(max(s.done or 0, 0) + (sub or 0.0), s.total)
        return step / s.total
    return sub


def eta_seconds(s: Status, now: float) -> float | None:
    """Time left in the phase at the pace so far: elapsed * (1 - f) / f, minus time since the last move.

    None while nothing is done yet (no pace to extrapolate) or the phase has no counter.
    """
    f = fraction_done(s)
    if f is None or f <= 0.0:
        return None
    elapsed = max(s.updated - s.phase_started, 0.0)
    return max(elapsed * (1.0 - f) / f - max(now - s.updated, 0.0), 0.0)


def format_duration(seconds: float) -> str:
    """45s, 1m20s, 2h05m: short enough for a status line."""
    seconds = int(round(max(seconds, 0.0)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def status_line(s: Status, now: float, width: int | None = None) -> str:
    """``gw0 dinov2_vitl14-nih-linear · train · epoch 3/10 · batch 40/100 · 2m05s · ETA 1m20s``."""
    parts = [f"{s.worker} {s.cell}" if s.worker else str(s.cell), s.phase or "starting"]
    if s.total:
        parts.append(f"{s.unit or 'step'} {s.done or 0}/{s.total}")
    if s.sub_total:
        parts.append(f"{s.sub_unit or 'step'} {s.sub_done or 0}/{s.sub_total}")
    parts.append(format_duration(now - s.cell_started))
    eta = eta_seconds(s, now)
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    line = " · ".join(parts)
    if width is not None and len(line) > width:
        line = line[:max(width - 1, 0)] + "…"
    return line


class Reporter:
    """The status of one process, written to ``path`` when it changes: at most once per ``interval``
    seconds, except that a new cell, a new phase and the last step of a loop are written at once."""

    def __init__(self, path: str | Path | None = None, worker: str = "", interval: float = 1.0,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else None
        self.interval = interval
        self.clock = clock
        self.status = Status(worker=worker)
        self.writes = 0
        self._written_at = -float("inf")
        self._pending = False

    def start_cell(self, cell: str, phase: str = "") -> None:
        if self.path is None:
            return
        now = self.clock()
        self.status = Status(worker=self.status.worker, cell=cell, phase=phase, cell_started=now,
                             phase_started=now, updated=now)
        self._write(force=True)

    def update(self, phase: str, done: int | None = None, total: int | None = None,
               unit: str = "epoch") -> None:
        """Enter ``phase`` with its main counter at ``done`` of ``total``; without ``done`` the
        phase (re)starts now.

        A counter that goes back or changes its total (the next learning rate, the refit) starts
        a new loop: its pace is measured from the previous move, not from the phase's start.
        """
        s = self.status
        if self.path is None or s.cell is None:
            return
        now = self.clock()
        new_phase = phase != s.phase or done is None
        restarted = not new_phase and s.done is not None and done is not None and \
            (done < s.done or total != s.total)
        started = now if new_phase else (s.updated if restarted else s.phase_started)
        self.status = dataclasses.replace(s, phase=phase, done=done, total=total, unit=unit,
                                          sub_done=None, sub_total=None, sub_unit="",
                                          phase_started=started, updated=now)
        self._write(force=new_phase or (done is not None and done == total))   # a loop's end shows

    def detail(self, done: int, total: int, unit: str = "batch") -> None:
        """The inner loop of the current step (batches of an epoch, of an extraction)."""
        if self.path is None or self.status.cell is None:
            return
        self.status = dataclasses.replace(self.status, sub_done=done, sub_total=total, sub_unit=unit,
                                          updated=self.clock())
        self._write(force=False)

    def end_cell(self) -> None:
        if self.path is None or self.status.cell is None:
            return
        self.status = Status(worker=self.status.worker, updated=self.clock())
        self._write(force=True)

    def _write(self, force: bool) -> None:
        now = self.clock()
        if not force and now - self._written_at < self.interval:
            self._pending = True
            return
        assert self.path is not None
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.status.to_dict()))
            os.replace(tmp, self.path)
        except OSError:            # a full disk must not fail the cell over a display: stop reporting
            self.path = None
            return
        self._written_at, self._pending = now, False
        self.writes += 1


_REPORTER = Reporter()


def configure(path: str | Path | None, worker: str = "", interval: float = 1.0) -> Reporter:
    """Make this process report to ``path`` (None: stop reporting). Returns the active reporter."""
    global _REPORTER
    _REPORTER = Reporter(path, worker=worker, interval=interval)
    return _REPORTER


def reporter() -> Reporter:
    return _REPORTER


def start_cell(cell: str, phase: str = "data") -> None:
    """The runner: a cell starts (in its first phase)."""
    _REPORTER.start_cell(cell, phase)


def update(phase: str, done: int | None = None, total: int | None = None, unit: str = "epoch") -> None:
    """A phase starts, or its main loop moved (``done`` of ``total`` ``unit``s finished)."""
    _REPORTER.update(phase, done, total, unit)


def detail(done: int, total: int, unit: str = "batch") -> None:
    """The inner loop moved (``done`` of ``total`` batches of the current step)."""
    _REPORTER.detail(done, total, unit)


def end_cell() -> None:
    _REPORTER.end_cell()


def read_statuses(folder: str | Path, prefix: str = "", since: float = 0.0) -> list[Status]:
    """The statuses under ``folder`` whose file name starts with ``prefix``, busy in a cell and
    updated at or after ``since``, sorted by worker. Unreadable files are skipped (a display)."""
    out = []
    for path in sorted(Path(folder).glob(f"{prefix}*.json")):
        try:
            status = Status.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if status.cell is not None and status.updated >= since:
            out.append(status)
    return sorted(out, key=lambda s: (len(s.worker), s.worker))
