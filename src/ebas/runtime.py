"""Clock and entropy: the only place ebas touches wall time, monotonic time or OS randomness.

Everything that needs time or randomness takes a ``Clock`` / ``Entropy`` so tests can
inject a ``FakeClock`` or a seeded ``FakeEntropy`` and make schedules and faults
deterministic.
"""

from __future__ import annotations

import os
import random
import threading
import time


class Clock:
    """Wall clock (ns since the epoch), monotonic seconds, and sleep."""

    def now_ns(self) -> int:
        """Wall-clock time in nanoseconds since the Unix epoch."""
        return time.time_ns()

    def now(self) -> float:
        """Wall-clock time in seconds since the Unix epoch."""
        return self.now_ns() / 1e9

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)


class FakeClock(Clock):
    """A clock that only moves when told to; ``sleep`` advances it instantly."""

    def __init__(self, start_ns: int = 1_700_000_000 * 10**9):
        self._ns = start_ns
        self._mono = 0.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now_ns(self) -> int:
        with self._lock:
            return self._ns

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both wall and monotonic time forward."""
        with self._lock:
            self._ns += int(seconds * 1e9)
            self._mono += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)


class Entropy:
    """Random bytes for keys and nonces (OS CSPRNG) and floats for jitter."""

    def token_bytes(self, n: int) -> bytes:
        """``n`` cryptographically secure random bytes."""
        return os.urandom(n)

    def random(self) -> float:
        """A float in [0, 1) for jitter and sampling (not for secrets)."""
        return random.random()


class FakeEntropy(Entropy):
    """Deterministic entropy from a seed, for tests only: never use for real keys."""

    def __init__(self, seed: int = 0):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def token_bytes(self, n: int) -> bytes:
        with self._lock:
            return self._rng.randbytes(n)

    def random(self) -> float:
        with self._lock:
            return self._rng.random()


SYSTEM_CLOCK = Clock()
SYSTEM_ENTROPY = Entropy()
