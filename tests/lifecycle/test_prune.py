"""prune: mark, reference counts, delete, repack, compaction, refusals, interruption, and
backups that run while a prune does."""

from __future__ import annotations

import os
import threading
import time

import pytest
from progress_kit import PhaseHook, Recorder
from prune_kit import DAY, T0, backup_day, generation, naive_recount, names, pack_bytes, quick_snapshot, read_all

from ebas import api
from ebas.backup.browse import list_path
from ebas.errors import IndexDamaged, IntegrityError, LockError
from ebas.lifecycle.prune import acquire_prune_lock
from ebas.lifecycle.pruneplan import list_packs, make_plan
from ebas.lifecycle.reachability import collect_references, split_ids
from ebas.lifecycle.retention import RetentionPolicy
from ebas.repo import prunestate
from ebas.repo.pack import KIND_DATA, KIND_TREE, pack_name
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import FILE, Node, encode_tree
from ebas.verify.check import check_repository

PACK = 64 * 1024


class Crash(BaseException):
    """Stands for the process dying at a chosen step."""


@pytest.fixture
def history(repos, tmp_path):
    """A repository with 8 daily backups of a changing tree; ``states[i]`` is day i's content."""
    repo = repos.init(pack_size=PACK)
    src = tmp_path / "src"
    snaps, states = [], []
    for day in range(8):
        snaps.append(backup_day(repo, src, day))
        states.append(read_all(src))
    return repo, src, snaps, states


def restores(repo, snap, state, tmp_path) -> bool:
    out = tmp_path / f"restore-{snap.id[:8]}-{time.monotonic_ns()}"
    api.restore(repo, snap.id, str(out))
    return read_all(out / os.fspath(snap.paths[0]).lstrip("/")) == state


def clean(repo) -> None:
    report = check_repository(repos_fresh(repo))
    assert report.ok, [p.message for p in report.problems]


def repos_fresh(repo):
    return api.Repository.open(repo.store, "correct horse battery staple")


# ------------------------------------------------------------------ counting
def test_reference_counts_agree_with_a_full_recount(history):
    repo, src, snaps, _ = history
    block = os.urandom(20_000)
    (src / "repeated.bin").write_bytes(block * 12)  # the same chunks several times in one file
    (src / "copy.bin").write_bytes(block * 12)
    api.backup(repo, [str(src)], time_ns=T0 + 9 * DAY)
    quick_snapshot(repo, T0 + 10 * DAY, paths=[str(src)])
    refs = collect_references(repo.get_blob, [bytes.fromhex(s.tree) for s in repo.snapshots(refresh=True)])
    naive = naive_recount(repo)
    assert len(refs.blobs) == len(naive) and refs.complete
    for bid, count in naive.items():
        assert refs.blobs.count_of(bid) == count, bid.hex()
    assert int(refs.blobs.counts.sum()) == sum(naive.values())
    assert max(naive.values()) > 4  # repeated chunks and shared trees are really counted
    assert refs.blobs.count_of(os.urandom(32)) == 0


def test_reference_counts_after_forget_and_prune(history, tmp_path):
    repo, _, snaps, states = history
    api.forget(repo, RetentionPolicy(last=2))
    api.prune(repo, grace=0, max_wait=0)
    repo = repos_fresh(repo)
    refs = collect_references(repo.get_blob, [bytes.fromhex(s.tree) for s in repo.snapshots()])
    naive = naive_recount(repo)
    assert {k: refs.blobs.count_of(k) for k in naive} == dict(naive)
    hi, lo = split_ids(b"".join(naive))
    assert refs.blobs.contains(hi, lo).all()


# ------------------------------------------------------------------- pruning
def test_forget_then_prune_returns_space_and_kept_snapshots_restore(history, tmp_path):
    repo, _, snaps, states = history
    before = pack_bytes(repo)
    assert api.repository_stats(repo, reclaimable=True)["reclaimable_bytes"] == 0
    api.forget(repo, RetentionPolicy(last=3))
    stats = api.repository_stats(repo, reclaimable=True)
    assert stats["reclaimable_bytes"] > 100_000 and stats["packs_delete"] > 0
    res = api.prune(repo, grace=0, max_wait=0)
    assert res.pending == [] and res.records_finished == 1 and res.packs_deleted > 0
    after = pack_bytes(repo)
    assert res.bytes_before == before and res.bytes_after == after and after < before - 100_000
    assert abs(res.bytes_freed - stats["reclaimable_bytes"]) < 0.1 * stats["reclaimable_bytes"]
    assert names(repo, prunestate.PREFIX) == set()
    fresh = repos_fresh(repo)
    report = check_repository(fresh)
    assert report.ok and report.problems == []  # not even an unindexed pack left behind
    for snap, state in zip(snaps[5:], states[5:]):
        assert restores(fresh, snap, state, tmp_path)
    again = api.prune(fresh, grace=0, max_wait=0)
    assert again.packs_deleted == 0 and again.packs_repacked == 0 and again.bytes_freed == 0
    assert api.repository_stats(fresh, reclaimable=True)["reclaimable_bytes"] == 0


def test_repack_copies_live_blobs_out_of_mostly_unused_packs(repos, tmp_path):
    repo = repos.init(pack_size=1 << 20)  # one pack holds the whole first backup
    src = tmp_path / "src"
    generation(src, 0, files=10, churn=6)
    first = api.backup(repo, [str(src)], time_ns=T0).snapshot
    generation(src, 1, files=10, churn=6)  # 6 of 10 files change: most of the first pack becomes garbage
    second = api.backup(repo, [str(src)], time_ns=T0 + DAY).snapshot
    state = read_all(src)
    api.forget(repo, snapshot_ids=[first.id])
    keep_all = api.prune(repo, grace=0, max_wait=0, max_unused=1.0, dry_run=True)
    assert keep_all.plan["packs_repack"] == 0  # 100% tolerated: only wholly unused packs (the old trees) go
    assert keep_all.plan["packs_delete"] <= 1
    res = api.prune(repo, grace=0, max_wait=0, max_unused=0.10)
    assert res.packs_repacked == 1 and res.blobs_copied > 0 and res.bytes_freed > 150_000
    plan = make_plan(repos_fresh(repo), max_unused=0.10)
    assert plan.summary()["unused_bytes"] == 0 and not plan.delete and not plan.repack
    fresh = repos_fresh(repo)
    assert restores(fresh, second, state, tmp_path)
    assert check_repository(fresh).ok


def test_dry_run_writes_nothing(history):
    repo, _, _, _ = history
    api.forget(repo, RetentionPolicy(last=1))
    before = {i.name: i.size for i in repo.store.list("")}
    res = api.prune(repo, grace=0, dry_run=True)
    assert res.plan["packs_delete"] > 0 and res.packs_deleted == 0
    assert {i.name: i.size for i in repo.store.list("")} == before


# ---------------------------------------------------------------- bad input
def test_a_pack_deleted_by_hand_that_nothing_needs_leaves_the_index(history):
    repo, _, snaps, _ = history
    api.forget(repo, RetentionPolicy(last=1))
    plan = make_plan(repo, grace=0)
    gone = sorted(plan.delete)[0]
    repo.store.delete(pack_name(gone))
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0)
    assert res.plan["packs_drop_missing"] == 1 and res.pending == []
    clean(repo)


def test_a_needed_pack_deleted_by_hand_makes_prune_refuse(history):
    repo, _, snaps, _ = history
    api.forget(repo, RetentionPolicy(last=1))
    plan = make_plan(repo, grace=0)
    live = sorted(set(plan.view.packs) - plan.delete)[0]
    repo.store.delete(pack_name(live))
    before = {i.name for i in repo.store.list("")}
    # the pack may hold data blobs or a tree the plan needs: either way prune refuses
    with pytest.raises(IntegrityError, match=r"missing|cannot be read"):
        api.prune(repos_fresh(repo), grace=0, max_wait=0)
    assert {i.name for i in repo.store.list("")} == before  # nothing deleted, no lock left


def test_a_damaged_index_or_an_unreadable_tree_makes_prune_refuse(history, repos):
    repo, _, snaps, _ = history
    api.forget(repo, RetentionPolicy(last=1))
    seg = sorted(names(repo, "index/"))[0]
    path = os.path.join(repo.store.root, seg)
    good = open(path, "rb").read()
    with open(path, "r+b") as f:
        f.seek(20)
        f.write(bytes([good[20] ^ 1]))
    with pytest.raises(IndexDamaged):
        api.prune(repos_fresh(repo), grace=0)
    with open(path, "wb") as f:
        f.write(good)
    bogus = Snapshot(time_ns=T0, host="h", paths=["/x"], tree=os.urandom(32).hex())
    repo.save_snapshot(bogus)
    before = {i.name for i in repo.store.list("data/")}
    with pytest.raises(IntegrityError, match="cannot be read"):
        api.prune(repos_fresh(repo), grace=0)
    assert {i.name for i in repo.store.list("data/")} == before


def test_two_prunes_at_once(history):
    repo, _, _, _ = history
    first = acquire_prune_lock(repo)
    with pytest.raises(LockError, match="another prune is running: .*'prune'"):
        api.prune(repos_fresh(repo), grace=0)
    threading.Timer(0.3, first.release).start()
    res = api.prune(repos_fresh(repo), grace=0, lock_wait=10, max_wait=0)
    assert res.pending == []
    exclusive = repo.locks().acquire("repair index", exclusive=True)
    with pytest.raises(LockError, match="repair index"):
        api.prune(repos_fresh(repo), grace=0)
    exclusive.release()
    assert names(repo, "locks/") == set()


def test_young_unindexed_packs_are_left_for_the_grace_period(history):
    repo, _, snaps, _ = history
    with repo.session() as s:  # a crashed (or still running) writer's pack: stored, not indexed
        s.put_blob(KIND_DATA, os.urandom(PACK))
        s.flush()
    newest = max(names(repo, "index/"), key=lambda n: os.stat(os.path.join(repo.store.root, n)).st_mtime_ns)
    repo.store.delete(newest)
    res = api.prune(repos_fresh(repo), max_wait=0)  # default grace: one hour
    assert res.plan["packs_young_unindexed"] == 1 and res.packs_deleted == 0
    orphan = [n for n in names(repo, "data/") if n.endswith(sorted(make_plan(repos_fresh(repo)).young)[0].hex())][0]
    old = time.time() - 7200
    os.utime(os.path.join(repo.store.root, orphan), (old, old))
    res = api.prune(repos_fresh(repo), max_wait=0)
    assert res.packs_deleted == 1 and orphan not in names(repo, "data/")
    clean(repo)


def test_packs_a_snapshot_needs_but_no_index_names_are_adopted(history, tmp_path):
    repo, _, snaps, states = history
    for seg in names(repo, "index/"):  # the index is lost (not damaged): only pack headers remain
        repo.store.delete(seg)
    fresh = repos_fresh(repo)
    res = api.prune(fresh, grace=0, max_wait=0)
    assert res.packs_adopted > 0 and res.packs_deleted == 0
    fresh = repos_fresh(repo)
    assert restores(fresh, snaps[-1], states[-1], tmp_path)
    clean(repo)


# -------------------------------------------------------------- interruption
@pytest.mark.parametrize("phase,at", [("repack", 1), ("record", 1), ("index", 1), ("indexed", 1), ("delete", 2),
                                      ("segments", 1)])
def test_an_interrupted_prune_leaves_a_consistent_repository_and_a_rerun_finishes(history, tmp_path, phase, at):
    repo, _, snaps, states = history
    api.forget(repo, RetentionPolicy(last=2))

    def crash(p, done, total):
        if p == phase and done == at:
            raise Crash(p)

    with pytest.raises(Crash):
        api.prune(repo, grace=0, max_wait=0, max_unused=0.05, progress=PhaseHook(crash))
    report = check_repository(repos_fresh(repo))
    assert report.ok, [p.message for p in report.problems]
    for snap, state in zip(snaps[-2:], states[-2:]):
        assert restores(repos_fresh(repo), snap, state, tmp_path)
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0, max_unused=0.05)
    assert res.pending == [] and names(repo, prunestate.PREFIX) == set()
    fresh = repos_fresh(repo)
    plan = make_plan(fresh, grace=0, max_unused=0.05)
    assert not plan.delete and not plan.repack and not plan.young
    report = check_repository(fresh)
    assert report.ok and report.problems == []
    for snap, state in zip(snaps[-2:], states[-2:]):
        assert restores(fresh, snap, state, tmp_path)


# ------------------------------------------------------- concurrent backups
def _running_backup(repos, repo, garbage: bytes):
    """A backup that started before the prune: it holds a shared lock, loaded the index,
    and deduplicated against ``garbage`` (data no snapshot references any more)."""
    other = repos_fresh(repo)
    lock = other.locks().acquire("backup /slow")
    session = other.session()
    bid, new = session.put_blob(KIND_DATA, garbage)
    assert not new  # found in the (old) index: it will not be stored again

    def commit() -> Snapshot:
        tree, _ = session.put_blob(KIND_TREE, encode_tree([Node(b"late", FILE, size=len(garbage), content=bid)]))
        snap = Snapshot(time_ns=T0 + 20 * DAY, host="slow", paths=["/slow"], tree=tree.hex())
        session.commit(snap)
        session.close()
        lock.release()
        return snap

    return commit


def _garbage(repo, snaps) -> bytes:
    """A chunk only the oldest snapshot has (the day-0 version of a churned file)."""
    for path, node in list_path(repo, snaps[0], "/", True):
        if node.type == FILE and path.endswith("file0.bin"):
            return repo.get_blob(node.chunk_ids[0])
    raise AssertionError("no file0.bin")


def test_a_backup_running_across_a_prune_keeps_its_data(history, repos, tmp_path):
    repo, src, snaps, states = history
    garbage = _garbage(repo, snaps)
    api.forget(repo, RetentionPolicy(last=2))
    commit = _running_backup(repos, repo, garbage)
    res = api.prune(repo, grace=0, max_wait=0)
    assert len(res.pending) == 1 and "backup /slow" in res.pending[0]["waiting_for"][0]
    assert res.packs_deleted == 0  # nothing goes while a backup that saw the old index runs
    assert check_repository(repos_fresh(repo)).ok
    started_later = api.backup(repos_fresh(repo), [str(src)], time_ns=T0 + 19 * DAY)
    assert started_later.snapshot.stats["packs_adopted"] == 0  # condemned packs are never adopted
    late = commit()
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0)
    assert res.records_finished >= 1 and res.packs_resurrected == 1 and res.pending == []
    fresh = repos_fresh(repo)
    assert check_repository(fresh).ok
    out = tmp_path / "late"
    api.restore(fresh, late.id, str(out))
    assert (out / "late").read_bytes() == garbage
    assert restores(fresh, snaps[-1], states[-1], tmp_path)


def test_prune_waits_for_running_backups_before_deleting(history, repos, tmp_path):
    repo, _, snaps, _ = history
    garbage = _garbage(repo, snaps)
    api.forget(repo, RetentionPolicy(last=2))
    commit = _running_backup(repos, repo, garbage)
    done: list = []
    t = threading.Thread(target=lambda: done.append(commit()))

    def step(phase, _done, _total):  # the backup commits while the prune waits for it
        if phase == "wait" and not t.is_alive() and not done:
            t.start()

    res = api.prune(repo, grace=0, max_wait=30, poll=0.05, progress=PhaseHook(step))
    t.join()
    assert res.pending == [] and res.records_finished == 1 and res.packs_resurrected == 1 and res.packs_deleted > 0
    fresh = repos_fresh(repo)
    assert check_repository(fresh).ok
    api.restore(fresh, done[0].id, str(tmp_path / "late"))
    assert (tmp_path / "late" / "late").read_bytes() == garbage


def test_backups_and_prunes_at_the_same_time(repos, tmp_path):
    """Threads back up four sources that share data while the main thread forgets and prunes."""
    repo = repos.init(pack_size=PACK)
    shared = os.urandom(120_000)
    srcs = []
    for k in range(4):
        d = tmp_path / f"src{k}"
        d.mkdir()
        (d / "shared.bin").write_bytes(shared)
        srcs.append(d)
    expected: dict[str, dict] = {}
    errors: list = []

    def worker(k: int) -> None:
        try:
            r = repos_fresh(repo)
            versions = [os.urandom(50_000), os.urandom(50_000)]  # garbage one day, needed again the next
            for day in range(8):
                (srcs[k] / "own.bin").write_bytes(versions[day % 2])
                snap = api.backup(r, [str(srcs[k])], time_ns=T0 + day * DAY + k, host=f"host{k}", update_catalog=False).snapshot
                expected[snap.id] = read_all(srcs[k])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    prunes = deleted = 0
    while any(t.is_alive() for t in threads) or prunes < 2:
        api.forget(repos_fresh(repo), RetentionPolicy(last=1), allow_empty=True)
        res = api.prune(repos_fresh(repo), grace=0, max_wait=30, poll=0.02, max_unused=0.0)
        prunes, deleted = prunes + 1, deleted + res.packs_deleted
        fresh = repos_fresh(repo)
        for snap in [s for s in fresh.snapshots() if s.id in expected]:  # mid-run too
            assert restores(fresh, snap, expected[snap.id], tmp_path)
    for t in threads:
        t.join()
    assert not errors, errors
    api.forget(repos_fresh(repo), RetentionPolicy(last=1))
    deleted += api.prune(repos_fresh(repo), grace=0, max_wait=30, max_unused=0.0).packs_deleted
    fresh = repos_fresh(repo)
    report = check_repository(fresh)
    assert report.ok and report.problems == [], [p.message for p in report.problems]
    assert len(fresh.snapshots()) == 4 and deleted > 0
    for snap in fresh.snapshots():
        assert restores(fresh, snap, expected[snap.id], tmp_path)


def test_packs_the_store_refuses_to_delete_stay_condemned(repos, tmp_path):
    from ebas.errors import PermissionDenied
    from ebas.storage.wrappers.faulty import FaultyStore

    store = FaultyStore(repos.store(tmp_path / "locked"))
    repo = repos.init(store=store, pack_size=PACK)
    src = tmp_path / "src"
    for day in range(4):
        backup_day(repo, src, day)
    api.forget(repo, RetentionPolicy(last=1))
    store.faults.fail("delete", exc=PermissionDenied("object lock"), times=None, prefix="data/")
    res = api.prune(repo, grace=0, max_wait=0)
    assert res.packs_deleted == 0 and "refused to delete" in res.problems[0] and len(res.pending) == 1
    assert check_repository(repos_fresh(repo)).ok
    store.faults.clear()
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0)
    assert res.packs_deleted > 0 and res.pending == [] and names(repo, prunestate.PREFIX) == set()
    clean(repo)


def test_stats_on_a_damaged_repository_still_answer(history):
    repo, _, _, _ = history
    plan = make_plan(repo, grace=0)
    repo.store.delete(pack_name(sorted(plan.view.packs)[0]))
    st = api.repository_stats(repos_fresh(repo), reclaimable=True)
    assert "prune" in st["reclaimable_error"] and st["snapshots"] == 8 and "reclaimable_bytes" not in st


def test_a_damaged_live_blob_is_never_copied_and_its_pack_is_kept(history):
    repo, _, _, _ = history
    api.forget(repo, RetentionPolicy(last=2))
    plan = make_plan(repo, grace=0, max_unused=0.0)
    pid, rows = sorted(plan.repack.items())[0]
    path = os.path.join(repo.store.root, pack_name(pid))
    with open(path, "r+b") as f:
        f.seek(int(rows[0]["offset"]) + 20)
        byte = f.read(1)
        f.seek(int(rows[0]["offset"]) + 20)
        f.write(bytes([byte[0] ^ 1]))
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0, max_unused=0.0)
    assert any("not repacked (kept)" in p for p in res.problems) and os.path.exists(path)
    assert res.packs_repacked == len(plan.repack) - 1


def test_unreadable_records_and_unreadable_new_snapshots(history):
    repo, _, _, _ = history
    api.forget(repo, RetentionPolicy(last=2))

    def crash(p, done, total):
        if p == "indexed":
            raise Crash(p)

    with pytest.raises(Crash):
        api.prune(repo, grace=0, max_wait=0, progress=PhaseHook(crash))
    (rec,) = prunestate.load_all(repo)[0]
    repo.store.put(prunestate.PREFIX + "00" * 16, b"garbage")
    assert prunestate.load_all(repo)[1] == [prunestate.PREFIX + "00" * 16]
    repo.save_snapshot(Snapshot(time_ns=T0, host="h", paths=["/x"], tree=os.urandom(32).hex()))
    with pytest.raises(IntegrityError, match="cannot be read"):  # the plan refuses after the record is kept
        api.prune(repos_fresh(repo), grace=0, max_wait=0)
    records, bad = prunestate.load_all(repo)
    assert [r.name for r in records] == [rec.name] and bad == []  # the garbage record was removed
    assert all(pack_name(p) in names(repo, "data/") for p in rec.pack_ids)  # nothing deleted


@pytest.mark.parametrize("limit", [0.0, 0.05, 0.25, 1.0])
def test_max_unused_is_a_budget_emptiest_packs_first(history, limit):
    """--max-unused P repacks only packs more than P unused, emptiest first, and stops once
    what stays unused is at most P of what stays stored: no copying for nothing."""
    repo, _, _, _ = history
    api.forget(repo, RetentionPolicy(last=3))
    plan = make_plan(repos_fresh(repo), max_unused=limit, grace=0)
    e = plan.view.entries
    refs = plan.refs.blobs
    share = {}
    for k, pid in enumerate(plan.view.packs):
        if pid in plan.delete or pid not in plan.store_packs:
            continue
        rows = e[e["pack"] == k]
        used = refs.positions(*split_ids(rows["id"].tobytes())) >= 0
        share[pid] = int(rows["length"][~used].sum()) / plan.store_packs[pid].size
    assert sum(1 for v in share.values() if v > 0) >= 1  # partially used packs exist to choose from
    assert all(share[p] > limit for p in plan.repack)
    left = [v for p, v in share.items() if p not in plan.repack and v > limit]
    if plan.repack and left:
        assert min(share[p] for p in plan.repack) >= max(left)  # emptiest first
    if limit == 0.0:
        assert plan.unused_left == 0 and set(plan.repack) == {p for p, v in share.items() if v > 0}
    elif limit == 1.0:
        assert not plan.repack
    else:
        budget = limit * plan.live_bytes / (1 - limit)
        assert plan.unused_left <= budget or not left
        if plan.repack:  # the last pack taken was needed: without it we were over budget
            last = min(plan.repack, key=lambda p: share[p])
            assert plan.unused_left + share[last] * plan.store_packs[last].size > budget - 1
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0, max_unused=limit)
    assert res.packs_repacked == len(plan.repack)
    clean(repo)


class _GateStore:
    """Passes everything to ``inner``; the first read of a pack waits for ``go``."""

    def __init__(self, inner):
        self.inner, self.reached, self.go = inner, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, name, *a, **kw):
        if name.startswith("data/") and not self.go.is_set():
            self.reached.set()
            assert self.go.wait(30)
        return self.inner.get(name, *a, **kw)


def test_prune_waits_for_a_restore_that_loaded_the_old_index(history, tmp_path):
    repo, _, snaps, states = history
    api.forget(repo, RetentionPolicy(last=2))
    gate = _GateStore(repo.store)
    reader = api.Repository.open(gate, "correct horse battery staple")
    out = tmp_path / "restored"
    done: dict = {}

    def restore():
        try:
            done["result"] = api.restore(reader, snaps[-1].id, str(out))
        except BaseException as exc:  # noqa: BLE001 - reported below
            done["error"] = exc

    t = threading.Thread(target=restore)
    t.start()
    assert gate.reached.wait(30)  # the restore holds its lock and the old index, and is reading
    before = pack_bytes(repo)
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0.3, poll=0.05, max_unused=0.0)
    assert res.pending and res.pending[0]["waiting_for"]  # the restore's lock holds the delete back
    assert any("restore" in w for w in res.pending[0]["waiting_for"])
    assert pack_bytes(repo) >= before  # nothing deleted under the reader (new packs written)
    report = check_repository(repos_fresh(repo))
    assert report.ok and [p.kind for p in report.warnings] == ["prune-pending"]
    assert "next 'ebas prune' finishes it" in report.warnings[0].hint
    gate.go.set()
    t.join(60)
    assert "error" not in done, done.get("error")
    assert read_all(out / os.fspath(snaps[-1].paths[0]).lstrip("/")) == states[-1]
    res = api.prune(repos_fresh(repo), grace=0, max_wait=5, poll=0.05, max_unused=0.0)
    assert res.records_finished == 1 and pack_bytes(repo) < before
    clean(repo)


def test_check_warns_of_an_unreadable_prune_record_and_prune_removes_it(history):
    repo = history[0]
    repo.store.put(prunestate.PREFIX + "ab" * 16, b"not a sealed record")
    report = check_repository(repos_fresh(repo))
    assert report.ok and [(p.kind, p.object) for p in report.warnings] == [
        ("prune-record-damaged", prunestate.PREFIX + "ab" * 16)]
    res = api.prune(repos_fresh(repo), grace=0, max_wait=0)
    assert any("unreadable prune record" in p for p in res.problems)
    assert check_repository(repos_fresh(repo)).problems == []


def test_prune_marks_with_batched_tree_reads(repos, tmp_path):
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    repo = repos.init()
    src = tmp_path / "dirs"
    for d in range(150):
        (src / f"d{d:03d}" / "x").mkdir(parents=True)
        (src / f"d{d:03d}" / "x" / "f").write_bytes(os.urandom(200))
    api.backup(repo, [str(src)])
    counts = StoreCounts()
    reader = api.Repository.open(CountingStore(repo.store, counts), "correct horse battery staple")
    plan = make_plan(reader, grace=0)
    gets = counts.snapshot().calls.get("get", 0)
    assert len(plan.refs.trees) > 300
    assert gets < 40, gets  # 300+ trees: a few ranged reads per level, not one request per tree
    assert plan.summary()["referenced_blobs"] == len(naive_recount(repo))


# ------------------------------------------------------------------ progress
def test_prune_reports_its_phases_and_their_figures(history):
    repo, _, _, _ = history
    api.forget(repo, RetentionPolicy(last=2))
    packs_before = {p: i.size for p, i in list_packs(repo).items()}
    rec = Recorder()
    res = api.prune(repo, grace=0, max_wait=0, max_unused=0.05, progress=rec.tracker)
    assert res.packs_deleted > 0 and res.packs_repacked > 0
    assert rec.phases == ["plan", "repack", "record", "index", "indexed", "delete", "segments"]
    plan = rec.final("plan")
    assert plan.items_done == res.plan["trees"] and plan.items_total is None  # trees marked
    repack = rec.final("repack")
    assert repack.items_done == repack.items_total == res.packs_repacked
    delete = rec.final("delete")
    assert delete.items_done == delete.items_total == res.packs_deleted
    assert delete.bytes_done == delete.bytes_total == res.bytes_before - res.bytes_after + \
        sum(i.size for p, i in list_packs(repo).items() if p not in packs_before)  # freed + the new packs
    index = rec.final("index")
    assert index.items_done == index.items_total >= 1
    dry = Recorder()
    api.prune(repos_fresh(repo), dry_run=True, progress=dry.tracker)
    assert dry.phases == ["plan"]
