"""Sync, check and rebuild against a real repository; damaged, deleted and unreachable catalogs."""

from __future__ import annotations

import os

import pytest
from catalog_helpers import brute_force, canonical, fact_keys, hit_keys, open_for
from progress_kit import Recorder

from ebas.catalog import (
    CatalogCorrupt,
    CatalogMismatch,
    CatalogUnavailable,
    FindQuery,
    open_catalog,
    rebuild_catalog,
)
from ebas.catalog.location import default_catalog_path, open_backend
from ebas.errors import UsageError


def _history(b, wait, n=5):
    b.write("src/keep.txt", "keep")
    b.write("src/www/index.html", "home")
    for k in range(n):
        b.write(f"src/logs/day{k}.log", f"log {k}")
        if k == 2:
            b.remove("src/www/index.html")
        b.write("src/notes.txt", f"notes {k}")
        wait()
        b.backup(["src"], k, tags=["daily"])


def _answers(cat, b):
    return {
        "all": hit_keys(cat.find(FindQuery()).hits),
        "log": hit_keys(cat.find(FindQuery("*.log")).hits),
        "deleted": hit_keys(cat.find(FindQuery(deleted=True)).hits),
        "history": [(h.size, h.snapshots) for h in cat.history(b.path("src/notes.txt")).versions],
    }


def test_check_finds_missing_snapshot_and_sync_fixes_it(builder, new_location, wait):
    _history(builder, wait, 3)
    cat = open_for(builder, new_location())
    cat.sync(builder.repo)
    assert cat.check().ok
    builder.write("src/late.txt", "late")
    wait()
    new = builder.backup(["src"], 9)  # written by another host: the catalog did not see it
    res = cat.find(FindQuery("late.txt"))
    assert res.hits == [] and res.freshness.not_indexed == [new.id]  # says so instead of answering silently
    chk = cat.check()
    assert not chk.ok and chk.missing == [new.id] and chk.extra == []
    sync = cat.sync(builder.repo)
    assert sync.added == [new.id] and sync.trees_read > 0
    assert cat.check().ok
    res = cat.find(FindQuery("late.txt"))
    assert len(res.hits) == 1 and res.freshness.not_indexed == []
    assert fact_keys(brute_force(builder.repo)) == hit_keys(cat.find(FindQuery()).hits)
    cat.close()


def test_forgotten_snapshot_is_removed_by_sync(builder, new_location, wait):
    _history(builder, wait, 4)
    cat = open_for(builder, new_location())
    cat.sync(builder.repo)
    gone = builder.snaps[1]
    builder.repo.delete_snapshot(gone.id)
    res = cat.find(FindQuery("day1.log"))
    assert res.freshness.forgotten == [gone.id]
    chk = cat.check()
    assert chk.extra == [gone.id] and chk.missing == []
    sync = cat.sync(builder.repo)
    assert sync.removed == [gone.id]
    assert cat.check().ok and cat.find(FindQuery()).freshness.forgotten == []
    assert fact_keys(brute_force(builder.repo)) == hit_keys(cat.find(FindQuery()).hits)
    assert cat.db.one("SELECT count(*) FROM tombstones") == 1
    cat.close()


def test_deleted_catalog_file_is_noticed_and_rebuilt(builder, tmp_path, wait):
    _history(builder, wait)
    loc = str(tmp_path / "cat.sqlite")
    cat = open_for(builder, loc)
    cat.sync(builder.repo)
    before = _answers(cat, builder)
    cat.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(loc + suffix):
            os.unlink(loc + suffix)
    cat = open_for(builder, loc)  # a fresh, empty catalog: every answer says what it lacks
    res = cat.find(FindQuery("notes.txt"))
    assert res.hits == [] and sorted(res.freshness.not_indexed) == sorted(s.id for s in builder.snaps)
    cat.close()
    cat, sync = rebuild_catalog(loc, builder.repo)
    assert len(sync.added) == len(builder.snaps)
    assert _answers(cat, builder) == before
    cat.close()


@pytest.mark.parametrize("damage", ["garbage", "truncate", "zero-pages"])
def test_corrupted_catalog_file_is_detected_and_rebuilt(builder, tmp_path, wait, damage):
    _history(builder, wait)
    loc = str(tmp_path / "cat.sqlite")
    cat = open_for(builder, loc)
    cat.sync(builder.repo)
    before = _answers(cat, builder)
    cat.db.x("PRAGMA wal_checkpoint(TRUNCATE)")
    cat.close()
    size = os.path.getsize(loc)
    with open(loc, "r+b") as fh:
        if damage == "garbage":
            fh.write(b"this is not a database at all" * 10)
        elif damage == "truncate":
            fh.truncate(size // 3)
        else:
            fh.seek(8192)
            fh.write(b"\0" * (size - 8192))
    with pytest.raises((CatalogCorrupt, CatalogUnavailable)) as err:
        c = open_for(builder, loc)
        c.find(FindQuery("notes"))
        c.check(integrity=True).ok or (_ for _ in ()).throw(CatalogCorrupt("integrity"))
    assert "rebuild" in err.value.render()
    cat, sync = rebuild_catalog(loc, builder.repo)
    assert _answers(cat, builder) == before
    assert cat.check(integrity=True).ok
    cat.close()


def test_rebuild_gives_the_same_answers_on_both_engines(builder, new_location, wait):
    _history(builder, wait)
    loc = new_location()
    cat = open_for(builder, loc)
    cat.sync(builder.repo)
    before, canon, site = _answers(cat, builder), canonical(cat), cat.site
    cat.close()
    cat, _ = rebuild_catalog(loc, builder.repo)
    assert _answers(cat, builder) == before and canonical(cat) == canon and cat.site == site
    cat.close()


def test_postgres_unreachable_names_the_url_without_password():
    url = "postgresql://backup:s3cr3t-pw@127.0.0.1:1/catalog"
    with pytest.raises(CatalogUnavailable) as err:
        open_catalog(url, repo_id="abc")
    text = err.value.render()
    assert "postgresql://backup:***@127.0.0.1:1/catalog" in text
    assert "s3cr3t-pw" not in text and "s3cr3t-pw" not in repr(err.value.__cause__ or "")
    with pytest.raises(CatalogUnavailable) as err:
        open_catalog("postgresql://127.0.0.1:1/catalog?password=hunter2&connect_timeout=1", repo_id="abc")
    assert "hunter2" not in err.value.render() and "password=***" in err.value.render()


def test_catalog_of_another_repository_is_refused(new_location):
    loc = new_location()
    open_catalog(loc, repo_id="aaaa").close()
    with pytest.raises(CatalogMismatch):
        open_catalog(loc, repo_id="bbbb")
    cat = open_catalog(loc)  # without a repository id: accepted, the stored id is reported
    assert cat.repo_id == "aaaa"
    cat.close()


def test_newer_schema_is_refused(new_location):
    loc = new_location()
    cat = open_catalog(loc, repo_id="r")
    with cat.db.write():
        cat.db.x("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    cat.close()
    with pytest.raises(CatalogMismatch):
        open_catalog(loc, repo_id="r")


def test_default_location_is_in_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_catalog_path("abc123") == str(tmp_path / "cache" / "ebas" / "abc123" / "catalog.sqlite")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_catalog_path("abc").startswith(os.path.expanduser("~/.cache/ebas/abc"))
    with pytest.raises(UsageError):
        open_backend("ftp://nowhere")


def test_sites_rename_stats_and_vacuum(builder, new_location, wait):
    _history(builder, wait)
    cat = open_for(builder, new_location(), site="paris")
    cat.sync(builder.repo)
    assert {s for snap in cat.snapshots() for s in snap.sites} == {"paris"}
    builder.repo.delete_snapshot(builder.snaps[0].id)
    builder.repo.delete_snapshot(builder.snaps[1].id)
    cat.sync(builder.repo)
    st = cat.stats()
    assert st["snapshots"] == 3 and st["tombstones"] == 2 and st["site"] == "paris"
    answers = _answers(cat, builder)
    v = cat.vacuum()
    assert v["names_removed"] == 1  # index.html lived only in the forgotten snapshots
    assert _answers(cat, builder) == answers
    cat.rename_site("lyon")
    assert {s for snap in cat.snapshots() for s in snap.sites} == {"lyon"}
    cat.close()


def test_api_catalog_of_a_repository_reports_then_indexes_new_snapshots(builder, new_location, wait):
    from ebas import api

    _history(builder, wait, 2)
    with api.catalog(builder.repo, new_location()) as cat:
        res = cat.find(FindQuery("notes"))
        assert res.hits == [] and len(res.freshness.not_indexed) == 2  # says what it could not see
        assert len(cat.sync(builder.repo).added) == 2
        res = cat.find(FindQuery("notes"))
        assert res.freshness.not_indexed == [] and {h.size for h in res.hits} == {len("notes 0"), len("notes 1")}


def test_sync_reads_a_level_of_trees_in_a_few_requests(tmp_path):
    from ebas import api
    from ebas.crypto.kdf import KdfParams
    from ebas.runtime import SYSTEM_ENTROPY
    from ebas.storage.backends.memory import MemoryStore
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    src = tmp_path / "wide"
    for d in range(200):
        (src / f"d{d:03d}").mkdir(parents=True)
        (src / f"d{d:03d}" / "f.txt").write_text(str(d))
    store = MemoryStore()
    repo = api.Repository.init(store, "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    api.backup(repo, [str(src)])
    counts = StoreCounts()
    reader = api.Repository.open(CountingStore(store, counts), "pw")
    reader.index
    before = counts.snapshot()
    with api.catalog(reader, str(tmp_path / "cat.sqlite")) as cat:
        res = cat.sync(reader)
        assert len(res.added) == 1 and res.trees_read > 200
        assert len(cat.find(FindQuery("f.txt", limit=500)).hits) == 200
    gets = (counts.snapshot() - before).calls.get("get", 0)
    assert gets < 30, gets  # 200+ trees: a few ranged reads per level


def test_sync_reports_one_item_per_snapshot_indexed(builder, tmp_path, wait):
    _history(builder, wait, 3)
    cat = open_for(builder, str(tmp_path / "progress.sqlite"))
    rec = Recorder()
    res = cat.sync(builder.repo, progress=rec.tracker)
    st = rec.final("catalog sync")
    assert rec.phases == ["catalog sync"] and len(res.added) == 3
    assert st.items_done == st.items_total == len(res.added) and st.current
    builder.write("src/late.txt", "late")
    wait()
    builder.backup(["src"], 9)
    again = Recorder()
    res = cat.sync(builder.repo, progress=again.tracker)
    assert again.final("catalog sync").items_done == again.final("catalog sync").items_total == len(res.added) == 1
    cat.close()
