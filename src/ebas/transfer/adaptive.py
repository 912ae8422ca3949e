"""Adaptive bandwidth (``--adaptive``): yield the link to other traffic, take it back when idle.

Delay-based, in the spirit of LEDBAT (RFC 6817): a queue building up at the bottleneck
shows as a longer round trip before it shows as loss. The controller measures the round
trip of a tiny request (``probe``, e.g. a ``stat`` of a name that does not exist) every
``interval`` seconds; the **base delay** is the smallest round trip seen in the last
``base_window`` seconds, the **queueing delay** the smallest of the last ``filter``
samples minus the base. Each step moves the link's rate:

* queueing delay under ``target``: up by ``gain * off_target`` of the current rate
  (``off_target = (target - queueing) / target``, so it climbs fastest on an idle link);
* above it: down in proportion (at most halved per step), as LEDBAT does when the
  delay says someone else is queueing too;

never below ``min_rate`` nor above ``max_rate`` (the ``--bwlimit``, if one is set).
:meth:`AdaptiveController.update` is the pure rule (tested with made-up samples);
:meth:`start` runs it in a thread on the injected clock.
"""

from __future__ import annotations

import collections
import math
import threading
from typing import Callable

from ebas.runtime import SYSTEM_CLOCK, Clock


class AdaptiveController:
    """Drives ``link.set_rate`` from round-trip samples (see the module text)."""

    def __init__(self, link, probe: Callable[[], None], *, target: float = 0.05, interval: float = 0.2,
                 gain: float = 0.25, min_rate: float = 256 * 1024, max_rate: float = math.inf,
                 start_rate: float = 4 << 20, base_window: float = 120.0, filter: int = 3,  # noqa: A002
                 clock: Clock | None = None):
        self.link, self.probe = link, probe
        self.target, self.interval, self.gain = target, interval, gain
        self.min_rate, self.max_rate = min_rate, max_rate
        self.base_window = base_window
        self.clock = clock or SYSTEM_CLOCK
        self.rate = min(max(start_rate, min_rate), max_rate)
        self._bases: collections.deque[tuple[float, float]] = collections.deque()
        self._recent: collections.deque[float] = collections.deque(maxlen=filter)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.history: list[tuple[float, float, float]] = []  # (time, queueing delay, rate)
        link.set_rate(self.rate)

    def update(self, rtt: float, now: float) -> float:
        """Take one round-trip sample taken at ``now``; the new rate (also set on the link)."""
        self._bases.append((now, rtt))
        while self._bases and now - self._bases[0][0] > self.base_window:
            self._bases.popleft()
        base = min(r for _, r in self._bases)
        self._recent.append(rtt)
        queueing = max(0.0, min(self._recent) - base)
        off = max(-1.0, min(1.0, (self.target - queueing) / self.target))
        if off >= 0:
            rate = self.rate * (1 + self.gain * off)
        else:
            rate = self.rate * max(0.5, 1 + 0.5 * off)
        self.rate = min(self.max_rate, max(self.min_rate, rate))
        self.link.set_rate(self.rate)
        self.history.append((now, queueing, self.rate))
        return self.rate

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = self.clock.monotonic()
            try:
                self.probe()
            except Exception:  # noqa: BLE001 - a failed probe (cut link) says nothing about queueing
                self.clock.sleep(self.interval)
                continue
            t1 = self.clock.monotonic()
            self.update(t1 - t0, t1)
            self.clock.sleep(max(0.0, self.interval - (t1 - t0)))

    def start(self) -> "AdaptiveController":
        """Probe and adjust in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="ebas-adaptive")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop probing (the link keeps the last rate)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
