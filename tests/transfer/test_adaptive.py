"""The adaptive (delay-based) rate rule with made-up round trips, and its wiring."""

from __future__ import annotations

import math

import pytest

from ebas.errors import UsageError
from ebas.runtime import FakeClock
from ebas.storage.wrappers.throttle import Link
from ebas.transfer import jobs
from ebas.transfer.adaptive import AdaptiveController

MiB = 1 << 20


def controller(**kw):
    link = Link(math.inf, clock=FakeClock())
    kw.setdefault("start_rate", 1 * MiB)
    return link, AdaptiveController(link, probe=lambda: None, target=0.05, **kw)


def test_an_idle_link_is_climbed_up_to_the_ceiling():
    link, c = controller(max_rate=8 * MiB)
    rates = [c.update(0.040, t * 0.2) for t in range(40)]
    assert rates == sorted(rates) and rates[-1] == 8 * MiB and link.rate == 8 * MiB
    assert rates[0] == pytest.approx(1.25 * MiB)  # gain 0.25 at full off-target


def test_queueing_delay_above_target_backs_off_at_most_by_half_per_step():
    link, c = controller(start_rate=8 * MiB, min_rate=512 * 1024)
    for t in range(5):
        c.update(0.040, t * 0.2)  # base 40 ms
    before = c.rate
    after = c.update(0.040 + 0.150, 1.2)  # one sample is not enough (min of the last three)
    assert after >= before
    c.update(0.190, 1.4)
    r = c.update(0.190, 1.6)  # now every recent sample says 150 ms of queueing: 3x the target
    assert r == pytest.approx(c.history[-2][2] * 0.5)
    for t in range(20):
        c.update(0.190, 2 + t * 0.2)
    assert c.rate == 512 * 1024 and link.rate == 512 * 1024


def test_delay_at_target_holds_the_rate():
    link, c = controller(start_rate=4 * MiB)
    c.update(0.040, 0)
    for t in range(1, 10):
        c.update(0.090, t * 0.2)
    assert c.rate == pytest.approx(c.history[3][2])


def test_the_base_delay_is_forgotten_after_the_window():
    _, c = controller(base_window=10)
    c.update(0.010, 0)
    for t in range(1, 200):
        c.update(0.100, t * 0.1)  # the path got longer: after 10 s that is the new base
    assert c.history[-1][1] == pytest.approx(0.0)


def test_adaptive_needs_a_plain_rate():
    with pytest.raises(UsageError, match="adaptive"):
        jobs.transfer("memory://a", "memory://b", window="22:00-06:00", adaptive=True, journal_dir="/nonexistent")
