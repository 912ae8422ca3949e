"""``prune``: give back the space of data no snapshot needs, safely next to running backups.

Protocol (docs/format.md, "Prune"), each step safe to interrupt with SIGKILL:

1. Take the *prune lock*: a shared lock (backups keep running) that refuses if another
   live prune lock or an exclusive lock exists.
2. Finish the records ``prune/<id>`` that an earlier, interrupted prune left (step 7).
3. Plan (:mod:`ebas.lifecycle.pruneplan`): mark every blob reachable from the snapshots,
   classify every pack. Nothing is written.
4. Repack: copy the live blobs of mostly-unused packs into new packs through a write
   session (packs, then their index segment). The old packs are still indexed.
5. Write the pending-deletion record listing the condemned packs (unused, repacked, old
   orphans). From now on no backup adopts them.
6. Compact the index: rewrite the segments that name condemned or vanished packs (and
   merge small segments) into new segments; the last one *supersedes* the old ones.
   Old segments are not deleted yet. The condemned packs are now out of the index, so a
   backup that starts from here on cannot deduplicate against them. The record is
   rewritten with the live locks of this moment (``waiting_for``).
7. Wait until every lock in ``waiting_for`` has gone (those backups loaded the old index
   and may have deduplicated against a condemned pack). Then reload the index and the
   snapshots; walk the snapshots committed since step 3; a condemned pack holding a blob
   such a snapshot needs, and that the index no longer has, is indexed again (kept); a
   condemned pack a backup has indexed again is kept. Delete the other condemned packs,
   then the superseded segments, then the record.

If the wait exceeds ``max_wait`` the record stays; the next prune finishes it. Nothing
is deleted before the index that stops naming it is stored and read back.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

import numpy as np

from ebas.errors import IntegrityError, LockError, ObjectNotFound, PermissionDenied, UsageError
from ebas.lifecycle import readable
from ebas.lifecycle.pruneplan import (
    DAMAGE,
    IndexView,
    PackInfo,
    PrunePlan,
    entry_ids,
    fallback_reader,
    headers_table,
    list_packs,
    load_index_view,
    make_plan,
)
from ebas.lifecycle.reachability import collect_references, split_ids
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo import prunestate
from ebas.repo.index import ENTRY_DTYPE, IndexSegment, check_segment_name, segment_name
from ebas.repo.pack import pack_name

MAX_SEGMENT_ENTRIES = 100_000
SMALL_SEGMENT = MAX_SEGMENT_ENTRIES // 4


@dataclass
class PruneResult:
    """What a prune planned, did, and left pending."""

    dry_run: bool
    plan: dict = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_adopted: int = 0
    packs_resurrected: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    segments_written: int = 0
    segments_removed: int = 0
    records_finished: int = 0
    pending: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def bytes_freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["bytes_freed"] = self.bytes_freed
        return d


def prune(repo, *, max_unused: float = 0.10, grace: float = 3600.0, max_wait: float = 3600.0,
          poll: float = 2.0, dry_run: bool = False, lock_wait: float = 0.0,
          progress: Progress | None = None) -> PruneResult:
    """Prune ``repo`` (see the module docstring); ``max_unused`` is a fraction (0.10 = 10%);
    ``grace``, ``max_wait`` and ``lock_wait`` are seconds (see :func:`ebas.units.parse_duration`).

    ``progress`` receives the phases in order: ``plan`` (items: trees marked), ``repack``
    (packs and their bytes), ``record``, ``index`` (segments written), ``indexed``,
    ``wait`` (backups that were running; only when some are), ``delete`` (packs and their
    bytes) and ``segments``; an earlier prune's records are finished first (``wait``,
    ``delete``, ``segments``)."""
    if not 0 <= max_unused <= 1:
        raise UsageError("--max-unused must be between 0% and 100%")
    refused = repo.store.capabilities.extra.get("delete_refused")
    if refused:  # tape: an archive tier, nothing is ever deleted in place
        raise PermissionDenied(f"cannot prune the repository at {repo.store.url}: {refused}",
                               hint="export the snapshots to keep to new cartridges ('ebas export SNAPSHOT "
                                    "--to tape://...'), then retire the old ones")
    started = time.perf_counter()
    step = progress or NULL_PROGRESS
    res = PruneResult(dry_run=dry_run)
    lock = acquire_prune_lock(repo, lock_wait) if not dry_run else None
    try:
        res.bytes_before = sum(p.size for p in list_packs(repo).values())
        records, bad = prunestate.load_all(repo)
        if not dry_run:
            for name in bad:
                res.problems.append(f"unreadable prune record {name} removed (it only listed packs to delete)")
                prunestate.remove(repo, name)
            for rec in records:
                _finish(repo, rec, lock, res, max_wait=max_wait, poll=poll, step=step)
        step.start("plan")  # items: trees marked
        plan = make_plan(repo, max_unused=max_unused, grace=grace, progress=step)
        res.plan = plan.summary()
        res.problems.extend(plan.suspect.values())
        if dry_run:
            res.pending = [{"record": r.name, "packs": len(r.packs)} for r in records]
            return res
        _repack(repo, plan, res, step)
        condemned = plan.delete | set(plan.repack)
        res.packs_repacked = len(plan.repack)
        if condemned or plan.drop or plan.adopt or _small_segments(plan.view) >= 2:
            rec = prunestate.PendingDeletion(created_ns=repo.clock.now_ns(), host=socket.gethostname(),
                                             pid=os.getpid(), packs=sorted(p.hex() for p in condemned),
                                             snapshots=plan.snapshots)
            step.start("record", items_total=1)
            prunestate.save(repo, rec)
            step.advance(items=1)
            rec.compacted, rec.segments = _compact(repo, condemned | plan.drop, plan.adopt, res, step)
            res.packs_adopted = len(plan.adopt)
            rec.phase = "indexed"
            rec.waiting_for = _live_locks(repo, lock)
            step.start("indexed", items_total=1)
            prunestate.save(repo, rec)
            step.advance(items=1)
            _finish(repo, rec, lock, res, max_wait=max_wait, poll=poll, step=step, known_trees=plan.refs.trees)
        res.bytes_after = sum(p.size for p in list_packs(repo).values())
    finally:
        if lock is not None:
            lock.release()
        repo.invalidate_index()
    res.duration_s = round(time.perf_counter() - started, 3)
    return res


# ---------------------------------------------------------------------- the lock
def acquire_prune_lock(repo, wait: float = 0.0, poll: float = 1.0):
    """A shared lock marked ``prune``; ``LockError`` naming the other prune if one runs
    (retried for up to ``wait`` seconds)."""
    mgr = repo.locks()
    deadline = repo.clock.monotonic() + wait
    while True:
        lock = mgr.acquire("prune")  # shared: backups continue; refuses if an exclusive lock is held
        others = [o for o in mgr.list() if o.id != lock.id and o.operation.startswith("prune")
                  and not mgr.is_stale(o)]
        if not others:
            return lock
        lock.release()
        if repo.clock.monotonic() >= deadline:
            raise LockError(f"another prune is running: {others[0].describe(repo.clock.now_ns())}",
                            hint="only one prune runs at a time; wait for it (or use --lock-wait), or run "
                                 "'ebas unlock' if its process is gone")
        repo.clock.sleep(poll)


def _live_locks(repo, mine) -> list[str]:
    mgr = repo.locks(heartbeat=None)
    return sorted(o.id for o in mgr.list() if o.id != mine.id and not mgr.is_stale(o))


# ---------------------------------------------------------------------- repack
def _repack(repo, plan: PrunePlan, res: PruneResult, step: Progress) -> None:
    if not plan.repack:
        return
    items = sorted(plan.repack.items())
    sizes = {p: plan.store_packs[p].size if p in plan.store_packs else 0 for p, _ in items}
    step.start("repack", items_total=len(items), bytes_total=sum(sizes.values()))  # bytes: packs read
    with repo.session(checkpoint_packs=32) as session:
        for pid, rows in items:
            step.advance(current=pack_name(pid))
            try:
                data = memoryview(repo.store.get(pack_name(pid)))
                rows = rows[np.argsort(rows["offset"], kind="stable")]
                blobs = []
                for bid, r in zip(entry_ids(rows), rows):
                    off, ln = int(r["offset"]), int(r["length"])
                    stored = data[off : off + ln]
                    if len(stored) != ln:
                        raise IntegrityError(f"pack {pid.hex()[:16]} is truncated")
                    repo.codec.decode(bid, stored)  # never copy a damaged blob
                    blobs.append((bid, int(r["kind"]), int(r["codec"]), bytes(stored), int(r["raw"])))
            except DAMAGE as exc:
                res.problems.append(f"pack {pid.hex()[:16]} not repacked (kept): {getattr(exc, 'message', exc)}; "
                                    "run 'ebas check --read-data'")
                del plan.repack[pid]
                step.advance(items=1, bytes=sizes[pid])
                continue
            for b in blobs:
                if session.put_stored(*b):
                    res.blobs_copied += 1
                    res.bytes_copied += len(b[3])
            step.advance(items=1, bytes=sizes[pid])
        session.flush()
        res.segments_written += session.stats.index_segments


# ------------------------------------------------------------------ compaction
def _small_segments(view: IndexView) -> int:
    return sum(1 for c in view.seg_counts if c < SMALL_SEGMENT)


def _compact(repo, removed: set[bytes], adopt: dict, res: PruneResult, step: Progress) -> tuple[str, list[str]]:
    """Rewrite the segments naming ``removed`` packs (and merge small ones); returns the
    superseding segment's name and the names it supersedes."""
    view = load_index_view(repo)
    e = view.entries
    pno = e["pack"].astype(np.int64)
    gone = np.array([i for i, p in enumerate(view.packs) if p in removed], np.int64)
    touched = set(np.unique(view.seg[np.isin(pno, gone)]).tolist()) if len(gone) else set()
    small = {k for k, c in enumerate(view.seg_counts) if c < SMALL_SEGMENT}
    rewrite = touched | small if (touched or adopt or len(small) >= 2) else set()
    if not rewrite and not adopt:
        return "", []
    rows = e[np.isin(view.seg, list(rewrite)) & ~np.isin(pno, gone)] if rewrite else e[:0]
    key = (rows["pack"].astype(np.uint64) << np.uint64(32)) | rows["offset"].astype(np.uint64)
    rows = rows[np.sort(np.unique(key, return_index=True)[1])]
    packs = list(view.packs)
    adopted = []
    known = set(view.packs)
    for pid, entries in sorted(adopt.items()):
        if pid in known:  # indexed meanwhile (a backup adopted it)
            continue
        arr = IndexSegment.from_packs({pid: entries}).entries
        arr["pack"] = len(packs)
        packs.append(pid)
        adopted.append(arr)
    if adopted:
        rows = np.concatenate([rows] + adopted)
    supersedes = sorted({view.live[k] for k in rewrite} | view.superseded)
    names = _write_segments(repo, packs, rows, [bytes.fromhex(n[len("index/"):]) for n in supersedes], step)
    res.segments_written += len(names)
    return names[-1], supersedes


def _write_segments(repo, packs: list[bytes], rows: np.ndarray, supersedes: list[bytes],
                    step: Progress) -> list[str]:
    """Store ``rows`` as segments of at most MAX_SEGMENT_ENTRIES entries (whole packs
    each); the last names ``supersedes``. Each is read back before the next step."""
    rows = rows[np.argsort(rows["pack"], kind="stable")]
    bounds = np.flatnonzero(np.diff(rows["pack"].astype(np.int64))) + 1 if len(rows) else np.zeros(0, np.int64)
    starts = [0] + bounds.tolist()
    chunks, cur, count = [], [], 0
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(rows)
        if cur and count + (end - s) > MAX_SEGMENT_ENTRIES:
            chunks.append(cur)
            cur, count = [], 0
        if end > s:
            cur.append((s, end))
            count += end - s
    chunks.append(cur)
    names = []
    step.start("index", items_total=len(chunks))
    for n, chunk in enumerate(chunks):
        seg_packs, parts = [], []
        for s, end in chunk:
            part = rows[s:end].copy()
            part["pack"] = len(seg_packs)
            seg_packs.append(packs[int(rows[s]["pack"])])
            parts.append(part)
        entries = np.concatenate(parts) if parts else np.zeros(0, ENTRY_DTYPE)
        last = n == len(chunks) - 1
        stored = IndexSegment(seg_packs, entries, supersedes if last else []).encode(repo.aead)
        name = segment_name(stored)
        repo.store.put(name, stored)
        check_segment_name(name, repo.store.get(name))
        names.append(name)
        step.advance(items=1, current=name)
    return names


# ------------------------------------------------------------------- phase two
def _finish(repo, rec: prunestate.PendingDeletion, lock, res: PruneResult, *, max_wait: float, poll: float,
            step: Progress, known_trees: set[bytes] | None = None) -> None:
    """Wait for the backups that may use the condemned packs, then delete what nobody needs."""
    mgr = repo.locks(heartbeat=None)
    waiting = rec.waiting_for if rec.waiting_for is not None else _live_locks(repo, lock)
    deadline = repo.clock.monotonic() + max_wait
    waited = None  # backups seen finished while waiting (None: not waiting yet)
    while True:
        live = {o.id: o for o in mgr.list() if not mgr.is_stale(o)}
        left = [live[i] for i in waiting if i in live and i != lock.id]
        if waited is not None and len(waiting) - len(left) > waited:
            step.advance(items=len(waiting) - len(left) - waited)
            waited = len(waiting) - len(left)
        if not left:
            break
        if repo.clock.monotonic() >= deadline:
            now = repo.clock.now_ns()
            res.pending.append({"record": rec.name, "packs": len(rec.packs),
                                "waiting_for": [o.describe(now) for o in left]})
            return
        if waited is None:  # items: the backups running at the start that have finished
            waited = len(waiting) - len(left)
            step.start("wait", items_total=len(waiting))
            step.advance(items=waited)
        repo.clock.sleep(min(poll, max(0.0, deadline - repo.clock.monotonic())))
    seen = set(rec.snapshots)
    new = [s for s in repo.snapshots(refresh=True) if s.id not in seen]  # before the index: see make_plan
    if repo.snapshot_problems:  # it may need a condemned pack: unreadable is never unreferenced
        res.problems.append(f"{rec.name}: {len(repo.snapshot_problems)} snapshot object(s) cannot be read "
                            f"({'; '.join(repo.snapshot_problems[:3])}); nothing deleted: {readable.HINT}")
        res.pending.append({"record": rec.name, "packs": len(rec.packs), "waiting_for": []})
        return
    repo.invalidate_index()
    if repo.index.damaged:
        res.problems.append(f"{rec.name}: the index is damaged; nothing deleted (run 'ebas repair index', then prune)")
        res.pending.append({"record": rec.name, "packs": len(rec.packs), "waiting_for": []})
        return
    present = list_packs(repo)
    cands = {p for p in rec.pack_ids if p in present and not repo.index.table.has_pack(p)}
    keep = _still_needed(repo, cands, present, new, known_trees, res) if cands and new else {}
    if keep is None:
        res.pending.append({"record": rec.name, "packs": len(rec.packs), "waiting_for": []})
        return
    doomed = sorted(cands - set(keep))
    refused: list[bytes] = []
    step.start("delete", items_total=len(doomed), bytes_total=sum(present[p].size for p in doomed))
    for pid in doomed:
        try:
            repo.store.delete(pack_name(pid))
            res.packs_deleted += 1
        except ObjectNotFound:
            res.packs_deleted += 1
        except PermissionDenied:  # write-once retention (S3 Object Lock) not expired yet
            refused.append(pid)
        step.advance(items=1, bytes=present[pid].size, current=pack_name(pid))
    if rec.compacted and repo.store.exists(rec.compacted):
        for name in rec.segments:
            if name == rec.compacted:
                continue
            try:
                repo.store.delete(name)
                res.segments_removed += 1
            except (ObjectNotFound, PermissionDenied):
                pass
    step.start("segments", items_total=1)
    step.advance(items=1)
    if refused:
        res.problems.append(f"the store refused to delete {len(refused)} pack(s) (write-once retention?); "
                            "they stay condemned and the next prune tries again")
        rec.packs, rec.waiting_for, rec.segments = sorted(p.hex() for p in refused), [], []
        prunestate.save(repo, rec)
        res.pending.append({"record": rec.name, "packs": len(refused), "waiting_for": []})
        return
    prunestate.remove(repo, rec.name)
    res.records_finished += 1
    repo.invalidate_index()


def _still_needed(repo, cands: set[bytes], present: dict[bytes, PackInfo], new: list, known_trees,
                  res: PruneResult) -> dict | None:
    """Condemned packs holding blobs that snapshots committed since the mark need and the
    index lacks: indexed again and returned. None if the new snapshots cannot be walked."""
    bad: set[bytes] = set()
    table, entries = headers_table(repo, {p: present[p] for p in cands}, bad)
    roots = []
    for s in new:
        try:
            roots.append(bytes.fromhex(s.tree))
        except ValueError:
            res.problems.append(f"snapshot {s.id[:12]} has an invalid tree id; condemned packs kept")
            return None
    refs = collect_references(fallback_reader(repo, table), roots, known_trees=known_trees)
    if refs.unreadable:
        tid, why = refs.unreadable[0]
        res.problems.append(f"a snapshot written during the prune has an unreadable tree ({tid.hex()[:16]}: {why}); "
                            "condemned packs kept until it is readable or forgotten")
        return None
    keep = {}
    for pid, ents in entries.items():
        ids = [e.blob_id for e in ents]
        hit = refs.blobs.contains(*split_ids(b"".join(ids)))
        if hit.any() and not repo.index.table.contains_many([i for i, h in zip(ids, hit) if h]).all():
            keep[pid] = ents
    if keep:
        stored = IndexSegment.from_packs(keep).encode(repo.aead)
        name = segment_name(stored)
        repo.store.put(name, stored)
        check_segment_name(name, repo.store.get(name))
        res.packs_resurrected += len(keep)
        res.segments_written += 1
    return keep


__all__ = ["prune", "PruneResult", "acquire_prune_lock"]
