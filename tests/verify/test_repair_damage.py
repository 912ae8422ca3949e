"""``repair index`` never trusts what is not intact: a flipped byte in a blob, a truncated pack,
a pack stored under another pack's name. Damaged blobs leave the index (the next backup
stores their data again and restores byte for byte), intact blobs are kept, the suspect
pack goes to quarantine/, and prune never deletes a genuine pack because of a copy."""

from __future__ import annotations

import os

import pytest

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.errors import IntegrityError
from ebas.lifecycle.prune import prune
from ebas.repo.index import IndexSegment, segment_name
from ebas.repo.pack import pack_name, parse_pack
from ebas.verify.check import check_repository
from ebas.verify.repair import rebuild_index


def read_tree(root: str) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every regular file under ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = os.path.join(dirpath, f)
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, root)] = fh.read()
    return out


def data_blob(env, rel: str = "photos/img1.bin", k: int = 1) -> bytes:
    return env.node(rel).chunk_ids[k]


def kinds(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in report.problems:
        out.setdefault(p.kind, []).append(p)
    return out


def impostor_name(env, genuine: str) -> str:
    """A valid-looking pack name that no pack has (a copy stored under it is an impostor)."""
    fake = pack_name(bytes(b ^ 0x5A for b in bytes.fromhex(genuine.rsplit("/", 1)[1])))
    assert fake not in env.names("data/")
    return fake


def backup(env, level: str = "incremental"):
    snap = Archiver(env.fresh(), BackupOptions(paths=[env.src], workers=1, level=level)).run().snapshot
    env.snaps.append(snap)
    return snap


# ----------------------------------------------------------------- item 1
@pytest.mark.parametrize("level", ["incremental", "full"])
def test_flipped_blob_then_repair_then_backup_restores_the_source(env, level):
    blob = data_blob(env)
    name, off, length = env.locate(blob)
    env.flip(name, off + length // 2)  # inside the blob: the header is intact
    report = check_repository(env.fresh(), read_data=True)
    [p] = kinds(report)["pack-corrupt"]
    assert p.object == name and blob.hex()[:16] in p.message
    assert "repair index" in p.hint and "quarantine/" in p.hint and "next backup stores" in p.hint
    rep = rebuild_index(env.fresh())
    [q] = rep.quarantined
    assert q.name == name and q.moved_to == "quarantine/" + name and q.damaged == 1
    assert q.damaged_ids == [blob.hex()[:16]] and "1 of its" in q.reason and "do not hash to its name" in q.reason
    assert rep.blobs_damaged == 1 and "replica" in q.hint and "next backup stores" in rep.summary()
    repo = env.fresh()
    assert blob not in repo.index.table and name not in env.names("data/")
    between = check_repository(repo, read_data=True)  # the truth: the old snapshots lack that data
    assert set(kinds(between)) == {"data-missing", "quarantined-object"}
    [missing] = kinds(between)["data-missing"]
    assert "photos/img1.bin" in missing.object and set(missing.snapshots) == {s.id for s in env.snaps}
    snap = backup(env, level)  # must not deduplicate against the damaged blob
    fresh = env.fresh()
    assert blob in fresh.index.table and env.restore(snap, fresh) == read_tree(env.src)
    after = check_repository(fresh, read_data=True)  # the same bytes got the same id: old snapshots heal too
    assert after.ok and set(kinds(after)) == {"quarantined-object"}
    env.assert_restores(fresh)
    assert rebuild_index(fresh).ok  # the salvage pack and the new data are intact


def test_a_damaged_blob_is_never_deduplicated_with_the_dedup_cache_on(env, monkeypatch, tmp_path):
    monkeypatch.setenv("EBAS_DEDUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EBAS_DEDUP_CACHE_MIN", "1")
    env.fresh().index  # the cache now holds the table with the blob
    assert any((tmp_path / "cache").rglob("meta.json"))
    blob = data_blob(env, "photos/img2.bin", 0)
    name, off, length = env.locate(blob)
    env.flip(name, off + 7)
    rebuild_index(env.fresh())
    repo = env.fresh()
    assert blob not in repo.index.table  # the cached table was not reused
    snap = backup(env)
    assert env.restore(snap, env.fresh()) == read_tree(env.src)


def test_truncated_pack_keeps_the_blobs_before_the_cut(env):
    blob = data_blob(env, "photos/img1.bin", 0)
    name, off, length = env.locate(blob)
    entries = parse_pack(env.repo.aead, env.repo.store.get(name))
    env.truncate(name, off + length)  # header gone; blobs up to this one intact
    rep = rebuild_index(env.fresh())
    [q] = rep.quarantined
    assert "header is unreadable" in q.reason
    before_cut = [e for e in entries if e.offset + e.length <= off + length]
    assert q.salvaged + q.duplicates == len(before_cut) and q.damaged == len(entries) - len(before_cut)
    repo = env.fresh()
    assert all(e.blob_id in repo.index.table for e in before_cut)
    snap = backup(env)
    assert env.restore(snap, env.fresh()) == read_tree(env.src)


# ----------------------------------------------------------------- item 3
def test_a_copy_under_another_pack_name_is_quarantined_and_the_genuine_pack_survives_prune(env):
    blob = data_blob(env)
    genuine, _, _ = env.locate(blob)
    fake = impostor_name(env, genuine)
    env.repo.store.put(fake, env.repo.store.get(genuine))
    rep = rebuild_index(env.fresh())
    [q] = rep.quarantined
    assert q.name == fake and f"a copy of pack {genuine}" in q.reason
    assert q.salvaged == 0 and q.damaged == 0 and q.duplicates > 0 and "nothing was lost" in q.hint
    assert fake not in env.names("data/") and genuine in env.names("data/")
    res = prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert genuine in env.names("data/") and res.pending == []
    report = check_repository(env.fresh(), read_data=True)
    assert report.ok and set(kinds(report)) == {"quarantined-object"}
    env.assert_restores(env.fresh())


def test_a_renamed_pack_whose_genuine_name_is_gone_loses_nothing(env):
    blob = data_blob(env)
    genuine, _, _ = env.locate(blob)
    fake = impostor_name(env, genuine)
    env.repo.store.put(fake, env.repo.store.get(genuine))
    env.repo.store.delete(genuine)
    rep = rebuild_index(env.fresh())
    [q] = rep.quarantined
    assert q.salvaged > 0 and q.damaged == 0 and q.duplicates == 0 and "changed since" in q.reason
    prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_an_indexed_impostor_makes_prune_refuse_instead_of_deleting_the_genuine_pack(env):
    """The index lists a copy (an older ebas indexed it, or a segment was planted): the copy
    is newer, so it would be the keeper and the genuine pack would look redundant."""
    blob = data_blob(env)
    genuine, _, _ = env.locate(blob)
    fake = impostor_name(env, genuine)
    data = env.repo.store.get(genuine)
    env.repo.store.put(fake, data)
    seg = IndexSegment.from_packs({bytes.fromhex(fake.rsplit("/", 1)[1]): parse_pack(env.repo.aead, data)})
    stored = seg.encode(env.repo.aead)
    env.repo.store.put(segment_name(stored), stored)
    before = {n: env.repo.store.stat(n).size for n in env.names("data/")}
    for dry_run in (True, False):
        with pytest.raises(IntegrityError, match="do not hash to their names") as err:
            prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0, dry_run=dry_run)
        assert fake in err.value.message and "repair index" in err.value.hint
    assert {n: env.repo.store.stat(n).size for n in env.names("data/")} == before
    rebuild_index(env.fresh())
    prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert genuine in env.names("data/") and fake not in env.names("data/")
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_a_backup_never_adopts_an_impostor(env):
    blob = data_blob(env)
    genuine, _, _ = env.locate(blob)
    fake = impostor_name(env, genuine)
    env.repo.store.put(fake, env.repo.store.get(genuine))
    snap = backup(env)
    assert snap.stats["packs_adopted"] == 0
    fake_id = bytes.fromhex(fake.rsplit("/", 1)[1])
    assert not env.fresh().index.table.has_pack(fake_id)
    prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)  # the unindexed copy is garbage
    assert genuine in env.names("data/") and fake not in env.names("data/")
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_a_backup_never_adopts_a_damaged_orphan(env):
    """An unindexed pack (a crashed backup's) with a flipped byte is not adopted: its blobs
    are stored again rather than trusted."""
    payload = os.urandom(30_000)
    orphan = env.orphan_pack([payload])
    env.flip(orphan, 40)
    with open(os.path.join(env.src, "orphaned.bin"), "wb") as f:
        f.write(payload)
    snap = backup(env)
    assert snap.stats["packs_adopted"] == 0
    assert env.restore(snap, env.fresh()) == read_tree(env.src)


def test_prune_does_not_adopt_an_unindexed_pack_that_does_not_hash_to_its_name(env):
    """A needed blob whose only copy is in an unindexed, misnamed pack: prune neither adopts
    nor deletes it, and says so; repair index then salvages it."""
    blob = data_blob(env)
    genuine, _, _ = env.locate(blob)
    fake = impostor_name(env, genuine)
    env.repo.store.put(fake, env.repo.store.get(genuine))
    env.repo.store.delete(genuine)
    pid = bytes.fromhex(genuine.rsplit("/", 1)[1])
    for seg in env.names("index/"):  # drop the genuine pack from the index, as a lost segment would
        s = IndexSegment.decode(env.repo.aead, env.repo.store.get(seg), seg)
        if pid in s.packs:
            env.repo.store.delete(seg)
            keep = {p: e for p, e in s.pack_entries().items() if p != pid}
            rebuilt = IndexSegment.from_packs({p: [_entry(r, ids) for r, ids in _rows(e)] for p, e in keep.items()})
            stored = rebuilt.encode(env.repo.aead)
            env.repo.store.put(segment_name(stored), stored)
    res = prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert fake in env.names("data/") and any("does not hash to its name" in p for p in res.problems)
    assert res.plan["packs_suspect"] == 1
    rebuild_index(env.fresh())
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def _rows(entries):
    ids = entries["id"].tobytes()
    return [(r, ids[32 * i : 32 * i + 32]) for i, r in enumerate(entries)]


def _entry(row, bid):
    from ebas.repo.pack import PackEntry

    return PackEntry(bid, int(row["kind"]), int(row["codec"]), int(row["offset"]), int(row["length"]), int(row["raw"]))


# ------------------------------------------------- the reported cases, as a user sees them
def test_reported_case_flip_repair_backup_restore(env):
    """Issue: one flipped byte in a data pack (header intact); repair index; the next backup
    exits 0 and its snapshot must restore the source byte for byte."""
    name, off, length = env.locate(data_blob(env))
    env.flip(name, off + length // 2)
    assert not check_repository(env.fresh(), read_data=True).ok
    rebuild_index(env.fresh())
    snap = backup(env)
    assert env.restore(snap, env.fresh()) == read_tree(env.src)


def test_reported_case_copied_pack_repair_prune_check(env):
    """Issue: a copy of a pack under another valid pack name; repair index; prune; then check
    is clean and every snapshot restores byte for byte."""
    genuine, _, _ = env.locate(data_blob(env))
    env.repo.store.put(impostor_name(env, genuine), env.repo.store.get(genuine))
    rebuild_index(env.fresh())
    prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_prune_keeps_an_unreadable_unindexed_pack_while_needed_blobs_are_nowhere(env):
    """The index was lost and one pack's header is damaged: prune cannot tell what that pack
    holds, and snapshots need blobs it cannot find, so the pack stays (a replica can heal it)."""
    name, _, _ = env.locate(data_blob(env))
    good = env.repo.store.get(name)
    env.flip(name, len(good) - 20)  # inside the sealed header
    for seg in env.names("index/"):
        env.repo.store.delete(seg)
    res = prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert name in env.names("data/") and res.plan["packs_suspect"] == 1
    assert any(name.rsplit("/", 1)[1][:16] in p and "unreadable header" in p for p in res.problems)
    env.repo.store.put(name, good)  # copied back from a replica
    rebuild_index(env.fresh())
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_a_damaged_copy_of_a_blob_with_an_intact_copy_elsewhere_loses_nothing(env):
    """A copy of a pack with a flipped byte: its damaged blob is intact in the genuine pack."""
    blob = data_blob(env)
    genuine, off, length = env.locate(blob)
    fake = impostor_name(env, genuine)
    data = bytearray(env.repo.store.get(genuine))
    data[off + length // 2] ^= 0x08
    env.repo.store.put(fake, bytes(data))
    [q] = rebuild_index(env.fresh()).quarantined
    assert q.name == fake and q.damaged == 0 and q.salvaged == 0 and "1 of its" in q.reason
    assert "nothing was lost" in q.hint
    assert check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_a_repair_interrupted_before_removing_a_suspect_leaves_it_untrusted(env):
    """A pack written with a bad blob hashes to its name; repair judges it, copies it to
    quarantine/, and dies before deleting it from data/. No backup and no prune adopts it."""
    from ebas.crypto.ids import pack_id
    from ebas.errors import TransientStoreError
    from ebas.repo.pack import KIND_DATA, PackEntry, encode_header
    from ebas.repo.repository import Repository
    from ebas.storage import open_store
    from ebas.storage.wrappers.faulty import FaultyStore

    payload = os.urandom(20_000)
    bid = env.repo.ids.blob_id(payload)
    stored, codec = env.repo.codec.encode(bid, payload)
    stored = stored[:30] + bytes([stored[30] ^ 1]) + stored[31:]  # damaged before the pack was hashed
    data = stored + encode_header(env.repo.aead, [PackEntry(bid, KIND_DATA, codec, 0, len(stored), len(payload))])
    bad = pack_name(pack_id(data))
    env.repo.store.put(bad, data)
    faulty = FaultyStore(open_store(env.root, fsync=False))
    faulty.faults.fail("delete", prefix="data/")
    with pytest.raises(TransientStoreError):
        rebuild_index(Repository.open(faulty, "pw"))
    assert bad in env.names("data/") and env.repo.store.exists("quarantine/" + bad)
    with open(os.path.join(env.src, "late.bin"), "wb") as f:
        f.write(payload)
    snap = backup(env)
    assert snap.stats["packs_adopted"] == 0
    assert env.restore(snap, env.fresh()) == read_tree(env.src)
    res = prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert res.plan["packs_adopt"] == 0
    assert bad not in env.names("data/")  # unindexed and needed by nothing: garbage
    assert rebuild_index(env.fresh()).ok and check_repository(env.fresh(), read_data=True).ok
    env.assert_restores(env.fresh())


def test_an_indexed_damaged_copy_of_a_pack_being_repacked_never_costs_the_genuine_pack(env):
    """Found by the property test: the copy is the keeper and is itself to be repacked; its
    damaged blob makes the repack skip it, so the genuine pack must not be deleted either."""
    from ebas.lifecycle.forget import forget
    from ebas.lifecycle.pruneplan import make_plan

    forget(env.fresh(), snapshot_ids=[env.snaps[0].id])
    plan = make_plan(env.fresh(), grace=0, max_unused=0.0)
    pid, rows = next((p, r) for p, r in sorted(plan.repack.items()) if len(r))
    genuine = pack_name(pid)
    fake = impostor_name(env, genuine)
    data = bytearray(env.repo.store.get(genuine))
    data[int(rows[0]["offset"]) + 5] ^= 0x02  # a live blob of the copy is damaged
    env.repo.store.put(fake, bytes(data))
    seg = IndexSegment.from_packs({bytes.fromhex(fake.rsplit("/", 1)[1]): parse_pack(env.repo.aead, bytes(data))})
    stored = seg.encode(env.repo.aead)
    env.repo.store.put(segment_name(stored), stored)
    # which copy the index resolves a blob to depends on the (random) segment names: either
    # prune verifies the impostor, or it meets the damaged tree copy; both refuse, deleting nothing
    with pytest.raises(IntegrityError, match="do not hash to their names|cannot be read"):
        prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert genuine in env.names("data/")
    rebuild_index(env.fresh())
    prune(env.fresh(), grace=0, max_wait=0, max_unused=0.0)
    assert check_repository(env.fresh(), read_data=True).ok
    assert env.restore(env.snaps[-1], env.fresh()) == read_tree(env.src)


def test_a_store_that_refuses_the_delete_leaves_the_suspect_unindexed_and_untrusted(env):
    from ebas.errors import PermissionDenied
    from ebas.repo.repository import Repository
    from ebas.storage import open_store
    from ebas.storage.wrappers.faulty import FaultyStore

    name, off, length = env.locate(data_blob(env))
    env.flip(name, off + length // 2)
    faulty = FaultyStore(open_store(env.root, fsync=False))
    faulty.faults.fail("delete", prefix="data/", times=None, exc=PermissionDenied("append-only credentials"))
    rep = rebuild_index(Repository.open(faulty, "pw"))
    [q] = rep.quarantined
    assert q.moved_to == "" and "refused to delete" in q.hint and "append-only credentials" in q.hint
    assert "left in data/" in rep.summary() and name in env.names("data/")
    snap = backup(env)  # neither adopted (hash, quarantine copy) nor deduplicated against
    assert snap.stats["packs_adopted"] == 0 and env.restore(snap, env.fresh()) == read_tree(env.src)


def test_two_different_suspects_under_one_name_get_two_quarantine_copies(env):
    packs = env.names("data/")
    fake = impostor_name(env, packs[0])
    for genuine in packs[:2]:
        env.repo.store.put(fake, env.repo.store.get(genuine))
        [q] = rebuild_index(env.fresh()).quarantined
        assert q.name == fake
    assert env.names("quarantine/") == sorted(["quarantine/" + fake, "quarantine/" + fake + ".1"])
    assert env.repo.store.get("quarantine/" + fake + ".1") == env.repo.store.get(packs[1])
    assert check_repository(env.fresh(), read_data=True).ok
