"""RetryingStore: which errors are retried, how long it waits, when it gives up."""

from __future__ import annotations

import pytest

from ebas.errors import ObjectNotFound, PermissionDenied, TransientStoreError
from ebas.runtime import FakeEntropy
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.storage.wrappers.retry import RetryingStore


@pytest.fixture
def faulty(clock):
    return FaultyStore(MemoryStore(), clock=clock)


def make(faulty, clock, **kwargs):
    return RetryingStore(faulty, clock, FakeEntropy(5), **kwargs)


def test_transient_errors_are_retried_with_backoff(faulty, clock):
    faulty.faults.fail("put", times=3)
    seen = []
    store = make(faulty, clock, attempts=5, base_delay=1.0, max_delay=3.0,
                 on_retry=lambda op, n, exc, delay: seen.append((op, n, type(exc).__name__, delay)))
    store.put("a", b"1")
    assert faulty.inner.get("a") == b"1"
    assert faulty.calls["put"] == 4 and store.retries == 3
    assert [s[:3] for s in seen] == [("put", n, "TransientStoreError") for n in (1, 2, 3)]
    assert clock.sleeps == [s[3] for s in seen]
    for (_, n, _, delay), ceiling in zip(seen, (1.0, 2.0, 3.0)):
        assert 0 <= delay < ceiling


def test_non_retryable_errors_pass_through_at_once(faulty, clock):
    faulty.faults.fail("get", exc=PermissionDenied)
    store = make(faulty, clock)
    with pytest.raises(PermissionDenied):
        store.get("a")
    with pytest.raises(ObjectNotFound):
        store.get("a")
    assert faulty.calls["get"] == 2 and clock.sleeps == []


def test_gives_up_after_attempts(faulty, clock):
    faulty.faults.fail("stat", times=None)
    store = make(faulty, clock, attempts=3)
    with pytest.raises(TransientStoreError) as info:
        store.stat("a")
    assert faulty.calls["stat"] == 3 and len(clock.sleeps) == 2
    assert any("gave up after 3 attempts" in note for note in info.value.__notes__)


def test_single_attempt_means_no_retry(faulty, clock):
    faulty.faults.fail("stat")
    with pytest.raises(TransientStoreError):
        make(faulty, clock, attempts=1).stat("a")
    with pytest.raises(ValueError):
        make(faulty, clock, attempts=0)


def test_delete_whose_reply_was_lost_counts_as_done(faulty, clock):
    store = make(faulty, clock)
    store.put("a", b"1")
    faulty.faults.fail("delete", after=True)
    store.delete("a")
    assert not faulty.inner.exists("a")
    with pytest.raises(ObjectNotFound):
        store.delete("a")  # a plain missing object is still an error


def test_abort_whose_reply_was_lost_counts_as_done(faulty, clock):
    store = make(faulty, clock)
    uid = store.begin_upload("a")
    faulty.faults.fail("abort", after=True)
    store.abort(uid)
    assert store.uploads() == []


def test_list_is_materialised_so_a_retry_never_duplicates(faulty, clock):
    store = make(faulty, clock)
    for i in range(5):
        store.put(f"o/{i}", b"x")
    faulty.faults.fail("list")
    assert sorted(i.name for i in store.list("o/")) == [f"o/{i}" for i in range(5)]


def test_stream_open_is_retried_but_writes_are_not(faulty, clock):
    store = make(faulty, clock)
    faulty.faults.fail("open_write")
    faulty.faults.fail("write")
    w = store.open_write("s")
    with pytest.raises(TransientStoreError):
        w.write(b"x")
    assert faulty.calls["open_write"] == 2 and not faulty.inner.exists("s")


def test_defaults_use_system_clock_and_entropy():
    store = RetryingStore(MemoryStore())
    assert store.attempts == 5 and store.backoff.cap == 30.0
    store.put("a", b"1")
    assert store.get("a") == b"1"
