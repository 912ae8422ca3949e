"""A lock from the future cannot block a repository forever, and local files that hold
paths or repository metadata are readable by their owner only, whatever the umask."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ebas import api
from ebas.catalog.location import default_catalog_path, open_catalog
from ebas.errors import LockError
from ebas.repo.locks import PREFIX, STALE_AFTER, LockManager, SeenHeartbeats
from ebas.runtime import FakeClock
from ebas.storage.backends.memory import MemoryStore

DAY = 86400


class _Entropy:
    def __init__(self):
        self.n = 0

    def token_bytes(self, n: int) -> bytes:
        self.n += 1
        return self.n.to_bytes(n, "big")


def _plant(store, clock, ahead_s: float, *, lock_id: str = "f" * 32, host: str = "far-away") -> None:
    """An exclusive lock of another host whose heartbeat is ``ahead_s`` ahead of our clock."""
    hb = clock.now_ns() + int(ahead_s * 1e9)
    store.put(PREFIX + lock_id, json.dumps({"host": host, "pid": 1, "user": "bob", "operation": "repair index",
                                            "exclusive": True, "created_ns": hb, "heartbeat_ns": hb}).encode())


def _mgr(store, clock, seen) -> LockManager:
    return LockManager(store, clock, _Entropy(), host="here", pid=os.getpid(), user="me", heartbeat=None, seen=seen)


def test_a_heartbeat_far_in_the_future_goes_stale_after_the_timeout_by_our_clock(tmp_path):
    store, clock = MemoryStore(), FakeClock()
    seen_file = tmp_path / "state" / "seen.json"
    _plant(store, clock, 365 * DAY)
    with pytest.raises(LockError) as info:
        _mgr(store, clock, SeenHeartbeats(seen_file)).acquire("backup")
    msg = info.value.message
    assert "in the future by this machine's clock" in msg and "impossible" in msg and "in 30 min" in msg
    clock.advance(STALE_AFTER - 60)
    # a new process (new manager, same machine): the first sighting is remembered in the file
    with pytest.raises(LockError, match="in 60s"):
        _mgr(store, clock, SeenHeartbeats(seen_file)).acquire("backup")
    clock.advance(120)
    lock = _mgr(store, clock, SeenHeartbeats(seen_file)).acquire("backup")  # stale now: no longer blocks
    lock.release()
    removed = _mgr(store, clock, SeenHeartbeats(seen_file)).remove_stale()
    assert [lk.id for lk in removed] == ["f" * 32]
    assert stat.S_IMODE(os.stat(seen_file).st_mode) == 0o600


def test_a_live_holder_with_a_fast_clock_keeps_its_lock(tmp_path):
    store, clock = MemoryStore(), FakeClock()
    seen = SeenHeartbeats(tmp_path / "seen.json")
    _plant(store, clock, 10 * DAY)
    with pytest.raises(LockError):
        _mgr(store, clock, seen).acquire("backup")
    for _ in range(4):  # the holder beats every 5 min: each new value is a fresh sighting
        clock.advance(STALE_AFTER / 2)
        _plant(store, clock, 10 * DAY)
        with pytest.raises(LockError):
            _mgr(store, clock, seen).acquire("backup")


def test_a_heartbeat_slightly_ahead_is_judged_normally():
    store, clock = MemoryStore(), FakeClock()
    _plant(store, clock, STALE_AFTER / 2)  # within the timeout: a plausible clock difference
    mgr = _mgr(store, clock, SeenHeartbeats(None))
    assert not mgr.is_stale(mgr.list()[0])
    clock.advance(STALE_AFTER * 1.5 + 1)
    assert mgr.is_stale(mgr.list()[0])


# ---------------------------------------------------------------- private files
@pytest.fixture
def umask_022(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    old = os.umask(0o022)
    yield tmp_path / "xdg"
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    out = {str(p.relative_to(root)): stat.S_IMODE(os.lstat(p).st_mode) for p in root.rglob("*")}
    return out


def test_catalog_and_caches_are_owner_only_under_umask_022(umask_022, repos, tmp_path, monkeypatch):
    monkeypatch.delenv("EBAS_DEDUP_CACHE", raising=False)
    monkeypatch.setenv("EBAS_DEDUP_CACHE_MIN", "1")
    repo = repos.init()
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret-name.txt").write_bytes(b"x")
    snap = api.backup(repo, [str(src)]).snapshot
    repo = repos.reopen(repo)
    repo.index  # builds and saves the dedup cache
    path = default_catalog_path(repo.config.repo_id)
    with open_catalog(None, repo_id=repo.config.repo_id) as cat:
        cat.ingest_snapshot(repo, snap)
        modes = _modes(umask_022)  # while open: the -wal and -shm files exist
    assert Path(path).exists() and any(k.endswith("catalog.sqlite-wal") for k in modes)
    assert any("/dedup/" in k and k.endswith(".npy") for k in modes), modes
    for name, mode in modes.items():
        is_dir = (umask_022 / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))


def test_an_existing_ebas_cache_dir_is_narrowed(umask_022):
    (umask_022 / "ebas").mkdir(parents=True, mode=0o755)
    os.chmod(umask_022 / "ebas", 0o755)
    open_catalog(None, repo_id="abcd").close()
    assert stat.S_IMODE(os.stat(umask_022 / "ebas").st_mode) == 0o700


def test_an_explicit_catalog_path_is_created_owner_only(umask_022, tmp_path):
    loc = tmp_path / "new" / "dir" / "cat.sqlite"
    open_catalog(str(loc), repo_id="abcd").close()
    assert stat.S_IMODE(os.stat(loc).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(loc.parent).st_mode) == 0o700
