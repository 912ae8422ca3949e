"""``check --read-data`` records the damaged blob copies it finds (``damaged/``), so a backup
run before ``repair index`` stores that data again instead of building on the damaged copy,
and reads take the new, intact copy: the new snapshot restores byte for byte."""

from __future__ import annotations

import os

import pytest

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.repo.repository import Repository
from ebas.storage import open_store
from ebas.storage.wrappers import ReadOnlyStore
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


def kinds(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in report.problems:
        out.setdefault(p.kind, []).append(p)
    return out


def flip_blob(env, rel: str = "photos/img1.bin", k: int = 1) -> tuple[bytes, str]:
    """Flip one byte inside a data blob of ``src/rel`` (the pack header stays intact)."""
    blob = env.node(rel).chunk_ids[k]
    name, off, length = env.locate(blob)
    env.flip(name, off + length // 2)
    return blob, name


@pytest.mark.parametrize("level", ["incremental", "full"])
def test_a_backup_after_check_read_data_without_repair_restores_byte_for_byte(env, level):
    blob, name = flip_blob(env)
    report = check_repository(env.fresh(), read_data=True)
    [p] = kinds(report)["pack-corrupt"]
    assert p.object == name and blob.hex()[:16] in p.message and not report.ok
    assert set(p.snapshots) == {s.id for s in env.snaps}
    [record] = env.names("damaged/")
    structure = kinds(check_repository(env.fresh()))
    [w] = structure["damaged-blobs-recorded"]
    assert w.severity == "warning" and "repair index" in w.hint and "1 damaged blob" in w.message

    snap = Archiver(env.fresh(), BackupOptions(paths=[env.src], workers=1, level=level)).run().snapshot  # no repair
    fresh = env.fresh()
    assert env.restore(snap, fresh) == read_tree(env.src)  # byte for byte, through the new copy
    assert env.restore(env.snaps[-1], fresh) == read_tree(env.src)  # the same blob id: the old snapshot heals too
    assert env.restore(env.snaps[0], fresh) == read_tree(env.v1)

    again = check_repository(env.fresh(), read_data=True)  # the damaged copy is still there, and said so
    [p2] = kinds(again)["pack-corrupt"]
    assert p2.object == name and blob.hex()[:16] in p2.message
    assert p2.snapshots == ()  # every snapshot reads the intact copy now
    assert env.names("damaged/") == [record]  # nothing new to record

    rep = rebuild_index(env.fresh())
    assert [q.name for q in rep.quarantined] == [name]
    assert env.names("damaged/") == []
    clean = check_repository(env.fresh(), read_data=True)
    assert clean.ok and set(kinds(clean)) == {"quarantined-object"}
    fresh = env.fresh()
    assert env.restore(snap, fresh) == read_tree(env.src)
    env.assert_restores(fresh)


def test_the_new_copy_is_read_whichever_copy_the_table_loaded_first(env):
    blob, name = flip_blob(env, "photos/img2.bin", 0)
    check_repository(env.fresh(), read_data=True)
    snap = Archiver(env.fresh(), BackupOptions(paths=[env.src], workers=1)).run().snapshot
    fresh = env.fresh()
    pid, _off, _len = fresh.index.table.lookup(blob)
    assert pid.hex() not in name  # steered away from the damaged pack
    assert fresh.get_blob(blob)  # verifies
    assert env.restore(snap, fresh) == read_tree(env.src)


def test_check_on_a_read_only_store_still_reports_and_does_not_crash(env):
    blob, name = flip_blob(env)
    ro = Repository.open(ReadOnlyStore(open_store(env.root, fsync=False)), "pw")
    report = check_repository(ro, read_data=True)
    [p] = kinds(report)["pack-corrupt"]
    assert p.object == name and blob.hex()[:16] in p.message and not report.ok
    [w] = kinds(report)["damage-not-recorded"]
    assert w.severity == "warning" and "repair index" in w.hint
    assert env.names("damaged/") == []


def test_the_new_copy_is_read_with_the_dedup_cache_on(env, monkeypatch, tmp_path):
    monkeypatch.setenv("EBAS_DEDUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EBAS_DEDUP_CACHE_MIN", "1")
    env.fresh().index  # the cache now holds the table with the damaged copy
    blob, name = flip_blob(env, "photos/img2.bin", 0)
    check_repository(env.fresh(), read_data=True)
    snap = Archiver(env.fresh(), BackupOptions(paths=[env.src], workers=1)).run().snapshot
    for _ in range(2):  # the second open maps the cached table
        fresh = env.fresh()
        assert fresh.index.table.lookup(blob)[0].hex() not in name
        assert env.restore(snap, fresh) == read_tree(env.src)
