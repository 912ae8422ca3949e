"""Legal holds and compliance retention on snapshots (``ebas hold ...``).

The records themselves are defined in :mod:`ebas.repo.holds`; this module adds them with
the rules an auditor expects: a legal hold can be released (with a reason, and the
release is itself a record), a compliance retention can only be extended, and the
repository's minimum retention can only be raised. :func:`protections` turns the records
into the :class:`~ebas.lifecycle.retention.Protection` list that forget obeys.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from ebas.errors import SnapshotProtected, UsageError
from ebas.lifecycle.retention import Protection
from ebas.repo.holds import HoldRecord, HoldState, load_state, save_record
from ebas.repo.snapshots import Snapshot
from ebas.units import epoch_ns, format_duration

NS = 1_000_000_000


def _for(ns: int) -> str:
    """A stored ns duration in the grammar of ebas.units (``90d``)."""
    return format_duration(ns / NS)


def _who() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in containers
        user = str(os.getuid())
    return socket.gethostname(), user


def _record(repo, **kw) -> HoldRecord:
    host, user = _who()
    rec = HoldRecord(created_ns=repo.clock.now_ns(), host=host, user=user, **kw)
    save_record(repo, rec)
    return rec


def add_hold(repo, snapshot: str, reason: str, *, until: datetime | None = None) -> HoldRecord:
    """A legal hold on ``snapshot`` (an id prefix or ``latest``), or with ``until`` (an aware
    datetime, e.g. from :func:`ebas.units.parse_time`) a compliance retention until that
    time (which can never be released or shortened)."""
    if not reason.strip():
        raise UsageError("a hold needs a --reason (it is shown to whoever tries to remove the snapshot)")
    snap = repo.find_snapshot(snapshot)
    if until is None:
        return _record(repo, type="hold", snapshot=snap.id, reason=reason)
    until_ns = epoch_ns(until)  # naive means local time, as everywhere in ebas.units
    if until_ns <= repo.clock.now_ns():
        raise UsageError("--until must be in the future")
    return _record(repo, type="retain", snapshot=snap.id, reason=reason, until_ns=until_ns)


def release_hold(repo, snapshot: str, reason: str, *, hold_id: str | None = None) -> list[HoldRecord]:
    """End the active legal hold(s) on ``snapshot`` (or only ``hold_id``, an id prefix).
    Refuses for a compliance retention, which cannot be released."""
    if not reason.strip():
        raise UsageError("releasing a hold needs a --reason (it stays in the audit trail)")
    state = load_state(repo)
    snap = repo.find_snapshot(snapshot)
    active = state.holds.get(snap.id, [])
    if hold_id:
        active = [h for h in active if h.id.startswith(hold_id.lower())]
    if not active:
        retained = [p for p in protections(state, [snap], repo.clock.now_ns()).get(snap.id, [])
                    if p.active(repo.clock.now_ns())]
        if retained:
            raise SnapshotProtected(f"snapshot {snap.id[:8]} has no legal hold to release; it is protected by "
                                    + "; ".join(p.describe() for p in retained),
                                    hint="a compliance retention cannot be released or shortened")
        raise UsageError(f"snapshot {snap.id[:8]} has no active legal hold" + (f" {hold_id!r}" if hold_id else ""))
    return [_record(repo, type="release", hold=h.id, snapshot=snap.id, reason=reason) for h in active]


def set_min_retention(repo, min_retention: float, reason: str = "") -> HoldRecord:
    """Raise the repository's compliance minimum retention to ``min_retention`` seconds (e.g.
    ``parse_duration("7y")``); refuses to lower it."""
    state = load_state(repo)
    min_retention_ns = round(min_retention * NS)
    if min_retention_ns <= 0:
        raise UsageError("the minimum retention must be positive")
    if min_retention_ns < state.min_retention_ns:
        raise SnapshotProtected(
            f"the repository's minimum retention is {_for(state.min_retention_ns)} "
            f"(record {state.min_retention_record[:8]}); compliance mode cannot be shortened to "
            f"{_for(min_retention_ns)}", hint="give a longer or equal retention")
    return _record(repo, type="compliance", min_retention_ns=min_retention_ns, reason=reason)


def protections(state: HoldState, snaps: list[Snapshot], now_ns: int) -> dict[str, list[Protection]]:
    """Every protection of every snapshot (active or not; see ``Protection.active``)."""
    out: dict[str, list[Protection]] = {}
    for s in snaps:
        ps = [Protection("hold", h.reason, None, f"hold {h.id[:8]}") for h in state.holds.get(s.id, [])]
        if s.id in state.retain_until:
            until, reason, rid = state.retain_until[s.id]
            ps.append(Protection("retention", reason, until, f"record {rid[:8]}"))
        if state.min_retention_ns:
            ps.append(Protection("retention", f"repository minimum {_for(state.min_retention_ns)}",
                                 s.time_ns + state.min_retention_ns, f"record {state.min_retention_record[:8]}"))
        for h in s.holds:  # written into the manifest itself: permanent
            if isinstance(h, dict) and h.get("type") == "hold":
                ps.append(Protection("hold", str(h.get("reason", "")), None, "snapshot manifest"))
            elif isinstance(h, dict) and h.get("type") == "retain":
                ps.append(Protection("retention", str(h.get("reason", "")), int(h.get("until_ns", 0)),
                                     "snapshot manifest"))
        if ps:
            out[s.id] = ps
    return out


@dataclass
class HoldView:
    """One line of ``ebas hold list``."""

    snapshot: str
    kind: str
    description: str
    active: bool
    record: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


def list_holds(repo, *, include_inactive: bool = False) -> tuple[list[HoldView], HoldState]:
    """Protections of every snapshot, plus the state (for the compliance minimum)."""
    state = load_state(repo)
    snaps = repo.snapshots(refresh=True)
    now = repo.clock.now_ns()
    out = []
    for sid, ps in protections(state, snaps, now).items():
        for p in ps:
            if p.active(now) or include_inactive:
                out.append(HoldView(sid, p.kind, p.describe(), p.active(now), p.ref))
    known = {s.id for s in snaps}
    for sid, hs in state.holds.items():  # holds whose snapshot is gone (removed by hand)
        if sid not in known:
            out += [HoldView(sid, "hold", f"legal hold {h.reason!r} on a missing snapshot", True, h.id[:8])
                    for h in hs]
    return out, state


__all__ = ["add_hold", "release_hold", "set_min_retention", "protections", "list_holds", "HoldView"]
