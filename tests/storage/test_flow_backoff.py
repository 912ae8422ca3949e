"""Backoff maths: exponential ceilings, cap, full jitter from injected entropy."""

from __future__ import annotations

import pytest

from ebas.flow import Backoff
from ebas.runtime import FakeEntropy


class Fixed:
    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize("attempt,ceiling", [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (50, 5.0)])
def test_ceiling_doubles_until_cap(attempt, ceiling):
    assert Backoff(base=0.5, cap=5.0).ceiling(attempt) == ceiling


def test_full_jitter_spans_zero_to_ceiling():
    b = Backoff(base=1.0, cap=100.0, multiplier=3.0)
    assert b.delay(3, Fixed(0.0)) == 0.0
    assert b.delay(3, Fixed(0.5)) == 4.5
    delays = [b.delay(2, FakeEntropy(i)) for i in range(200)]
    assert all(0 <= d < 3.0 for d in delays) and max(delays) > 2.5 and min(delays) < 0.5


def test_huge_attempts_do_not_overflow():
    assert Backoff(base=1.0, cap=7.0).ceiling(100_000) == 7.0


def test_deterministic_with_fake_entropy():
    b = Backoff()
    assert [b.delay(n, FakeEntropy(3)) for n in (1, 2, 3)] == [b.delay(n, FakeEntropy(3)) for n in (1, 2, 3)]


@pytest.mark.parametrize("kwargs", [{"base": -1}, {"cap": -1}, {"multiplier": 0.5}])
def test_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_attempt_starts_at_one():
    with pytest.raises(ValueError):
        Backoff().ceiling(0)
