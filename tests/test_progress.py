"""The progress protocol: figures, rate and ETA from an injected clock, throttling, and the
CLI's renderings of a status (JSON status lines, the rich bar)."""

from __future__ import annotations

import io
import json

from rich.console import Console

from ebas.cli.progressview import JsonStatusPrinter, choose_mode, emit_summary, render_status
from ebas.progress import NULL_PROGRESS, Fanout, Tracker
from ebas.runtime import FakeClock


def test_tracker_figures_rate_and_eta_come_from_the_clock():
    clock = FakeClock()
    t = Tracker(clock=clock)
    t.start("backup", items_total=10, bytes_total=1000)
    clock.advance(2)
    t.advance(items=2, bytes=200, current="/a")
    st = t.status()
    assert (st.phase, st.items_done, st.items_total, st.bytes_done, st.bytes_total) == ("backup", 2, 10, 200, 1000)
    assert st.rate_bps == 100 and st.items_per_s == 1 and st.eta_s == 8 and st.elapsed_s == 2
    assert st.current == "/a" and st.fraction == 0.2 and st.to_json()["percent_done"] == 20
    t.add_total(items=5, bytes=500)
    assert t.status().items_total == 15 and t.status().bytes_total == 1500
    t.add_total(bytes=-100)  # an estimate corrected downwards
    assert t.status().bytes_total == 1400


def test_rate_follows_the_last_seconds_not_the_whole_phase():
    clock = FakeClock()
    t = Tracker(clock=clock, window_s=5)
    t.start("restore", bytes_total=10_000)
    for _ in range(10):  # 100 B/s for 10 s ...
        clock.advance(1)
        t.advance(bytes=100)
    for _ in range(10):  # ... then 1000 B/s
        clock.advance(1)
        t.advance(bytes=1000)
    st = t.status()
    assert 900 <= st.rate_bps <= 1000
    assert st.eta_s == 0.0  # more done than the (estimated) total: never a negative ETA


def test_unknown_totals_give_no_eta_and_no_fraction():
    clock = FakeClock()
    t = Tracker(clock=clock)
    t.start("export")
    clock.advance(1)
    t.advance(items=3)
    st = t.status()
    assert st.items_total is None and st.eta_s is None and st.fraction is None
    assert st.to_json()["percent_done"] is None and st.to_json()["type"] == "status"


def test_listeners_are_throttled_but_see_every_phase_change_and_the_end():
    clock = FakeClock()
    seen = []
    t = Tracker(clock=clock, interval=1.0, listeners=[seen.append])
    t.start("a", items_total=100)
    for _ in range(100):  # 100 events in 0.99 s: no emission (the start emitted)
        clock.advance(0.0099)
        t.advance(items=1)
    assert [s.phase for s in seen] == ["a"]
    clock.advance(0.02)
    t.advance(items=0)
    assert len(seen) == 2 and seen[-1].items_done == 100
    t.start("b")
    t.finish()
    assert [s.phase for s in seen] == ["a", "a", "b", "b"] and seen[-1].finished


def test_window_keeps_few_samples_however_many_events():
    clock = FakeClock()
    t = Tracker(clock=clock, window_s=5)
    t.start("backup")
    for _ in range(100_000):
        clock.advance(0.0001)
        t.advance(items=1)
    assert len(t._window.samples) <= 52


def test_errors_are_counted_and_kept():
    t = Tracker(clock=FakeClock())
    t.start("backup")
    t.error("cannot read /x")
    assert t.errors == ["cannot read /x"] and t.status().errors == 1


def test_fanout_and_null_progress():
    a, b = Tracker(clock=FakeClock()), Tracker(clock=FakeClock())
    f = Fanout(a, None, b)
    f.start("check", items_total=2)
    f.add_total(items=1)
    f.advance(items=3, bytes=7, current="x")
    f.error("e")
    f.finish()
    for t in (a, b):
        st = t.status()
        assert (st.items_done, st.items_total, st.bytes_done, st.errors, st.finished) == (3, 3, 7, 1, True)
    NULL_PROGRESS.start("x")
    NULL_PROGRESS.file_done("/f", 10)  # the older event maps onto advance


def test_file_done_is_advance():
    t = Tracker(clock=FakeClock())
    t.start("backup")
    t.file_done("/a", 10)
    assert (t.status().items_done, t.status().bytes_done, t.status().current) == (1, 10, "/a")


# ------------------------------------------------------------------ the CLI views
class _Env:
    def __init__(self, json_out=False, quiet=False):
        self.json, self.quiet = json_out, quiet
        self.emitted = []

    def emit(self, data, text=None):
        self.emitted.append((data, text))


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_mode_follows_terminal_json_and_quiet():
    assert choose_mode(_Env(), stderr=_Tty()) == "bar"
    assert choose_mode(_Env(), stderr=io.StringIO()) == "none"
    assert choose_mode(_Env(json_out=True), stderr=io.StringIO()) == "json"
    assert choose_mode(_Env(quiet=True), stderr=_Tty()) == "none"
    assert choose_mode(_Env(json_out=True, quiet=True), stderr=_Tty()) == "none"


def test_json_status_lines_wait_an_interval_and_skip_the_end():
    clock = FakeClock()
    out = io.StringIO()
    printer = JsonStatusPrinter(clock=clock, interval=1.0, out=out)
    t = Tracker(clock=clock, interval=1.0, listeners=[printer])
    t.start("backup", items_total=4)  # at 0 s: not printed (a fast command prints only its summary)
    for _ in range(4):
        clock.advance(0.6)
        t.advance(items=1, bytes=10, current="/f")
    t.finish()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["items_done"] for d in lines] == [2, 4]
    assert all(d["type"] == "status" and d["phase"] == "backup" and not d["finished"] for d in lines)


def test_summary_is_one_line_with_type_and_unchanged_fields(capsys):
    emit_summary(_Env(json_out=True), {"files": 3, "bytes": 10})
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and json.loads(line) == {"files": 3, "bytes": 10, "type": "summary"}
    env = _Env()
    emit_summary(env, {"files": 3}, "3 files")
    assert env.emitted == [({"files": 3}, "3 files")]


def test_bar_shows_phase_percentage_counts_rate_eta_and_current_file():
    clock = FakeClock()
    t = Tracker(clock=clock)
    t.start("backup", items_total=24, bytes_total=4 << 20)
    clock.advance(1)
    t.advance(items=6, bytes=1 << 20, current="/srv/share/report.pdf")
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(render_status(t.status()))
    text = console.file.getvalue()
    for part in ("backup", "25.0%", "files 6/24", "1.0 MiB/4.0 MiB", "1.0 MiB/s", "ETA 0:00:03", "/srv/share/report.pdf"):
        assert part in text, (part, text)
    t.start("snapshots")  # no totals, no bytes
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(render_status(t.status()))
    assert "snapshots 0" in console.file.getvalue()


def test_error_messages_are_capped_but_all_counted():
    from ebas.progress import MAX_ERRORS_KEPT

    t = Tracker(clock=FakeClock())
    for i in range(MAX_ERRORS_KEPT + 5):
        t.error(f"e{i}")
    assert len(t.errors) == MAX_ERRORS_KEPT and t.status().errors == MAX_ERRORS_KEPT + 5


def test_progress_view_json_mode_prints_status_lines_then_the_summary(capsys):
    from ebas.cli.progressview import progress_view

    clock = FakeClock()
    env = _Env(json_out=True)
    with progress_view(env, clock=clock, interval=1.0) as p:
        p.start("restore", items_total=2, bytes_total=20)
        clock.advance(1.5)
        p.advance(items=1, bytes=10, current="/r/a")
        clock.advance(0.2)
        p.advance(items=1, bytes=10, current="/r/b")  # within the interval: not printed
    emit_summary(env, {"files": 2, "bytes": 20})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["type"] for d in lines] == ["status", "summary"]
    assert lines[0]["items_done"] == 1 and lines[0]["percent_done"] == 50 and lines[0]["current"] == "/r/a"
    assert lines[1] == {"files": 2, "bytes": 20, "type": "summary"}


def test_progress_view_draws_a_bar_on_a_terminal_and_nothing_otherwise(monkeypatch):
    from ebas.cli.progressview import progress_view

    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    with progress_view(_Env()) as p:
        p.start("backup", items_total=3, bytes_total=300)
        p.advance(items=2, bytes=200, current="/src/file-b")
    text = tty.getvalue()
    assert "backup" in text and "files 2/3" in text and "66.7%" in text and "/src/file-b" in text
    piped = io.StringIO()
    monkeypatch.setattr("sys.stderr", piped)
    with progress_view(_Env()) as p:
        assert p is NULL_PROGRESS
        p.start("backup")
    assert piped.getvalue() == ""
