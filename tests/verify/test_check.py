"""check_repository: a clean repository is clean; every kind of damage is found and named."""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.crypto.kdf import KdfParams
from ebas.errors import IntegrityError
from ebas.repo import snapshots as snaps
from ebas.repo.pack import TRAILER, pack_name
from ebas.repo.repair import rebuild_index
from ebas.repo.repository import Repository
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage import open_store
from ebas.storage.backends.memory import MemoryStore
from ebas.verify.check import WARNING_KINDS, CheckReport, Problem, check_repository


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
    assert report.files == 6 + 7  # 6 files in the first snapshot, 7 in the second
    assert report.blobs > report.files - 2  # every non-empty file has >= 1 chunk
    assert report.packs == len(packs) and report.packs_read == 0 and report.bytes_read == 0
    deep = check_repository(env.repo, read_data=True)
    assert deep.ok and deep.problems == [] and deep.read_data
    assert deep.packs_read == len(packs) and deep.bytes_read == sum(packs.values())
    doc = json.loads(json.dumps(deep.to_json()))
    assert doc["ok"] is True and doc["errors"] == [] and doc["packs_read"] == len(packs)


def test_progress_reports_every_phase(env):
    seen = []
    check_repository(env.repo, read_data=True, progress=lambda phase, done, total: seen.append(phase))
    assert {"index", "packs", "read", "snapshots"} <= set(seen)


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
    assert all(p.object == name for p in deep.errors)


def test_pack_deleted_by_hand_names_the_pack_and_the_snapshots(env):
    blob = env.node("photos/img2.bin").chunk_ids[0]
    name, _, _ = env.locate(blob)
    os.unlink(env.file(name))
    report = check_repository(env.repo)
    p = only(report, "pack-missing")
    assert p.object == name and name.rsplit("/", 1)[1][:16] in p.message
    assert all(s.id[:12] in p.message for s in env.snaps)
    assert "photos/img2.bin" in p.message
    assert report.errors == [p]  # nothing else is wrong
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


def test_index_that_disagrees_with_a_pack_header_is_reported(env):
    name, _, _ = env.locate(env.node("photos/img1.bin").chunk_ids[0])
    repaired = rebuild_index(env.repo)
    assert repaired.ok
    # a pack whose header lists a blob twice at different offsets cannot be indexed
    # consistently; simulate the simpler case: an index segment for another pack's header
    seg_names = env.names("index/")
    assert len(seg_names) == 1
    assert check_repository(env.repo, read_data=True).ok
    assert name in {pack_name(p) for p in env.repo.pack_sizes()}


# ------------------------------------------------------------------ index
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_index_segment_is_named_and_repaired(env, damage):
    seg = env.names("index/")[0]
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
    gap = only(report, "index-incomplete")  # the packs it listed are now unindexed
    assert "ebas repair index" in gap.hint and env.snaps[0].id[:12] in gap.message
    assert "unindexed-pack" in kinds(report)
    with pytest.raises(IntegrityError):
        env.fresh().require_healthy_index() if damage != "delete" else env.restore(env.snaps[0], env.fresh())

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
    sid, _ = snaps.seal(env.repo.aead, env.snaps[0])  # any id; the real one is computed below
    import blake3

    sid = blake3.blake3(stored).hexdigest()
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
    assert report.files == 13 - 4  # the two photos, in both snapshots, could not be checked


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
    from ebas.crypto.ids import pack_id

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
    assert [e["kind"] for e in doc["errors"]] == ["pack-missing"]
    assert [w["kind"] for w in doc["warnings"]] == ["unindexed-pack"]
    assert all(set(e) == {"kind", "object", "message", "hint", "severity"} for e in doc["errors"])
    json.dumps(doc)


def test_check_works_on_a_memory_store():
    repo = Repository.init(open_store("memory://"), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    report = check_repository(repo, read_data=True)
    assert report.ok and report.snapshots == 0 and report.packs == 0
