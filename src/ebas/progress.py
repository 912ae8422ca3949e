"""The one progress protocol of ebas, a tracker that computes rate and ETA, and a null
implementation.

Long jobs (backup, restore, check, prune, catalog sync, export, transfer, verification)
report through :class:`Progress`: they ``start`` a phase with the totals they know,
``add_total`` as a scan discovers more, ``advance`` as items and bytes are done, report
``error`` for things that failed without stopping the job, and ``finish``. Front ends
never compute figures themselves: :class:`Tracker` turns the events into a
:class:`Status` (done and total, rate, ETA) using an injected clock, and calls its
listeners at most once per ``interval`` seconds (and always at a phase change and at
the end). The CLI renders those statuses as a progress bar (rich) or JSON status lines.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable

from ebas.runtime import SYSTEM_CLOCK

MAX_ERRORS_KEPT = 1000  # a Tracker keeps this many error messages (and counts them all)


class Progress:
    """Receives progress events. Every method is a no-op here; jobs call them freely.

    Implementations must be thread-safe: jobs call them from worker threads."""

    def start(self, phase: str, *, items_total: int | None = None, bytes_total: int | None = None) -> None:
        """A new phase begins (``"scan"``, ``"backup"``, ``"restore"``, ``"check"`` ...);
        counters restart at zero. Totals are ``None`` when not known (yet)."""

    def add_total(self, *, items: int = 0, bytes: int = 0) -> None:  # noqa: A002 - the protocol's word
        """Raise the current phase's totals (a scan found more to do); a negative figure
        lowers a total that was an estimate (a hard link restored without data)."""

    def advance(self, *, items: int = 0, bytes: int = 0, current: str | None = None) -> None:  # noqa: A002
        """``items`` and ``bytes`` more are done; ``current`` names what is being worked on."""

    def error(self, message: str) -> None:
        """Something failed without stopping the job (a file could not be read)."""

    def finish(self) -> None:
        """The job is over (successfully or not); a front end draws its last status."""

    # The older file-level event, kept as a shorthand of ``advance``.
    def file_done(self, path: str, size: int) -> None:
        """A file was processed: one item and ``size`` bytes done."""
        self.advance(items=1, bytes=size, current=path)


NULL_PROGRESS = Progress()


@dataclass(frozen=True)
class Status:
    """Where a job stands: the figures every front end shows. Rates are bytes (and
    items) per second over the last few seconds; ``eta_s`` is None while unknown."""

    phase: str
    items_done: int
    items_total: int | None
    bytes_done: int
    bytes_total: int | None
    elapsed_s: float
    rate_bps: float
    items_per_s: float
    eta_s: float | None
    current: str | None
    errors: int
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1], by bytes when their total is known, else by items."""
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.items_total:
            return min(1.0, self.items_done / self.items_total)
        return None

    def to_json(self) -> dict:
        """The status as a JSON object (``type: "status"``), as ``--json`` prints it."""
        d = asdict(self)
        d["type"] = "status"
        d["percent_done"] = None if self.fraction is None else round(self.fraction * 100, 2)
        return d


class _Window:
    """Samples of (time, bytes, items) over the last ``span`` seconds, for rates. A sample
    is kept at most every ``span / 50`` seconds, so a job advancing a million times a
    second costs a comparison per event, not a list that grows."""

    def __init__(self, span: float = 5.0) -> None:
        self.span = span
        self.step = span / 50
        self.samples: deque[tuple[float, int, int]] = deque()

    def add(self, t: float, b: int, i: int) -> None:
        samples = self.samples
        if samples and t - samples[-1][0] < self.step:
            return
        samples.append((t, b, i))
        while len(samples) > 2 and t - samples[1][0] >= self.span:
            samples.popleft()

    def rates(self, now: float, b: int, i: int) -> tuple[float, float]:
        """Bytes and items per second from the oldest sample to (``now``, ``b``, ``i``)."""
        if not self.samples:
            return 0.0, 0.0
        t0, b0, i0 = self.samples[0]
        dt = now - t0
        if dt <= 0:
            return 0.0, 0.0
        return (b - b0) / dt, (i - i0) / dt


class Tracker(Progress):
    """A :class:`Progress` that keeps the figures and computes rate and ETA in one place.

    ``clock`` gives ``monotonic()`` (inject a fake one in tests); ``listeners`` are
    called with a :class:`Status` at most every ``interval`` seconds while work advances,
    and always on ``start`` and ``finish``. ``status()`` can be polled at any time."""

    def __init__(self, *, clock=SYSTEM_CLOCK, interval: float = 0.25,
                 listeners: list[Callable[[Status], None]] | None = None, window_s: float = 5.0) -> None:
        self._clock = clock
        self._interval = interval
        self._listeners = list(listeners or [])
        self._lock = threading.Lock()
        self._window_s = window_s
        self._t0 = clock.monotonic()
        self._reset("starting", None, None)
        self.errors: list[str] = []  # the first MAX_ERRORS_KEPT messages
        self._error_count = 0
        self._finished = False
        self._last_emit = float("-inf")

    def _reset(self, phase: str, items_total: int | None, bytes_total: int | None) -> None:
        self._phase = phase
        self._items_done = 0
        self._bytes_done = 0
        self._items_total = items_total
        self._bytes_total = bytes_total
        self._current: str | None = None
        self._phase_t0 = self._clock.monotonic()
        self._window = _Window(self._window_s)
        self._window.add(self._phase_t0, 0, 0)

    def add_listener(self, listener: Callable[[Status], None]) -> None:
        """Call ``listener`` with every status emitted from now on."""
        with self._lock:
            self._listeners.append(listener)

    # ------------------------------------------------------------------ events
    def start(self, phase: str, *, items_total: int | None = None, bytes_total: int | None = None) -> None:
        with self._lock:
            self._reset(phase, items_total, bytes_total)
        self._emit(force=True)

    def add_total(self, *, items: int = 0, bytes: int = 0) -> None:  # noqa: A002
        with self._lock:
            if items:
                self._items_total = (self._items_total or 0) + items
            if bytes:
                self._bytes_total = (self._bytes_total or 0) + bytes

    def advance(self, *, items: int = 0, bytes: int = 0, current: str | None = None) -> None:  # noqa: A002
        now = self._clock.monotonic()
        with self._lock:  # one lock and one clock read per event: jobs call this per file
            self._items_done += items
            self._bytes_done += bytes
            if current is not None:
                self._current = current
            self._window.add(now, self._bytes_done, self._items_done)
            due = bool(self._listeners) and now - self._last_emit >= self._interval
            if due:
                self._last_emit = now
        if due:
            self._notify()

    def error(self, message: str) -> None:
        with self._lock:
            self._error_count += 1
            if len(self.errors) < MAX_ERRORS_KEPT:
                self.errors.append(message)
        self._emit()

    def finish(self) -> None:
        with self._lock:
            self._finished = True
        self._emit(force=True)

    # ------------------------------------------------------------------ figures
    def status(self) -> Status:
        """The figures now."""
        with self._lock:
            now = self._clock.monotonic()
            rate, irate = self._window.rates(now, self._bytes_done, self._items_done)
            elapsed = now - self._phase_t0
            eta = None
            if self._bytes_total is not None and rate > 0:
                eta = max(0.0, (self._bytes_total - self._bytes_done) / rate)
            elif self._items_total is not None and irate > 0:
                eta = max(0.0, (self._items_total - self._items_done) / irate)
            return Status(self._phase, self._items_done, self._items_total, self._bytes_done, self._bytes_total,
                          round(elapsed, 6), rate, irate, eta, self._current, self._error_count, self._finished)

    def _emit(self, force: bool = False) -> None:
        if not self._listeners:
            return
        now = self._clock.monotonic()
        with self._lock:
            if not force and now - self._last_emit < self._interval:
                return
            self._last_emit = now
        self._notify()

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        st = self.status()
        for listener in listeners:
            listener(st)


class Fanout(Progress):
    """Passes every event to several :class:`Progress` receivers (a tracker and a log)."""

    def __init__(self, *targets: Progress) -> None:
        self.targets = [t for t in targets if t is not None]

    def start(self, phase: str, *, items_total: int | None = None, bytes_total: int | None = None) -> None:
        for t in self.targets:
            t.start(phase, items_total=items_total, bytes_total=bytes_total)

    def add_total(self, *, items: int = 0, bytes: int = 0) -> None:  # noqa: A002
        for t in self.targets:
            t.add_total(items=items, bytes=bytes)

    def advance(self, *, items: int = 0, bytes: int = 0, current: str | None = None) -> None:  # noqa: A002
        for t in self.targets:
            t.advance(items=items, bytes=bytes, current=current)

    def error(self, message: str) -> None:
        for t in self.targets:
            t.error(message)

    def finish(self) -> None:
        for t in self.targets:
            t.finish()
