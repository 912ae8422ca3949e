"""Exponential backoff with full jitter.

``Backoff(base, cap, multiplier).delay(attempt, entropy)`` is the time to wait before
retry number ``attempt`` (1 for the first retry): a uniformly random value in
``[0, min(cap, base * multiplier ** (attempt - 1)))``. Full jitter spreads retries of
many clients hitting one struggling store (see the AWS architecture blog, "Exponential
Backoff And Jitter"). Pure: randomness comes from the caller's entropy source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class RandomSource(Protocol):
    """Anything with ``random() -> float in [0, 1)``, e.g. :class:`ebas.runtime.Entropy`."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class Backoff:
    """Parameters of exponential backoff; all times in seconds.

    ``base`` is the ceiling of the first delay, each further retry multiplies it by
    ``multiplier`` and no delay exceeds ``cap``.
    """

    base: float = 0.2
    cap: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"backoff base and cap must be >= 0, got {self.base}, {self.cap}")
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier must be >= 1, got {self.multiplier}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay before retry ``attempt`` (>= 1), without jitter."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        try:
            raw = self.base * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.cap
        return min(self.cap, raw)

    def delay(self, attempt: int, entropy: RandomSource) -> float:
        """A full-jitter delay in ``[0, ceiling(attempt))`` drawn from ``entropy``."""
        return entropy.random() * self.ceiling(attempt)
