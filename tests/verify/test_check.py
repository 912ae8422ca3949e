"""check_repository: a clean repository is clean; every kind of damage is found and named."""

from __future__ import annotations

import json
import os
import random
import time

import blake3
import pytest
from progress_kit import Recorder

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.crypto.ids import pack_id
from ebas.crypto.kdf import KdfParams
from ebas.errors import IndexDamaged, IntegrityError
from ebas.repo import snapshots as snaps
from ebas.repo.index import IndexSegment, segment_name
from ebas.repo.pack import KIND_TREE, TRAILER, PackEntry, encode_header, pack_name
from ebas.repo.repository import Repository
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import Node, encode_tree
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage import open_store
from ebas.storage.backends.memory import MemoryStore
from ebas.verify.check import WARNING_KINDS, CheckReport, Problem, check_repository
from ebas.verify.packdata import verify_pack_bytes
from ebas.verify.repair import rebuild_index


def kinds(report: CheckReport) -> set[str]:
    return {p.kind for p in report.problems}


def only(report: CheckReport, kind: str) -> Problem:
    found = [p for p in report.problems if p.kind == kind]
    assert len(found) == 1, report.problems
    return found[0]


# ------------------------------------------------------------------ clean
def test_clean_repository_is_ok_at_both_depths(env):
    packs = env.repo.pack_sizes()
    assert len(packs) > 3 and len(env.names("index/")) >= 2
    report = check_repository(env.repo)
    assert report.ok and report.problems == []
    assert report.snapshots == 2
    assert report.trees >= 8  # root chain + docs, photos, deep/x/y/z, new, in two versions
    # 6 files in the first snapshot; the second shares photos/ (2) and deep/ (1) with it,
    # and each shared tree is checked once: 6 + (7 - 3)
    assert report.files == 10
    assert report.blobs > report.files - 2  # every non-empty file has >= 1 chunk
    assert report.packs == len(packs) and report.packs_read == 0 and report.bytes_read == 0
    deep = check_repository(env.repo, read_data=True)
    assert deep.ok and deep.problems == [] and deep.read_data
    assert deep.packs_read == len(packs) and deep.bytes_read == sum(packs.values())
    doc = json.loads(json.dumps(deep.to_json()))
    assert doc["ok"] is True and doc["errors"] == [] and doc["packs_read"] == len(packs)


def test_progress_reports_every_phase_and_its_totals_are_reached(env):
    rec = Recorder()
    report = check_repository(env.repo, read_data=True, progress=rec.tracker)
    assert rec.phases == ["index", "packs", "read", "snapshots"]
    for phase in rec.phases:
        st = rec.final(phase)
        assert st.items_done == st.items_total, phase
    read = rec.final("read")
    assert (read.items_done, read.bytes_done) == (report.packs_read, report.bytes_read) == (read.items_total, read.bytes_total)
    assert rec.final("snapshots").items_done == report.snapshots
    assert rec.final("index").items_done == report.index_segments


def test_structure_check_of_10k_files_is_fast(tmp_path):
    src = tmp_path / "many"
    for i in range(10_000):
        d = src / f"d{i % 100}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(b"%d" % i * (i % 13 + 1))
    repo = Repository.init(MemoryStore(), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY), pack_size=1 << 20)
    Archiver(repo, BackupOptions(paths=[str(src)])).run()
    started = time.perf_counter()
    report = check_repository(repo)
    elapsed = time.perf_counter() - started
    assert report.ok and report.files == 10_000 and report.trees >= 101
    assert elapsed < 2.0, f"structure check of 10k files took {elapsed:.2f}s"


# ------------------------------------------------------------------ packs
def test_flipped_byte_in_pack_is_found_only_by_read_data(env):
    blob = env.node("photos/img1.bin").chunk_ids[1]
    name, off, length = env.locate(blob)
    env.flip(name, off + length // 2)
    assert check_repository(env.repo).ok  # sizes and names are unchanged
    report = check_repository(env.repo, read_data=True)
    assert not report.ok
    p = only(report, "pack-corrupt")
    assert p.object == name
    assert name.rsplit("/", 1)[1][:16] in p.message and blob.hex()[:16] in p.message
    assert "hash to its name" in p.message
    for s in env.snaps:  # photos/ is unchanged, so both snapshots need the blob
        assert s.id[:12] in p.message
    assert "photos/img1.bin" in p.message and "replica" in p.hint
    with pytest.raises(IntegrityError):
        env.restore()


@pytest.mark.parametrize("seed", range(12))
def test_any_flipped_byte_of_any_pack_is_found_by_read_data(env, seed):
    rng = random.Random(seed)
    name = rng.choice(env.names("data/"))
    size = os.path.getsize(env.file(name))
    env.flip(name, rng.randrange(size), mask=1 << rng.randrange(8))
    report = check_repository(env.repo, read_data=True)
    assert not report.ok
    assert any(p.object == name for p in report.errors)


def test_truncated_pack_is_found_by_both_depths(env):
    blob = env.node("photos/img1.bin").chunk_ids[-1]
    name, off, length = env.locate(blob)
    env.truncate(name, off + 10)
    report = check_repository(env.repo)
    p = only(report, "pack-truncated")
    assert p.object == name and f"{off + 10} bytes stored" in p.message
    assert "photos/img1.bin" in p.message and env.snaps[-1].id[:12] in p.message
    deep = check_repository(env.repo, read_data=True)
    assert {"pack-truncated", "pack-corrupt", "pack-header-damaged"} <= kinds(deep)
    assert all(p.object == name for p in deep.errors if p.kind.startswith("pack-"))


def test_pack_deleted_by_hand_names_the_pack_and_the_snapshots(env):
    blob = env.node("photos/img2.bin").chunk_ids[0]
    name, _, _ = env.locate(blob)
    os.unlink(env.file(name))
    report = check_repository(env.repo)
    p = only(report, "pack-missing")
    assert p.object == name and name.rsplit("/", 1)[1][:16] in p.message
    assert all(s.id[:12] in p.message for s in env.snaps)
    assert p.snapshots == tuple(sorted(s.id for s in env.snaps))
    assert "photos/img2.bin" in p.message
    assert {e.kind for e in report.errors} <= {"pack-missing", "tree-damaged"}  # trees in that pack
    assert only(check_repository(env.repo, read_data=True), "pack-missing").object == name


def test_corrupt_pack_header_is_found_by_read_data(env):
    name = env.names("data/")[0]
    size = os.path.getsize(env.file(name))
    env.flip(name, size - TRAILER.size - 3)  # inside the sealed header
    assert check_repository(env.repo).ok  # the structure check never reads indexed packs
    report = check_repository(env.repo, read_data=True)
    p = only(report, "pack-header-damaged")
    assert p.object == name and "cannot be rebuilt" in p.message
    assert only(report, "pack-corrupt").object == name  # and the hash no longer matches
    assert "pack-index-mismatch" not in kinds(report)


def test_index_entry_that_disagrees_with_the_pack_header_is_reported(env):
    rebuild_index(env.repo)
    [old] = env.names("index/")
    seg = IndexSegment.decode(env.repo.aead, env.repo.store.get(old), old)
    seg.entries["raw"][0] += 1  # the index now claims a wrong plaintext length for one blob
    stored = seg.encode(env.repo.aead)
    env.repo.store.put(segment_name(stored), stored)
    env.repo.store.delete(old)
    assert check_repository(env.repo).ok  # offsets and sizes still agree
    report = check_repository(env.repo, read_data=True)
    p = only(report, "pack-index-mismatch")
    assert p.object == pack_name(seg.packs[int(seg.entries["pack"][0])])
    assert "1 index entries not in the header" in p.message and "ebas repair index" in p.hint
    assert kinds(report) == {"pack-index-mismatch"}  # the blob itself is fine


# ------------------------------------------------------------------ index
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_index_segment_is_named_and_repaired(env, damage):
    seg = env.segment_of(bytes.fromhex(env.snaps[0].tree))  # the first backup's segment
    size = os.path.getsize(env.file(seg))
    if damage == "flip":
        env.flip(seg, size // 2)
    elif damage == "truncate":
        env.truncate(seg, size - 7)
    else:
        os.unlink(env.file(seg))
    report = check_repository(env.repo)
    assert not report.ok
    if damage != "delete":
        p = only(report, "index-damaged")
        assert p.object == seg and seg in p.message and "ebas repair index" in p.hint
        with pytest.raises(IndexDamaged):
            env.fresh().require_healthy_index()
    gap = only(report, "index-incomplete")  # the packs it listed are now unindexed
    assert "ebas repair index" in gap.hint and env.snaps[0].id[:12] in gap.message
    assert "unindexed-pack" in kinds(report)
    with pytest.raises(IntegrityError):
        env.restore(env.snaps[0], env.fresh())

    result = rebuild_index(env.repo)
    assert result.ok and result.packs_read == len(env.repo.pack_sizes())
    assert seg not in env.names("index/") and set(env.names("index/")) == set(result.segments_written)
    for depth in (False, True):
        again = check_repository(env.repo, read_data=depth)
        assert again.ok and again.problems == [], again.problems
    env.assert_restores(env.fresh())


# -------------------------------------------------------------- snapshots
def test_tampered_snapshot_bytes_are_reported(env):
    victim = env.snaps[0]
    env.flip(snaps.PREFIX + victim.id, 40)
    report = check_repository(env.repo)
    p = only(report, "snapshot-damaged")
    assert p.object == snaps.PREFIX + victim.id and victim.id[:12] in p.message
    assert report.snapshots == 1 and "replica" in p.hint


def test_snapshot_with_valid_seal_but_malformed_content_is_reported(env):
    stored = env.repo.aead.seal(b'{"not": "a snapshot"}', snaps.AAD)
    sid = blake3.blake3(stored).hexdigest()  # a correct name: only the content is wrong
    env.repo.store.put(snaps.PREFIX + sid, stored)
    p = only(check_repository(env.repo), "snapshot-damaged")
    assert p.object == snaps.PREFIX + sid and "malformed" in p.message


def test_tampered_tree_blob_is_reported_with_path_and_snapshots(env):
    photos = env.node("photos")
    name, off, length = env.locate(photos.subtree)
    env.flip(name, off + length - 20)  # inside the tree blob's ciphertext
    report = check_repository(env.repo)
    p = only(report, "tree-damaged")
    assert p.object == f"tree {photos.subtree.hex()[:16]}"
    assert f"{env.src}/photos" in p.message
    assert all(s.id[:12] in p.message for s in env.snaps)  # shared by both snapshots
    assert report.files == 10 - 2  # the two photos could not be checked


def test_tree_cut_by_a_truncated_pack_is_reported(env):
    photos = env.node("photos")
    name, off, length = env.locate(photos.subtree)
    env.truncate(name, off + length // 2)
    report = check_repository(env.repo)
    assert only(report, "pack-truncated").object == name
    damaged = [p for p in report.problems if p.kind == "tree-damaged"]  # trees after it in the pack too
    assert any(f"{env.src}/photos" in p.message and "truncated" in p.message for p in damaged), damaged


def test_invalid_tree_entries_and_root_ids_are_reported(env):
    bad_dir = Node(name=b"nosub", type="dir")
    bad_file = Node(name=b"sparse", type="file", size=10, content=b"\x01" * 32, extents=[(0, 10, 2)])
    with env.repo.session() as session:
        root, _ = session.put_blob(KIND_TREE, encode_tree([bad_dir, bad_file]))
        session.commit(Snapshot(time_ns=1, host="h", paths=["/x"], tree=root.hex()))
        session.commit(Snapshot(time_ns=2, host="h", paths=["/y"], tree="nothex"))
    report = check_repository(env.repo)
    entries = {p.object: p for p in report.errors if p.kind == "tree-damaged"}
    assert "without a subtree" in entries["/nosub"].message
    assert "extents" in entries["/sparse"].message
    assert only(report, "snapshot-damaged").message.endswith("has an invalid root tree id")
    assert only(report, "data-missing").object == "/sparse"


def test_missing_data_after_index_rebuild_names_files(env):
    blob = env.node("new/new.bin").chunk_ids[0]
    name, _, _ = env.locate(blob)
    os.unlink(env.file(name))
    rebuild_index(env.repo)  # the lost pack leaves the index
    report = check_repository(env.repo)
    missing = [p for p in report.errors if p.kind == "data-missing"]
    assert missing and any(p.object == f"{env.src}/new/new.bin" for p in missing)
    p = next(p for p in missing if p.object.endswith("new.bin"))
    assert blob.hex()[:16] in p.message and env.snaps[-1].id[:12] in p.message
    assert env.snaps[0].id[:12] not in p.message  # new.bin is only in the second snapshot


# --------------------------------------------------------------- warnings
def test_unindexed_pack_is_only_a_warning(env):
    name = env.orphan_pack([b"orphan data %d" % i * 50 for i in range(3)])
    for depth in (False, True):
        report = check_repository(env.repo, read_data=depth)
        assert report.ok, report.errors
        p = only(report, "unindexed-pack")
        assert p.object == name and p.severity == "warning" and p.kind in WARNING_KINDS
        assert p.hint == "unindexed pack: will be adopted by the next backup or removed by prune"
        assert report.warnings == [p]


def test_damaged_unindexed_pack_is_only_a_warning(env):
    junk = b"not a pack at all" * 10
    name = pack_name(pack_id(junk))
    env.repo.store.put(name, junk)
    report = check_repository(env.repo, read_data=True)
    assert report.ok and kinds(report) == {"unindexed-pack-damaged"}
    assert report.warnings[0].object == name


def test_leftover_uploads_and_temp_files_are_not_errors(env):
    upload = env.repo.store.begin_upload("data/aa/" + "aa" * 32)
    env.repo.store.upload_part(upload, 1, b"partial")
    os.makedirs(env.file(".ebas-tmp"), exist_ok=True)
    with open(env.file(".ebas-tmp/deadbeef.tmp"), "wb") as f:
        f.write(b"half a pack")
    report = check_repository(env.repo, read_data=True)
    assert report.ok
    assert kinds(report) == {"leftover-upload"} and report.warnings[0].severity == "warning"


def test_foreign_object_in_data_is_a_warning(env):
    env.repo.store.put("data/zz/readme.txt", b"hello")
    report = check_repository(env.repo, read_data=True)
    assert report.ok and only(report, "foreign-object").object == "data/zz/readme.txt"


def test_unreadable_config_is_an_error(env):
    env.repo.store.put("config", b"{not json")
    p = only(check_repository(env.repo), "config-damaged")
    assert p.object == "config" and "copy" in p.hint


def test_report_json_lists_errors_and_warnings(env):
    env.orphan_pack([b"x" * 100])
    os.unlink(env.file(env.locate(env.node("docs/b.txt").chunk_ids[0])[0]))
    doc = check_repository(env.repo).to_json()
    assert doc["ok"] is False
    assert doc["errors"][0]["kind"] == "pack-missing"
    assert [w["kind"] for w in doc["warnings"]] == ["unindexed-pack"]
    assert all(set(e) == {"kind", "object", "message", "hint", "severity", "snapshots"} for e in doc["errors"])
    assert doc["warnings"][0]["snapshots"] == []
    json.dumps(doc)


def test_check_works_on_a_memory_store():
    repo = Repository.init(open_store("memory://"), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    report = check_repository(repo, read_data=True)
    assert report.ok and report.snapshots == 0 and report.packs == 0


# ------------------------------------------------------------ pack bytes
def test_verify_pack_bytes_on_an_intact_and_a_lying_pack(env):
    name = env.names("data/")[0]
    data = env.repo.store.get(name)
    pid = bytes.fromhex(name.rsplit("/", 1)[1])
    assert verify_pack_bytes(env.repo, pid, data).intact
    bid = env.repo.ids.blob_id(b"payload" * 20)
    stored, codec = env.repo.codec.encode(bid, b"payload" * 20)
    lying = stored + encode_header(env.repo.aead, [PackEntry(bid, 0, codec, 0, len(stored), 141)])
    verdict = verify_pack_bytes(env.repo, pack_id(lying), lying)
    assert verdict.hash_ok and not verdict.header_error and verdict.bad_blobs == [bid]  # 140 bytes, not 141
    assert not verdict.intact


def test_check_reads_trees_ahead_in_a_few_requests(tmp_path):
    from ebas import api
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    src = tmp_path / "wide"
    for d in range(150):
        (src / f"d{d:03d}" / "x").mkdir(parents=True)
        (src / f"d{d:03d}" / "x" / "f").write_bytes(os.urandom(100))
    store = MemoryStore()
    repo = Repository.init(store, "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    api.backup(repo, [str(src)])
    counts = StoreCounts()
    report = check_repository(Repository.open(CountingStore(store, counts), "pw"))
    assert report.ok and report.problems == [] and report.trees > 300
    assert counts.snapshot().calls.get("get", 0) < 40  # 300+ trees: a few ranged reads per level


def test_a_config_changed_after_open_is_an_error(env):
    import json

    doc = json.loads(env.repo.store.get("config"))
    doc["pack_size"] = 1 << 20
    env.repo.store.put("config", json.dumps(doc, sort_keys=True, indent=1).encode())
    p = only(check_repository(env.repo), "config-damaged")
    assert "not authentic" in p.message and "failed authentication" in p.message
