"""The retention policy as a pure function: rules, buckets, groups, protections, clock skew."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ebas.errors import UsageError
from ebas.lifecycle.retention import (
    NS,
    Protection,
    RetentionPolicy,
    apply_policy,
)
from ebas.repo.snapshots import Snapshot
from ebas.units import format_duration, parse_duration

UTC = timezone.utc
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS


def snap(dt: datetime, host: str = "h", paths=("/data",), tags=(), sid: str | None = None) -> Snapshot:
    s = Snapshot(time_ns=ns(dt), host=host, paths=list(paths), tree="00" * 32, tags=list(tags))
    s.id = sid or f"{host}:{','.join(paths)}@{dt.isoformat()}"
    return s


def decide(snaps, policy, now=NOW, **kw):
    return apply_policy(snaps, policy, now_ns=ns(now), **kw)


def kept_ids(groups) -> set[str]:
    return {d.snapshot.id for g in groups for d in g.decisions if d.keep}


def daily_year(end: datetime = NOW, days: int = 365, hour: int = 2) -> list[Snapshot]:
    start = end.replace(hour=hour, minute=0) - timedelta(days=days - 1)
    return [snap(start + timedelta(days=i)) for i in range(days)]


# --------------------------------------------------------------------- rules
def test_keep_last_keeps_the_newest_n():
    snaps = daily_year(days=10)
    groups = decide(snaps, RetentionPolicy(last=3))
    assert kept_ids(groups) == {s.id for s in snaps[-3:]}
    newest = groups[0].decisions[0]
    assert newest.keep and newest.reasons == ["last 3"]
    assert [d.keep for d in groups[0].decisions] == [True] * 3 + [False] * 7  # newest first


def test_daily_keeps_the_newest_snapshot_of_each_day():
    day = datetime(2025, 6, 10, tzinfo=UTC)
    snaps = [snap(day + timedelta(days=d, hours=h)) for d in range(5) for h in (1, 9, 17)]
    groups = decide(snaps, RetentionPolicy(daily=3))
    expect = {snap(day + timedelta(days=d, hours=17)).id for d in (2, 3, 4)}
    assert kept_ids(groups) == expect
    reasons = {d.snapshot.id: d.reasons for d in groups[0].decisions if d.keep}
    assert reasons[snap(day + timedelta(days=4, hours=17)).id] == ["daily 2025-06-14"]


def test_hourly_weekly_monthly_yearly_buckets():
    base = datetime(2025, 6, 15, 10, 0, tzinfo=UTC)  # a Sunday
    hourly = [snap(base - timedelta(minutes=20 * i)) for i in range(9)]  # 3 per hour
    assert len(kept_ids(decide(hourly, RetentionPolicy(hourly=2)))) == 2
    sunday, monday = snap(datetime(2025, 6, 15, tzinfo=UTC)), snap(datetime(2025, 6, 16, tzinfo=UTC))
    saturday = snap(datetime(2025, 6, 14, tzinfo=UTC))
    g = decide([saturday, sunday, monday], RetentionPolicy(weekly=2), now=datetime(2025, 6, 17, tzinfo=UTC))
    assert kept_ids(g) == {monday.id, sunday.id}  # ISO weeks start on Monday
    assert [d.reasons for d in g[0].decisions if d.keep] == [["weekly 2025-W25"], ["weekly 2025-W24"]]
    months = [snap(datetime(2024, m, d, tzinfo=UTC)) for m in range(1, 13) for d in (1, 20)]
    g = decide(months, RetentionPolicy(monthly=4), now=datetime(2025, 1, 1, tzinfo=UTC))
    assert kept_ids(g) == {snap(datetime(2024, m, 20, tzinfo=UTC)).id for m in (9, 10, 11, 12)}
    years = [snap(datetime(y, 3, 1, tzinfo=UTC)) for y in range(2015, 2025)]
    g = decide(years, RetentionPolicy(yearly=3), now=datetime(2025, 1, 1, tzinfo=UTC))
    assert kept_ids(g) == {snap(datetime(y, 3, 1, tzinfo=UTC)).id for y in (2022, 2023, 2024)}


def _expected_gfs(snaps, rules: dict[str, int]) -> set[str]:
    """An independent statement of GFS: the newest snapshot of each of the N newest buckets."""
    keys = {
        "daily": lambda t: t.date(), "weekly": lambda t: t.isocalendar()[:2],
        "monthly": lambda t: (t.year, t.month), "yearly": lambda t: t.year,
    }
    out = set()
    for rule, n in rules.items():
        buckets: dict = {}
        for s in snaps:
            t = datetime.fromtimestamp(s.time_ns / NS, UTC)
            cur = buckets.get(keys[rule](t))
            if cur is None or s.time_ns > cur.time_ns:
                buckets[keys[rule](t)] = s
        for k in sorted(buckets, reverse=True)[:n]:
            out.add(buckets[k].id)
    return out


def test_gfs_over_a_year_of_daily_snapshots():
    snaps = daily_year(days=3 * 365)
    rules = {"daily": 14, "weekly": 8, "monthly": 12, "yearly": 3}
    groups = decide(snaps, RetentionPolicy(**rules))
    kept = kept_ids(groups)
    assert kept == _expected_gfs(snaps, rules)
    assert 14 + 6 <= len(kept) <= 14 + 8 + 12 + 3
    for d in groups[0].decisions:
        assert d.keep == bool(d.reasons)


def test_keep_within_and_tags():
    snaps = daily_year(days=30)
    g = decide(snaps, RetentionPolicy(within=parse_duration("7d")))
    assert len(kept_ids(g)) == 7  # 02:00 on each of the last 7 days (now is 12:00)
    assert all(d.reasons == ["within 1w"] for d in g[0].decisions if d.keep)
    tagged = snap(NOW - timedelta(days=100), tags=["monthly-close"])
    g = decide(snaps + [tagged], RetentionPolicy(tags=("monthly-close", "other")))
    assert kept_ids(g) == {tagged.id}
    assert g[0].decisions[-1].reasons == ["tag monthly-close"]


def test_groups_by_host_and_paths_are_decided_separately():
    t = NOW - timedelta(days=1)
    snaps = [snap(t - timedelta(hours=i), host=h, paths=p) for i in range(3)
             for h, p in (("a", ["/x"]), ("a", ["/y"]), ("b", ["/x"]))]
    groups = decide(snaps, RetentionPolicy(last=1))
    assert [g.key for g in groups] == [{"host": "a", "paths": ["/x"]}, {"host": "a", "paths": ["/y"]},
                                       {"host": "b", "paths": ["/x"]}]
    assert len(kept_ids(groups)) == 3 and groups[0].label() == "host=a paths=/x"
    assert len(kept_ids(decide(snaps, RetentionPolicy(last=1), group_by=["host"]))) == 2
    assert len(kept_ids(decide(snaps, RetentionPolicy(last=1), group_by=[]))) == 1
    with pytest.raises(UsageError, match="group-by"):
        decide(snaps, RetentionPolicy(last=1), group_by=["colour"])


def test_paths_in_another_order_are_the_same_group():
    a = snap(NOW - timedelta(hours=1), paths=["/b", "/a"])
    b = snap(NOW - timedelta(hours=2), paths=["/a", "/b"])
    assert len(decide([a, b], RetentionPolicy(last=1))) == 1


# ------------------------------------------------------------ skew, protections
def test_a_snapshot_from_the_future_is_kept_and_takes_no_slot():
    snaps = daily_year(days=5)
    future = snap(NOW + timedelta(days=400), sid="future")  # a host whose clock runs a year ahead
    groups = decide(snaps + [future], RetentionPolicy(last=1, daily=1))
    kept = kept_ids(groups)
    assert kept == {"future", snaps[-1].id}  # the correctly dated newest keeps its place
    reasons = groups[0].decisions[0].reasons
    assert groups[0].decisions[0].snapshot.id == "future" and "future" in reasons[0]
    only_future = decide([future], RetentionPolicy())  # even an empty policy keeps it
    assert kept_ids(only_future) == {"future"}


def test_protections_keep_what_the_policy_drops():
    snaps = daily_year(days=10)
    held, retained, expired = snaps[0], snaps[1], snaps[2]
    prot = {
        held.id: [Protection("hold", "case 42", None, "hold 1a2b3c4d")],
        retained.id: [Protection("retention", "SEC 17a-4", ns(NOW + timedelta(days=30)), "record 99")],
        expired.id: [Protection("retention", "old", ns(NOW - timedelta(days=1)))],
    }
    groups = decide(snaps, RetentionPolicy(last=2), protections=prot)
    assert kept_ids(groups) == {held.id, retained.id, snaps[-1].id, snaps[-2].id}
    why = {d.snapshot.id: d.reasons for d in groups[0].decisions}
    assert why[held.id] == ["legal hold 'case 42' (hold 1a2b3c4d)"]
    assert why[retained.id] == ["compliance retention 'SEC 17a-4' until 2025-07-15 12:00 UTC (record 99)"]
    assert why[expired.id] == []


def test_buckets_follow_the_time_zone():
    tz = timezone(timedelta(hours=-5))
    late = snap(datetime(2025, 6, 14, 23, 30, tzinfo=tz))  # 04:30 UTC on the 15th
    early = snap(datetime(2025, 6, 14, 8, 0, tzinfo=tz))
    assert len(kept_ids(decide([late, early], RetentionPolicy(daily=5), tz=tz))) == 1
    assert len(kept_ids(decide([late, early], RetentionPolicy(daily=5), tz=UTC))) == 2


def test_an_empty_policy_keeps_nothing():
    snaps = daily_year(days=3)
    policy = RetentionPolicy()
    assert policy.empty and policy.describe() == "no keep rule"
    assert kept_ids(decide(snaps, policy)) == set()
    assert not RetentionPolicy(tags=("x",)).empty
    with pytest.raises(UsageError):
        RetentionPolicy(daily=-1)


def test_durations():
    assert parse_duration("14d") == 14 * 86400
    assert parse_duration("1y6mo") == (365 + 180) * 86400
    assert parse_duration("2w3d12h") == 17 * 86400 + 12 * 3600
    assert parse_duration("90min") == 5400 and parse_duration("0s") == 0
    for bad in ("", "7", "d7", "-3d", "1y6m", "6m"):  # a bare m (minutes or months?) is refused
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert format_duration(parse_duration("14d")) == "2w" and format_duration(parse_duration("36h")) == "36h"
    assert RetentionPolicy(last=3, within=parse_duration("7d")).describe() == "keep last 3, within 1w"
    assert RetentionPolicy(within=parse_duration("6mo")).describe() == "keep within 180d"
    with pytest.raises(UsageError):
        RetentionPolicy(within=-1.0)
