"""The conformance suite every store backend and wrapper must pass.

Use it by subclassing :class:`StoreConformance` in a test module and providing a
``make_store`` fixture: a callable that returns a *new* ``Store`` instance over the
same backing location on every call (the first call sees an empty store)::

    class TestS3(StoreConformance):
        @pytest.fixture
        def make_store(self, s3_bucket):
            return lambda: S3Store.from_url(f"s3://{s3_bucket}/t?endpoint=...")

Calling it twice in one test stands for "another process opens the store". Tests that
delete adapt to ``capabilities.deletes`` (append-only views must refuse instead), and
part sizes honour ``capabilities.min_part_size``. The suite never stores both ``a``
and ``a/b`` (a file store cannot). Needs pytest.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ebas.errors import InvalidRange, ObjectNotFound, PermissionDenied, TransientStoreError, UsageError
from ebas.storage.base import PendingUpload
from ebas.storage.wrappers.faulty import FaultyStore

MiB = 1024 * 1024

ALLOWED_NAMES = [
    "plain",
    "with space/and more spaces",
    "data/ab/ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd",
    "unicode/é/日本語/😀",
    "punct/+=,@~!$&'()[]{};#%^?*:",
    "dots/.hidden",
    "dots/..two..dots..x",
    "dots/a.b.c",
    "deep/" + "/".join(f"d{i}" for i in range(24)) + "/leaf",
    "dash-under_score",
]
INVALID_NAMES = ["", "/abs", "trailing/", "a//b", "./a", "a/./b", "a/../b", "..", ".", "nul\x00byte"]
RANGES = [  # (start, length) on a 1000-byte object; expected = data[start:start+length]
    (0, None), (0, 10), (10, None), (990, 10), (995, 10), (999, 1), (999, None),
    (1000, None), (1000, 0), (500, 0), (0, 1000), (0, 5000), (123, 456),
]


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes whose pattern (period 251) exposes off-by-one range errors."""
    block = bytes((i * 7 + seed * 13) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


def names_of(store, prefix: str = "") -> set[str]:
    """The set of object names ``store.list(prefix)`` yields."""
    return {info.name for info in store.list(prefix)}


class StoreConformance:
    """Tests of the ``Store`` contract; subclasses supply the ``make_store`` fixture."""

    @pytest.fixture
    def store(self, make_store):
        store = make_store()
        yield store
        store.close()

    # ------------------------------------------------------------ objects
    def test_put_get_stat(self, store):
        store.put("a/obj", b"hello")
        assert store.get("a/obj") == b"hello"
        info = store.stat("a/obj")
        assert (info.name, info.size) == ("a/obj", 5)
        assert isinstance(info.mtime_ns, int)
        assert store.exists("a/obj") and not store.exists("a/other")

    def test_put_accepts_bytes_like(self, store):
        store.put("ba", bytearray(b"abc"))
        store.put("mv", memoryview(b"xyz"))
        assert (store.get("ba"), store.get("mv")) == (b"abc", b"xyz")

    def test_overwrite_replaces(self, store):
        store.put("x", b"first version")
        store.put("x", b"second")
        assert store.get("x") == b"second"
        assert store.stat("x").size == 6
        assert [i.name for i in store.list()] == ["x"]

    def test_read_after_write_from_new_instance(self, store, make_store):
        store.put("keys/k1", b"key")
        other = make_store()
        assert other.get("keys/k1") == b"key"
        assert names_of(other) == {"keys/k1"}

    def test_empty_store_lists_nothing(self, store):
        assert list(store.list()) == [] and list(store.list("data/")) == []
        assert store.uploads() == []

    def test_list_with_prefix(self, store):
        for name in ["data/ab/1", "data/ab/2", "data/ac/3", "data/b", "datax", "index/1", "config"]:
            store.put(name, name.encode())
        assert names_of(store) == {"data/ab/1", "data/ab/2", "data/ac/3", "data/b", "datax",
                                   "index/1", "config"}
        assert names_of(store, "data/") == {"data/ab/1", "data/ab/2", "data/ac/3", "data/b"}
        assert names_of(store, "data/a") == {"data/ab/1", "data/ab/2", "data/ac/3"}
        assert names_of(store, "data") == names_of(store, "data/") | {"datax"}
        assert names_of(store, "data/ab/") == {"data/ab/1", "data/ab/2"}
        assert names_of(store, "data/ab/1") == {"data/ab/1"}
        assert names_of(store, "nothing/") == set() and names_of(store, "config/") == set()
        sizes = {i.name: i.size for i in store.list("index/")}
        assert sizes == {"index/1": len(b"index/1")}

    def test_delete(self, store):
        store.put("d/obj", b"x")
        if not store.capabilities.deletes:
            with pytest.raises(PermissionDenied):
                store.delete("d/obj")
            assert store.get("d/obj") == b"x"
            return
        store.delete("d/obj")
        assert not store.exists("d/obj") and names_of(store) == set()
        with pytest.raises(ObjectNotFound):
            store.delete("d/obj")

    @pytest.mark.parametrize("op", ["get", "stat", "delete"])
    def test_missing_object_raises_not_found(self, store, op):
        store.put("other", b"x")
        if op == "delete" and not store.capabilities.deletes:
            pytest.skip("store refuses deletes")
        with pytest.raises(ObjectNotFound):
            getattr(store, op)("missing/object")

    @pytest.mark.parametrize("name", ALLOWED_NAMES)
    def test_allowed_names_round_trip(self, store, name):
        store.put(name, name.encode())
        assert store.get(name) == name.encode()
        assert store.stat(name).size == len(name.encode())
        assert names_of(store) == {name}
        assert names_of(store, name) == {name}

    def test_get_many_returns_every_object_once(self, store):
        objs = {f"m/{i}": payload(1000 + i, i) for i in range(5)}
        for name, data in objs.items():
            store.put(name, data)
        got = list(store.get_many(["m/3", "m/0", "m/4", "m/1", "m/2", "m/3"]))
        assert sorted(n for n, _ in got) == sorted(objs) and dict(got) == objs
        with pytest.raises(ObjectNotFound):
            list(store.get_many(["m/0", "m/missing"]))

    def test_many_names_coexist(self, store):
        for name in ALLOWED_NAMES:
            store.put(name, name.encode())
        assert names_of(store) == set(ALLOWED_NAMES)

    @pytest.mark.parametrize("name", INVALID_NAMES)
    @pytest.mark.parametrize("op", ["put", "open_write", "get", "stat", "delete", "begin_upload"])
    def test_invalid_names_rejected(self, store, name, op):
        args = (name, b"x") if op == "put" else (name,)
        with pytest.raises(UsageError):
            getattr(store, op)(*args)
        assert names_of(store) == set()

    # ------------------------------------------------------------ ranged reads
    @pytest.mark.parametrize("start,length", RANGES)
    def test_ranged_read(self, store, start, length):
        data = payload(1000)
        store.put("r", data)
        end = None if length is None else start + length
        assert store.get("r", start, length) == data[start:end]

    @pytest.mark.parametrize("start,length", [(1001, None), (1001, 1), (5000, 10)])
    def test_range_starting_past_end_is_invalid(self, store, start, length):
        store.put("r", payload(1000))
        with pytest.raises(InvalidRange):
            store.get("r", start, length)

    @pytest.mark.parametrize("start,length", [(-1, None), (0, -1)])
    def test_negative_range_is_a_usage_error(self, store, start, length):
        store.put("r", b"abc")
        with pytest.raises(UsageError):
            store.get("r", start, length)

    def test_zero_length_object(self, store):
        store.put("empty", b"")
        assert store.get("empty") == b"" and store.get("empty", 0, 0) == b""
        assert store.get("empty", 0, 10) == b""
        assert store.stat("empty").size == 0
        assert [(i.name, i.size) for i in store.list()] == [("empty", 0)]
        with pytest.raises(InvalidRange):
            store.get("empty", 1)

    # ------------------------------------------------------------ large objects and streams
    def test_large_object(self, store):
        data = payload(20 * MiB + 7, seed=1)
        store.put("big/one", data)
        assert store.stat("big/one").size == len(data)
        assert store.get("big/one") == data
        assert store.get("big/one", len(data) - 100) == data[-100:]
        assert store.get("big/one", 5 * MiB, MiB) == data[5 * MiB:6 * MiB]

    def test_large_stream(self, store):
        data = payload(20 * MiB + 3, seed=2)
        with store.open_write("big/stream") as w:
            for off in range(0, len(data), MiB):
                w.write(data[off:off + MiB])
        assert store.stat("big/stream").size == len(data)
        assert store.get("big/stream") == data

    def test_stream_invisible_until_commit(self, store):
        w = store.open_write("s/obj")
        w.write(b"part one, ")
        w.write(b"part two")
        assert not store.exists("s/obj") and names_of(store) == set()
        w.commit()
        assert store.get("s/obj") == b"part one, part two"
        assert names_of(store) == {"s/obj"}
        w.commit()  # idempotent
        with pytest.raises((UsageError, ValueError)):
            w.write(b"after commit")

    def test_stream_abort_leaves_nothing(self, store):
        w = store.open_write("s/obj")
        w.write(payload(100_000))
        w.abort()
        w.abort()  # safe twice
        assert not store.exists("s/obj") and names_of(store) == set()

    def test_stream_exception_in_with_aborts(self, store):
        store.put("s/obj", b"old")
        with pytest.raises(RuntimeError), store.open_write("s/obj") as w:
            w.write(b"new but unfinished")
            raise RuntimeError("boom")
        assert store.get("s/obj") == b"old"
        assert names_of(store) == {"s/obj"}

    # ------------------------------------------------------------ atomic visibility under faults
    def test_cut_put_leaves_nothing(self, store):
        faulty = FaultyStore(store)
        faulty.faults.cut_write_after(1000)
        with pytest.raises(TransientStoreError):
            faulty.put("data/cut", payload(50_000))
        assert not store.exists("data/cut") and names_of(store) == set()
        faulty.put("data/cut", payload(50_000))  # the cut was one-shot
        assert store.get("data/cut") == payload(50_000)

    def test_cut_stream_leaves_nothing(self, store):
        faulty = FaultyStore(store)
        faulty.faults.cut_write_after(150_000)
        w = faulty.open_write("data/cut")
        w.write(payload(100_000))
        with pytest.raises(TransientStoreError):
            w.write(payload(100_000))
        assert not store.exists("data/cut") and names_of(store) == set()

    def test_cut_overwrite_keeps_old_version(self, store):
        store.put("data/obj", b"old content")
        faulty = FaultyStore(store)
        faulty.faults.cut_write_after(10)
        with pytest.raises(TransientStoreError):
            faulty.put("data/obj", payload(10_000))
        assert store.get("data/obj") == b"old content"

    # ------------------------------------------------------------ resumable uploads
    def _part_size(self, store) -> int:
        return max(store.capabilities.min_part_size, 64 * 1024)

    def test_upload_out_of_order_resumed_by_new_instance(self, store, make_store):
        size = self._part_size(store)
        parts = {1: payload(size, 1), 2: payload(size, 2), 3: payload(size // 2, 3)}
        uid = store.begin_upload("big/obj")
        sent = {n: store.upload_part(uid, n, parts[n]) for n in (3, 1)}
        assert not store.exists("big/obj") and names_of(store) == set()
        other = make_store()  # "another process" finds the upload and sends what is missing
        assert PendingUpload("big/obj", uid) in other.uploads()
        assert [(p.number, p.size) for p in other.parts(uid)] == [(1, size), (3, size // 2)]
        for p in other.parts(uid):
            assert p.etag in ("", sent[p.number].etag)
        other.upload_part(uid, 2, parts[2])
        third = make_store()  # and a third one completes it
        assert [p.number for p in third.parts(uid)] == [1, 2, 3]
        assert not third.exists("big/obj")
        third.complete(uid)
        assert store.get("big/obj") == parts[1] + parts[2] + parts[3]
        assert store.uploads() == [] and names_of(store) == {"big/obj"}
        with pytest.raises(ObjectNotFound):
            store.parts(uid)

    def test_upload_reupload_replaces_part(self, store):
        size = self._part_size(store)
        uid = store.begin_upload("obj")
        store.upload_part(uid, 1, payload(size, 1))
        store.upload_part(uid, 1, payload(size + 5, 9))
        store.upload_part(uid, 2, b"tail")
        assert [(p.number, p.size) for p in store.parts(uid)] == [(1, size + 5), (2, 4)]
        store.complete(uid)
        assert store.get("obj") == payload(size + 5, 9) + b"tail"

    def test_upload_abort_removes_everything(self, store):
        uid = store.begin_upload("obj")
        store.upload_part(uid, 1, b"data")
        store.abort(uid)
        assert store.uploads() == [] and names_of(store) == set()
        for call in (lambda: store.parts(uid), lambda: store.complete(uid),
                     lambda: store.abort(uid), lambda: store.upload_part(uid, 2, b"x")):
            with pytest.raises(ObjectNotFound):
                call()

    @pytest.mark.parametrize("uid", ["0" * 32, "no-such-upload"])
    def test_unknown_upload_raises_not_found(self, store, uid):
        for call in (lambda: store.parts(uid), lambda: store.complete(uid),
                     lambda: store.abort(uid), lambda: store.upload_part(uid, 1, b"x")):
            with pytest.raises(ObjectNotFound):
                call()

    @pytest.mark.parametrize("number", [0, -1, 10_001])
    def test_bad_part_number(self, store, number):
        uid = store.begin_upload("obj")
        with pytest.raises(UsageError):
            store.upload_part(uid, number, b"x")

    def test_uploads_filtered_by_prefix(self, store):
        a = store.begin_upload("a/x")
        b = store.begin_upload("b/y")
        a2 = store.begin_upload("a/x")  # two uploads to one name are independent
        assert sorted(u.upload_id for u in store.uploads()) == sorted([a, b, a2])
        assert {(u.name, u.upload_id) for u in store.uploads("a/")} == {("a/x", a), ("a/x", a2)}
        assert store.uploads("c/") == []

    def test_complete_without_parts_makes_empty_object(self, store):
        uid = store.begin_upload("empty")
        store.complete(uid)
        assert store.get("empty") == b""

    def test_complete_replaces_existing_object(self, store):
        store.put("obj", b"old")
        uid = store.begin_upload("obj")
        store.upload_part(uid, 1, b"new")
        assert store.get("obj") == b"old"
        store.complete(uid)
        assert store.get("obj") == b"new"

    # ------------------------------------------------------------ concurrency
    def test_concurrent_writers_distinct_objects(self, store):
        def work(t):
            for i in range(10):
                store.put(f"c/{t}/{i}", payload(3000 + i, t))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        assert len(names_of(store, "c/")) == 80
        assert store.get("c/5/7") == payload(3007, 5)

    def test_concurrent_writers_same_object_never_torn(self, store):
        versions = {payload(200_000, seed) for seed in range(6)}
        stop = threading.Event()
        seen: list[bytes] = []

        def reader():
            while not stop.is_set():
                try:
                    seen.append(store.get("same"))
                except ObjectNotFound:
                    pass

        def writer(seed):
            for _ in range(4):
                store.put("same", payload(200_000, seed))

        watcher = threading.Thread(target=reader)
        watcher.start()
        try:
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(writer, range(6)))
        finally:
            stop.set()
            watcher.join()
        assert store.get("same") in versions
        assert all(data in versions for data in seen)
        assert names_of(store) == {"same"}
