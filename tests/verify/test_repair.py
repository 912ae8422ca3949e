"""rebuild_index: the index comes back from pack headers, whatever happened to it."""

from __future__ import annotations

import itertools
import os
import random

import pytest
from progress_kit import PhaseHook

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.backup.restorer import Restorer
from ebas.chunking.params import ChunkerParams
from ebas.crypto.ids import pack_id
from ebas.crypto.kdf import KdfParams
from ebas.errors import IntegrityError, LockError, TransientStoreError
from ebas.repo.index import IndexSegment
from ebas.repo.pack import TRAILER, pack_name
from ebas.repo.repository import Repository
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.verify import repair
from ebas.verify.check import check_repository
from ebas.verify.repair import rebuild_index

_names = itertools.count()


class Env:
    """A repository on a shared memory store with two snapshots of a small source tree."""

    def __init__(self, tmp_path):
        self.ns = f"repair-{next(_names)}"
        self.tmp = str(tmp_path)
        self.src = os.path.join(self.tmp, "src")
        rng = random.Random(5)
        files = {"a/one.bin": rng.randbytes(50_000), "a/two.txt": b"text line\n" * 3000,
                 "b/c/three.bin": rng.randbytes(20_000), "four.bin": rng.randbytes(9_000)}
        for rel, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(self.src, rel)), exist_ok=True)
            with open(os.path.join(self.src, rel), "wb") as f:
                f.write(data)
        self.repo = Repository.init(MemoryStore(self.ns), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY),
                                    chunker=ChunkerParams(min_size=1024, avg_size=4096, max_size=16384),
                                    pack_size=16 * 1024)
        self.backup()
        with open(os.path.join(self.src, "b/new.bin"), "wb") as f:
            f.write(rng.randbytes(12_000))
        self.backup()

    def backup(self):
        return Archiver(self.repo, BackupOptions(paths=[self.src], workers=1)).run().snapshot

    def store(self):
        return self.repo.store

    def open(self, store=None) -> Repository:
        return Repository.open(store or MemoryStore(self.ns), "pw")

    def names(self, prefix):
        return sorted(i.name for i in self.repo.store.list(prefix))

    def poke(self, name, offset, mask=0x20):
        data = bytearray(self.repo.store.get(name))
        data[offset] ^= mask
        self.repo.store.put(name, bytes(data))

    def entries(self) -> set[tuple]:
        """Every (blob, pack, offset, length) listed by the in-use index segments."""
        out = set()
        for name in self.names("index/"):
            seg = IndexSegment.decode(self.repo.aead, self.repo.store.get(name), name)
            ids = seg.entries["id"].tobytes()
            for i, row in enumerate(seg.entries):
                out.add((ids[32 * i : 32 * i + 32], seg.packs[int(row["pack"])], int(row["offset"]),
                         int(row["length"])))
        return out

    def restored(self, repo=None, snap=None) -> dict[str, bytes]:
        repo = repo or self.open()
        snap = snap or repo.find_snapshot("latest")
        target = os.path.join(self.tmp, f"restore-{next(_names)}")
        Restorer(repo, snap, target).run()
        return tree_bytes(target + self.src)

    def assert_clean(self, repo=None):
        repo = repo or self.open()
        for depth in (False, True):
            report = check_repository(repo, read_data=depth)
            assert report.ok and report.problems == [], report.problems
        assert self.restored(repo) == tree_bytes(self.src)


def tree_bytes(root):
    out = {}
    for d, _, files in os.walk(root):
        for n in files:
            with open(os.path.join(d, n), "rb") as f:
                out[os.path.relpath(os.path.join(d, n), root)] = f.read()
    return out


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    MemoryStore.drop_namespace(e.ns)


def test_rebuild_of_a_healthy_index_lists_the_same_blobs(env):
    before = env.entries()
    old = env.names("index/")
    report = rebuild_index(env.repo)
    assert report.ok and report.quarantined == [] and report.packs_written == []
    assert report.packs_read == len(env.names("data/"))
    assert report.blobs_indexed == len(before)
    assert sorted(report.segments_removed) == old
    assert env.names("index/") == sorted(report.segments_written)
    assert env.entries() == before
    assert env.repo.locks().list() == []  # the exclusive lock is gone
    assert report.summary().startswith(f"read {report.packs_read} intact pack(s), indexed {len(before)} blob(s)")
    env.assert_clean()


def test_rebuild_when_the_index_is_entirely_missing(env):
    before = env.entries()
    for name in env.names("index/"):
        env.repo.store.delete(name)
    with pytest.raises(IntegrityError):
        env.restored()  # nothing can be found without the index
    report = rebuild_index(env.repo)
    assert report.ok and report.segments_removed == [] and len(report.segments_written) == 1
    assert report.blobs_indexed == len(before) and env.entries() == before
    assert env.repo.index.damaged == [] and len(env.repo.index.table) > 0  # invalidated and reloaded
    env.assert_clean(env.repo)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_rebuild_replaces_a_damaged_segment_and_restore_is_bit_for_bit(env, damage):
    victim = env.names("index/")[0]
    if damage == "flip":
        env.poke(victim, 30)
    elif damage == "truncate":
        env.repo.store.put(victim, env.repo.store.get(victim)[:-9])
    else:
        env.repo.store.delete(victim)
    assert not check_repository(env.open()).ok
    report = rebuild_index(env.repo)
    assert report.ok
    assert (victim in report.segments_removed) == (damage != "delete")
    assert victim not in env.names("index/")
    env.assert_clean()


def test_old_segments_are_deleted_only_after_the_new_ones_are_written(env):
    faulty = FaultyStore(MemoryStore(env.ns))
    repo = env.open(faulty)
    faulty.faults.fail("delete", prefix="index/")  # crash right after the new index is written
    old = env.names("index/")
    with pytest.raises(TransientStoreError):
        rebuild_index(repo)
    names = env.names("index/")
    assert set(old) < set(names)  # old ones still there, next to the new one
    assert repo.locks().list() == []
    fresh = env.open()
    assert fresh.index.segments == sorted(set(names) - set(old))  # the old are superseded
    env.assert_clean(fresh)
    again = rebuild_index(fresh)
    assert set(again.segments_removed) == set(names)
    env.assert_clean()


def test_crash_while_writing_segments_leaves_a_working_index(env, monkeypatch):
    monkeypatch.setattr(repair, "MAX_SEGMENT_ENTRIES", 10)
    faulty = FaultyStore(MemoryStore(env.ns))
    faulty.faults.fail("put", nth=3, prefix="index/")
    old = env.names("index/")
    with pytest.raises(TransientStoreError):
        rebuild_index(env.open(faulty))
    assert set(old) < set(env.names("index/"))  # two new segments written, none superseding
    env.assert_clean()  # duplicate entries are harmless
    report = rebuild_index(env.repo)
    assert len(report.segments_written) > 3
    assert env.names("index/") == sorted(report.segments_written)
    env.assert_clean()


def test_segments_are_bounded_and_the_last_supersedes_the_old(env, monkeypatch):
    monkeypatch.setattr(repair, "MAX_SEGMENT_ENTRIES", 10)
    old = env.names("index/")
    report = rebuild_index(env.repo)
    segs = [IndexSegment.decode(env.repo.aead, env.repo.store.get(n), n) for n in report.segments_written]
    biggest_pack = max(len(seg.entries[seg.entries["pack"] == p]) for seg in segs for p in range(len(seg.packs)))
    assert all(len(s.entries) <= max(10, biggest_pack) for s in segs) and len(segs) > 2
    assert sorted("index/" + s.hex() for s in segs[-1].supersedes) == old
    assert all(not s.supersedes for s in segs[:-1])
    env.assert_clean()


def test_rebuild_needs_the_exclusive_lock(env):
    before = env.names("index/")
    held = env.repo.locks().acquire("backup elsewhere")
    try:
        with pytest.raises(LockError, match="backup elsewhere"):
            rebuild_index(env.repo)
    finally:
        held.release()
    assert env.names("index/") == before


def test_unreadable_pack_header_is_reported_and_its_verified_blobs_are_kept(env):
    name = env.names("data/")[0]
    size = env.repo.store.stat(name).size
    original = env.repo.store.get(name)
    env.poke(name, size - TRAILER.size - 2)  # damage the header only
    report = rebuild_index(env.repo)
    assert not report.ok
    [bad] = report.quarantined
    assert bad.name == name and "header is unreadable" in bad.reason and "do not hash to its name" in bad.reason
    assert bad.moved_to == "quarantine/" + name and name not in env.names("data/")
    assert env.repo.store.get(bad.moved_to)[:-TRAILER.size - 2] == original[:-TRAILER.size - 2]
    assert bad.damaged == 0 and "nothing was lost" in bad.hint
    assert bad.salvaged > 0 and report.blobs_salvaged == bad.salvaged and len(report.packs_written) == 1
    assert report.to_json()["quarantined"][0]["name"] == name
    text = report.summary()
    assert f"quarantined pack {name} (moved to quarantine/{name})" in text
    assert f"{bad.salvaged} intact blob(s) copied to new packs" in text
    deep = check_repository(env.open(), read_data=True)  # every blob is still found and readable
    assert deep.ok and [p.kind for p in deep.problems] == ["quarantined-object"]
    assert env.restored() == tree_bytes(env.src)
    again = rebuild_index(env.repo)  # idempotent: the salvage pack is intact
    assert again.ok and again.quarantined == []


def test_damaged_blobs_leave_the_index_so_the_next_backup_stores_them_again(env):
    repo = env.open()
    tree = bytes.fromhex(repo.find_snapshot("latest").tree)
    for comp in [c for c in env.src.split("/") if c] + ["a"]:
        tree = next(n for n in repo.load_tree(tree) if n.display_name == comp).subtree
    node = next(n for n in repo.load_tree(tree) if n.display_name == "one.bin")
    pid, off, length = repo.index.table.lookup(node.chunk_ids[1])
    name = pack_name(pid)
    env.poke(name, off + length // 2)  # a damaged blob ...
    env.poke(name, env.repo.store.stat(name).size - TRAILER.size - 2)  # ... and header
    report = rebuild_index(env.repo)
    [bad] = report.quarantined
    assert bad.name == name and bad.damaged == 1 and bad.damaged_ids == [node.chunk_ids[1].hex()[:16]]
    assert node.chunk_ids[1] not in env.open().index.table  # dropped, not trusted
    damaged = check_repository(env.open(), read_data=True)
    by_kind = {p.kind: p for p in damaged.errors}
    assert set(by_kind) == {"data-missing"}  # the rest of the pack lives on in a new pack
    assert by_kind["data-missing"].object.endswith("a/one.bin")
    env.repo.invalidate_index()
    fresh = env.backup()  # re-reads a/one.bin because its data is missing
    assert env.restored(snap=fresh) == tree_bytes(env.src)


def test_empty_repository_and_foreign_objects(env, tmp_path):
    repo = Repository.init(MemoryStore(), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    repo.store.put("data/zz/not-a-pack", b"x")
    repo.store.put("data/ab/" + "cd" * 32, b"misfiled")  # a pack name under the wrong folder
    repo.store.put("index/not-a-segment", b"junk")
    report = rebuild_index(repo)
    assert report.ok and report.packs_read == 0 and report.segments_written == []
    assert report.segments_removed == ["index/not-a-segment"] and list(repo.store.list("index/")) == []
    assert check_repository(repo).ok


def test_junk_under_a_pack_name_is_reported_unreadable(env):
    junk = b"definitely not a pack" * 3
    name = pack_name(pack_id(junk))
    env.repo.store.put(name, junk)
    packs = len(env.names("data/"))
    report = rebuild_index(env.repo)
    assert [(p.name, p.salvaged, p.damaged) for p in report.quarantined] == [(name, 0, 0)]
    assert "header is unreadable" in report.quarantined[0].reason
    assert report.packs_read == packs - 1 and name not in env.names("data/")
    check = check_repository(env.open(), read_data=True)
    assert check.ok and {p.kind for p in check.problems} == {"quarantined-object"}


def test_salvage_ignores_damaged_old_segments(env):
    name = env.names("data/")[0]
    env.poke(name, env.repo.store.stat(name).size - TRAILER.size - 2)
    for seg in env.names("index/"):
        env.poke(seg, 40)  # no old segment can vouch for the pack's blobs
    report = rebuild_index(env.repo)
    assert [(p.name, p.salvaged) for p in report.quarantined] == [(name, 0)]
    assert report.blobs_salvaged == 0
    assert not check_repository(env.open()).ok  # that pack's data is unreachable now


def test_progress_is_reported_per_pack(env):
    seen = []
    rebuild_index(env.repo, progress=PhaseHook(lambda phase, done, total: seen.append((phase, done, total))))
    packs = len(env.names("data/"))
    assert seen == [("packs", i, packs) for i in range(packs + 1)]
