"""Retention policy: which snapshots a ``forget`` keeps, and why. Pure: no I/O, no clock.

Snapshots are grouped (by default per host and set of source paths, like restic's
``--group-by host,paths``) and each group is decided on its own, newest first:

* ``last N`` keeps the N newest snapshots.
* ``hourly/daily/weekly/monthly/yearly N`` keep the newest snapshot of each of the N
  newest hours / days / ISO weeks / months / years that have a snapshot (grandfather-
  father-son). Buckets are computed in the time zone ``tz`` (the CLI passes the local one).
* ``within D`` keeps every snapshot taken less than D before ``now``.
* ``tags`` keeps every snapshot carrying one of the tags.
* A *protection* (a legal hold, or a compliance retention that has not ended) keeps its
  snapshot whatever the rules say.
* A snapshot whose time is after ``now`` (a host with a fast clock) is always kept and
  does not take a bucket slot, so it can neither be dropped by mistake nor push a
  correctly dated snapshot out of its bucket.

Every decision carries the reasons that keep the snapshot (empty for a drop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable, Iterable

from ebas.errors import UsageError
from ebas.repo.snapshots import Snapshot
from ebas.units import format_duration

NS = 1_000_000_000
GROUP_FIELDS = ("host", "paths", "tags")


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep rules of ``ebas forget`` (0 / empty means "rule not used")."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: float = 0.0  # seconds (parse with ebas.units.parse_duration: "30d", "1y6mo")
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly", "within"):
            if getattr(self, name) < 0:
                raise UsageError(f"keep rule {name} must not be negative")

    @property
    def empty(self) -> bool:
        """True when no rule is given: such a policy keeps nothing."""
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly or self.yearly
                    or self.within or self.tags)

    def describe(self) -> str:
        """``keep last 3, daily 14, within 7d``."""
        parts = [f"{n} {getattr(self, n)}" for n in ("last", "hourly", "daily", "weekly", "monthly", "yearly")
                 if getattr(self, n)]
        if self.within:
            parts.append(f"within {format_duration(self.within)}")
        if self.tags:
            parts.append("tags " + ",".join(self.tags))
        return "keep " + ", ".join(parts) if parts else "no keep rule"

    def to_json(self) -> dict:
        """JSON-able form."""
        return {"last": self.last, "hourly": self.hourly, "daily": self.daily, "weekly": self.weekly,
                "monthly": self.monthly, "yearly": self.yearly, "within": self.within, "tags": list(self.tags)}


@dataclass(frozen=True)
class Protection:
    """Something that forbids removing a snapshot: a legal hold (``until_ns`` None: until
    released) or a compliance retention ending at ``until_ns``."""

    kind: str  # "hold" or "retention"
    reason: str
    until_ns: int | None = None
    ref: str = ""  # the hold record id, or where the retention comes from

    def active(self, now_ns: int) -> bool:
        """True while it still protects its snapshot."""
        return self.until_ns is None or self.until_ns > now_ns

    def describe(self) -> str:
        """``legal hold 'case 42' (hold 1a2b3c4d)`` / ``compliance retention until 2026-01-01 ...``."""
        ref = f" ({self.ref})" if self.ref else ""
        if self.kind == "hold":
            return f"legal hold {self.reason!r}{ref}"
        until = datetime.fromtimestamp((self.until_ns or 0) / NS, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        why = f" {self.reason!r}" if self.reason else ""
        return f"compliance retention{why} until {until}{ref}"


@dataclass
class Decision:
    """Keep or drop one snapshot; ``reasons`` name every rule that keeps it."""

    snapshot: Snapshot
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-able form."""
        s = self.snapshot
        return {"id": s.id, "time": s.time_iso, "host": s.host, "paths": s.paths, "tags": s.tags, "level": s.level,
                "action": "keep" if self.keep else "remove", "reasons": list(self.reasons)}


@dataclass
class GroupDecision:
    """The decisions for one group, newest snapshot first."""

    key: dict
    decisions: list[Decision]

    @property
    def kept(self) -> list[Snapshot]:
        return [d.snapshot for d in self.decisions if d.keep]

    @property
    def dropped(self) -> list[Snapshot]:
        return [d.snapshot for d in self.decisions if not d.keep]

    def label(self) -> str:
        """``host=web1 paths=/etc,/home``."""
        return " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in self.key.items()) or "all"

    def to_json(self) -> dict:
        return {"group": self.key, "keep": len(self.kept), "remove": len(self.dropped),
                "snapshots": [d.to_json() for d in self.decisions]}


def group_key(snap: Snapshot, group_by: Iterable[str]) -> dict:
    """The grouping key of a snapshot (``{"host": ..., "paths": [...]}``)."""
    key: dict = {}
    for f in group_by:
        if f not in GROUP_FIELDS:
            raise UsageError(f"unknown --group-by field {f!r}", hint="use host, paths and/or tags")
        if f == "host":
            key["host"] = snap.host
        elif f == "paths":
            key["paths"] = sorted(snap.paths)
        else:
            key["tags"] = sorted(snap.tags)
    return key


def _buckets(tz: tzinfo) -> list[tuple[str, Callable[[datetime], tuple], Callable[[datetime], str]]]:
    return [
        ("hourly", lambda t: (t.year, t.month, t.day, t.hour), lambda t: t.strftime("%Y-%m-%d %H:00")),
        ("daily", lambda t: (t.year, t.month, t.day), lambda t: t.strftime("%Y-%m-%d")),
        ("weekly", lambda t: t.isocalendar()[:2], lambda t: "%d-W%02d" % t.isocalendar()[:2]),
        ("monthly", lambda t: (t.year, t.month), lambda t: t.strftime("%Y-%m")),
        ("yearly", lambda t: (t.year,), lambda t: t.strftime("%Y")),
    ]


def apply_policy(snapshots: Iterable[Snapshot], policy: RetentionPolicy, *, now_ns: int,
                 protections: dict[str, list[Protection]] | None = None,
                 group_by: Iterable[str] = ("host", "paths"), tz: tzinfo = timezone.utc) -> list[GroupDecision]:
    """Decide keep/drop for every snapshot; groups sorted by key, decisions newest first."""
    group_by = tuple(group_by)
    groups: dict[str, tuple[dict, list[Snapshot]]] = {}
    for s in snapshots:
        key = group_key(s, group_by)
        groups.setdefault(repr(sorted(key.items())), (key, []))[1].append(s)
    out = []
    for _, (key, snaps) in sorted(groups.items()):
        snaps.sort(key=lambda s: (s.time_ns, s.id), reverse=True)
        out.append(GroupDecision(key, _decide(snaps, policy, now_ns, protections or {}, tz)))
    return out


def _decide(snaps: list[Snapshot], policy: RetentionPolicy, now_ns: int,
            protections: dict[str, list[Protection]], tz: tzinfo) -> list[Decision]:
    decisions = [Decision(s, False) for s in snaps]
    present = [d for d in decisions if d.snapshot.time_ns <= now_ns]
    for d in decisions:
        s = d.snapshot
        if s.time_ns > now_ns:
            ahead = timedelta(seconds=(s.time_ns - now_ns) / NS)
            d.reasons.append(f"in the future by {_short(ahead)} (clock skew?): never removed by a policy")
        for p in protections.get(s.id, ()):
            if p.active(now_ns):
                d.reasons.append(p.describe())
        if policy.within and now_ns - round(policy.within * NS) <= s.time_ns <= now_ns:
            d.reasons.append(f"within {format_duration(policy.within)}")
        if policy.tags and set(policy.tags) & set(s.tags):
            d.reasons.append("tag " + ",".join(sorted(set(policy.tags) & set(s.tags))))
    for d in present[: policy.last]:
        d.reasons.append(f"last {policy.last}")
    for name, bucket, label in _buckets(tz):
        left = getattr(policy, name)
        last_key = None
        for d in present:
            if left <= 0:
                break
            t = datetime.fromtimestamp(d.snapshot.time_ns / NS, tz)
            k = bucket(t)
            if k != last_key:
                d.reasons.append(f"{name} {label(t)}")
                last_key = k
                left -= 1
    for d in decisions:
        d.keep = bool(d.reasons)
    return decisions


def _short(td: timedelta) -> str:
    secs = int(td.total_seconds())
    if secs >= 86400:
        return f"{secs // 86400}d{(secs % 86400) // 3600}h"
    if secs >= 3600:
        return f"{secs // 3600}h{(secs % 3600) // 60}min"
    return f"{secs}s"
