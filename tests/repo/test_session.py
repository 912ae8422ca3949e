"""Write sessions: dedup, pack upload, index checkpoints and crash safety (FaultyStore)."""

from __future__ import annotations

import random

import pytest

from ebas import api
from ebas.errors import IndexDamaged, IntegrityError, StoreFull, TransientStoreError
from ebas.repo.pack import KIND_DATA, KIND_TREE, pack_id_from_name, parse_pack
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import encode_tree
from ebas.storage.wrappers.faulty import FaultyStore

BLOB = 64 * 1024  # four random blobs (plus overhead) fill a 256 KiB pack


def blobs(n: int, seed: int = 0, size: int = BLOB) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


def packs_in(store) -> dict[str, int]:
    return {i.name: i.size for i in store.list("data/")}


def snapshot_for(repo, session) -> Snapshot:
    tree, _ = session.put_blob(KIND_TREE, encode_tree([]))
    return Snapshot(time_ns=repo.clock.now_ns(), host="h", paths=["/x"], tree=tree.hex())


@pytest.fixture
def faulty(repos, tmp_path):
    """``(repository over a FaultyStore, the FaultyStore)``."""
    store = FaultyStore(repos.store(tmp_path / "frepo"))
    return repos.init(store=store), store


# ------------------------------------------------------------------------- dedup
def test_dedup_within_a_session(repo):
    data = blobs(3)
    with repo.session() as s:
        ids = [s.put_blob(KIND_DATA, d) for d in data]
        assert all(new for _, new in ids)
        again = [s.put_blob(KIND_DATA, d) for d in data]  # still in the open pack
        assert again == [(i, False) for i, _ in ids]
        s.flush()
        assert s.put_blob(KIND_DATA, data[0]) == (ids[0][0], False)  # now in an uploaded pack
        assert s.stats.blobs_new == 3 and s.stats.blobs_dedup == 4
    assert len(packs_in(repo.store)) == 1
    for (bid, _), d in zip(ids, data):
        assert repo.get_blob(bid) == d


def test_dedup_across_sessions_and_reopen(repos, repo):
    data = blobs(10, seed=1)
    with repo.session() as s:
        ids = [s.put_blob(KIND_DATA, d)[0] for d in data]
        s.commit(snapshot_for(repo, s))
    before = packs_in(repo.store)
    assert len(before) >= 2
    again = repos.reopen(repo)
    with again.session() as s:
        assert [s.put_blob(KIND_DATA, d) for d in data] == [(i, False) for i in ids]
        fresh = s.put_blob(KIND_DATA, b"one more")
        assert fresh[1] is True
        s.flush()
        assert s.stats.packs_written == 1 and s.stats.blobs_new == 1
    after = packs_in(repo.store)
    assert set(before) < set(after) and len(after) == len(before) + 1
    third = repos.reopen(repo)
    for i, d in zip(ids, data):
        assert third.get_blob(i) == d
    assert third.get_blob(fresh[0]) == b"one more"


def test_blobs_read_back_are_verified(faulty):
    repo, store = faulty
    data = blobs(6, seed=2)
    with repo.session() as s:
        ids = [s.put_blob(KIND_DATA, d)[0] for d in data]
        s.flush()
    for i, d in zip(ids, data):
        assert repo.get_blob(i) == d
    loc = repo.index.table.lookup(ids[4])
    store.faults.corrupt_reads(f"data/{loc[0].hex()[:2]}/{loc[0].hex()}", offset=loc[1] + 100)
    with pytest.raises(IntegrityError, match=ids[4].hex()[:16]):
        repo.get_blob(ids[4])
    store.faults.clear()
    assert repo.get_blob(ids[4]) == data[4]


def test_uploaded_pack_header_is_read_back_before_it_is_trusted(faulty):
    repo, store = faulty
    # the store acknowledges the write but hands back a damaged header: the read-back check notices
    with repo.session() as s:
        for d in blobs(2, seed=3):
            s.put_blob(KIND_DATA, d)
        real_get = store.get

        def lying_get(name, start=0, length=None):
            data = real_get(name, start, length)
            if name.startswith("data/") and data:
                data = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
            return data

        store.get = lying_get
        with pytest.raises(IntegrityError):
            s.flush()
    assert list(store.list("index/")) == []  # nothing indexed from an unverified pack


# ----------------------------------------------------------------- checkpoints
def test_index_checkpoints_every_n_packs(repos, repo):
    with repo.session(checkpoint_packs=2) as s:
        ids = [s.put_blob(KIND_DATA, d)[0] for d in blobs(26, seed=4)]  # 6 full packs + an open one
        for f in list(s._futures):
            f.result()
        segments = [i.name for i in repo.store.list("index/")]
        assert s.stats.packs_written == 6
        assert len(segments) == 3
        # crash here: the open pack is lost, the six uploaded packs are indexed
    reopened = repos.reopen(repo)
    indexed = set(reopened.index.table.packs)
    assert {pack_id_from_name(n) for n in packs_in(repo.store)} == indexed
    present = [i for i in ids if reopened.has_blob(i)]
    assert len(present) == 24
    with reopened.session() as s:
        assert s.adopt_unindexed_packs() == 0


def test_flush_indexes_remaining_packs(repos, repo):
    with repo.session(checkpoint_packs=100) as s:
        ids = [s.put_blob(KIND_DATA, d)[0] for d in blobs(9, seed=5)]
        s.flush()
        assert s.stats.index_segments == 1
    reopened = repos.reopen(repo)
    assert all(reopened.has_blob(i) for i in ids)
    assert len(reopened.index.segments) == 1


# -------------------------------------------------------------- crash safety
def _crash_then_rerun(repos, repo, store, data, arm):
    """Run a session that fails as ``arm`` programs the store; then re-run it cleanly.
    Returns (packs stored by the failed run, the re-run's session stats, ids)."""
    arm(store.faults)
    with pytest.raises(Exception) as err:
        with repo.session(checkpoint_packs=1000) as s:
            for d in data:
                s.put_blob(KIND_DATA, d)
            s.commit(snapshot_for(repo, s))
    store.faults.clear()
    assert list(store.list("snapshots/")) == []  # the commit point was never reached
    survivors = packs_in(store)
    for name in survivors:  # every published pack is whole
        parse_pack(repo.aead, store.get(name))
    again = repos.reopen(repo)
    assert again.snapshots() == []
    assert again.index.table.packs == []  # nothing was indexed
    puts_before = store.calls["put"]
    with again.session() as s:
        adopted = s.adopt_unindexed_packs()
        ids = [s.put_blob(KIND_DATA, d)[0] for d in data]
        s.commit(snapshot_for(again, s))
        stats = s.stats
    assert adopted == len(survivors) == stats.packs_adopted
    adopted_blobs = sum(len(parse_pack(repo.aead, store.get(n))) for n in survivors)
    # only blobs that were not in a surviving pack were stored (and uploaded) again;
    # the re-run puts every data blob and one (empty) tree blob
    assert stats.blobs_new == len(data) + 1 - adopted_blobs
    assert stats.blobs_dedup == adopted_blobs
    new_packs = set(packs_in(store)) - set(survivors)
    assert len(new_packs) == stats.packs_written
    data_puts = store.calls["put"] - puts_before - stats.index_segments - 1  # minus index + snapshot
    assert data_puts == stats.packs_written
    final = repos.reopen(repo)
    assert len(final.snapshots()) == 1
    for i, d in zip(ids, data):
        assert final.get_blob(i) == d
    return err.value, survivors, stats


def test_failed_pack_upload_then_rerun_adopts_survivors(repos, faulty):
    repo, store = faulty
    data = blobs(30, seed=6)
    err, survivors, stats = _crash_then_rerun(
        repos, repo, store, data, lambda f: f.fail("put", nth=4, prefix="data/"))
    assert isinstance(err, TransientStoreError)
    assert len(survivors) >= 3 and stats.packs_adopted >= 3


def test_cut_pack_upload_then_rerun_adopts_survivors(repos, faulty):
    repo, store = faulty
    data = blobs(30, seed=7)
    err, survivors, stats = _crash_then_rerun(
        repos, repo, store, data, lambda f: (f.fail("put", nth=1, times=0), f.cut_write_after(100_000, prefix="data/")))
    assert isinstance(err, TransientStoreError) and "cut" in str(err)
    assert stats.blobs_new > 0


def test_lost_reply_after_pack_upload(repos, faulty):
    """The store wrote the pack but the client saw an error: the re-run adopts it."""
    repo, store = faulty
    data = blobs(12, seed=8)
    err, survivors, stats = _crash_then_rerun(
        repos, repo, store, data, lambda f: f.fail("put", nth=2, prefix="data/", after=True))
    assert isinstance(err, TransientStoreError)
    assert stats.packs_adopted >= 2


def test_failed_index_write_then_rerun(repos, faulty):
    repo, store = faulty
    data = blobs(12, seed=9)
    err, survivors, stats = _crash_then_rerun(
        repos, repo, store, data, lambda f: f.fail("put", prefix="index/"))
    assert isinstance(err, TransientStoreError)
    assert stats.blobs_new == 0  # all 12 data blobs and the tree were adopted
    assert stats.packs_adopted == len(survivors) >= 3


def test_store_full_surfaces_as_store_full(repos, faulty):
    repo, store = faulty
    store.faults.disk_full_after(600_000)
    with pytest.raises(StoreFull):
        with repo.session() as s:
            for d in blobs(30, seed=10):
                s.put_blob(KIND_DATA, d)
            s.commit(snapshot_for(repo, s))
    assert list(store.list("snapshots/")) == []
    store.faults.clear()
    assert repos.reopen(repo).snapshots() == []


def test_store_full_during_backup_surfaces_as_store_full(repos, faulty, tmp_path):
    repo, store = faulty
    src = tmp_path / "src"
    src.mkdir()
    for i, d in enumerate(blobs(20, seed=11)):
        (src / f"f{i}").write_bytes(d)
    store.faults.disk_full_after(400_000)
    with pytest.raises(StoreFull) as err:
        api.backup(repo, [str(src)])
    assert err.value.hint  # tells the admin what to do
    assert list(store.list("snapshots/")) == []
    assert list(store.list("locks/")) == []  # the backup's lock was released
    store.faults.clear()
    again = repos.reopen(repo)
    result = api.backup(again, [str(src)])
    assert result.snapshot.stats["packs_adopted"] >= 1
    out = tmp_path / "out"
    api.restore(again, "latest", str(out))
    for i, d in enumerate(blobs(20, seed=11)):
        assert (out / str(src).lstrip("/") / f"f{i}").read_bytes() == d


def test_damaged_index_stops_writers(repos, repo):
    with repo.session() as s:
        for d in blobs(5, seed=12):
            s.put_blob(KIND_DATA, d)
        s.flush()
    (name,) = [i.name for i in repo.store.list("index/")]
    stored = bytearray(repo.store.get(name))
    stored[-3] ^= 0xFF
    repo.store.delete(name)
    repo.store.put(name, bytes(stored))
    again = repos.reopen(repo)
    assert [n for n, _ in again.index.damaged] == [name]
    with pytest.raises(IndexDamaged, match="damaged"):
        again.session()
