"""FaultyStore: every programmable fault, and that faults never publish partial objects."""

from __future__ import annotations

import pytest

from ebas.errors import ObjectNotFound, PermissionDenied, StoreFull, TransientStoreError
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.wrappers.faulty import FaultyStore, make_exception


@pytest.fixture
def inner():
    return MemoryStore()


@pytest.fixture
def store(inner, clock):
    return FaultyStore(inner, clock=clock)


def test_counts_calls(store):
    store.put("a", b"1")
    store.get("a")
    store.get("a")
    with pytest.raises(ObjectNotFound):
        store.stat("b")
    assert store.calls["put"] == 1 and store.calls["get"] == 2 and store.calls["stat"] == 1
    assert store.faults.bytes_written == 1
    assert repr(store).startswith("<FaultyStore <MemoryStore")


def test_fail_nth_call(store):
    store.faults.fail("put", nth=3)
    store.put("a", b"1")
    store.put("b", b"2")
    with pytest.raises(TransientStoreError, match="injected failure: put 'c'"):
        store.put("c", b"3")
    store.put("c", b"3")
    assert store.inner.get("c") == b"3"


def test_fail_times_and_forever(store):
    rule = store.faults.fail("get", nth=2, times=2)
    store.put("a", b"1")
    results = []
    for _ in range(5):
        try:
            store.get("a")
            results.append("ok")
        except TransientStoreError:
            results.append("fail")
    assert results == ["ok", "fail", "fail", "ok", "ok"] and rule.fired == 2
    store.faults.clear()
    store.faults.fail("stat", times=None, exc=PermissionDenied)
    for _ in range(3):
        with pytest.raises(PermissionDenied):
            store.stat("a")


def test_op_pattern_and_prefix(store):
    store.faults.fail("*", times=None, prefix="keys/")
    store.put("data/x", b"1")
    store.get("data/x")
    for call in (lambda: store.put("keys/k", b"1"), lambda: store.get("keys/k"),
                 lambda: list(store.list("keys/")), lambda: store.begin_upload("keys/u")):
        with pytest.raises(TransientStoreError):
            call()
    store.faults.clear()
    store.faults.fail("[gs]*", times=None)  # get and stat, not put
    store.put("y", b"1")
    with pytest.raises(TransientStoreError):
        store.stat("y")


def test_exception_spec():
    boom = RuntimeError("boom")
    assert make_exception(boom, "msg") is boom
    assert isinstance(make_exception(StoreFull, "msg"), StoreFull)
    assert str(make_exception(None, "msg")) == "msg"


def test_flaky_every_nth(store):
    store.faults.flaky("stat", every=3)
    store.put("a", b"1")
    outcomes = []
    for _ in range(7):
        try:
            store.stat("a")
            outcomes.append(1)
        except TransientStoreError:
            outcomes.append(0)
    assert outcomes == [1, 1, 0, 1, 1, 0, 1]


def test_fail_after_runs_the_operation(store, inner):
    store.put("a", b"1")
    store.faults.fail("delete", after=True)
    with pytest.raises(TransientStoreError):
        store.delete("a")
    assert not inner.exists("a")
    store.faults.fail("put", after=True)
    with pytest.raises(TransientStoreError):
        store.put("p", b"1")
    assert inner.get("p") == b"1"
    store.faults.fail("open_write", after=True)
    with pytest.raises(TransientStoreError):
        store.open_write("b")
    store.faults.fail("commit", after=True)
    with store.open_write("c") as w:
        w.write(b"x")
        with pytest.raises(TransientStoreError):
            w.commit()
    assert inner.get("c") == b"x"


def test_fail_commit_before_publishing(store, inner):
    store.faults.fail("commit")
    w = store.open_write("c")
    w.write(b"x")
    with pytest.raises(TransientStoreError):
        w.commit()
    assert not inner.exists("c")


def test_fail_stream_write_aborts(store, inner):
    store.faults.fail("write", nth=2)
    w = store.open_write("c")
    w.write(b"x")
    with pytest.raises(TransientStoreError):
        w.write(b"y")
    assert not inner.exists("c") and store.faults.bytes_written == 0


def test_cut_put_sends_prefix_then_aborts(store, inner):
    store.faults.cut_write_after(4, prefix="data/", times=2)
    store.put("other", b"0123456789")  # prefix does not match
    store.put("data/small", b"0123")  # not bigger than the cut
    for _ in range(2):
        with pytest.raises(TransientStoreError, match="cut after 4 bytes"):
            store.put("data/big", b"0123456789")
    store.put("data/big", b"0123456789")
    assert inner.get("data/big") == b"0123456789"
    assert store.calls["put"] == 5


def test_cut_stream_and_custom_exception(store, inner):
    store.faults.cut_write_after(5, exc=ConnectionResetError)
    w = store.open_write("s")
    w.write(b"abc")
    with pytest.raises(ConnectionResetError):
        w.write(b"defgh")
    assert not inner.exists("s")
    w.abort()  # still safe


def test_cut_upload_part_stores_nothing(store, inner):
    uid = store.begin_upload("big")
    store.faults.cut_write_after(2, prefix="big")
    with pytest.raises(TransientStoreError):
        store.upload_part(uid, 1, b"part data")
    assert inner.parts(uid) == []
    store.upload_part(uid, 1, b"part data")
    assert [p.size for p in store.parts(uid)] == [9]


def test_corrupt_reads(store, inner):
    inner.put("data/p", bytes(100))
    inner.put("index/i", bytes(100))
    rule = store.faults.corrupt_reads("data/", offset=10, mask=0xFF)
    data = store.get("data/p")
    assert data[10] == 0xFF and data.count(0) == 99
    assert store.get("data/p", 10, 1) == b"\xff"
    assert store.get("data/p", 11) == bytes(89)  # offset not in range
    assert store.get("index/i") == bytes(100)
    assert rule.fired == 2 and inner.get("data/p") == bytes(100)
    store.faults.clear()
    store.faults.corrupt_reads(offset=0, times=1)
    assert store.get("index/i")[0] == 1 and store.get("index/i")[0] == 0


def test_delay_uses_the_clock(store, clock):
    store.put("a", b"1")
    store.faults.delay("get", 2.5)
    store.faults.delay("*", 1.0, prefix="b")
    store.get("a")
    assert clock.sleeps == [2.5]
    store.put("b", b"2")
    store.get("b")
    assert clock.sleeps == [2.5, 1.0, 2.5, 1.0] and clock.monotonic() == 7.0


def test_disk_full_after(store, inner):
    store.faults.disk_full_after(10)
    store.put("a", b"123456")
    with pytest.raises(StoreFull):
        store.put("b", b"12345")
    store.put("c", b"1234")
    store.put("empty", b"")
    w = store.open_write("d")
    with pytest.raises(StoreFull):
        w.write(b"x")
    assert not inner.exists("b") and not inner.exists("d")
    uid = store.begin_upload("e")
    with pytest.raises(StoreFull):
        store.upload_part(uid, 1, b"x")
    store.faults.disk_full_after(None)
    store.put("b", b"12345")
    assert store.faults.bytes_written == 15


def test_aborted_stream_gives_bytes_back(store):
    store.faults.disk_full_after(10)
    w = store.open_write("a")
    w.write(b"12345678")
    w.abort()
    store.put("b", b"1234567890")
    assert store.faults.bytes_written == 10


def test_failed_inner_write_gives_bytes_back(store):
    store.faults.disk_full_after(10)
    with pytest.raises(Exception):
        store.put("bad//name", b"12345678")
    store.put("b", b"1234567890")


def test_upload_steps_are_counted_and_targetable(store, inner):
    uid = store.begin_upload("packs/x")
    store.faults.fail("*", times=None, prefix="packs/")
    for call in (lambda: store.upload_part(uid, 1, b"x"), lambda: store.parts(uid),
                 lambda: store.complete(uid), lambda: store.abort(uid), lambda: store.uploads("packs/")):
        with pytest.raises(TransientStoreError):
            call()
    store.faults.clear()
    store.upload_part(uid, 1, b"x")
    store.complete(uid)
    assert inner.get("packs/x") == b"x"
    assert store.calls["upload_part"] == 2 and store.calls["complete"] == 2
