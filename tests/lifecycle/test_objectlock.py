"""Object-lock maintenance and prune under retention, in process, on a store that keeps
retention dates the way S3 Object Lock does (the real protocol is exercised against moto
in tests/storage/backends/test_backends_e2e.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from prune_kit import DAY, T0, quick_snapshot

from ebas import api
from ebas.errors import IntegrityError, UsageError
from ebas.lifecycle.objectlock import extend_locks
from ebas.lifecycle.pruneplan import make_plan
from ebas.repo.pack import pack_name
from ebas.runtime import FakeClock
from ebas.storage.backends.memory import MemoryStore


class RetainingStore(MemoryStore):
    """Every write (but locks/ and prune/) retained ``days`` from the clock's now; deletes of
    retained objects refused, as S3 does."""

    def __init__(self, clock, days: float = 1.0):
        super().__init__()
        self.clock, self.days, self.until = clock, days, {}
        self.extended: list[str] = []

    def object_lock(self):
        return ("governance", self.days)

    def put(self, name, data):
        super().put(name, data)
        if not name.startswith(("locks/", "prune/")):
            self.until[name] = self.clock.now_ns() + int(self.days * DAY)

    def retention(self, name):
        u = self.until.get(name)
        return ("GOVERNANCE", dt.datetime.fromtimestamp(u / 1e9, dt.timezone.utc)) if u else (None, None)

    def extend_retention(self, name, until):
        ns = int(until.timestamp()) * 10**9
        if ns > self.until.get(name, 0):
            self.until[name] = ns
            self.extended.append(name)
        return until


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def locked(repos, clock):
    return repos.init(store=RetainingStore(clock), clock=clock)


def _pack_of(repo, snap) -> str:
    return pack_name(repo.index.table.lookup(repo.load_tree(bytes.fromhex(snap.tree))[0].chunk_ids[0])[0])


def test_extend_follows_the_newest_snapshot_that_needs_a_pack(locked, clock):
    shared = b"the same file in both snapshots"
    first = quick_snapshot(locked, T0, payload=shared)
    only_first = quick_snapshot(locked, T0 + 1, host="other", payload=b"only here")
    clock.advance(3 * 86400)
    second = quick_snapshot(locked, T0 + 3 * DAY, payload=shared)  # dedup: reuses the first's pack
    store = locked.store
    p_shared, p_alone = _pack_of(locked, first), _pack_of(locked, only_first)
    assert p_shared == _pack_of(locked, second) and p_shared != p_alone
    before = dict(store.until)

    dry = extend_locks(locked, dry_run=True)
    assert dry.dry_run and dry.snapshots == 3 and dry.packs_extended >= 1 and store.until == before
    res = extend_locks(locked)
    assert res.packs_extended == dry.packs_extended and res.mode == "governance" and res.days == 1.0
    assert store.until[p_shared] >= second.time_ns + DAY - 10**9  # the newest user's time + 1 day
    assert store.until[p_alone] == before[p_alone]  # only an older snapshot needs it (and its lock has run out)
    assert res.latest_until.startswith(dt.datetime.fromtimestamp((second.time_ns + DAY) / 1e9,
                                                                 dt.timezone.utc).isoformat()[:16])
    again = extend_locks(locked)
    assert again.packs_extended == 0 and again.packs_current == again.packs_needed == res.packs_needed
    assert "extended 0" in again.summary() and "governance" in again.summary()


def test_extend_refuses_without_object_lock_and_on_a_damaged_index(repos, locked):
    with pytest.raises(UsageError, match="no object lock"):
        extend_locks(repos.init("plain"))
    snap = quick_snapshot(locked, T0)
    fresh = api.Repository.open(locked.store, "correct horse battery staple")
    fresh.index.table.remove_packs({bytes.fromhex(_pack_of(locked, snap).split("/")[-1])})
    with pytest.raises(IntegrityError, match="not in the index"):
        extend_locks(fresh)


def test_prune_plan_leaves_packs_under_retention_alone(locked, clock):
    first = quick_snapshot(locked, T0, payload=b"expires with the first snapshot")
    quick_snapshot(locked, T0 + DAY, payload=b"kept")
    store = locked.store
    api.forget(locked, snapshot_ids=[first.id])
    store.until.pop("snapshots/" + first.id, None)
    plan = make_plan(api.Repository.open(store, "correct horse battery staple", clock=clock), grace=0,
                     max_unused=0.0)
    assert plan.locked and not plan.delete and not plan.repack  # still retained: left alone
    assert plan.summary()["packs_locked"] == len(plan.locked)
    clock.advance(2 * 86400)  # retention over
    plan = make_plan(api.Repository.open(store, "correct horse battery staple", clock=clock), grace=0,
                     max_unused=0.0)
    assert not plan.locked and plan.delete

