"""Backup chains: a full and the differentials / incrementals based on it, and the
``--level auto`` rule that decides when a new full starts a chain. Pure functions.

A snapshot's chain is ``snap.chain`` (the id of its base full), or its own id for a full.
Every snapshot restores on its own; chains only describe how the source was re-read and
what a policy may want to keep together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

from ebas.errors import UsageError
from ebas.repo.snapshots import Snapshot, same_source

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class Chain:
    """One chain: its base full (None if it was forgotten) and its members by time."""

    id: str
    base: Snapshot | None
    members: list[Snapshot] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.members[0].host

    @property
    def paths(self) -> list[str]:
        return self.members[0].paths

    @property
    def new_bytes(self) -> int:
        """Bytes the chain's snapshots added to the repository (stored size)."""
        return sum(int(s.stats.get("bytes_stored_added", 0)) for s in self.members)

    def to_json(self) -> dict:
        return {"chain": self.id, "base": self.base.id if self.base else None, "host": self.host,
                "paths": self.paths, "new_bytes": self.new_bytes,
                "snapshots": [{"id": s.id, "time": s.time_iso, "level": s.level, "parent": s.parent,
                               "new_bytes": int(s.stats.get("bytes_stored_added", 0)),
                               "synthetic": bool(s.stats.get("synthetic"))} for s in self.members]}


def chain_of(snap: Snapshot) -> str:
    """The chain id of a snapshot."""
    return snap.id if snap.level == "full" else (snap.chain or snap.base or snap.id)


def build_chains(snaps: list[Snapshot]) -> list[Chain]:
    """Chains of the given snapshots, oldest chain first."""
    by_id = {s.id: s for s in snaps}
    chains: dict[str, Chain] = {}
    for s in sorted(snaps, key=lambda s: (s.time_ns, s.id)):
        cid = chain_of(s)
        if cid not in chains:
            chains[cid] = Chain(cid, by_id.get(cid))
        chains[cid].members.append(s)
    return sorted(chains.values(), key=lambda c: (c.members[0].time_ns, c.id))


def parse_weekday(text: str) -> int:
    """``sunday`` / ``Sun`` -> 6 (Monday is 0)."""
    t = text.strip().lower()[:3]
    if t not in WEEKDAYS:
        raise UsageError(f"invalid weekday {text!r}", hint="use mon, tue, wed, thu, fri, sat or sun")
    return WEEKDAYS.index(t)


def resolve_level(snaps: list[Snapshot], host: str, paths: list[str], *, now_ns: int, full_every: float = 0.0,
                  full_on: int | None = None, tz: tzinfo = timezone.utc) -> tuple[str, str]:
    """``(level, why)`` for ``--level auto``: a full when the source has none, when the
    last full is at least ``full_every`` seconds old, or on weekday ``full_on`` (once that day);
    an incremental otherwise."""
    fulls = [s for s in snaps if s.level == "full" and same_source(s, host, sorted(paths)) and s.time_ns <= now_ns]
    if not fulls:
        return "full", "no earlier full of this source"
    last = max(fulls, key=lambda s: (s.time_ns, s.id))
    age = now_ns - last.time_ns
    if full_every and age >= round(full_every * 1e9):
        return "full", f"the last full {last.id[:8]} is older than the full interval"
    if full_on is not None:
        today = datetime.fromtimestamp(now_ns / 1e9, tz)
        if today.weekday() == full_on and datetime.fromtimestamp(last.time_ns / 1e9, tz).date() != today.date():
            return "full", f"{WEEKDAYS[full_on]} is the full day"
    return "incremental", f"the last full {last.id[:8]} is recent"
