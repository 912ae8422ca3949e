"""forget on a real repository: policies, refusals, legal holds, compliance retention, skew."""

from __future__ import annotations

import pytest
from prune_kit import DAY, T0, names, quick_snapshot

from ebas import api
from ebas.errors import IntegrityError, SnapshotProtected, UsageError
from ebas.lifecycle import forget as forget_mod
from ebas.lifecycle.holding import add_hold, list_holds, release_hold, set_min_retention
from ebas.lifecycle.retention import RetentionPolicy, parse_duration
from ebas.repo.holds import PREFIX, load_state
from ebas.runtime import FakeClock
from ebas.verify.check import check_repository

NOW = T0 + 30 * DAY


@pytest.fixture
def clock():
    return FakeClock(NOW)


@pytest.fixture
def repo(repos, clock):
    return repos.init(clock=clock)


def ten_days(repo, host="h", paths=("/d",)):
    return [quick_snapshot(repo, NOW - (10 - i) * DAY, host=host, paths=paths) for i in range(10)]


def ids(repo) -> set[str]:
    return {s.id for s in repo.snapshots(refresh=True)}


def test_policy_removes_manifests_and_dry_run_changes_nothing(repo):
    snaps = ten_days(repo)
    before = names(repo, "")
    res = api.forget(repo, RetentionPolicy(last=3), dry_run=True)
    assert names(repo, "") == before and len(res.to_remove) == 7 and res.removed == []
    out = res.to_json()
    assert out["keep"] == 3 and out["remove"] == 7 and out["groups"][0]["snapshots"][0]["reasons"] == ["last 3"]
    assert [d["action"] for d in out["groups"][0]["snapshots"]] == ["keep"] * 3 + ["remove"] * 7
    res = api.forget(repo, RetentionPolicy(last=3))
    assert sorted(res.removed) == sorted(s.id for s in snaps[:7])
    assert ids(repo) == {s.id for s in snaps[7:]}
    assert names(repo, "data/") == {n for n in before if n.startswith("data/")}  # data waits for prune


def test_refuses_to_remove_everything_unless_allowed(repo):
    ten_days(repo)
    quick_snapshot(repo, NOW - DAY, host="fresh")
    with pytest.raises(UsageError, match="every snapshot"):
        api.forget(repo)
    with pytest.raises(UsageError, match=r"1 group\(s\): host=fresh paths=/d \(1 snapshots\)"):
        api.forget(repo, RetentionPolicy(tags=("x",)), host="fresh")
    assert len(ids(repo)) == 11


def test_a_stopped_host_is_not_wiped_by_keep_within(repo):
    for i in range(5):
        quick_snapshot(repo, NOW - (40 + i) * DAY, host="old")
    quick_snapshot(repo, NOW - DAY, host="new")
    with pytest.raises(UsageError, match="host=old"):
        api.forget(repo, RetentionPolicy(within_ns=parse_duration("30d")))
    res = api.forget(repo, RetentionPolicy(within_ns=parse_duration("30d")), allow_empty=True)
    assert len(res.removed) == 5 and len(ids(repo)) == 1
    res = api.forget(repo, allow_empty=True)
    assert len(res.removed) == 1 and ids(repo) == set()


def test_filters_limit_what_forget_considers(repo):
    ten_days(repo, host="a")
    ten_days(repo, host="b")
    res = api.forget(repo, RetentionPolicy(last=1), host="a")
    assert len(res.removed) == 9 and len(ids(repo)) == 11


def test_a_hold_keeps_a_snapshot_the_policy_drops(repo):
    snaps = ten_days(repo)
    rec = add_hold(repo, snaps[0].id[:10], "case 42: litigation")
    res = api.forget(repo, RetentionPolicy(last=2))
    assert snaps[0].id in ids(repo) and len(res.removed) == 7
    why = {d.snapshot.id: d.reasons for g in res.groups for d in g.decisions}
    assert why[snaps[0].id] == [f"legal hold 'case 42: litigation' (hold {rec.id[:8]})"]
    with pytest.raises(SnapshotProtected, match=f"legal hold 'case 42: litigation' \\(hold {rec.id[:8]}\\)"):
        api.forget(repo, snapshot_ids=[snaps[0].id])
    with pytest.raises(UsageError):
        release_hold(repo, snaps[0].id, "   ")
    released = release_hold(repo, snaps[0].id, "case closed")
    assert [r.hold for r in released] == [rec.id]
    res = api.forget(repo, snapshot_ids=[snaps[0].id[:12]])
    assert res.removed == [snaps[0].id]
    assert names(repo, PREFIX) == set()  # its hold and release records went with it
    with pytest.raises(UsageError, match="needs a --reason"):
        add_hold(repo, "latest", "")


def test_compliance_retention_cannot_be_released_or_shortened(repo, clock):
    snaps = ten_days(repo)
    until = NOW + 5 * DAY
    add_hold(repo, snaps[0].id, "SEC 17a-4", until_ns=until)
    with pytest.raises(SnapshotProtected, match="compliance retention 'SEC 17a-4' until 2023-12-19"):
        api.forget(repo, snapshot_ids=[snaps[0].id])
    with pytest.raises(SnapshotProtected, match="has no legal hold to release; it is protected by compliance"):
        release_hold(repo, snaps[0].id, "please")
    add_hold(repo, snaps[0].id, "shorter", until_ns=NOW + DAY)  # an earlier date changes nothing
    assert load_state(repo).retain_until[snaps[0].id][0] == until
    with pytest.raises(UsageError, match="future"):
        add_hold(repo, snaps[0].id, "past", until_ns=NOW - 1)
    api.forget(repo, RetentionPolicy(last=1))
    assert snaps[0].id in ids(repo)
    clock.advance(6 * 86400)  # the retention ends
    res = api.forget(repo, RetentionPolicy(last=1))
    assert res.removed == [snaps[0].id]


def test_repository_minimum_retention(repo, clock):
    snaps = ten_days(repo)
    set_min_retention(repo, parse_duration("7d"), "policy 7")
    with pytest.raises(SnapshotProtected, match="repository minimum 1w"):
        api.forget(repo, snapshot_ids=[snaps[-1].id])
    with pytest.raises(SnapshotProtected, match="cannot be shortened"):
        set_min_retention(repo, parse_duration("3d"))
    res = api.forget(repo, RetentionPolicy(last=1))
    assert len(res.removed) == 4  # the 6 younger than 7 days stay (the newest among them)
    set_min_retention(repo, parse_duration("30d"))
    assert api.forget(repo, RetentionPolicy(last=1)).removed == []
    views, state = list_holds(repo)
    assert state.min_retention_ns == parse_duration("30d") and len(views) == 6


def test_a_snapshot_from_the_future_survives_forget(repo):
    snaps = ten_days(repo)
    future = quick_snapshot(repo, NOW + 300 * DAY)  # written by a host whose clock is 300 days fast
    res = api.forget(repo, RetentionPolicy(last=1))
    assert ids(repo) == {future.id, snaps[-1].id} and len(res.removed) == 9
    assert api.forget(repo, RetentionPolicy(within_ns=DAY), allow_empty=True).removed == []


def test_a_hold_added_while_forget_decides_is_obeyed(repo, monkeypatch):
    snaps = ten_days(repo)
    real_plan = forget_mod.plan

    def plan_then_hold(*a, **kw):
        groups = real_plan(*a, **kw)
        add_hold(repo, snaps[0].id, "arrived late")
        return groups

    monkeypatch.setattr(forget_mod, "plan", plan_then_hold)
    res = api.forget(repo, RetentionPolicy(last=1))
    assert snaps[0].id in ids(repo) and len(res.removed) == 8
    assert any("arrived late" in r for g in res.groups for d in g.decisions for r in d.reasons)


def test_tampered_hold_records_are_reported_not_trusted(repo):
    snaps = ten_days(repo)
    rec = add_hold(repo, snaps[0].id, "real")
    path = f"{PREFIX}{rec.id}"
    data = bytearray(repo.store.get(path))
    data[-1] ^= 1
    repo.store.put(path, bytes(data))
    state = load_state(repo)
    assert state.holds == {} and "damaged" in state.problems[0]
    # the damaged record may have held any snapshot: forget removes none, and says which record
    before = ids(repo)
    with pytest.raises(IntegrityError, match=rec.id[:12]) as err:
        api.forget(repo, RetentionPolicy(last=2))
    assert "replica" in err.value.hint and ids(repo) == before
    with pytest.raises(IntegrityError):
        api.forget(repo, snapshot_ids=[snaps[0].id])
    assert ids(repo) == before
    assert api.forget(repo, RetentionPolicy(last=2), dry_run=True).to_remove  # a dry run still shows the plan
    report = check_repository(repo)
    assert [(p.kind, p.object) for p in report.errors] == [("hold-damaged", path)]
    repo.store.delete(path)  # the admin deals with it (here: deletes it after confirming)
    assert len(api.forget(repo, RetentionPolicy(last=2)).removed) == 8


def test_check_reports_a_held_snapshot_that_is_missing(repo):
    snaps = ten_days(repo)
    add_hold(repo, snaps[3].id, "litigation 42")
    assert check_repository(repo).ok
    repo.store.delete("snapshots/" + snaps[3].id)
    report = check_repository(repo)
    held = [p for p in report.errors if p.kind == "held-snapshot-missing"]
    assert len(held) == 1 and snaps[3].id[:12] in held[0].message and "litigation 42" in held[0].message


def test_ids_and_rules_together_are_refused(repo):
    snaps = ten_days(repo)
    with pytest.raises(UsageError, match="not both"):
        api.forget(repo, RetentionPolicy(last=1), snapshot_ids=[snaps[0].id])
