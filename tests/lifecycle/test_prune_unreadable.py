"""An unreadable snapshot object is never the same as an unreferenced one: every command that
decides deletion (prune, prune --dry-run, forget --prune, object-lock upkeep, the second
phase of an interrupted prune) refuses, names the snapshot, and deletes nothing; once the
object is copied back (from a replica) the snapshot restores byte for byte."""

from __future__ import annotations

import os
import random

import blake3
import pytest
from progress_kit import PhaseHook
from prune_kit import DAY, T0, backup_day, names, quick_snapshot, read_all
from test_objectlock import RetainingStore

from ebas import api
from ebas.crypto.aead import Aead
from ebas.errors import EXIT_INTEGRITY, IntegrityError
from ebas.lifecycle.objectlock import extend_locks
from ebas.lifecycle.pruneplan import make_plan
from ebas.lifecycle.retention import RetentionPolicy
from ebas.repo import prunestate
from ebas.repo import snapshots as snapcodec
from ebas.repo.pack import pack_name
from ebas.runtime import SYSTEM_ENTROPY, FakeClock

PASSWORD = "correct horse battery staple"
DAMAGES = ["truncate", "flip-first", "flip-middle", "flip-last", "undecryptable", "undecodable", "empty"]


def damage(repo, sid: str, how: str) -> bytes:
    """Damage ``snapshots/<sid>`` in place; returns the original bytes (the replica's copy)."""
    name = snapcodec.PREFIX + sid
    good = repo.store.get(name)
    if how == "truncate":
        bad = good[: len(good) // 2]
    elif how.startswith("flip"):
        at = {"flip-first": 0, "flip-middle": len(good) // 2, "flip-last": len(good) - 1}[how]
        bad = good[:at] + bytes([good[at] ^ 0x10]) + good[at + 1 :]
    elif how == "empty":
        bad = b""
    else:  # bytes that hash to their name but do not open / do not decode (stored under that name)
        aead = Aead(os.urandom(32), SYSTEM_ENTROPY) if how == "undecryptable" else repo.aead
        bad = aead.seal(good if how == "undecryptable" else b"{not json", snapcodec.AAD)
        repo.store.delete(name)
        repo.store.put(snapcodec.PREFIX + blake3.blake3(bad).hexdigest(), bad)
        return good
    repo.store.put(name, bad)
    return good


def heal(repo, sid: str, good: bytes) -> None:
    """Copy the snapshot back as a replica would (and drop a re-sealed impostor, if any)."""
    for info in list(repo.store.list(snapcodec.PREFIX)):
        try:
            snapcodec.unseal(repo.aead, info.name[len(snapcodec.PREFIX):], repo.store.get(info.name))
        except IntegrityError:
            repo.store.delete(info.name)
    repo.store.put(snapcodec.PREFIX + sid, good)


def everything(repo) -> dict[str, int]:
    return {i.name: i.size for p in ("data/", "index/") for i in repo.store.list(p)}


def fresh(repo):
    return api.Repository.open(repo.store, PASSWORD, clock=repo.clock)


@pytest.fixture
def unique(repos, tmp_path):
    """Three snapshots of different sources: the middle one's files are in no other snapshot."""
    repo = repos.init(pack_size=64 * 1024)
    snaps, states = [], []
    for day, sub in enumerate(["a", "b", "c"]):
        src = tmp_path / sub
        snaps.append(backup_day(repo, src, day * 7 + 1))
        states.append(read_all(src))
    return repo, snaps, states


def restores(repo, snap, state, tmp_path) -> bool:
    out = tmp_path / f"restore-{snap.id[:8]}-{os.urandom(4).hex()}"
    api.restore(repo, snap.id, str(out))
    return read_all(out / os.fspath(snap.paths[0]).lstrip("/")) == state


@pytest.mark.parametrize("how", DAMAGES)
def test_prune_refuses_an_unreadable_snapshot_and_deletes_nothing(unique, how, tmp_path):
    repo, snaps, states = unique
    api.forget(repo, snapshot_ids=[snaps[0].id])  # real garbage exists: prune would delete something
    before = everything(repo)
    good = damage(repo, snaps[1].id, how)
    for dry_run in (True, False):
        with pytest.raises(IntegrityError) as err:
            api.prune(fresh(repo), grace=0, max_wait=0, max_unused=0.0, dry_run=dry_run)
        assert err.value.exit_code == EXIT_INTEGRITY
        assert "snapshot object(s) cannot be read" in err.value.message and "nothing was deleted" in err.value.message
        assert "replica" in err.value.hint
        if how not in ("undecryptable", "undecodable"):
            assert snaps[1].id[:12] in err.value.message
        assert everything(repo) == before and names(repo, prunestate.PREFIX) == set()
    heal(repo, snaps[1].id, good)
    assert restores(fresh(repo), snaps[1], states[1], tmp_path)
    res = api.prune(fresh(repo), grace=0, max_wait=0, max_unused=0.0)  # healed: prune does its work
    assert res.packs_deleted > 0
    for snap, state in zip(snaps[1:], states[1:]):
        assert restores(fresh(repo), snap, state, tmp_path)


def test_the_plan_itself_refuses(unique):
    repo, snaps, _ = unique
    damage(repo, snaps[2].id, "truncate")
    with pytest.raises(IntegrityError, match=snaps[2].id[:12]):
        make_plan(fresh(repo), grace=0)


def test_object_lock_upkeep_fails_on_an_unreadable_snapshot_after_extending_the_readable_ones(repos):
    clock = FakeClock(T0)
    repo = repos.init(store=RetainingStore(clock), clock=clock)
    first = quick_snapshot(repo, T0, payload=b"kept alive by the first snapshot")
    second = quick_snapshot(repo, T0 + 1, host="other", payload=b"only in the second")
    clock.advance(3 * 86400)
    third = quick_snapshot(repo, T0 + 3 * DAY, payload=b"kept alive by the first snapshot")  # dedups
    damage(repo, second.id, "flip-middle")
    before = dict(repo.store.until)
    with pytest.raises(IntegrityError, match=f"cannot be read.*{second.id[:12]}") as err:
        extend_locks(fresh(repo), dry_run=True)
    assert "object-lock upkeep" in err.value.message and "would extend the retention of 2 pack(s)" in err.value.message
    assert repo.store.until == before and repo.store.extended == []
    with pytest.raises(IntegrityError, match=second.id[:12]) as err:
        extend_locks(fresh(repo))
    assert "extended the retention of 2 pack(s)" in err.value.message and err.value.exit_code == EXIT_INTEGRITY
    assert "may not be retained long enough" in err.value.message
    r = fresh(repo)
    tree = bytes.fromhex(third.tree)
    assert third.tree == first.tree  # the newer snapshot shares the first one's tree and data
    shared = {pack_name(r.index.table.lookup(b)[0]) for b in (tree, r.load_tree(tree)[0].chunk_ids[0])}
    assert sorted(repo.store.extended) == sorted(shared)  # the readable snapshots' packs still got their time


def test_phase_two_keeps_condemned_packs_while_a_new_snapshot_is_unreadable(repos, tmp_path):
    """A snapshot committed during the prune deduplicated against a condemned pack; if it is
    unreadable when phase two runs, the pack stays (the record stays pending)."""
    repo = repos.init(pack_size=64 * 1024)
    src = tmp_path / "src"
    snaps = [backup_day(repo, src, d) for d in range(4)]
    api.forget(repo, RetentionPolicy(last=1))
    from ebas.backup.browse import list_path
    from ebas.repo.tree import FILE

    old_file = next(n for p, n in list_path(repo, snaps[0], "/", True) if n.type == FILE and p.endswith("file0.bin"))
    garbage = repo.get_blob(old_file.chunk_ids[0])
    late: list = []

    def during(phase, _done, _total):
        if phase == "record" and not late:  # the condemned packs are still indexed here
            late.append(quick_snapshot(fresh(repo), T0 + 30 * DAY, host="late", payload=garbage))
            late.append(damage(repo, late[0].id, "flip-middle"))

    before = names(repo, "data/")
    res = api.prune(repo, grace=0, max_wait=0, max_unused=0.0, progress=PhaseHook(during))
    assert res.packs_deleted == 0 and len(res.pending) == 1
    assert any("cannot be read" in p and late[0].id[:12] in p for p in res.problems)
    assert before <= names(repo, "data/")  # every pack is still there
    heal(repo, late[0].id, late[1])
    res = api.prune(fresh(repo), grace=0, max_wait=0, max_unused=0.0)
    assert res.records_finished >= 1 and res.packs_resurrected >= 1
    out = tmp_path / "late"
    api.restore(fresh(repo), late[0].id, str(out))
    assert (out / "f").read_bytes() == garbage


def test_forget_alone_still_works_and_lists_what_it_can(unique):
    repo, snaps, _ = unique
    damage(repo, snaps[1].id, "flip-first")
    res = api.forget(fresh(repo), snapshot_ids=[snaps[0].id])
    assert res.removed == [snaps[0].id]


# --------------------------------------------------------------------------- CLI
def test_cli_prune_and_forget_prune_exit_13_and_delete_nothing(make_cli, tmp_path):
    cli = make_cli(tmp_path / "repo")
    cli.ok("init", "--pack-size", "1MiB")
    for day, sub in enumerate("abc"):
        src = tmp_path / sub
        src.mkdir()
        (src / "f.bin").write_bytes(random.Random(day).randbytes(200_000))
        cli.ok("backup", str(src), "--time", f"2024-03-0{day + 1}T02:00:00")
    repo = api.open_repository(str(tmp_path / "repo"), PASSWORD)
    snaps = repo.snapshots()
    api.forget(repo, snapshot_ids=[snaps[0].id])
    before = everything(repo)
    store_snaps = names(repo, snapcodec.PREFIX)
    good = damage(repo, snaps[1].id, "truncate")
    for args in (["prune"], ["prune", "--dry-run"], ["forget", "--keep-last", "1", "--prune"]):
        res = cli(*args, "--grace", "0s")
        out = res.stdout.decode() + res.stderr.decode()
        assert res.returncode == EXIT_INTEGRITY, (args, out)
        assert snaps[1].id[:12] in out and "cannot be read" in out and "replica" in out, out
        assert everything(repo) == before and names(repo, snapcodec.PREFIX) == store_snaps
    res = cli("forget", "--keep-last", "1", "--prune", "--grace", "0s", "--json")
    assert res.returncode == EXIT_INTEGRITY and '"exit_code": 13' in res.stdout.decode()
    heal(repo, snaps[1].id, good)
    assert restores(fresh(repo), snaps[1], {"f.bin": random.Random(1).randbytes(200_000)}, tmp_path)
    cli.ok("prune", "--grace", "0s")
    assert sum(everything(repo).values()) < sum(before.values())
