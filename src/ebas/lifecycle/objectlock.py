"""Write-once retention (S3 Object Lock) that follows the snapshots: ``ebas object-lock extend``.

Every object ebas writes to a locked repository is retained for ``days`` from its write.
A pack written in January and still used (deduplicated) by a snapshot written in June
must stay locked until June + ``days``, or whoever holds delete rights in July could
break the June snapshot. This maintenance step computes, for every pack a snapshot
needs, the latest date a snapshot needing it must stay intact (the newest such
snapshot's time + ``days``) and extends the pack's retention to it. Retention is only
ever lengthened. Run it after the nightly backups (it is cheap when nothing changed: a
tree walk plus one HEAD per pack).

Trees are walked newest snapshot first and each distinct tree once: a tree already seen
belongs to a newer snapshot, which already gave its blobs the later date. An unreadable
snapshot object makes the upkeep fail (exit 13, naming it) after the packs of the readable
snapshots were extended: lengthening is never harmful, and the packs only the unreadable
snapshot needs cannot be known, so success would be a lie.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ebas.errors import IntegrityError, UsageError
from ebas.lifecycle.readable import refuse_unreadable
from ebas.repo.locks import reader_lock
from ebas.repo.pack import pack_name
from ebas.repo.tree import DIR, FILE

DAY_NS = 86_400 * 10**9
REQUEST_THREADS = 8  # HEAD / PutObjectRetention requests in flight


@dataclass
class LockExtendResult:
    """What ``extend_locks`` found and did."""

    mode: str
    days: float
    dry_run: bool = False
    snapshots: int = 0
    trees: int = 0
    packs_needed: int = 0  # packs some snapshot still needs within its retention
    packs_extended: int = 0  # retention lengthened (or, in a dry run, would be)
    packs_current: int = 0  # already retained long enough
    latest_until: str = ""
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-able form."""
        return dict(self.__dict__)

    def summary(self) -> str:
        """One line for a person."""
        verb = "would extend" if self.dry_run else "extended"
        return (f"{self.snapshots} snapshot(s), {self.packs_needed} pack(s) still needed under {self.mode} retention "
                f"of {self.days:g} day(s): {verb} {self.packs_extended}, {self.packs_current} already retained "
                f"long enough" + (f"; latest retention {self.latest_until}" if self.latest_until else ""))


def pack_deadlines(repo, days: float) -> tuple[dict[bytes, int], int, int]:
    """``({pack id: retain-until ns}, snapshots, trees)`` for every pack a readable snapshot
    needs (the unreadable ones are in ``repo.snapshot_problems`` afterwards)."""
    snaps = sorted(repo.snapshots(refresh=True), key=lambda s: s.time_ns, reverse=True)
    table = repo.index.table
    need: dict[bytes, int] = {}
    seen: set[bytes] = set()
    span = int(days * DAY_NS)

    def mark(blob_id: bytes, until: int) -> None:
        loc = table.lookup(blob_id)
        if loc is None:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} that a snapshot needs is not in the index",
                                 hint="run 'ebas check'; nothing was changed")
        if need.get(loc[0], 0) < until:
            need[loc[0]] = until

    for snap in snaps:
        until = snap.time_ns + span
        stack = [bytes.fromhex(snap.tree)]
        while stack:
            tree = stack.pop()
            if tree in seen:
                continue
            seen.add(tree)
            mark(tree, until)
            for node in repo.load_tree(tree):
                if node.type == DIR and node.subtree:
                    stack.append(node.subtree)
                elif node.type == FILE:
                    for cid in node.chunk_ids:
                        mark(cid, until)
    return need, len(snaps), len(seen)


def extend_locks(repo, *, dry_run: bool = False, now_ns: int | None = None) -> LockExtendResult:
    """Lengthen the retention of every pack to the latest date a snapshot needing it must
    stay intact (see the module docstring). Raises ``UsageError`` without object lock, and
    ``IntegrityError`` naming the unreadable snapshot objects if there are any (after
    extending the packs of the readable ones)."""
    lock = repo.config.object_lock
    if not lock and (from_store := repo.store.object_lock()):
        lock = {"mode": from_store[0], "days": from_store[1]}
    if not lock:
        raise UsageError("this repository has no object lock (write-once retention)",
                         hint="create it with 'ebas init --object-lock governance|compliance --lock-days N'")
    now = repo.clock.now_ns() if now_ns is None else now_ns
    res = LockExtendResult(mode=str(lock["mode"]), days=float(lock["days"]), dry_run=dry_run)
    with reader_lock(repo.locks(), "object-lock extend"):
        need, res.snapshots, res.trees = pack_deadlines(repo, res.days)
        todo = sorted((p, u) for p, u in need.items() if u > now)
        res.packs_needed = len(todo)

        def one(item: tuple[bytes, int]) -> bool:
            pid, until_ns = item
            # whole seconds, as S3 keeps them; a pack written during a backup got its write time +
            # days, which is already later than the snapshot's start time + days
            until = dt.datetime.fromtimestamp(until_ns // 10**9, dt.timezone.utc)
            _mode, current = repo.store.retention(pack_name(pid))
            if current is not None and current >= until:
                return False
            if not dry_run:
                repo.store.extend_retention(pack_name(pid), until)
            return True

        with ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="ebas-lock") as pool:
            changed = list(pool.map(one, todo))
    # the packs only an unreadable snapshot needs are unknown: their retention may lapse
    verb = "would extend" if dry_run else "extended"
    refuse_unreadable(repo.snapshot_problems, "object-lock upkeep",
                      f"it {verb} the retention of {sum(changed)} pack(s) the readable snapshots need, but the packs "
                      "only the unreadable ones need may not be retained long enough")
    res.packs_extended = sum(changed)
    res.packs_current = len(changed) - res.packs_extended
    if todo:
        last = max(u for _p, u in todo)
        res.latest_until = dt.datetime.fromtimestamp(last / 1e9, dt.timezone.utc).isoformat(timespec="seconds")
    return res
