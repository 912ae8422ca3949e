"""MemoryStore specifics: shared namespaces by name, private stores, URLs."""

from __future__ import annotations

import pytest

from ebas.errors import ObjectNotFound, UsageError
from ebas.runtime import FakeClock, FakeEntropy
from ebas.storage.backends.memory import MemoryStore


def test_same_name_shares_objects_and_uploads(memory_name):
    a = MemoryStore(memory_name)
    a.put("x", b"1")
    uid = a.begin_upload("y")
    b = MemoryStore.from_url(f"memory://{memory_name}")
    assert b.get("x") == b"1" and [u.upload_id for u in b.uploads()] == [uid]
    assert b.url == f"memory://{memory_name}"


def test_private_stores_are_isolated():
    a, b = MemoryStore(), MemoryStore.from_url("memory://")
    a.put("x", b"1")
    with pytest.raises(ObjectNotFound):
        b.get("x")
    assert a.url == "memory://"


def test_drop_namespace(memory_name):
    MemoryStore(memory_name).put("x", b"1")
    MemoryStore.drop_namespace(memory_name)
    assert list(MemoryStore(memory_name).list()) == []
    MemoryStore.drop_namespace("never-existed")


def test_path_in_url_and_escaping(memory_name):
    MemoryStore(f"{memory_name}/sub dir").put("x", b"1")
    assert MemoryStore.from_url(f"memory://{memory_name}/sub%20dir").get("x") == b"1"
    MemoryStore.drop_namespace(f"{memory_name}/sub dir")


def test_from_url_rejects_other_schemes():
    with pytest.raises(UsageError):
        MemoryStore.from_url("file:///x")


def test_injected_clock_and_entropy():
    clock = FakeClock()
    a = MemoryStore(clock=clock, entropy=FakeEntropy(1))
    b = MemoryStore(entropy=FakeEntropy(1))
    a.put("x", b"")
    assert a.stat("x").mtime_ns == clock.now_ns()
    assert a.begin_upload("u") == b.begin_upload("u")


def test_stored_bytes_are_copies():
    store = MemoryStore()
    buf = bytearray(b"abc")
    store.put("x", buf)
    buf[0] = 0
    uid = store.begin_upload("y")
    part = bytearray(b"def")
    store.upload_part(uid, 1, part)
    part[0] = 0
    store.complete(uid)
    assert (store.get("x"), store.get("y")) == (b"abc", b"def")


def test_unhashable_upload_id():
    with pytest.raises(ObjectNotFound):
        MemoryStore().parts(["not", "an", "id"])  # type: ignore[arg-type]
