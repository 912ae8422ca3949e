"""The shared token bucket: never more than depth + rate x time, fair queueing, live rate changes."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebas.flow.tokenbucket import TokenBucket


def _send_all(bucket: TokenBucket, sizes, start=0.0, streams=1):
    """Simulate ``streams`` senders taking turns; returns [(send time, bytes)]."""
    clocks = [start] * streams
    sent = []
    for i, n in enumerate(sizes):
        s = i % streams
        wait = bucket.reserve(n, now=clocks[s])
        clocks[s] += wait
        sent.append((clocks[s], n))
    return sent


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(1e3, 1e9), burst=st.integers(1 << 10, 1 << 24),
       sizes=st.lists(st.integers(1, 1 << 22), min_size=1, max_size=60), streams=st.integers(1, 8))
def test_no_interval_exceeds_depth_plus_rate(rate, burst, sizes, streams):
    bucket = TokenBucket(rate, burst)
    sent = sorted(_send_all(bucket, sizes, streams=streams))
    # a send at time t of n bytes is granted by tokens accrued up to t; any window [a, b]
    # holds at most burst + rate*(b-a) + (debt carried in by the first send in it)
    for i in range(len(sent)):
        total = 0
        for j in range(i, len(sent)):
            total += sent[j][1]
            span = sent[j][0] - sent[i][0]
            # bytes sent strictly after the first one in the window are covered by accrual
            assert total - sent[i][1] <= burst + rate * span + 1e-6 * rate + 1


def test_sustained_rate_matches_limit():
    rate = 10 * 1024 * 1024
    bucket = TokenBucket(rate, 256 * 1024)
    sent = _send_all(bucket, [64 * 1024] * 2000, streams=4)
    duration = max(t for t, _ in sent)
    achieved = sum(n for _, n in sent) / duration
    assert achieved == pytest.approx(rate, rel=0.02)


def test_unlimited_and_paused():
    bucket = TokenBucket(math.inf)
    assert bucket.reserve(1 << 30, now=0) == 0.0
    bucket.set_rate(0, now=1.0)
    assert bucket.reserve(1, now=2.0) == math.inf
    bucket.set_rate(1000, now=3.0, burst=1000)
    assert bucket.reserve(500, now=3.0) == 0.0  # tokens while paused do not exceed the depth
    assert bucket.reserve(1000, now=3.0) == pytest.approx(0.5)


def test_rate_change_applies_from_now():
    bucket = TokenBucket(1000, 1000)
    assert bucket.reserve(1000, now=0) == 0.0
    assert bucket.reserve(1000, now=0) == pytest.approx(1.0)   # debt of 1000 at 1000 B/s
    bucket.set_rate(4000, now=0)
    assert bucket.available(now=0.25) == pytest.approx(0.0)      # debt repaid 4x faster


def test_give_back_and_bad_values():
    bucket = TokenBucket(100, 100)
    bucket.reserve(100, now=0)
    bucket.give_back(60, now=0)
    assert bucket.available(now=0) == pytest.approx(60)
    with pytest.raises(ValueError):
        TokenBucket(-1)
    with pytest.raises(ValueError):
        bucket.reserve(-5, now=0)
    with pytest.raises(ValueError):
        bucket.set_rate(-1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(10, 0)


def test_threads_share_one_bucket():
    bucket = TokenBucket(1_000_000, 10_000)
    waits = []
    lock = threading.Lock()

    def worker():
        for _ in range(100):
            w = bucket.reserve(1000, now=0.0)
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 KB at 1 MB/s with 10 KB depth: the last reservation waits (400-10)/1000 s
    assert max(waits) == pytest.approx(0.39, rel=1e-6)
    assert sorted(waits) == [max(0.0, (1000 * (i + 1) - 10_000) / 1_000_000) for i in range(400)]
