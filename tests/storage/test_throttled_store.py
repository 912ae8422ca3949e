"""ThrottledStore and Link: every byte through one shared bucket, schedules applied live."""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone

import pytest

from ebas.errors import UsageError
from ebas.flow.timetable import Timetable
from ebas.runtime import FakeClock
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.registry import open_store
from ebas.storage.stack import build_stack
from ebas.storage.wrappers.throttle import Link, ThrottledStore

MiB = 1 << 20


def clock_at(iso: str) -> FakeClock:
    """A fake clock whose wall time is ``iso`` (UTC)."""
    return FakeClock(int(datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp()) * 10**9)


def test_fixed_rate_in_simulated_time():
    clock = FakeClock()
    store = ThrottledStore(MemoryStore(), Link(10 * MiB, clock=clock))
    for i in range(10):
        store.put(f"o{i}", b"x" * (4 * MiB))
    # 40 MiB at 10 MiB/s: 4 s, from an empty bucket (no opening burst)
    assert clock.monotonic() == pytest.approx(4.0, rel=1e-6)
    assert store.link.bytes == 40 * MiB


def test_reads_pay_too():
    clock = FakeClock()
    inner = MemoryStore()
    inner.put("a", b"y" * (5 * MiB))
    store = ThrottledStore(inner, Link(1 * MiB, clock=clock))
    assert store.get("a") == b"y" * (5 * MiB)
    assert [n for n, _ in store.get_many(["a"])] == ["a"]
    assert clock.monotonic() == pytest.approx(10.0, rel=1e-6)


def test_parts_and_streams_pay():
    clock = FakeClock()
    store = ThrottledStore(MemoryStore(), Link(2 * MiB, clock=clock))
    uid = store.begin_upload("big")
    store.upload_part(uid, 1, b"a" * (2 * MiB))
    store.complete(uid)
    with store.open_write("s") as w:
        w.write(b"b" * (2 * MiB))
    assert clock.monotonic() == pytest.approx(2.0, rel=1e-6)
    assert store.get("s") == b"b" * (2 * MiB)


def test_schedule_applied_live_as_the_clock_crosses_a_boundary():
    # Monday 2026-11-30 17:59:00 UTC; until 18:00 1 MiB/s, then 4 MiB/s
    clock = clock_at("2026-11-30T17:59:00")
    link = Link(Timetable.parse("Mon-Fri 08:00-18:00 1MiB/s; else 4MiB/s"), clock=clock, tz=timezone.utc)
    store = ThrottledStore(MemoryStore(), link)
    assert link.rate == MiB
    store.put("a", b"z" * (300 * MiB))
    # 60 s at 1 MiB/s carry 60 MiB; the other 240 MiB at 4 MiB/s take 60 s more
    assert clock.monotonic() == pytest.approx(120.0, abs=1.0)
    assert link.rate == 4 * MiB


def test_off_window_pauses_until_it_ends():
    clock = clock_at("2026-11-30T21:00:00")  # Monday 21:00, window opens at 22:00
    link = Link(Timetable.parse("* 22:00-06:00 unlimited; else off"), clock=clock, tz=timezone.utc)
    store = ThrottledStore(MemoryStore(), link)
    assert link.rate == 0
    store.put("a", b"q" * MiB)
    assert clock.now() == pytest.approx(datetime(2026, 11, 30, 22, tzinfo=timezone.utc).timestamp(), abs=1)
    assert store.get("a") == b"q" * MiB


def test_set_rate_live_from_another_thread():
    clock = FakeClock()
    link = Link(0, clock=clock, pause_poll=0.5)
    store = ThrottledStore(MemoryStore(), link)
    done = threading.Event()

    def send():
        store.put("a", b"1" * 100)
        done.set()

    t = threading.Thread(target=send)
    t.start()
    assert not done.wait(0.05)
    link.set_rate(math.inf)
    assert done.wait(5)
    t.join()


def test_bwlimit_url_option_builds_the_throttle(tmp_path):
    store = open_store(f"file://{tmp_path}?bwlimit=5MiB/s")
    assert store.bwlimit == "5MiB/s"
    stack = build_stack(store, clock=FakeClock())
    assert type(stack.inner).__name__ == "ThrottledStore"
    assert stack.inner.link.rate == 5 * MiB
    mem = open_store("memory://?bwlimit=Mon-Fri 08:00-18:00 10MiB/s; else unlimited")
    assert build_stack(mem).inner.link.timetable is not None


def test_bad_bwlimit_is_refused_naming_it():
    with pytest.raises(UsageError, match="Mon-Fry"):
        open_store("memory://x?bwlimit=Mon-Fry 08:00-18:00 1MiB/s")


def test_no_bwlimit_no_throttle():
    assert type(build_stack(MemoryStore()).inner).__name__ == "MemoryStore"


def test_real_time_rate_within_5_percent():
    link = Link(40 * MiB)
    store = ThrottledStore(MemoryStore(), link)
    blob = b"r" * MiB
    t0 = time.monotonic()
    for i in range(20):
        store.put(f"o{i}", blob)
    elapsed = time.monotonic() - t0
    rate = 20 * MiB / elapsed
    assert 0.95 * 40 * MiB <= rate <= 1.05 * 40 * MiB, rate / MiB


def test_shared_link_splits_the_rate_between_streams():
    link = Link(40 * MiB)
    stores = [ThrottledStore(MemoryStore(), link) for _ in range(4)]
    blob = b"s" * (MiB // 2)

    def run(s):
        for i in range(10):
            s.put(f"o{i}", blob)

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = 20 * MiB / (time.monotonic() - t0)
    assert 0.95 * 40 * MiB <= rate <= 1.05 * 40 * MiB, rate / MiB


def test_wall_clock_jumping_back_rereads_the_timetable():
    clock = clock_at("2026-11-30T18:30:00")  # Monday evening: unlimited
    link = Link(Timetable.parse("Mon-Fri 08:00-18:00 1MiB/s; else unlimited"), clock=clock, tz=timezone.utc)
    assert math.isinf(link.rate)
    clock._ns -= 3600 * 10**9  # NTP steps the wall clock back an hour: 17:30, office hours
    assert link.rate == MiB
    store = ThrottledStore(MemoryStore(), link)
    t0 = clock.monotonic()
    store.put("a", b"j" * (2 * MiB))
    # at most one bucket depth (a tenth of a second at the new rate) goes without waiting
    assert clock.monotonic() - t0 == pytest.approx(1.9, rel=1e-3)


def test_wall_clock_jumping_forward_past_a_boundary():
    clock = clock_at("2026-11-30T17:00:00")
    link = Link(Timetable.parse("Mon-Fri 08:00-18:00 1MiB/s; else unlimited"), clock=clock, tz=timezone.utc)
    assert link.rate == MiB
    clock._ns += 2 * 3600 * 10**9  # wall clock only: 19:00
    assert math.isinf(link.rate)


class LineStore(MemoryStore):
    """A memory store behind a shared line of ``line`` bytes/s (one put at a time)."""

    def __init__(self, line):
        super().__init__()
        self.line, self.lock = line, threading.Lock()

    def put(self, name, data):
        with self.lock:
            time.sleep(len(data) / self.line)
        super().put(name, data)


def test_streams_sharing_a_slower_line_still_get_the_whole_limit():
    # paid requests must not all leave at once and leave the bucket idle while they travel
    link = Link(8 * MiB)
    store = ThrottledStore(LineStore(12 * MiB), link)
    blob = b"l" * (4 * MiB)  # a request takes a third of a second on the line

    def run(k):
        for i in range(2):
            store.put(f"s{k}-{i}", blob)

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    # 32 MiB at 8 MiB/s is 4 s; the last request still travels a third of a second after it was paid
    assert 0.95 * 4.0 <= elapsed <= 1.05 * 4.0 + 1 / 3, elapsed
