"""Pack buffers: a write session keeps a bounded number of packs in memory, reuses their
buffers, still handles blobs larger than a buffer, and never leaves a writer waiting on
an upload that failed."""

from __future__ import annotations

import random
import threading

import pytest

from ebas.errors import TransientStoreError
from ebas.repo.pack import KIND_DATA, KIND_TREE, parse_pack
from ebas.repo.packbuf import PackBufferPool
from ebas.repo.tree import encode_tree

PACK = 256 * 1024


def blobs(n: int, seed: int, size: int = 64 * 1024) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


class GatedStore:
    """A store whose pack uploads wait until ``gate`` is set (a slow or stalled link)."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.waiting = 0
        self.fail: Exception | None = None

    def put(self, name, data):
        if name.startswith("data/"):
            self.waiting += 1
            self.gate.wait(30)
            if self.fail is not None:
                raise self.fail
        return self.inner.put(name, data)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


@pytest.fixture
def gated(repos, tmp_path):
    store = GatedStore(repos.store(tmp_path / "grepo"))
    return repos.init(store=store, pack_size=PACK), store


def test_packs_in_memory_are_bounded_while_uploads_stall(gated):
    """With uploads stalled, writers stop after the open packs and one pack per upload
    thread: memory does not grow with the data written. Then everything lands intact."""
    repo, store = gated
    data = blobs(40, seed=1)  # ten packs' worth
    ids: list[bytes] = []
    with repo.session(upload_threads=2) as s:
        writer = threading.Thread(target=lambda: ids.extend(s.put_blob(KIND_DATA, d)[0] for d in data))
        writer.start()
        writer.join(2)
        assert writer.is_alive()  # waiting for a buffer, not buffering the rest of the data
        assert s._buffers.live <= 2 + 2
        assert store.waiting == 2  # both upload threads busy, nothing else sealed and queued
        store.gate.set()
        writer.join(30)
        assert not writer.is_alive()
        s.flush()
        assert s._buffers.live <= 2 + 2  # reused, not one per pack
        assert s.stats.packs_written >= 10
    assert [repo.get_blob(i) for i in ids] == data


def test_blob_larger_than_a_pack_buffer(repo):
    """A tree blob bigger than a whole pack buffer (a huge directory) gets a buffer of its own."""
    from ebas.repo.tree import FILE, Node

    nodes = [Node(name=b"f%07d" % i, type=FILE, mode=0o644, size=i) for i in range(60_000)]
    big = encode_tree(nodes)
    with repo.session() as s:
        assert len(big) > s._buffers.capacity
        small = s.put_blob(KIND_TREE, b"small tree")[0]
        bid = s.put_blob(KIND_TREE, big)[0]
        after = s.put_blob(KIND_TREE, b"another small tree")[0]
        s.flush()
    assert repo.get_blob(bid) == big
    assert repo.get_blob(small) == b"small tree" and repo.get_blob(after) == b"another small tree"
    for info in repo.store.list("data/"):  # every pack parses: headers match their blobs
        assert parse_pack(repo.aead, repo.store.get(info.name))


def test_failed_upload_wakes_a_waiting_writer(gated):
    """A writer blocked on a full buffer pool gets the upload's error, not a hang."""
    repo, store = gated
    errors: list[BaseException] = []

    def write():
        try:
            for d in blobs(40, seed=2):
                s.put_blob(KIND_DATA, d)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    with repo.session(upload_threads=1) as s:
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(2)
        assert writer.is_alive()
        store.fail = TransientStoreError("link down")
        store.gate.set()
        writer.join(30)
        assert not writer.is_alive()
    assert errors and isinstance(errors[0], TransientStoreError)


def test_pool_reuses_buffers_and_counts_one_offs():
    pool = PackBufferPool(capacity=1 << 20, limit=2)
    a, b = pool.take(1000), pool.take(1000)
    assert pool.take(1000) is None  # at the limit
    pool.give(a)
    assert pool.take(1000) is a and a.used == 0 and a.entries == []
    pool.give(b)
    big = pool.take(4 << 20)  # larger than a buffer: replaces the free one
    assert big is not None and big.capacity > 4 << 20 and not big.standard
    assert pool.live == 2 and pool.take(10) is None
    pool.give(big)
    assert pool.live == 1 and pool.take(10) is not None
