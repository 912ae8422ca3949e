"""The local cache of the merged dedup table: hits, incremental updates, invalidation, damage."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ebas.backup.browse import list_path
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


def _forge(cache_root, extra: dict[bytes, tuple[bytes, int, int]]) -> None:
    """What a local user who can write the cache directory but has no repository key
    could do: add entries claiming chunks are stored, and fix up every unkeyed checksum."""
    import json

    import blake3

    from ebas.repo.dedup import DedupTable

    (meta_path,) = list(cache_root.rglob("meta.json"))
    d = meta_path.parent
    arrays = {a: np.load(d / f"{a}.npy") for a in ("hi", "lo", "pack", "off", "len")}
    raw = (d / "packs.bin").read_bytes()
    packs = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    table = DedupTable.from_sorted(packs, *(arrays[a] for a in ("hi", "lo", "pack", "off", "len")))
    for bid, (pack, off, ln) in extra.items():
        table.add(bid, pack, off, ln)
    table.compact()
    for a, arr in zip(("hi", "lo", "pack", "off", "len"), (table._hi, table._lo, table._pack, table._off, table._len)):
        np.save(d / f"{a}.npy", np.ascontiguousarray(arr))
    (d / "packs.bin").write_bytes(b"".join(table.packs))
    meta = json.loads(meta_path.read_text())
    meta["entries"] = len(table)
    for field in ("blake3", "files"):  # the unkeyed checksums of the old format, recomputed
        if field in meta:
            meta[field] = {f: blake3.blake3((d / f).read_bytes()).hexdigest() for f in meta[field]}
    meta_path.write_text(json.dumps(meta))


def test_a_poisoned_cache_entry_is_detected_and_the_backup_stores_the_data(repos, repo, cache, tmp_path):
    """A forged entry says a chunk is stored when it is not: without authentication the
    backup would skip the chunk and the snapshot could never be restored."""
    from ebas import api

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(200_000))
    api.backup(repo, [str(src)])
    warm = repos.reopen(repo)
    assert not warm.index.cached  # builds the cache
    ((_, node_a),) = list_path(warm, warm.find_snapshot("latest"), str(src / "a"))
    some_pack, off, ln = warm.index.table.lookup(node_a.chunk_ids[0])
    secret = os.urandom(150_000)
    (src / "b").write_bytes(secret)
    forged_ids = [warm.ids.blob_id(c) for c in warm.chunker().split(secret)]
    _forge(cache, {bid: (some_pack, off, ln) for bid in forged_ids})

    r = repos.reopen(repo)
    seen: list[str] = []
    r.on_warning = seen.append
    res = api.backup(r, [str(src)])
    assert any("dedup cache" in w and "failed authentication" in w for w in seen), seen
    assert not r.index.cached and res.snapshot.stats["files_new"] == 1
    out = tmp_path / "out"
    api.restore(repos.reopen(repo), "latest", str(out))
    assert (out / str(src).lstrip("/") / "b").read_bytes() == secret
    assert repos.reopen(repo).index.cached  # rebuilt and trusted again
