"""The live line: ETA arithmetic, throttled status files, the line's text, the terminal display,
and a real ``-n 2`` run without ``-s`` whose output carries a cell's line (pytester subprocess)."""

from __future__ import annotations

import io
import json
import re

import pytest
from _pytest._io import TerminalWriter
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.core import progress
from radbench_core.core.progress import (Reporter, Status, eta_seconds, format_duration, read_statuses,
                                    status_line)


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def reporter(tmp_path, interval: float = 1.0, worker: str = "gw0") -> tuple[Reporter, Clock]:
    clock = Clock(100.0)
    return Reporter(tmp_path / "p" / "x-gw0.json", worker=worker, interval=interval, clock=clock), clock


def on_disk(r: Reporter) -> Status:
    return Status.from_dict(json.loads(r.path.read_text()))


# --- durations and ETA -------------------------------------------------------------------------

@pytest.mark.parametrize("seconds,text", [(0, "0s"), (0.4, "0s"), (59, "59s"), (60, "1m00s"), (80, "1m20s"),
                                          (3599, "59m59s"), (3600, "1h00m"), (7500, "2h05m"),
                                          (-5, "0s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def _parse(text: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_format_duration_reads_back_within_its_precision(seconds):
    back = _parse(format_duration(seconds))
    assert abs(back - seconds) <= (60 if seconds >= 3600 else 0.5 + 1e-9)


def test_eta_from_the_pace_of_the_phase(tmp_path):
    r, clock = reporter(tmp_path)
    r.start_cell("m-nih-linear")
    clock.t = 110.0
    r.update("train")                                  # the phase starts at 110
    clock.t = 120.0
    r.update("train", done=1, total=10)
    clock.t = 130.0
    r.update("train", done=2, total=10)                # 20 s for 2 of 10 epochs
    assert eta_seconds(r.status, now=130.0) == pytest.approx(80.0)
    assert eta_seconds(r.status, now=140.0) == pytest.approx(70.0)   # 10 s since the last epoch
    assert eta_seconds(r.status, now=500.0) == 0.0                   # late: never negative


def test_eta_counts_the_batches_of_the_current_epoch(tmp_path):
    r, clock = reporter(tmp_path)
    r.start_cell("c")
    r.update("train")                                  # t = 100
    clock.t = 120.0
    r.update("train", done=1, total=4)
    clock.t = 130.0
    r.detail(50, 100)                                  # 1.5 of 4 epochs in 30 s
    assert eta_seconds(r.status, now=130.0) == pytest.approx(30.0 * 2.5 / 1.5)
    clock.t = 140.0
    r.update("train", done=2, total=4)                 # the main counter moves: batches cleared
    assert r.status.sub_total is None
    assert eta_seconds(r.status, now=140.0) == pytest.approx(40.0)


def test_eta_of_a_phase_counted_only_in_batches_and_none_without_progress(tmp_path):
    r, clock = reporter(tmp_path)
    r.start_cell("c")
    r.update("features")
    assert eta_seconds(r.status, now=100.0) is None            # no counter
    clock.t = 101.0
    r.detail(0, 40)
    assert eta_seconds(r.status, now=101.0) is None            # nothing done yet
    clock.t = 110.0
    r.detail(10, 40)
    assert eta_seconds(r.status, now=110.0) == pytest.approx(30.0)


def test_a_new_loop_in_the_same_phase_is_paced_from_the_previous_move(tmp_path):
    r, clock = reporter(tmp_path)
    r.start_cell("c")
    r.update("train")
    for epoch in range(10):                            # the sweep: 10 epochs of 10 s
        clock.t = 100.0 + 10 * (epoch + 1)
        r.update("train", done=epoch + 1, total=10)
    clock.t = 205.0                                    # the refit: 3 epochs of 5 s, pace from 200
    r.update("train", done=1, total=3)
    assert r.status.phase_started == 200.0
    assert eta_seconds(r.status, now=205.0) == pytest.approx(10.0)
    clock.t = 300.0
    r.update("train")                                  # a phase marker restarts the clock
    assert (r.status.phase_started, r.status.done) == (300.0, None)


@settings(max_examples=60, deadline=None)
@given(step=st.floats(0.01, 1e4), total=st.integers(1, 500), data=st.data())
def test_eta_is_exact_at_a_constant_pace(step, total, data):
    done = data.draw(st.integers(1, total))
    s = Status(worker="gw1", cell="c", phase="train", done=done, total=total, unit="epoch",
               cell_started=0.0, phase_started=50.0, updated=50.0 + step * done)
    assert eta_seconds(s, now=s.updated) == pytest.approx(step * (total - done), rel=1e-9, abs=1e-6)
    later = eta_seconds(s, now=s.updated + step / 2)
    assert later == pytest.approx(max(step * (total - done) - step / 2, 0.0), rel=1e-9, abs=1e-6)


# --- the line ----------------------------------------------------------------------------------

def test_status_line_names_worker_cell_phase_counters_elapsed_and_eta():
    s = Status(worker="gw0", cell="dinov2_vitl14-nih-linear", phase="train", done=3, total=10,
               unit="epoch", cell_started=0.0, phase_started=5.0, updated=65.0)
    # 60 s for 3 of 10 epochs -> 140 s left at t = 65, 80 s at t = 125; the cell is 2m05s old
    assert status_line(s, now=125.0) == "gw0 dinov2_vitl14-nih-linear · train · epoch 3/10 · 2m05s · ETA 1m20s"
    s2 = Status(worker="", cell="m-d-p", phase="features", sub_done=7, sub_total=70, sub_unit="batch",
                cell_started=0.0, phase_started=0.0, updated=7.0)
    assert status_line(s2, now=7.0) == "m-d-p · features · batch 7/70 · 7s · ETA 1m03s"
    short = status_line(s, now=125.0, width=30)
    assert len(short) == 30 and short.endswith("…")


# --- status files ------------------------------------------------------------------------------

def test_writes_are_throttled_but_cells_and_phases_are_written_at_once(tmp_path):
    r, clock = reporter(tmp_path, interval=10.0)
    clock.t = 0.0
    r.start_cell("c")
    r.update("train")                                  # forced (phase start): 2 writes at t = 0
    for t in range(1, 51):                             # one batch per time unit
        clock.t = float(t)
        r.detail(t, 100)
    assert r.writes == 2 + 5                           # at t = 10, 20, 30, 40, 50
    assert on_disk(r).sub_done == 50
    clock.t = 51.0
    r.detail(51, 100)
    assert on_disk(r).sub_done == 50                   # throttled: the file lags < interval
    r.update("test")
    assert (on_disk(r).phase, r.writes) == ("test", 8)
    r.update("test", 1, 3)
    assert on_disk(r).done is None                     # throttled
    r.update("test", 3, 3)
    assert (on_disk(r).done, r.writes) == (3, 9)       # a loop's last step is written at once
    r.end_cell()
    assert on_disk(r).cell is None and r.writes == 10


def test_without_configure_or_outside_a_cell_nothing_is_written(tmp_path):
    progress.configure(None)
    progress.start_cell("c")
    progress.update("train", 1, 2)
    progress.detail(1, 2)
    progress.end_cell()
    assert progress.reporter().writes == 0
    r, _ = reporter(tmp_path)
    r.update("train", 1, 2)                            # no cell started
    r.detail(1, 2)
    assert r.writes == 0 and not r.path.exists()


def test_an_unwritable_status_file_stops_reporting_without_failing_the_cell(tmp_path):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    r = Reporter(tmp_path / "blocker" / "x.json", worker="gw0")
    r.start_cell("c")
    r.update("train", 1, 2)
    assert r.path is None and r.writes == 0


def test_read_statuses_keeps_busy_fresh_own_files_sorted_by_worker(tmp_path):
    folder = tmp_path / "progress"
    for name, worker, cell, updated in [("tok-gw10", "gw10", "a", 50.0), ("tok-gw2", "gw2", "b", 50.0),
                                        ("tok-gw3", "gw3", None, 50.0), ("tok-gw4", "gw4", "c", 1.0),
                                        ("other-gw0", "gw0", "d", 50.0)]:
        r = Reporter(folder / f"{name}.json", worker=worker, clock=lambda: updated)
        if cell:
            r.start_cell(cell)
        else:
            r._write(force=True)
    (folder / "tok-gw5.json").write_text("{not json")
    statuses = read_statuses(folder, "tok-", since=10.0)
    assert [(s.worker, s.cell) for s in statuses] == [("gw2", "b"), ("gw10", "a")]


# --- the terminal display ----------------------------------------------------------------------

class FakeTerminal:
    """What LiveDisplay uses of pytest's TerminalReporter, on an in-memory writer."""

    def __init__(self):
        self._tw = TerminalWriter(io.StringIO())
        self._tw.fullwidth = 60
        self.currentfspath = None

    def ensure_newline(self) -> None:                  # as pytest's
        if self.currentfspath:
            self._tw.line()
            self.currentfspath = None

    @property
    def text(self) -> str:
        return self._tw._file.getvalue()


def test_live_block_is_erased_before_pytest_writes_and_the_cursor_returns(tmp_path):
    from fixtures.progress import LiveDisplay
    term = FakeTerminal()
    display = LiveDisplay(term, tmp_path, "tok-", live=True, every=30, since=0.0)
    display.start()
    try:
        term._tw.write("benchmarks/test_classification.py ")
        display._show(["gw0 a · train", "gw1 b · features"])
        term._tw.write(".")                            # pytest reports a result
        term._tw.write("\n")
    finally:
        display.stop()
    assert term.text == ("benchmarks/test_classification.py \ngw0 a · train\ngw1 b · features"
                         + "\r\x1b[2K\x1b[1A" * 2 + "\r\x1b[34C" + ".\n")
    assert term._tw.write_raw == display._write_raw       # pytest's writer is restored


def test_live_tick_renders_the_status_files_truncated_to_the_terminal(tmp_path):
    from fixtures.progress import LiveDisplay
    r = Reporter(tmp_path / "tok-gw0.json", worker="gw0", clock=lambda: 10.0)
    r.start_cell("dinov2_vitg14-chexpert-finetune_with_a_very_long_id_that_wraps", "train")
    term = FakeTerminal()
    display = LiveDisplay(term, tmp_path, "tok-", live=True, every=30, since=0.0, clock=lambda: 20.0)
    display.tick()
    assert display.shown == 1
    assert term.text == "\n" + status_line(r.status, 20.0, width=59)
    assert len(term.text) == 60


def test_plain_lines_wait_for_a_long_cell_then_come_on_phase_change_and_every_interval(tmp_path):
    from fixtures.progress import LiveDisplay
    clock = Clock(0.0)
    r = Reporter(tmp_path / "tok-gw0.json", worker="gw0", clock=clock, interval=0.0)
    r.start_cell("m-d-linear")
    term = FakeTerminal()
    display = LiveDisplay(term, tmp_path, "tok-", live=False, every=30.0, since=0.0, clock=clock)
    seen = []
    for t in range(0, 100, 1):
        clock.t = float(t)
        if t == 5:
            r.update("features")
        if t == 40:
            r.update("train", 0, 10)
        if t == 45:
            r.update("train", 1, 10)
        display.tick()
        seen += [(t, line) for line in term.text.splitlines()[len(seen):]]
    # quiet for 10 s, then: t=10 (first), t=40 (phase change), t=70 (30 s later); the epoch at 45
    # is no phase change
    assert [t for t, _ in seen] == [10, 40, 70]
    assert seen[0][1] == "[radbench] gw0 m-d-linear · features · 10s"
    assert seen[2][1].startswith("[radbench] gw0 m-d-linear · train · epoch 1/10 · 1m10s · ETA ")


# --- through pytest ----------------------------------------------------------------------------

SLOW_PROFILE = '''
import time

from radbench_core.core import progress
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.protocols import PROTOCOLS, ProtocolSpec

PROTOCOLS["slow"] = ProtocolSpec("slow", "classification", "frozen", "slow_profile:slow")


def slow(inputs, hparams, seed):
    """kNN after four 'epochs' of {pause} s, reported like a training loop."""
    from radbench_core.protocols.knn import run_knn
    for epoch in range(4):
        time.sleep({pause})
        progress.update("train", done=epoch + 1, total=4, unit="epoch")
    return run_knn(inputs, {{**_hparams(paper=False)["knn"], "demo": True}}, seed)


PROFILE = Profile(
    name="slow", description="two slow cells", demo=True,
    grids=(Grid(("dinov2_vits14", "resnet152"), ("nih",), ("slow",)),),
    hparams={{**_hparams(paper=False), "slow": {{}}}},
    cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)
'''


@pytest.fixture
def slow_project(project):
    project.makeconftest('pytest_plugins = ["fixtures.options", "fixtures.session", "fixtures.grid", '
                         '"fixtures.progress", "fixtures.cells"]')
    project.makepyfile(slow_profile=SLOW_PROFILE.format(pause=0.8))
    project.base_args += [f"--radbench-profile={project.path / 'slow_profile.py'}", "--radbench-no-report"]
    return project


LINE = "[[]radbench[]] {worker}{cell} · train · epoch ?/4 · *s*"


def test_xdist_run_without_s_shows_each_cells_live_line_and_cleans_up(slow_project):
    result = slow_project.runpytest_subprocess("benchmarks", *slow_project.base_args, "-n", "2",
                                               "--radbench-progress-every", "0.5", timeout=600)
    result.assert_outcomes(passed=2, skipped=1)          # skipped: no segmentation cells
    result.stdout.fnmatch_lines([LINE.format(worker="gw? ", cell="dinov2_vits14-nih-slow")],
                                consecutive=False)
    result.stdout.fnmatch_lines([LINE.format(worker="gw? ", cell="resnet152-nih-slow")])
    run_dir = next(p for p in slow_project.results.iterdir() if p.is_dir())
    assert not (run_dir / "progress").exists()           # the status files went with the session


def test_serial_run_shows_the_line_through_pytests_capture(slow_project):
    result = slow_project.runpytest_subprocess("benchmarks", *slow_project.base_args, "-k", "resnet",
                                               "--radbench-progress-every", "0.5", timeout=600)
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines([LINE.format(worker="", cell="resnet152-nih-slow")])


def test_collect_only_and_off_print_no_line_and_write_no_status(slow_project):
    result = slow_project.runpytest_subprocess("benchmarks", *slow_project.base_args, "--co", "-q")
    assert result.ret == 0 and "[radbench]" not in result.stdout.str()
    assert not list(slow_project.results.glob("*/progress"))
    result = slow_project.runpytest_subprocess("benchmarks", *slow_project.base_args, "-k", "resnet",
                                               "--radbench-progress", "off",
                                               "--radbench-progress-every", "0.5")
    result.assert_outcomes(passed=1, deselected=2)
    assert "[radbench]" not in result.stdout.str()
    bad = slow_project.runpytest_subprocess("benchmarks", *slow_project.base_args, "--radbench-progress",
                                            "loud")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--radbench-progress: 'loud' is not a mode. Fix: use one of auto, live*"])


def test_a_plain_line_starts_its_own_row_after_pytests_dots(tmp_path):
    from fixtures.progress import LiveDisplay
    Reporter(tmp_path / "tok-gw1.json", worker="gw1", clock=lambda: 0.0).start_cell("m-d-knn", "train")
    term = FakeTerminal()
    display = LiveDisplay(term, tmp_path, "tok-", live=False, every=1.0, since=0.0, clock=lambda: 3.0)
    term._tw.write("..")
    display.tick()
    term._tw.write(".")
    assert term.text == "..\n[radbench] gw1 m-d-knn · train · 3s\n."
    assert term._tw.width_of_current_line == 1           # pytest's bookkeeping saw our newline
