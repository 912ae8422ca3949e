"""A token bucket that many streams share: the one rate limit of a link.

Tokens are bytes. They accrue at ``rate`` bytes per second up to ``burst`` bytes (the
bucket depth). :meth:`TokenBucket.reserve` takes ``n`` bytes at time ``now`` and returns
how long the caller must wait before sending them; the bucket may go into debt, so a
reservation larger than the depth is still granted (after the wait it implies) and
concurrent callers queue up fairly in the order they reserved, as in Go's
``x/time/rate`` reservations and rclone's ``--bwlimit``. Over any interval of length T
the bytes granted are at most ``burst + rate * T``: no burst above the depth.

Pure: time is passed in (seconds, monotonic), nothing sleeps here. ``rate`` may change
at any moment (a schedule crossing a boundary, an adaptive controller): ``math.inf``
means unlimited, ``0`` means paused (reserve returns ``math.inf`` until the rate rises).
"""

from __future__ import annotations

import math
import threading


class TokenBucket:
    """A thread-safe token bucket in bytes; see the module text for its promises."""

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        if rate < 0 or (isinstance(rate, float) and math.isnan(rate)):
            raise ValueError(f"rate must be >= 0 bytes/s, got {rate}")
        self._lock = threading.Lock()
        self._rate = float(rate)
        self._burst = float(burst) if burst is not None else self._default_burst(rate)
        if self._burst <= 0:
            raise ValueError(f"burst must be > 0 bytes, got {burst}")
        self._tokens = self._burst
        self._stamp = now

    @staticmethod
    def _default_burst(rate: float) -> float:
        """A tenth of a second at ``rate``, at least 64 KiB (one socket write), at most 64 MiB."""
        if math.isinf(rate) or rate <= 0:
            return 1 << 20
        return min(64 << 20, max(64 << 10, rate / 10))

    @property
    def rate(self) -> float:
        """Bytes per second now (``inf`` unlimited, ``0`` paused)."""
        return self._rate

    @property
    def burst(self) -> float:
        """The bucket depth in bytes."""
        return self._burst

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            if math.isinf(self._rate):
                self._tokens = self._burst
            else:
                self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def set_rate(self, rate: float, *, now: float, burst: float | None = None) -> None:
        """Change the rate (and optionally the depth) from ``now`` on; tokens earned at the
        old rate until ``now`` are kept, debt is kept too."""
        if rate < 0:
            raise ValueError(f"rate must be >= 0 bytes/s, got {rate}")
        with self._lock:
            self._refill(now)
            self._rate = float(rate)
            if burst is not None:
                if burst <= 0:
                    raise ValueError(f"burst must be > 0 bytes, got {burst}")
                self._burst = float(burst)
            self._tokens = min(self._tokens, self._burst)
            if math.isinf(self._rate):
                self._tokens = self._burst

    def reserve(self, n: int, *, now: float) -> float:
        """Take ``n`` bytes at ``now``; the seconds to wait before sending them (0 if none).

        ``math.inf`` means the bucket is paused (rate 0) and nothing was taken: call again
        when the rate changes."""
        if n < 0:
            raise ValueError(f"cannot reserve a negative amount ({n})")
        with self._lock:
            self._refill(now)
            if math.isinf(self._rate):
                return 0.0
            if self._rate == 0:
                return math.inf
            self._tokens -= n
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self._rate

    def give_back(self, n: int, *, now: float) -> None:
        """Return ``n`` reserved bytes that were not sent (a cancelled or failed write)."""
        with self._lock:
            self._refill(now)
            self._tokens = min(self._burst, self._tokens + n)

    def available(self, *, now: float) -> float:
        """Tokens in the bucket at ``now`` (negative while in debt)."""
        with self._lock:
            self._refill(now)
            return self._tokens
