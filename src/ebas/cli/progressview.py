"""How the CLI shows the progress of a long command (one source: :mod:`ebas.progress`).

* On a terminal (stderr), a live bar drawn with rich: phase, a bar with the share done,
  items and bytes done and total, rate, ETA and the current item. The figures (rate and
  ETA included) come from :class:`ebas.progress.Tracker`; the bar only draws them.
* With ``--json``: status lines on stdout, one JSON object per line
  (``{"type": "status", ...}``, see :meth:`ebas.progress.Status.to_json`) at most once per
  ``interval`` seconds and never before the first interval has passed (a command that is
  done within a second prints only its summary), then the summary object of the command
  on one line with ``"type": "summary"`` (:func:`emit_summary`).
* Otherwise (output not a terminal, or ``--quiet``): nothing; the command gets
  :data:`ebas.progress.NULL_PROGRESS` and pays nothing for progress.

The environment variable ``EBAS_PROGRESS_FPS`` sets how many updates per second are
shown (JSON status lines: default 1; the bar: default 4), as ``RESTIC_PROGRESS_FPS`` does.

Use::

    with progress_view(env) as progress:
        result = api.backup(repo, paths, progress=progress)
    emit_summary(env, result.to_json(), text)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import click

from ebas.cli.render import human_size
from ebas.progress import NULL_PROGRESS, Progress, Status, Tracker

JSON_INTERVAL = 1.0  # seconds between JSON status lines
BAR_REFRESH = 4  # redraws of the bar per second

# what one item is, per phase (the default: "items")
ITEM_NOUNS = {
    "backup": "files", "restore": "files", "catalog sync": "snapshots", "snapshots": "snapshots",
    "index": "segments", "packs": "packs", "read": "packs", "repack": "packs", "delete": "packs",
    "headers": "packs", "plan": "trees", "export": "blobs", "copy": "blobs", "wait": "backups",
}


def choose_mode(env, stderr=None) -> str:
    """``"json"``, ``"bar"`` or ``"none"`` for this invocation (see the module docstring)."""
    if env.quiet:
        return "none"
    if env.json:
        return "json"
    stream = stderr if stderr is not None else sys.stderr
    try:
        return "bar" if stream.isatty() else "none"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return "none"


def _fps_interval(default: float) -> float:
    """Seconds between updates: ``1 / EBAS_PROGRESS_FPS`` when that is a positive number."""
    try:
        fps = float(os.environ.get("EBAS_PROGRESS_FPS", ""))
    except ValueError:
        return default
    return 1.0 / fps if fps > 0 else default


@contextmanager
def progress_view(env, *, clock=None, interval: float | None = None) -> Iterator[Progress]:
    """A :class:`Progress` for one command, shown as the invocation asks; the view ends
    (the bar is removed, ``finish`` is reported) when the block ends, also on errors.
    ``clock`` (an :class:`ebas.runtime.Clock`; default the system's) is for tests."""
    mode = choose_mode(env)
    clocked = {"clock": clock} if clock is not None else {}
    if mode == "none":
        yield NULL_PROGRESS
        return
    if mode == "json":
        interval = interval if interval is not None else _fps_interval(JSON_INTERVAL)
        printer = JsonStatusPrinter(clock=clock, interval=interval)
        tracker = Tracker(interval=interval, listeners=[printer], **clocked)
        try:
            yield tracker
        finally:
            tracker.finish()
        return
    bar = Bar(Tracker(**clocked), refresh=1.0 / (interval if interval is not None else _fps_interval(1 / BAR_REFRESH)))
    with bar:
        yield bar.tracker


class JsonStatusPrinter:
    """A Tracker listener that prints statuses as JSON lines on stdout: at most one per
    ``interval``, the first only after ``interval`` has passed, none for the end (the
    summary follows)."""

    def __init__(self, *, clock=None, interval: float = JSON_INTERVAL, out=None) -> None:
        self._monotonic = clock.monotonic if clock is not None else time.monotonic
        self._interval = interval
        self._last = self._monotonic()
        self._lock = threading.Lock()
        self._out = out

    def __call__(self, status: Status) -> None:
        if status.finished:
            return
        now = self._monotonic()
        with self._lock:
            if now - self._last < self._interval:
                return
            self._last = now
            click.echo(json.dumps(status.to_json(), ensure_ascii=True, default=str), file=self._out)


def emit_summary(env, data: dict, text: str | None = None) -> None:
    """The command's result: with ``--json`` one line, the object with ``"type": "summary"``
    added (its other fields unchanged); else ``text`` as :meth:`Env.emit` prints it."""
    if hasattr(data, "to_json"):
        data = data.to_json()
    if env.json:
        click.echo(json.dumps({**data, "type": "summary"}, default=str, ensure_ascii=True))
    else:
        env.emit(data, text)


class Bar:
    """A live rich display on stderr of a :class:`Tracker`'s status (polled on redraw)."""

    def __init__(self, tracker: Tracker, console=None, refresh: float = BAR_REFRESH) -> None:
        from rich.console import Console

        self.tracker = tracker
        self.refresh = refresh  # redraws per second
        self.console = console or Console(stderr=True)
        self._live = None

    def __enter__(self) -> Bar:
        from rich.live import Live

        self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=self.refresh,
                          transient=True)
        self._live.start(refresh=True)
        return self

    def __exit__(self, *exc) -> None:
        self.tracker.finish()
        if self._live is not None:
            self._live.stop()

    def render(self):
        """The bar of the tracker's status now."""
        return render_status(self.tracker.status())


def render_status(st: Status):
    """A rich renderable of ``st`` in three lines that fit any width: the phase, a bar and
    the share done; ``files 10/24  1.0 MiB/3.2 MiB  2.0 MiB/s  ETA 0:00:01``; the current
    item (cut to the width)."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    noun = ITEM_NOUNS.get(st.phase, "items")
    frac = st.fraction
    top = Table.grid(padding=(0, 1), expand=True)
    top.add_column(no_wrap=True)
    top.add_column(ratio=1)  # the bar takes the width that is left
    top.add_column(no_wrap=True, justify="right")
    top.add_row(Text(st.phase, style="bold"), ProgressBar(total=None if frac is None else 1.0, completed=frac or 0.0),
                Text("" if frac is None else f"{frac * 100:5.1f}%"))
    figures = [f"{noun} {st.items_done}" + (f"/{st.items_total}" if st.items_total is not None else "")]
    if st.bytes_done or st.bytes_total:
        size = human_size(st.bytes_done) + (f"/{human_size(st.bytes_total)}" if st.bytes_total is not None else "")
        figures += [size, f"{human_size(st.rate_bps)}/s"]
    else:
        figures.append(f"{st.items_per_s:.1f} {noun}/s")
    figures.append(f"ETA {_clock_time(st.eta_s)}" if st.eta_s is not None else f"elapsed {_clock_time(st.elapsed_s)}")
    if st.errors:
        figures.append(f"{st.errors} error(s)")
    lines = [top, Text("  ".join(figures), no_wrap=True, overflow="ellipsis")]
    if st.current:
        lines.append(Text(st.current, style="dim", no_wrap=True, overflow="ellipsis"))
    return Group(*lines)


def _clock_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
