"""Chains, --level auto, synthetic fulls (with consolidation) and export of one snapshot."""

from __future__ import annotations

import os

import pytest
from prune_kit import DAY, T0, backup_day, quick_snapshot, read_all

from ebas import api
from ebas.errors import IntegrityError, RepositoryExists, UsageError
from ebas.lifecycle.chains import build_chains, parse_weekday, resolve_level
from ebas.lifecycle.retention import RetentionPolicy
from ebas.lifecycle.synthetic import restore_order, synthesize
from ebas.repo.pack import KIND_DATA, KIND_TREE, pack_name
from ebas.repo.repository import Repository
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.transfer.export import export_snapshot
from ebas.verify.check import check_repository
from ebas.verify.repair import rebuild_index

PW = "correct horse battery staple"


@pytest.fixture
def chain(repos, tmp_path):
    """full (day 0), incrementals (days 1-3), a differential (day 4)."""
    repo = repos.init(pack_size=64 * 1024)
    src = tmp_path / "src"
    snaps, states = [], []
    for day, level in enumerate(["full", "incremental", "incremental", "incremental", "differential"]):
        snaps.append(backup_day(repo, src, day, level=level))
        states.append(read_all(src))
    return repo, src, snaps, states


def restored(repo, snap, tmp_path, name: str) -> dict:
    out = tmp_path / name
    api.restore(repo, snap.id, str(out))
    return read_all(out / snap.paths[0].lstrip("/"))


# -------------------------------------------------------------------- chains
def test_chains_group_fulls_with_their_followers(chain):
    repo, _, snaps, _ = chain
    chains = build_chains(repo.snapshots(refresh=True))
    assert len(chains) == 1 and chains[0].base.id == snaps[0].id
    assert [s.level for s in chains[0].members] == ["full", "incremental", "incremental", "incremental",
                                                    "differential"]
    assert chains[0].new_bytes == sum(s.stats["bytes_stored_added"] for s in snaps)
    api.forget(repo, snapshot_ids=[snaps[0].id])
    orphaned = build_chains(repo.snapshots(refresh=True))
    assert orphaned[0].base is None and orphaned[0].id == snaps[0].id  # base forgotten, chain still named
    assert orphaned[0].to_json()["base"] is None


def test_level_auto_rule(repo):
    paths = ["/d"]
    assert resolve_level([], "h", paths, now_ns=T0, full_every=7 * 86400)[0] == "full"
    full = quick_snapshot(repo, T0)
    full.level = "full"
    snaps = [full]
    assert resolve_level(snaps, "h", paths, now_ns=T0 + 6 * DAY, full_every=7 * 86400)[0] == "incremental"
    assert resolve_level(snaps, "h", paths, now_ns=T0 + 7 * DAY, full_every=7 * 86400)[0] == "full"
    assert resolve_level(snaps, "other", paths, now_ns=T0 + DAY, full_every=7 * 86400)[0] == "full"
    # T0 is a Tuesday (2023-11-14): the next Sunday is day 5
    sunday = parse_weekday("Sunday")
    assert resolve_level(snaps, "h", paths, now_ns=T0 + 5 * DAY, full_on=sunday)[0] == "full"
    assert resolve_level(snaps, "h", paths, now_ns=T0 + 4 * DAY, full_on=sunday)[0] == "incremental"
    with pytest.raises(UsageError):
        parse_weekday("someday")


# ---------------------------------------------------------------- synthesize
def test_synthetic_full_restores_like_its_source_and_becomes_the_base(chain, tmp_path):
    repo, src, snaps, states = chain
    res = synthesize(repo, snaps[3].id[:10])
    synth = res.snapshot
    assert synth.level == "full" and synth.tree == snaps[3].tree and synth.time_ns == snaps[3].time_ns + 1
    assert synth.stats["synthetic"] and synth.stats["synthesized_from"] == snaps[3].id and res.blobs_copied == 0
    assert restored(repo, synth, tmp_path, "synth") == states[3]
    diff = backup_day(repo, src, 5, level="differential")
    assert diff.base == synth.id and diff.parent == synth.id  # the latest full is the synthetic one
    assert {c.id for c in build_chains(repo.snapshots(refresh=True))} == {snaps[0].id, synth.id}


def test_consolidation_lays_out_packs_in_restore_order_and_frees_the_old_chain(chain, tmp_path):
    repo, _, snaps, states = chain
    res = synthesize(repo, snaps[4].id, consolidate=True)
    blobs = list(restore_order(repo, bytes.fromhex(snaps[4].tree)))
    assert res.blobs_copied == len(blobs) and res.packs_written >= 2
    api.forget(repo, RetentionPolicy(last=1))  # the old chain expires; only the synthetic full stays
    out = api.prune(repo, grace=0, max_wait=0)
    assert out.packs_deleted > 0
    fresh = Repository.open(repo.store, PW)
    assert check_repository(fresh).ok
    assert restored(fresh, res.snapshot, tmp_path, "consolidated") == states[4]
    table = fresh.index.table
    all_packs = set()
    for kind in (KIND_DATA, KIND_TREE):  # trees go to tree packs, file data to data packs
        locs = [table.lookup(bid) for bid, k in blobs if k == kind]
        packs = list(dict.fromkeys(loc[0] for loc in locs))
        all_packs |= set(packs)
        order = [(packs.index(p), off) for p, off, _ in locs]
        assert order == sorted(order)  # a restore reads each kind front to back
    assert len(all_packs) == res.packs_written  # everything it needs lives in the new packs only


def test_synthesize_refuses_a_damaged_snapshot(chain):
    repo, _, snaps, _ = chain
    node = next(n for n in repo.load_tree(_dir_of(repo, snaps[2])) if n.chunk_ids)
    pid = repo.index.table.lookup(node.chunk_ids[0])[0]
    repo.store.delete(pack_name(pid))
    with pytest.raises(IntegrityError):
        synthesize(Repository.open(repo.store, PW), snaps[2].id, consolidate=True)
    rebuild_index(repo)  # the index forgets the lost pack: its data is missing, not just unreadable
    with pytest.raises(IntegrityError, match="not in the repository"):
        synthesize(Repository.open(repo.store, PW), snaps[2].id)
    assert len(repo.snapshots(refresh=True)) == 5


def _dir_of(repo, snap) -> bytes:
    """The tree of the backed-up directory itself (below the path components)."""
    tid = bytes.fromhex(snap.tree)
    for _ in snap.paths[0].strip("/").split("/"):
        tid = repo.load_tree(tid)[0].subtree
    return tid


# -------------------------------------------------------------------- export
def test_export_writes_a_self_contained_repository(chain, repos, tmp_path):
    repo, _, snaps, states = chain
    dest = repos.store(tmp_path / "tape")
    res = export_snapshot(repo, snaps[2].id, dest, "tape-pw", kdf=repos.kdf)
    exported = Repository.open(dest, "tape-pw")
    assert exported.config.chunker == repo.config.chunker and exported.config.repo_id != repo.config.repo_id
    assert exported.master.enc_key == repo.master.enc_key  # same master key: blobs copied as stored
    (snap,) = exported.snapshots()
    assert snap.tree == snaps[2].tree and snap.level == "full" and snap.stats["exported_from"] == snaps[2].id
    need = list(restore_order(repo, bytes.fromhex(snaps[2].tree)))
    assert res.blobs_copied == len(need) == len(exported.index.table)  # only what it needs
    assert restored(exported, snap, tmp_path, "tape-restore") == states[2]
    report = check_repository(exported)
    assert report.ok and report.problems == []
    again = export_snapshot(repo, snaps[2].id, dest, "tape-pw")
    assert again.snapshot.id == snap.id and again.blobs_copied == 0 and len(exported.snapshots(refresh=True)) == 1
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_bytes(b"x")
    with pytest.raises(RepositoryExists, match="not empty"):
        export_snapshot(repo, snaps[2].id, repos.store(tmp_path / "junk"), PW)
    with pytest.raises(UsageError, match="into itself"):
        export_snapshot(repo, snaps[2].id, repo.store, PW)


def test_export_with_a_new_key_reencrypts(chain, repos, tmp_path):
    repo, _, snaps, states = chain
    dest = repos.store(tmp_path / "cold")
    res = export_snapshot(repo, snaps[4].id, dest, "cold-pw", new_key=True, kdf=repos.kdf)
    exported = Repository.open(dest, "cold-pw")
    assert res.new_key and exported.master.enc_key != repo.master.enc_key
    assert exported.master.id_key == repo.master.id_key  # blob ids still match the source
    assert restored(exported, exported.snapshots()[0], tmp_path, "cold-restore") == states[4]
    assert check_repository(exported).ok


def test_an_interrupted_export_resumes(chain, repos, tmp_path):
    repo, _, snaps, states = chain
    inner = repos.store(tmp_path / "tape")
    faulty = FaultyStore(inner)
    faulty.faults.fail("put", prefix="snapshots/", exc=OSError("tape full"))
    with pytest.raises(OSError):
        export_snapshot(repo, snaps[4].id, faulty, "pw2", kdf=repos.kdf)
    assert any(True for _ in inner.list("data/")) and not any(True for _ in inner.list("snapshots/"))
    res = export_snapshot(repo, snaps[4].id, inner, "pw2")
    assert res.blobs_copied == 0 and res.blobs_present > 0
    exported = Repository.open(inner, "pw2")
    assert restored(exported, exported.snapshots()[0], tmp_path, "resumed") == states[4]
    assert os.path.isdir(tmp_path / "tape" / "index")
