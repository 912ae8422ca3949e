"""CountingStore: every request and byte a client sends to a store is counted."""

from __future__ import annotations

import threading

import pytest

from ebas.errors import ObjectNotFound, TransientStoreError
from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.stack import build_stack
from ebas.storage.testing.conformance import StoreConformance
from ebas.storage.wrappers.counting import PAGE, CountingStore, Counts, StoreCounts
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.storage.wrappers.retry import RetryingStore


class TestCountingConformance(StoreConformance):
    """Counting changes nothing a caller can see."""

    @pytest.fixture
    def make_store(self, memory_name):
        return lambda: CountingStore(MemoryStore(memory_name))


def test_each_operation_is_counted_with_its_bytes(memory_name):
    store = CountingStore(MemoryStore(memory_name))
    store.put("data/a", b"x" * 100)
    store.put("data/b", b"y" * 50)
    assert store.get("data/a") == b"x" * 100
    assert store.get("data/a", 10, 5) == b"x" * 5
    store.stat("data/b")
    assert sorted(i.name for i in store.list("data/")) == ["data/a", "data/b"]
    store.delete("data/b")
    with store.open_write("data/c") as w:
        w.write(b"12345")
        w.write(b"678")
    uid = store.begin_upload("data/d")
    store.upload_part(uid, 1, b"p" * 7)
    store.parts(uid)
    store.complete(uid)
    store.uploads("data/")
    c = store.counts.snapshot()
    assert c.calls == {"put": 2, "get": 2, "stat": 1, "list": 1, "list_pages": 1, "delete": 1, "commit": 1,
                       "begin_upload": 1, "upload_part": 1, "parts": 1, "complete": 1, "uploads": 1}
    assert c.bytes_sent == 100 + 50 + 8 + 7 and c.bytes_received == 105 and c.listed == 2
    assert c.errors == {}
    assert c.classes() == {"put": 2 + 1 + 1 + 1 + 1, "get": 2, "list": 1 + 1 + 1, "other": 1 + 1}
    assert c.requests == 13
    assert c.to_json()["classes"] == c.classes() and c.to_json()["requests"] == 13


def test_a_long_listing_counts_one_request_per_page(memory_name):
    inner = MemoryStore(memory_name)
    for i in range(2 * PAGE + 1):
        inner.put(f"k/{i:05d}", b"")
    store = CountingStore(inner)
    assert len(list(store.list("k/"))) == 2 * PAGE + 1
    c = store.counts.snapshot()
    assert c.calls["list"] == 1 and c.calls["list_pages"] == 3 and c.listed == 2 * PAGE + 1
    empty = CountingStore(MemoryStore(memory_name + "-empty"))
    assert list(empty.list("")) == []
    assert empty.counts.snapshot().calls["list_pages"] == 1  # an empty answer is still a request


def test_failed_calls_are_requests_too(memory_name):
    store = CountingStore(MemoryStore(memory_name))
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    with pytest.raises(ObjectNotFound):
        store.delete("missing")
    c = store.counts.snapshot()
    assert c.calls == {"get": 1, "delete": 1} and c.errors == {"get": 1, "delete": 1}
    assert c.bytes_received == 0


def test_phases_are_differences_of_snapshots(memory_name):
    store = CountingStore(MemoryStore(memory_name))
    store.put("a", b"1234")
    before = store.counts.snapshot()
    store.get("a")
    store.get("a")
    phase = store.counts.snapshot() - before
    assert phase == Counts({"get": 2}, {}, 0, 8, 0)
    assert phase.classes() == {"put": 0, "get": 2, "list": 0, "other": 0}


def test_build_stack_puts_counting_on_the_backend_so_retries_count(memory_name):
    counts = StoreCounts()
    faulty = FaultyStore(MemoryStore(memory_name))
    stack = build_stack(faulty, counts=counts, clock=FakeClock(), entropy=FakeEntropy(1))
    assert isinstance(stack, RetryingStore) and isinstance(stack.inner, CountingStore)
    assert stack.inner.inner is faulty and stack.inner.counts is counts
    faulty.faults.fail("put", nth=1, times=2, exc=TransientStoreError)
    stack.put("x", b"abc")  # two failed attempts, then success: three requests
    c = counts.snapshot()
    assert c.calls == {"put": 3} and c.errors == {"put": 2} and c.bytes_sent == 9
    assert build_stack(MemoryStore(memory_name), retry=False, counts=counts).counts is counts


def test_counts_are_exact_under_concurrency(memory_name):
    store = CountingStore(MemoryStore(memory_name))
    store.put("a", b"z" * 10)

    def reader():
        for _ in range(500):
            store.get("a")

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = store.counts.snapshot()
    assert c.calls["get"] == 4000 and c.bytes_received == 40_000


def test_batch_reads_count_one_get_per_object(memory_name):
    store = CountingStore(MemoryStore(memory_name))
    if not hasattr(store.inner, "get_many"):
        pytest.skip("this Store has no get_many")
    for i in range(3):
        store.put(f"o/{i}", b"d" * (i + 1))
    before = store.counts.snapshot()
    got = dict(store.get_many(["o/0", "o/1", "o/2"]))
    assert got == {f"o/{i}": b"d" * (i + 1) for i in range(3)}
    spent = store.counts.snapshot() - before
    assert spent.calls == {"get": 3} and spent.bytes_received == 6
