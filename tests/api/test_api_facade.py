"""What the CLI used to do beside the API now happens inside it, so a program (or a
scheduler) calling ``ebas.api`` gets the same behaviour as ``ebas`` on the command line:
the catalog follows backups and forgets, ``level="auto"`` picks fulls, restore reports
what it restored, and results print as the CLI's JSON."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebas import api
from ebas.errors import UsageError
from ebas.runtime import FakeClock

DAY = 86400


@pytest.fixture
def src(tmp_path) -> Path:
    s = tmp_path / "src"
    (s / "docs").mkdir(parents=True)
    (s / "docs" / "report.txt").write_bytes(b"quarterly figures\n" * 500)
    (s / "photo.bin").write_bytes(os.urandom(70_000))
    return s


def _cat(tmp_path) -> str:
    return str(tmp_path / "catalog.sqlite")


def test_backup_indexes_the_snapshot_in_the_catalog_by_default(repo, src, tmp_path):
    res = api.backup(repo, [str(src)], catalog=_cat(tmp_path))
    assert res.catalog_error is None
    found = api.find("report", repo=repo, catalog=_cat(tmp_path))
    assert [h.path for h in found.hits] == [f"{src}/docs/report.txt"]
    assert found.freshness.checked and found.freshness.not_indexed == []


def test_backup_can_leave_the_catalog_alone(repo, src, tmp_path):
    res = api.backup(repo, [str(src)], catalog=_cat(tmp_path), update_catalog=False)
    found = api.find("report", repo=repo, catalog=_cat(tmp_path))
    assert found.hits == [] and found.freshness.not_indexed == [res.snapshot.id]
    synced = api.catalog_sync(repo, catalog=_cat(tmp_path))
    assert synced.added == [res.snapshot.id]
    assert len(api.find("report", repo=repo, catalog=_cat(tmp_path)).hits) == 1


def test_a_catalog_failure_never_fails_the_backup(repo, src):
    res = api.backup(repo, [str(src)], catalog="ftp://nowhere/catalog")
    assert res.catalog_error and "unknown catalog location" in res.catalog_error
    assert [s.id for s in api.snapshots(repo)] == [res.snapshot.id]


def test_forget_drops_removed_snapshots_from_the_catalog_and_can_prune(repo, src, tmp_path):
    first = api.backup(repo, [str(src)], catalog=_cat(tmp_path)).snapshot
    (src / "photo.bin").write_bytes(os.urandom(70_000))
    second = api.backup(repo, [str(src)], catalog=_cat(tmp_path)).snapshot
    res = api.forget(repo, snapshot_ids=[first.id], catalog=_cat(tmp_path),
                     then_prune=api.PruneOptions(grace=0, max_wait=0))
    assert res.removed == [first.id] and res.catalog_error is None
    assert res.prune is not None and res.prune.packs_deleted + res.prune.packs_repacked > 0
    assert res.to_json()["prune"]["bytes_freed"] == res.prune.bytes_freed
    check = api.catalog_check(repo=repo, catalog=_cat(tmp_path))
    assert check.ok and check.indexed == 1
    assert {h.snapshot for h in api.find("report", repo=repo, catalog=_cat(tmp_path)).hits} == {second.id}


def test_forget_dry_run_never_prunes(repo, src, tmp_path):
    first = api.backup(repo, [str(src)], update_catalog=False).snapshot
    res = api.forget(repo, snapshot_ids=[first.id], dry_run=True, then_prune=api.PruneOptions())
    assert res.removed == [] and res.prune is None and "prune" not in res.to_json()


def test_level_auto_makes_a_full_when_the_last_one_is_old_enough(repos, src, tmp_path):
    clock = FakeClock(1_700_000_000 * 10**9)
    repo = repos.init(clock=clock)
    kw = {"level": "auto", "full_every": 7 * DAY, "update_catalog": False}
    assert api.backup(repo, [str(src)], **kw).snapshot.level == "full"
    clock.advance(3 * DAY)
    res = api.backup(repo, [str(src)], **kw)
    assert res.snapshot.level == "incremental" and "is recent" in res.level_reason
    clock.advance(5 * DAY)
    res = api.backup(repo, [str(src)], **kw)
    assert res.snapshot.level == "full" and "older than the full interval" in res.level_reason


def test_level_auto_needs_a_rule_and_rules_need_auto(repo, src):
    with pytest.raises(UsageError, match="--full-every"):
        api.backup(repo, [str(src)], level="auto", update_catalog=False)
    with pytest.raises(UsageError, match="--level auto"):
        api.backup(repo, [str(src)], full_every=DAY, update_catalog=False)
    assert api.snapshots(repo) == []


def test_restore_reports_the_snapshot_and_restores_the_bytes(repo, src, tmp_path):
    snap = api.backup(repo, [str(src)], update_catalog=False).snapshot
    out = tmp_path / "out"
    res = api.restore(repo, "latest", str(out), notify=lambda m: pytest.fail(f"no recall expected: {m}"))
    assert res.snapshot_id == snap.id and res.to_json()["snapshot_id"] == snap.id and "recalled" not in res.to_json()
    restored = out / str(src).lstrip("/")
    assert (restored / "docs" / "report.txt").read_bytes() == (src / "docs" / "report.txt").read_bytes()
    assert (restored / "photo.bin").read_bytes() == (src / "photo.bin").read_bytes()


def test_results_print_as_the_cli_json(repo, src):
    api.backup(repo, [str(src)], update_catalog=False)
    st = api.repository_stats(repo, reclaimable=True)
    assert st.to_json()["snapshots"] == st["snapshots"] == st.snapshots == 1
    assert st["reclaimable_bytes"] == 0 and "reclaimable_error" not in st
    assert api.unlock(repo).to_json() == {"removed": [], "live": []}
    keys = api.list_keys(repo)
    assert [k["current"] for k in keys.to_json()] == [True]
    assert api.diff(repo, "latest", "latest").to_json()["summary"]["added"] == 0


def test_snapshot_filters_take_several_hosts(repo, src):
    for host in ("a", "b", "c"):
        api.backup(repo, [str(src)], host=host, update_catalog=False)
    assert [s.host for s in api.snapshots(repo, host=["a", "c"])] == ["a", "c"]
    assert api.find_snapshot(repo, "latest", host=["a", "b"]).host == "b"
    assert api.snapshots(repo, host="b")[0].host == "b"


def test_keys_and_holds_through_the_api(repo, src, fast_kdf):
    snap = api.backup(repo, [str(src)], update_catalog=False).snapshot
    added = api.add_key(repo, "second password", kdf=fast_kdf)
    assert len(api.list_keys(repo).keys) == 2
    assert api.remove_key(repo, added.added).removed == added.added
    hold = api.add_hold(repo, snap.id, "litigation 42")
    assert hold.to_json()["snapshot"] == snap.id and hold.to_json()["type"] == "hold"
    assert [v.snapshot for v in api.list_holds(repo).views] == [snap.id]
    assert api.release_hold(repo, snap.id, "settled").to_json()["released"] == [hold.added.id]
    assert api.compliance(repo).min_retention_ns == 0
