"""Many backup streams into one repository at once (threads, each with its own Repository):
all succeed, deduplicate against committed data, and every snapshot restores exactly."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from prune_kit import pack_bytes, read_all

from ebas import api
from ebas.repo.repository import Repository
from ebas.verify.check import check_repository

PW = "correct horse battery staple"
STREAMS = 32


def test_32_concurrent_backups_deduplicate_and_restore(repos, tmp_path):
    repo = repos.init(pack_size=256 * 1024)
    shared = os.urandom(600_000)
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "shared.bin").write_bytes(shared)
    api.backup(repo, [str(seed)], host="seed")  # committed before the streams start
    before = pack_bytes(repo)
    srcs = []
    for k in range(STREAMS):
        d = tmp_path / f"s{k:02d}"
        d.mkdir()
        (d / "shared.bin").write_bytes(shared)
        (d / "own.bin").write_bytes(os.urandom(100_000))
        srcs.append(d)

    def one(k: int):
        r = Repository.open(repo.store, PW)
        return api.backup(r, [str(srcs[k])], host=f"h{k}", workers=1).snapshot

    with ThreadPoolExecutor(STREAMS) as pool:
        snaps = list(pool.map(one, range(STREAMS)))
    assert len({s.id for s in snaps}) == STREAMS
    growth = pack_bytes(repo) - before
    assert STREAMS * 100_000 <= growth < STREAMS * 100_000 + 600_000  # the shared file was not stored again
    assert all(s.stats["bytes_added"] <= 100_000 + 10_000 for s in snaps)
    fresh = Repository.open(repo.store, PW)
    assert check_repository(fresh).ok
    for k, s in enumerate(snaps):
        out = tmp_path / f"out{k}"
        api.restore(fresh, s.id, str(out))
        assert read_all(out / str(srcs[k]).lstrip("/")) == read_all(srcs[k])
    assert list(repo.store.list("locks/")) == []
