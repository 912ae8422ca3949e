"""The read-only half of prune: load the index, mark, and decide what happens to each pack.

:func:`make_plan` never writes. It reads every index segment (refusing a damaged one:
deleting by a partial index could delete data that a lost segment located), lists the
packs, reads the headers of packs that no index names, walks every snapshot's trees
(:mod:`ebas.lifecycle.reachability`) and sorts each pack into one of:

* **keep**: live, with an unused share at most ``max_unused``, or above it while the
  repository as a whole is within budget;
* **repack**: live, more than ``max_unused`` of it unused, and needed to bring the unused
  space left after prune down to ``max_unused`` of the space stored (emptiest packs
  first): its live blobs are copied to new packs, then it is deleted;
* **delete**: indexed and holding no live blob, or unindexed, holding nothing a snapshot
  needs and older than the grace period (an unindexed pack whose header is unreadable
  is kept while some blob a snapshot needs is in no readable pack: it may hold it);
* **adopt**: unindexed but holding blobs a snapshot needs that no indexed pack has
  (a lost index segment): it is indexed again, never deleted;
* **drop**: indexed but missing from the store and holding nothing live: its index
  entries go. A missing pack that *does* hold live blobs makes the plan refuse.
* packs that are young and unindexed (a backup may be writing them), condemned by an
  unfinished prune, or under write-once retention (S3 Object Lock: the store would refuse
  the delete, and a repack would only add copies) are left alone.

Nothing is trusted that might not be what it seems: an unreadable snapshot object stops
the plan (:mod:`ebas.lifecycle.readable`), as does an unreadable index segment or tree. A
pack to adopt must hash to its name (else it is neither adopted nor deleted, and
``suspect`` names it). When a pack is deleted or repacked because another pack holds
the live copy of some of its blobs, that other pack is read whole first and must hash to
its name: a copy stored under a wrong name never costs the genuine pack.

When a blob is stored in several packs, one copy is the *keeper* (the copy in the pack
with the highest share of live bytes, then in the newest pack); the others count as unused.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ebas.crypto.ids import pack_id as hash_pack
from ebas.errors import EbasError, IndexDamaged, IntegrityError, InvalidRange, ObjectNotFound
from ebas.lifecycle.reachability import KeySet, References, collect_references, split_ids
from ebas.lifecycle.readable import all_snapshots
from ebas.progress import Progress
from ebas.repo.dedup import DedupTable
from ebas.repo.index import ENTRY_DTYPE, IndexSegment, check_segment_name
from ebas.repo.pack import QUARANTINE, PackEntry, pack_id_from_name, pack_name, read_pack_header
from ebas.repo.prunestate import condemned_packs
from ebas.repo.treeahead import TreeAhead

DAMAGE = (IntegrityError, ObjectNotFound, InvalidRange)
HEADER_BYTES_PER_BLOB = 46


@dataclass
class IndexView:
    """Every entry of every segment in force, with pack numbers global to the view."""

    names: list[str]  # every index object listed
    live: list[str]  # segments in force, sorted
    superseded: set[str]  # listed segments that a readable segment supersedes
    packs: list[bytes]
    entries: np.ndarray  # ENTRY_DTYPE, "pack" = index into ``packs``
    seg: np.ndarray  # index into ``live`` of each entry
    seg_counts: list[int]

    def pack_no(self) -> dict[bytes, int]:
        return {p: i for i, p in enumerate(self.packs)}


def load_index_view(repo) -> IndexView:
    """Read every index segment; ``IndexDamaged`` if one in force is unreadable."""
    names = sorted(i.name for i in repo.store.list("index/"))
    segs, damaged, superseded = {}, [], set()
    for name in names:
        try:
            stored = repo.store.get(name)
            check_segment_name(name, stored)
            segs[name] = IndexSegment.decode(repo.aead, stored, name)
        except ObjectNotFound:
            continue
        except IntegrityError as exc:
            damaged.append((name, exc.message))
            continue
        superseded.update("index/" + s.hex() for s in segs[name].supersedes)
    bad = [(n, m) for n, m in damaged if n not in superseded]
    if bad:
        raise IndexDamaged(f"the index is damaged ({len(bad)} bad segment(s): "
                           f"{', '.join(n for n, _ in bad[:5])}); prune refuses to delete anything by it")
    live = sorted(n for n in segs if n not in superseded)
    pno: dict[bytes, int] = {}
    counts: list[int] = []
    # one preallocated array filled segment by segment, each decoded segment released as it
    # is copied: the peak is about twice the entries, not three times
    total = sum(len(segs[n].entries) for n in live)
    entries = np.zeros(total, ENTRY_DTYPE)
    seg = np.empty(total, np.int32)
    pos = 0
    for k, name in enumerate(live):
        sg = segs.pop(name)
        e, n = sg.entries, len(sg.entries)
        remap = np.array([pno.setdefault(p, len(pno)) for p in sg.packs], np.uint32)
        if n:
            entries[pos : pos + n] = e
            entries["pack"][pos : pos + n] = remap[e["pack"]]
            seg[pos : pos + n] = k
        counts.append(n)
        pos += n
        del sg, e
    segs.clear()
    return IndexView(names, live, superseded & set(names), list(pno), entries, seg, counts)


def entry_ids(entries: np.ndarray) -> list[bytes]:
    """Blob ids of entries as bytes (numpy would strip trailing NULs from ``bytes(row)``)."""
    raw = entries["id"].tobytes()
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


@dataclass
class PackInfo:
    """One pack object in the store."""

    size: int
    mtime_ns: int


@dataclass
class PrunePlan:
    """What prune would do, and the figures ``stats`` shows."""

    view: IndexView
    refs: References
    store_packs: dict[bytes, PackInfo]
    delete: set[bytes] = field(default_factory=set)
    repack: dict[bytes, np.ndarray] = field(default_factory=dict)  # pack -> keeper entries to copy
    adopt: dict[bytes, list[PackEntry]] = field(default_factory=dict)
    drop: set[bytes] = field(default_factory=set)
    missing_needed: dict[bytes, int] = field(default_factory=dict)
    young: set[bytes] = field(default_factory=set)
    locked: dict[bytes, int] = field(default_factory=dict)  # pack -> retain-until ns (write-once retention)
    pending: set[bytes] = field(default_factory=set)
    unreadable_unindexed: set[bytes] = field(default_factory=set)
    suspect: dict[bytes, str] = field(default_factory=dict)  # unindexed, needed, not hashing to its name: kept
    relies_on: dict[bytes, set[bytes]] = field(default_factory=dict)  # pack -> packs holding the live copies
    snapshots: list[str] = field(default_factory=list)
    uncovered: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # referenced, in no indexed pack
    blobs_missing: int = 0
    live_blobs: int = 0
    live_bytes: int = 0
    unused_bytes: int = 0  # blob bytes in indexed packs that no snapshot needs
    unused_left: int = 0  # of those, the bytes that stay in kept packs after this plan
    pack_bytes: int = 0

    @property
    def repack_bytes(self) -> int:
        """Bytes of live blobs that a repack copies."""
        return int(sum(int(e["length"].sum()) for e in self.repack.values()))

    @property
    def reclaimable_bytes(self) -> int:
        """Store bytes this plan frees (deleted packs, minus what repacking writes anew)."""
        gone = sum(self.store_packs[p].size for p in self.delete | set(self.repack) if p in self.store_packs)
        new = self.repack_bytes + sum(HEADER_BYTES_PER_BLOB * len(e) for e in self.repack.values())
        return max(0, gone - new)

    def summary(self) -> dict:
        """JSON-able figures."""
        return {
            "snapshots": len(self.snapshots), "trees": len(self.refs.trees), "referenced_blobs": len(self.refs.blobs),
            "live_blobs": self.live_blobs, "live_bytes": self.live_bytes, "unused_bytes": self.unused_bytes,
            "unused_left": self.unused_left,
            "pack_bytes": self.pack_bytes, "packs": len(self.store_packs), "packs_delete": len(self.delete),
            "packs_repack": len(self.repack), "repack_bytes": self.repack_bytes, "packs_adopt": len(self.adopt),
            "packs_drop_missing": len(self.drop), "packs_missing_needed": len(self.missing_needed),
            "packs_young_unindexed": len(self.young), "packs_pending_delete": len(self.pending),
            "packs_locked": len(self.locked),
            "locked_until_ns": max(self.locked.values()) if self.locked else 0,
            "packs_suspect": len(self.suspect),
            "blobs_missing": self.blobs_missing, "reclaimable_bytes": self.reclaimable_bytes,
        }


def list_packs(repo) -> dict[bytes, PackInfo]:
    """Every pack object: ``{pack id: PackInfo}`` (foreign names are ignored)."""
    out = {}
    for info in repo.store.list("data/"):
        try:
            out[pack_id_from_name(info.name)] = PackInfo(info.size, info.mtime_ns)
        except IntegrityError:
            continue
    return out


def fallback_reader(repo, *tables: DedupTable) -> Callable[[bytes], bytes]:
    """``read(blob_id)``: through the index, else through the given extra location tables."""

    def read(bid: bytes) -> bytes:
        try:
            return repo.get_blob(bid)
        except IntegrityError:
            for t in tables:
                loc = t.lookup(bid)
                if loc is None:
                    continue
                try:
                    stored = repo.store.get(pack_name(loc[0]), loc[1], loc[2])
                    return repo.codec.decode(bid, stored)
                except DAMAGE:
                    continue
            raise

    return read


def headers_table(repo, packs: dict[bytes, PackInfo], bad: set[bytes]) -> tuple[DedupTable, dict]:
    """A location table and the entries of the readable headers of ``packs``."""
    table, found = DedupTable(), {}
    for pid, info in sorted(packs.items()):
        try:
            entries = read_pack_header(repo.store, pack_name(pid), repo.aead, size=info.size)
        except (EbasError, ValueError):
            bad.add(pid)
            continue
        found[pid] = entries
        for e in entries:
            table.add(e.blob_id, pid, e.offset, e.length)
    table.compact()
    return table, found


def make_plan(repo, *, max_unused: float = 0.10, grace: float = 3600.0, now_ns: int | None = None,
              progress: Progress | None = None) -> PrunePlan:
    """Mark and classify (see the module docstring); unindexed packs younger than ``grace``
    seconds are left alone. Writes nothing."""
    now = repo.clock.now_ns() if now_ns is None else now_ns
    # snapshots first: every snapshot listed had its index segments written before it,
    # so the index read next locates everything they need
    snaps = all_snapshots(repo, "prune")  # an unreadable snapshot stops prune: it may need anything
    repo.invalidate_index()
    view = load_index_view(repo)
    repo.require_healthy_index()
    store_packs = list_packs(repo)
    pending = condemned_packs(repo)
    indexed = set(view.packs)
    unindexed = {p: i for p, i in store_packs.items() if p not in indexed and p not in pending}
    bad: set[bytes] = set()
    orphans, orphan_entries = headers_table(repo, unindexed, bad)
    roots = []
    for s in snaps:
        try:
            root = bytes.fromhex(s.tree)
        except ValueError:
            root = b""
        if len(root) != 32:
            raise IntegrityError(f"snapshot {s.id[:12]} has an invalid root tree id; prune cannot tell what it "
                                 "needs", hint="run 'ebas check'; forget the damaged snapshot")
        roots.append(root)
    trees = TreeAhead(repo, read_blob=fallback_reader(repo, orphans))  # batched reads: one request per run
    refs = collect_references(trees.blob, roots, progress=progress)
    if refs.unreadable:
        tid, why = refs.unreadable[0]
        raise IntegrityError(f"{len(refs.unreadable)} tree(s) that snapshots need cannot be read (tree "
                             f"{tid.hex()[:16]}: {why}); prune cannot tell what they reference and deletes nothing",
                             hint="run 'ebas check' to see the damage; 'ebas repair index' if packs are unindexed")
    plan = PrunePlan(view, refs, store_packs, pending=pending & set(store_packs), snapshots=[s.id for s in snaps])
    plan.unreadable_unindexed = bad
    _classify(plan, max_unused)
    _unindexed(plan, orphan_entries, unindexed, now, round(grace * 1e9))
    _locked(repo, plan, now)
    _vouch(repo, plan)
    return plan


def _hashes_to_name(repo, pid: bytes) -> bool:
    """True if the pack's bytes hash to its name (reads the whole pack) and no unfinished
    'repair index' judged it not intact (left a copy under ``quarantine/``)."""
    try:
        return hash_pack(repo.store.get(pack_name(pid))) == pid and not repo.store.exists(QUARANTINE + pack_name(pid))
    except DAMAGE:
        return False


def _vouch(repo, plan: PrunePlan) -> None:
    """Packs to adopt, and packs whose copies make others deletable, must be genuine."""
    for pid in sorted(plan.adopt):
        if not _hashes_to_name(repo, pid):
            del plan.adopt[pid]
            plan.suspect[pid] = (f"pack {pid.hex()[:16]} holds blobs that snapshots need but does not hash to its name; "
                                 "neither adopted nor deleted: run 'ebas repair index' (it salvages its intact blobs)")
    doomed = plan.delete | set(plan.repack)
    # a keeper being repacked counts too: a damaged keeper is left unrepacked (kept), so the
    # other copies must not go because of it
    needed = sorted({k for p in doomed for k in plan.relies_on.get(p, ())})
    bad = [k for k in needed if not _hashes_to_name(repo, k)]
    if bad:
        raise IntegrityError(f"{len(bad)} pack(s) holding the only copies prune would keep of some blobs do not hash "
                             f"to their names ({', '.join(pack_name(k) for k in bad[:5])}): each is a changed pack or "
                             "a copy stored under another name, so prune deletes nothing",
                             hint="run 'ebas repair index': it moves such packs to quarantine/ and keeps their intact "
                                  "blobs; then run prune again")


def _locked(repo, plan: PrunePlan, now: int) -> None:
    """Under write-once retention, leave packs the store would refuse to delete alone:
    neither deleted nor repacked (a repack would only add copies while the originals stay)."""
    if not (repo.config.object_lock or repo.store.object_lock()):
        return
    cands = sorted(plan.delete | set(plan.repack))
    bypass = bool(repo.store.capabilities.extra.get("bypass_governance"))  # maintenance credentials

    def until_ns(pid: bytes) -> int:
        mode, until = repo.store.retention(pack_name(pid))
        if until is None or (bypass and str(mode).upper() == "GOVERNANCE"):
            return 0
        return int(until.timestamp() * 1e9)

    with ThreadPoolExecutor(8, thread_name_prefix="ebas-retention") as pool:
        for pid, until in zip(cands, pool.map(until_ns, cands)):
            if until > now:
                plan.locked[pid] = until
                plan.delete.discard(pid)
                plan.repack.pop(pid, None)


def _classify(plan: PrunePlan, max_unused: float) -> None:
    view, refs = plan.view, plan.refs.blobs
    e = view.entries
    npk = len(view.packs)
    # one row per physical blob: the same (pack, offset) listed by several segments counts once
    key = (e["pack"].astype(np.uint64) << np.uint64(32)) | e["offset"].astype(np.uint64)
    _, first = np.unique(key, return_index=True)
    del key
    if len(first) < len(e):  # copy only when some segments repeat entries
        e = e[np.sort(first)]
    del first
    hi, lo = _id_words(e)
    pos = refs.positions(hi, lo)
    used = pos >= 0
    pno = e["pack"].astype(np.int64)
    length = e["length"].astype(np.int64)
    blob_bytes = np.bincount(pno, weights=length, minlength=npk)
    # keeper of a blob stored twice: the copy in the pack with the highest live share, then
    # the newest pack (a consolidated pack wins over the scattered packs it was copied from)
    used_bytes = np.bincount(pno[used], weights=length[used], minlength=npk)
    score = used_bytes / np.maximum(blob_bytes, 1)
    mtime = np.array([plan.store_packs[p].mtime_ns if p in plan.store_packs else -1 for p in view.packs], np.int64)
    ui = np.flatnonzero(used)
    order = ui[np.lexsort((pno[ui], -mtime[pno[ui]], -score[pno[ui]], pos[ui]))]
    keeper = np.zeros(len(e), bool)
    if len(order):
        firsts = np.ones(len(order), bool)
        firsts[1:] = pos[order][1:] != pos[order][:-1]
        keeper[order[firsts]] = True
    live_bytes = np.bincount(pno[keeper], weights=length[keeper], minlength=npk)
    live_count = np.bincount(pno[keeper], minlength=npk)
    covered = np.zeros(len(refs), bool)
    covered[pos[used]] = True
    spare = used & ~keeper  # a live blob's other copies: their packs rely on the keeper's pack
    if spare.any():
        keeper_pack = np.full(len(refs), -1, np.int64)
        keeper_pack[pos[keeper]] = pno[keeper]
        pairs = np.unique(np.stack([pno[spare], keeper_pack[pos[spare]]], axis=1), axis=0)
        for a, b in pairs.tolist():
            plan.relies_on.setdefault(view.packs[a], set()).add(view.packs[b])
    plan.uncovered = np.flatnonzero(~covered)  # referenced keys no indexed pack holds
    plan.live_blobs = int(keeper.sum())
    plan.live_bytes = int(live_bytes.sum())
    candidates: list[tuple[float, int, int, bytes, int]] = []
    kept_unused = 0
    for k, pid in enumerate(view.packs):
        info = plan.store_packs.get(pid)
        if info is None:
            if live_count[k]:
                plan.missing_needed[pid] = int(live_count[k])
            else:
                plan.drop.add(pid)
            continue
        plan.pack_bytes += info.size
        unused = int(blob_bytes[k] - live_bytes[k])
        plan.unused_bytes += unused
        if not live_count[k]:
            plan.delete.add(pid)
        elif unused > max_unused * info.size:
            candidates.append((unused / max(1, info.size), -info.size, k, pid, unused))
        else:
            kept_unused += unused
    # budget: repack the emptiest candidates first, and only until what stays unused is at
    # most max_unused of what stays stored (repacking a 15%-unused pack copies 85% of it to
    # free 15%: worth it only while the repository as a whole is over the limit)
    candidates.sort(reverse=True)
    left_unused = kept_unused + sum(c[4] for c in candidates)
    budget = max_unused * plan.live_bytes / (1 - max_unused) if max_unused < 1 else float("inf")
    for _share, _neg_size, k, pid, unused in candidates:
        if left_unused <= budget:
            break
        plan.repack[pid] = e[keeper & (pno == k)]
        left_unused -= unused
    plan.unused_left = int(left_unused)
    if plan.missing_needed:
        names = ", ".join(p.hex()[:16] for p in list(plan.missing_needed)[:5])
        n = sum(plan.missing_needed.values())
        raise IntegrityError(f"{len(plan.missing_needed)} pack(s) that the index names are missing from the store "
                             f"({names}) and hold {n} blob(s) that snapshots need; prune deletes nothing",
                             hint="copy the packs back from a replica; otherwise run 'ebas check' to see the "
                                  "affected snapshots, 'ebas repair index', and forget the damaged snapshots")


def _id_words(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` uint64 keys of the entries' ids, read in place (no copy of the ids)."""
    if not len(e):
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    off = e.dtype.fields["id"][1]
    words = [np.ndarray((len(e),), dtype=">u8", buffer=e, offset=off + 8 * k, strides=(e.strides[0],))
             for k in (0, 1)]
    return words[0].astype(np.uint64), words[1].astype(np.uint64)


def _unindexed(plan: PrunePlan, orphan_entries: dict, unindexed: dict[bytes, PackInfo], now: int,
               grace_ns: int) -> None:
    refs = plan.refs.blobs
    need = KeySet(refs.hi[plan.uncovered], refs.lo[plan.uncovered], refs.counts[plan.uncovered])
    found = np.zeros(len(need), bool)
    for pid, entries in sorted(orphan_entries.items()):
        ids = b"".join(x.blob_id for x in entries)
        p = need.positions(*split_ids(ids)) if entries else np.zeros(0, np.int64)
        if bool((p >= 0).any()):
            plan.adopt[pid] = entries
            found[p[p >= 0]] = True
    plan.blobs_missing = int((~found).sum())
    for pid, info in unindexed.items():
        if pid in plan.adopt:
            continue
        plan.pack_bytes += info.size
        if plan.blobs_missing and pid in plan.unreadable_unindexed:  # it may hold them: cannot tell
            plan.suspect[pid] = (f"unindexed pack {pid.hex()[:16]} has an unreadable header and {plan.blobs_missing} "
                                 "blob(s) that snapshots need are in no pack prune can read: kept; run 'ebas repair "
                                 "index' (it salvages what still verifies) and 'ebas check'")
            continue
        if grace_ns <= 0 or (info.mtime_ns and now - info.mtime_ns >= grace_ns):
            plan.delete.add(pid)
        else:
            plan.young.add(pid)
    for pid in plan.pending:
        plan.pack_bytes += plan.store_packs[pid].size
