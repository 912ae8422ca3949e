"""Read-only and append-only views."""

from __future__ import annotations

import pytest

from ebas.errors import ObjectNotFound, PermissionDenied, UsageError
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.wrappers.readonly import APPEND_ONLY_MESSAGE, AppendOnlyStore, ReadOnlyStore


@pytest.fixture
def inner():
    store = MemoryStore()
    store.put("config", b"cfg")
    store.begin_upload("pending")
    return store


def test_read_only_allows_reads(inner):
    store = ReadOnlyStore(inner)
    assert store.get("config") == b"cfg" and store.stat("config").size == 3
    assert [i.name for i in store.list()] == ["config"] and store.exists("config")
    uid = store.uploads()[0].upload_id
    assert store.parts(uid) == []
    assert store.url == inner.url
    caps = store.capabilities
    assert caps.deletes is False and caps.extra["read_only"] is True
    assert inner.capabilities.deletes is True


def test_read_only_refuses_every_change(inner):
    store = ReadOnlyStore(inner)
    uid = inner.uploads()[0].upload_id
    calls = [lambda: store.put("x", b"1"), lambda: store.open_write("x"),
             lambda: store.delete("config"), lambda: store.begin_upload("x"),
             lambda: store.upload_part(uid, 1, b"x"), lambda: store.complete(uid),
             lambda: store.abort(uid)]
    for call in calls:
        with pytest.raises(PermissionDenied, match="read-only") as info:
            call()
        assert "--read-only" in info.value.hint
    assert [i.name for i in inner.list()] == ["config"] and len(inner.uploads()) == 1


def test_append_only_allows_writes_but_not_deletes(inner):
    store = AppendOnlyStore(inner)
    store.put("data/x", b"1")
    with store.open_write("data/y") as w:
        w.write(b"2")
    uid = store.begin_upload("data/z")
    store.upload_part(uid, 1, b"3")
    store.complete(uid)
    store.abort(inner.uploads()[0].upload_id)  # an unfinished upload is not an object
    with pytest.raises(PermissionDenied) as info:
        store.delete("data/x")
    assert APPEND_ONLY_MESSAGE in info.value.message
    assert info.value.message == (
        "cannot delete 'data/x': this repository is append-only for this client; "
        "prune needs maintenance credentials")
    assert inner.get("data/x") == b"1" and store.capabilities.extra["append_only"] is True
    with pytest.raises(UsageError):
        store.delete("bad//name")


def test_append_only_deletable_prefixes(inner):
    store = AppendOnlyStore(inner, deletable_prefixes=("locks/",))
    store.put("locks/l1", b"lock")
    store.delete("locks/l1")
    with pytest.raises(ObjectNotFound):
        store.delete("locks/l1")
    with pytest.raises(PermissionDenied):
        store.delete("config")
