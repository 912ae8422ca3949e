"""The local cache of the merged dedup table: hits, incremental updates, invalidation, damage."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ebas.repo.pack import KIND_DATA
from ebas.verify.repair import rebuild_index


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("EBAS_DEDUP_CACHE", str(root))
    monkeypatch.setenv("EBAS_DEDUP_CACHE_MIN", "1")
    return root


def put(repo, n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    with repo.session() as s:
        ids = [s.put_blob(KIND_DATA, rng.bytes(3000))[0] for _ in range(n)]
        s.flush()
    return ids


def entries(cache_root) -> list:
    return [d for d in cache_root.rglob("meta.json")]


def test_a_reopened_repository_maps_the_cached_table(repos, repo, cache):
    ids = put(repo, 40, 1)
    first = repos.reopen(repo)
    assert not first.index.cached and len(entries(cache)) == 1
    again = repos.reopen(repo)
    assert again.index.cached and len(again.index.table) == 40
    assert all(again.index.table.lookup(i) == first.index.table.lookup(i) for i in ids)
    assert again.index.segments == first.index.segments
    assert again.get_blob(ids[0]) == first.get_blob(ids[0])


def test_new_segments_are_merged_into_the_cache(repos, repo, cache):
    old = put(repo, 20, 1)
    repos.reopen(repo).index  # noqa: B018 - builds the cache
    new = put(repos.reopen(repo), 20, 2)
    r = repos.reopen(repo)
    assert r.index.cached and len(r.index.table) == 40  # cache plus the one new segment
    assert all(i in r.index.table for i in old + new)
    assert len(entries(cache)) == 1  # the older entry was replaced
    again = repos.reopen(repo)
    assert again.index.cached and len(again.index.segments) == len(r.index.segments)


def test_a_compaction_or_deleted_segment_rebuilds(repos, repo, cache):
    ids = put(repo, 30, 1)
    repos.reopen(repo).index  # noqa: B018
    rebuild_index(repos.reopen(repo))  # supersedes and deletes every segment
    r = repos.reopen(repo)
    assert not r.index.cached and all(i in r.index.table for i in ids)
    assert repos.reopen(repo).index.cached


def test_a_damaged_cache_is_ignored_and_rebuilt(repos, repo, cache):
    ids = put(repo, 30, 1)
    repos.reopen(repo).index  # noqa: B018
    (hi,) = list(cache.rglob("hi.npy"))
    data = bytearray(hi.read_bytes())
    data[-1] ^= 0xFF
    hi.write_bytes(bytes(data))
    r = repos.reopen(repo)
    assert not r.index.cached and all(i in r.index.table for i in ids)
    assert repos.reopen(repo).index.cached


def test_small_tables_and_disabled_cache_write_nothing(repos, repo, cache, monkeypatch):
    put(repo, 10, 1)
    monkeypatch.setenv("EBAS_DEDUP_CACHE_MIN", "1000")
    repos.reopen(repo).index  # noqa: B018
    assert not cache.exists()
    monkeypatch.setenv("EBAS_DEDUP_CACHE_MIN", "1")
    monkeypatch.setenv("EBAS_DEDUP_CACHE", "off")
    assert not repos.reopen(repo).index.cached and not cache.exists()
    assert not os.environ.get("EBAS_DEDUP_CACHE") == str(cache)


def test_a_backup_on_a_cached_table_adds_to_it(repos, repo, cache, tmp_path):
    from ebas import api

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(200_000))
    api.backup(repo, [str(src)])
    r = repos.reopen(repo)
    r.index  # noqa: B018
    r = repos.reopen(repo)
    assert r.index.cached
    (src / "b").write_bytes(os.urandom(200_000))
    res = api.backup(r, [str(src)])
    assert res.snapshot.stats["files_new"] == 1
    fresh = repos.reopen(repo)
    assert fresh.index.cached and len(fresh.index.table) == len(r.index.table)
    out = tmp_path / "out"
    api.restore(fresh, "latest", str(out))
    assert (out / str(src).lstrip("/") / "b").read_bytes() == (src / "b").read_bytes()
