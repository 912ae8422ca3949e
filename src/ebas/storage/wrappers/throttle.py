"""``ThrottledStore``: every byte read or written goes through one shared token bucket.

A :class:`Link` is one bandwidth budget: a :class:`~ebas.flow.tokenbucket.TokenBucket`,
optionally driven by a :class:`~ebas.flow.timetable.Timetable`, and the injected
``Clock`` it sleeps on. Every ``ThrottledStore`` (and every stream of every job) built
on the same ``Link`` shares its rate. Writes pay before the bytes leave (``put``,
``upload_part``, streamed ``write``); reads pay when the bytes have arrived (their size
is known only then), so a read puts the bucket in debt and the next caller waits.

At a fixed rate each request is taken whole, in the order requests arrive. Under a
timetable or a rate set live (adaptive), bytes are taken in slices of about 50 ms at the
current rate (at most ``Link.SLICE``) so that a long transfer sees a
timetable boundary, a pause (rate 0) or a live ``set_rate`` within one slice. A wall
clock that jumps (forwards past a boundary, or backwards) makes the timetable be read
again at the next slice; the bucket itself runs on monotonic time and never sees a jump. The bucket
starts empty: a new link does not open with a burst of one bucket depth, so a short run
already holds the limit. While the rate is 0 (``off`` in a timetable, or paused), a
caller sleeps until the timetable's next change (or polls every ``pause_poll`` seconds
when no timetable drives the rate).

The wrapper sits between the backend and the retry wrapper (see
:mod:`ebas.storage.stack`): a retried request sends its bytes again and pays again.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone, tzinfo
from typing import Iterable, Iterator

from ebas.errors import UsageError
from ebas.flow.timetable import Timetable
from ebas.flow.tokenbucket import TokenBucket
from ebas.runtime import SYSTEM_CLOCK, Clock
from ebas.storage.base import ObjectWriter, PartInfo, Store
from ebas.storage.wrappers.base import StoreWrapper


class Link:
    """One bandwidth budget shared by every store and stream given it.

    ``rate`` is bytes/s (``inf`` unlimited, ``0`` paused) or a :class:`Timetable` whose
    rate is applied live as the clock crosses its boundaries (wall-clock time in ``tz``,
    the local zone by default). ``bytes`` counts every byte that went through.
    """

    SLICE = 1 << 20

    def __init__(self, rate: float | Timetable = math.inf, *, clock: Clock | None = None,
                 burst: float | None = None, tz: tzinfo | None = None, pause_poll: float = 1.0) -> None:
        self.clock = clock or SYSTEM_CLOCK
        self.timetable = rate if isinstance(rate, Timetable) else None
        self.tz = tz
        self.pause_poll = pause_poll
        self._lock = threading.Lock()
        self._next_change: float | None = None  # wall seconds of the timetable's next boundary
        self._evaluated_at = 0.0  # wall seconds when the timetable was last read (a jump back re-reads it)
        now = self.clock.monotonic()
        first = self._scheduled_rate() if self.timetable else float(rate)
        self.bucket = TokenBucket(first, burst, now=now)
        self.bucket.reserve(int(self.bucket.burst), now=now)  # start empty: no opening burst
        self.bytes = 0
        # a fixed rate takes each request whole: reservations queue first come first served,
        # so concurrent streams go one after another instead of paying slices in step and
        # then all sending at once (which leaves the bucket idle while they send)
        self._steady = self.timetable is None

    @classmethod
    def parse(cls, spec: str | float | Timetable | None, *, clock: Clock | None = None,
              tz: tzinfo | None = None) -> "Link":
        """A link from a rate (``50MiB/s``), a timetable string or object, or None (unlimited)."""
        if spec is None:
            return cls(math.inf, clock=clock, tz=tz)
        if isinstance(spec, (int, float, Timetable)):
            return cls(spec, clock=clock, tz=tz)
        text = str(spec).strip()
        if not text:
            raise UsageError("empty bandwidth limit", hint="give a rate like 50MiB/s or a timetable (see docs/units.md)")
        return cls(Timetable.parse(text), clock=clock, tz=tz)

    # ------------------------------------------------------------------ rate
    def _wall(self) -> datetime:
        when = datetime.fromtimestamp(self.clock.now(), timezone.utc)
        return when.astimezone(self.tz) if self.tz is not None else when.astimezone()

    def _scheduled_rate(self) -> float:
        assert self.timetable is not None
        self._evaluated_at = self.clock.now()
        when = self._wall()
        nxt = self.timetable.next_change(when)
        self._next_change = None if nxt is None else nxt.timestamp()
        return self.timetable.rate_at(when)

    def _follow_timetable(self) -> None:
        if self.timetable is None:
            return
        with self._lock:
            now = self.clock.now()
            jumped_back = now < self._evaluated_at
            if not jumped_back and (self._next_change is None or now < self._next_change):
                return
            rate = self._scheduled_rate()
            self.bucket.set_rate(rate, now=self.clock.monotonic(), burst=TokenBucket._default_burst(rate))

    @property
    def rate(self) -> float:
        """The rate in force now (bytes/s), following the timetable."""
        self._follow_timetable()
        return self.bucket.rate

    def set_rate(self, rate: float) -> None:
        """Override the rate from now on (an adaptive controller, a pause); the timetable,
        if any, takes over again at its next boundary. The depth follows the rate (a tenth
        of a second of it), so a lower rate does not inherit the burst of a higher one."""
        self._steady = False  # driven live from now on: take slices so changes apply at once
        self.bucket.set_rate(rate, now=self.clock.monotonic(), burst=TokenBucket._default_burst(rate))

    # ------------------------------------------------------------------ paying
    def take(self, n: int) -> None:
        """Block (on the clock) until ``n`` bytes may be sent, in slices."""
        while n > 0:
            self._follow_timetable()
            piece = n if self._steady else min(n, self._slice())
            wait = self.bucket.reserve(piece, now=self.clock.monotonic())
            if math.isinf(wait):  # paused: nothing taken, wait for the rate to change
                self.clock.sleep(self._pause_wait())
                continue
            if wait > 0:
                self.clock.sleep(wait)
            n -= piece
            with self._lock:
                self.bytes += piece

    def _slice(self) -> int:
        """About 50 ms of bytes at the current rate (16 KiB .. ``SLICE``): a wait computed
        at a low rate stays short, so a rate raised meanwhile takes effect at once."""
        rate = self.bucket.rate
        if math.isinf(rate) or rate <= 0:
            return self.SLICE
        return int(min(self.SLICE, max(16 * 1024, rate * 0.05)))

    def _pause_wait(self) -> float:
        if self._next_change is not None:
            return max(0.001, self._next_change - self.clock.now())
        return self.pause_poll


class _ThrottledWriter(ObjectWriter):
    def __init__(self, inner: ObjectWriter, link: Link):
        self._inner, self._link = inner, link

    def write(self, data: bytes) -> None:
        self._link.take(len(data))
        self._inner.write(data)

    def commit(self) -> None:
        self._inner.commit()

    def abort(self) -> None:
        self._inner.abort()


class ThrottledStore(StoreWrapper):
    """Sends and receives object bytes through ``link`` (see the module text); metadata
    calls (stat, list, parts, complete) are not metered."""

    def __init__(self, inner: Store, link: Link):
        super().__init__(inner)
        self.link = link

    def put(self, name: str, data: bytes) -> None:
        self.link.take(len(data))
        self.inner.put(name, data)

    def open_write(self, name: str) -> ObjectWriter:
        return _ThrottledWriter(self.inner.open_write(name), self.link)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(name, start, length)
        self.link.take(len(data))
        return data

    def get_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        for name, data in self.inner.get_many(names):
            self.link.take(len(data))
            yield name, data

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        self.link.take(len(data))
        return self.inner.upload_part(upload_id, number, data)
