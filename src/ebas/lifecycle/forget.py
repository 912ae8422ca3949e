"""``forget``: remove snapshot manifests by retention policy or by id.

Only manifests go (and the hold records of the snapshots removed); their data stays
until ``prune``. Safety rules:

* A legal hold or an unexpired compliance retention keeps a snapshot: a policy keeps it
  (and says why), and removing it by id is refused with :class:`SnapshotProtected`
  naming the hold and its end date.
* A policy that would remove *every* snapshot of a group (no keep rule at all, or a
  host whose backups stopped longer ago than ``--keep-within``) is refused unless
  ``allow_empty``.
* Snapshots dated in the future are kept (see :mod:`ebas.lifecycle.retention`).
* Protections are read again right before deleting, so a hold added while forget was
  deciding is still obeyed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone, tzinfo

from ebas.errors import IntegrityError, SnapshotProtected, UsageError
from ebas.lifecycle.holding import protections
from ebas.lifecycle.retention import Decision, GroupDecision, Protection, RetentionPolicy, apply_policy
from ebas.repo.holds import delete_record, load_state
from ebas.repo.snapshots import filter_snapshots


@dataclass
class ForgetResult:
    """What forget decided and did."""

    groups: list[GroupDecision]
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False
    policy: RetentionPolicy | None = None
    prune: object = None  # set by the API when a prune followed (a PruneResult)
    catalog_error: str | None = None  # set by the API: the catalog could not be updated

    @property
    def kept(self) -> int:
        return sum(len(g.kept) for g in self.groups)

    @property
    def to_remove(self) -> list[str]:
        return [s.id for g in self.groups for s in g.dropped]

    def to_json(self) -> dict:
        return {"dry_run": self.dry_run, "policy": self.policy.to_json() if self.policy else None,
                "keep": self.kept, "remove": len(self.to_remove), "removed": self.removed,
                "groups": [g.to_json() for g in self.groups]} | ({"prune": self.prune.to_json()} if self.prune else {})


def plan(repo, policy: RetentionPolicy, *, now_ns: int | None = None, group_by=("host", "paths"),
         host: str | None = None, tags: list[str] | None = None, path: str | None = None,
         tz: tzinfo = timezone.utc) -> list[GroupDecision]:
    """Decisions for the snapshots matching the filters (nothing is changed)."""
    now = repo.clock.now_ns() if now_ns is None else now_ns
    snaps = filter_snapshots(repo.snapshots(refresh=True), host=host, tags=tags, path=path)
    prot = protections(load_state(repo), snaps, now)
    return apply_policy(snaps, policy, now_ns=now, protections=prot, group_by=group_by, tz=tz)


def forget(repo, policy: RetentionPolicy | None = None, *, snapshot_ids: list[str] | tuple = (),
           dry_run: bool = False, allow_empty: bool = False, group_by=("host", "paths"), host: str | None = None,
           tags: list[str] | None = None, path: str | None = None, now_ns: int | None = None,
           tz: tzinfo = timezone.utc) -> ForgetResult:
    """Remove snapshots by ``policy`` or the given ids (see the module docstring)."""
    now = repo.clock.now_ns() if now_ns is None else now_ns
    if snapshot_ids and policy is not None and not policy.empty:
        raise UsageError("give snapshot ids or --keep-* rules, not both")
    if snapshot_ids:
        groups = _by_id(repo, list(snapshot_ids), now)
    else:
        policy = policy or RetentionPolicy()
        if policy.empty and not allow_empty:
            raise UsageError("no --keep-* rule given: this would remove every snapshot; refusing",
                             hint="give keep rules (e.g. --keep-daily 14), or --allow-empty to remove them all")
        groups = plan(repo, policy, now_ns=now, group_by=group_by, host=host, tags=tags, path=path, tz=tz)
        emptied = [g for g in groups if g.decisions and not g.kept]
        if emptied and not allow_empty:
            names = "; ".join(f"{g.label()} ({len(g.decisions)} snapshots)" for g in emptied[:5])
            raise UsageError(f"the policy ({policy.describe()}) would remove every snapshot of {len(emptied)} "
                             f"group(s): {names}; refusing",
                             hint="check the rules (--keep-within counts back from now), or pass --allow-empty")
    result = ForgetResult(groups, dry_run=dry_run, policy=policy)
    if dry_run or not result.to_remove:
        return result
    lock = repo.locks().acquire("forget")
    try:
        doomed = result.to_remove
        state = load_state(repo)  # again: a hold added meanwhile still counts
        _refuse_damaged_holds(state)
        snaps = {s.id: s for s in repo.snapshots(refresh=True)}
        prot = protections(state, [snaps[i] for i in doomed if i in snaps], now)
        late = {i: [p for p in prot.get(i, []) if p.active(now)] for i in doomed}
        for g in groups:  # protected since the plan was made: kept after all
            for d in g.decisions:
                if late.get(d.snapshot.id):
                    d.keep, d.reasons = True, [p.describe() for p in late[d.snapshot.id]]
        for sid in doomed:
            if sid in snaps and not late.get(sid):
                repo.delete_snapshot(sid)
                result.removed.append(sid)
                for rec in state.records_of(sid):
                    delete_record(repo, rec.id)
    finally:
        lock.release()
    return result


def _refuse_damaged_holds(state) -> None:
    """An unreadable hold record may be a legal hold or a retention date: removing any
    snapshot could break it, so forget removes none until the record is dealt with."""
    if state.problems:
        raise IntegrityError(f"{len(state.problems)} hold record(s) cannot be read ({state.problems[0]}); "
                             "a damaged record may protect any snapshot, so forget removes nothing",
                             hint="copy the named holds/ object back from a replica of this repository; if it "
                                  "is lost for good, delete it by hand after confirming with the hold's owner, "
                                  "then re-run forget")


def _by_id(repo, refs: list[str], now: int) -> list[GroupDecision]:
    snaps = [repo.find_snapshot(r) for r in refs]
    snaps = list({s.id: s for s in snaps}.values())
    prot = protections(load_state(repo), snaps, now)
    blocked = {s.id: [p for p in prot.get(s.id, []) if p.active(now)] for s in snaps}
    blocked = {i: ps for i, ps in blocked.items() if ps}
    if blocked:
        raise _protected(blocked)
    return [GroupDecision({}, [Decision(s, False) for s in snaps])]


def _protected(blocked: dict[str, list[Protection]]) -> SnapshotProtected:
    lines = [f"snapshot {sid[:8]} is protected by " + "; ".join(p.describe() for p in ps)
             for sid, ps in blocked.items()]
    return SnapshotProtected("refusing to remove protected snapshot(s): " + " | ".join(lines))
