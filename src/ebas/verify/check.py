"""``check_repository``: find every inconsistency or damage in a repository, read-only.

Two depths (docs: DESIGN.md, "Verification and repair"):

* **structure** (default) reads only small objects: the config, every index segment,
  every snapshot and every tree reachable from a snapshot, plus one listing of
  ``data/``. It proves that every tree resolves, that every data blob a file needs is
  in the index, and that every pack the index names exists with exactly the size its
  entries imply (so a missing or truncated pack is found without reading it). Packs
  that exist but are not indexed are *warnings*: their headers are read so that data a
  snapshot needs but the index lost is reported as "run 'ebas repair index'".
* **read_data** additionally reads every pack whole, one at a time (memory: one pack):
  its BLAKE3 must equal its name, its header must parse and agree with the index, and
  every blob must decrypt, decompress and hash to its id.

Damage is attributed: each problem names the object (pack / blob / tree id prefixes,
snapshot ids) and, where a snapshot needs the damaged data, which snapshots and example
paths are affected. Every tree is read once however many snapshots share it. The check
writes nothing but, with ``read_data``, a damage record (``damaged/``, ebas.repo.damage)
listing damaged blob copies still in the index, so that no backup builds on them before
'ebas repair index' runs; it takes a reader lock. Memory: the index entries (52 bytes per blob) plus
one set of issue keys per distinct tree.
"""

from __future__ import annotations

import time

import numpy as np

from ebas.crypto.aead import OVERHEAD
from ebas.errors import EbasError, IntegrityError, InvalidRange, ObjectNotFound
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo import damage, holds, prunestate
from ebas.repo.dedup import DedupTable
from ebas.repo.index import IndexSegment, check_segment_name
from ebas.repo.locks import reader_lock
from ebas.repo.pack import ENTRY, HEAD, TRAILER, pack_id_from_name, pack_name, read_pack_header
from ebas.repo.repository import read_runs
from ebas.repo.tree import DIR, FILE, ID_LEN, decode_tree
from ebas.repo.treecheck import printable, tree_faults
from ebas.verify.packdata import index_entries, verify_pack_bytes
from ebas.verify.problems import (
    HINT_DAMAGE_RECORDED,
    HINT_ENTRY,
    HINT_LOST,
    HINT_MISSING,
    HINT_QUARANTINED,
    HINT_REPAIR,
    HINT_SNAPSHOT,
    HINT_UNINDEXED,
    HINT_UNINDEXED_DAMAGED,
    WARNING_KINDS,
    CheckReport,
    Finding,
    Problem,
)

__all__ = ["CheckReport", "Problem", "WARNING_KINDS", "check_repository"]

DAMAGE = (IntegrityError, ObjectNotFound, InvalidRange)

AHEAD_BYTES = 64 << 20  # stored tree bytes read ahead of the walk


def check_repository(repo, *, read_data: bool = False, progress: Progress | None = None) -> CheckReport:
    """Check ``repo`` (an open :class:`ebas.repo.repository.Repository`) and return a report.

    Never raises for damage it can attribute: every finding is a :class:`Problem` in the
    report. Store failures that are not damage (permissions, outages) propagate.
    ``progress`` receives the phases ``index`` (segments), ``packs`` (indexed packs),
    ``read`` (with ``read_data``: packs and their bytes) and ``snapshots``, each with its
    total known at its start.
    """
    started = time.perf_counter()
    checker = _Checker(repo, read_data, progress or NULL_PROGRESS)
    with reader_lock(repo.locks(), "check --read-data" if read_data else "check"):
        checker.run()
    checker.report.duration_s = round(time.perf_counter() - started, 3)
    return checker.report


class _Checker:
    def __init__(self, repo, read_data: bool, progress: Progress):
        self.repo, self.store, self.progress = repo, repo.store, progress
        self.report = CheckReport(read_data=read_data)
        self.issues: dict[tuple, Finding] = {}
        self.table = DedupTable()  # the index as restore sees it
        self.orphans = DedupTable()  # blobs of packs present but not indexed
        self.per_pack: dict[bytes, list[np.ndarray]] = {}
        self.sizes: dict[bytes, int] = {}
        self.bad_packs: dict[bytes, int] = {}  # pack -> bytes still readable (0 if missing)
        self.bad_blobs: dict[bytes, bytes] = {}  # blob -> pack, found corrupt by read_data
        self.bad_copies: set[tuple[bytes, bytes]] = set()  # (blob, pack) found corrupt by read_data
        self.intact_elsewhere: set[bytes] = set()  # bad blobs that reads take from another, intact copy
        self.memo: dict[bytes, frozenset] = {}
        self.ahead: dict[bytes, bytes] = {}  # stored tree blobs read ahead of the walk

    def issue(self, key: tuple, kind: str, obj: str, message: str, hint: str) -> Finding:
        if key not in self.issues:
            self.issues[key] = Finding(kind, obj, message, hint)
        return self.issues[key]

    def run(self) -> None:
        try:
            self.repo.verify_config()  # readable, and still authentic under the key
        except EbasError as exc:
            self.issue(("config",), "config-damaged", "config", f"the repository config is unreadable or not authentic: "
                       f"{exc.message}", "restore the 'config' object from a copy of the repository")
        self._load_index()
        self._inventory_packs()
        if self.report.read_data:
            self._read_packs()
            self._record_damage()
        self._walk_snapshots()
        self._check_records()
        try:
            for up in self.store.uploads(""):
                self.issue(("upload", up.upload_id), "leftover-upload", up.name,
                           f"an unfinished upload of {up.name} (upload {up.upload_id[:12]}) is in the store",
                           "harmless: its transfer resumes it, or it can be aborted")
        except (EbasError, NotImplementedError):
            pass
        for info in self.store.list("quarantine/"):
            self.issue(("quarantine", info.name), "quarantined-object", info.name,
                       f"{info.name} ({info.size} bytes) is in quarantine", HINT_QUARANTINED)
        self.report.problems = [i.problem() for i in self.issues.values()]

    # ------------------------------------------------------------------ index
    def _load_index(self) -> None:
        healthy, damaged, superseded = [], [], set()
        infos = list(self.store.list("index/"))
        self.progress.start("index", items_total=len(infos), bytes_total=sum(i.size for i in infos))
        for info in infos:
            self.progress.advance(items=1, bytes=info.size, current=info.name)
            try:
                stored = self.store.get(info.name)
                check_segment_name(info.name, stored)
                healthy.append((info.name, IndexSegment.decode(self.repo.aead, stored, info.name)))
            except ObjectNotFound:
                continue
            except IntegrityError as exc:
                damaged.append((info.name, exc.message))
                continue
            superseded.update("index/" + s.hex() for s in healthy[-1][1].supersedes)
        for name, message in damaged:
            if name not in superseded:  # a superseded segment is never read: harmless
                self.issue(("index", name), "index-damaged", name, message, HINT_REPAIR)
        for name, seg in sorted(healthy):
            if name in superseded:
                continue
            self.report.index_segments += 1
            self.table.add_segment(seg.packs, seg.entries)
            ents = seg.entries[np.argsort(seg.entries["pack"], kind="stable")]
            bounds = np.searchsorted(ents["pack"], np.arange(len(seg.packs) + 1))
            for pno, pid in enumerate(seg.packs):
                self.per_pack.setdefault(pid, []).append(ents[bounds[pno] : bounds[pno + 1]])
        self.table.compact()

    def _entries(self, pid: bytes) -> np.ndarray:
        parts = self.per_pack[pid]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # ------------------------------------------------------------------ packs
    def _inventory_packs(self) -> None:
        for info in self.store.list("data/"):
            try:
                pid = pack_id_from_name(info.name)
            except IntegrityError:
                pid = None
            if pid is None or pack_name(pid) != info.name:
                self.issue(("foreign", info.name), "foreign-object", info.name,
                           f"{info.name} is not a pack name", "move it out of the repository's data/ folder")
                continue
            self.sizes[pid] = info.size
        self.report.packs = len(self.sizes)
        self.progress.start("packs", items_total=len(self.per_pack))
        for pid in self.per_pack:
            name, short = pack_name(pid), pid.hex()[:16]
            self.progress.advance(items=1)
            if pid not in self.sizes:
                self.bad_packs[pid] = 0
                self.issue(("pack", pid), "pack-missing", name,
                           f"pack {short} is in the index but missing from the store ({name})", HINT_LOST)
                continue
            ents, size = self._entries(pid), self.sizes[pid]
            count = len(np.unique(ents["offset"]))
            end = int((ents["offset"].astype(np.int64) + ents["length"]).max()) if count else 0
            need = end + OVERHEAD + HEAD.size + ENTRY.size * count + TRAILER.size
            if size < need:
                self.bad_packs[pid] = size
                self.issue(("pack", pid), "pack-truncated", name, f"pack {short} is truncated: {size} bytes "
                           f"stored, its {count} indexed blobs need {need}", HINT_LOST)
            elif size > need:
                self.issue(("pack", pid), "pack-size-mismatch", name, f"pack {short} has {size} bytes but its "
                           f"{count} indexed blobs account for {need}: corrupt pack or index", HINT_LOST)
        batch: dict[bytes, list] = {}
        condemned = prunestate.condemned_packs(self.repo)  # reported once, as the pending prune
        for pid in sorted(set(self.sizes) - set(self.per_pack)):
            name = pack_name(pid)
            try:
                batch[pid] = read_pack_header(self.store, name, self.repo.aead, size=self.sizes[pid])
                if pid not in condemned:
                    self.issue(("unindexed", pid), "unindexed-pack", name, f"pack {pid.hex()[:16]} is not in "
                               "the index", HINT_UNINDEXED)
            except DAMAGE as exc:
                self.issue(("unindexed", pid), "unindexed-pack-damaged", name, f"pack {pid.hex()[:16]} is not "
                           f"in the index and its header is unreadable: {exc}", HINT_UNINDEXED_DAMAGED)
            if len(batch) >= 256:
                seg, batch = IndexSegment.from_packs(batch), {}
                self.orphans.add_segment(seg.packs, seg.entries)
        seg = IndexSegment.from_packs(batch)
        self.orphans.add_segment(seg.packs, seg.entries)
        self.orphans.compact()

    def _read_packs(self) -> None:
        names = sorted((pack_name(p), p) for p in self.sizes)
        self.progress.start("read", items_total=len(names), bytes_total=sum(self.sizes.values()))
        for name, pid in names:
            try:
                data = self.store.get(name)
            except ObjectNotFound:
                self.progress.advance(items=1, bytes=self.sizes[pid], current=name)
                continue  # deleted since the listing (prune): nothing to check
            self.report.packs_read += 1
            self.report.bytes_read += len(data)
            self._check_pack_data(pid, name, data)
            self.progress.advance(items=1, bytes=self.sizes[pid], current=name)

    def _check_pack_data(self, pid: bytes, name: str, data: bytes) -> None:
        short, indexed = pid.hex()[:16], pid in self.per_pack
        kind = "pack-corrupt" if indexed else "unindexed-pack-damaged"
        hint = HINT_LOST if indexed else HINT_UNINDEXED_DAMAGED
        v = verify_pack_bytes(self.repo, pid, data, index_entries(self._entries(pid)) if indexed else None)
        if v.header_error:
            self.issue(("pack-header", pid), "pack-header-damaged" if indexed else kind, name, f"the header of "
                       f"pack {short} is unreadable ({v.header_error}): the index cannot be rebuilt from it", hint)
        if v.index_not_in_header or v.header_not_in_index:
            self.issue(("pack-index", pid), "pack-index-mismatch", name, f"the index and the header of pack "
                       f"{short} disagree ({v.index_not_in_header} index entries not in the header, "
                       f"{v.header_not_in_index} header entries not in the index)", HINT_REPAIR)
        if v.hash_ok and not v.bad_blobs:
            return
        why = "does not hash to its name: its bytes have changed" if not v.hash_ok else "holds corrupt blobs"
        bad = self.issue(("pack-data", pid), kind, name, f"pack {short} {why}", hint)
        for bid in v.bad_blobs:
            bad.note(blob=bid)
            if indexed:
                self.bad_blobs[bid] = pid
                self.bad_copies.add((bid, pid))

    def _record_damage(self) -> None:
        """Store a damage record of the damaged blob copies still indexed (corrupt blobs,
        blobs of missing packs), so no backup builds on them; then note which of them
        have another, intact indexed copy (reads take that one: not lost)."""
        found: damage.Damage = {}
        for bid, pid in self.bad_copies:
            found.setdefault(bid, set()).add(pid)
        for pid, limit in self.bad_packs.items():
            if limit == 0 and pid in self.per_pack:  # missing: none of its blobs can be read
                raw = self._entries(pid)["id"].tobytes()
                for i in range(0, len(raw), ID_LEN):
                    found.setdefault(raw[i : i + ID_LEN], set()).add(pid)
        if not found:
            return
        try:
            damage.record(self.repo, found)
        except EbasError as exc:  # a read-only store, or append-only credentials: still report
            self.issue(("damage-record",), "damage-not-recorded", damage.PREFIX, "the damaged blobs found could "
                       f"not be recorded in the repository ({exc.message}): a backup may still build on them",
                       "run 'ebas repair index' (with credentials that may write) before the next backup")
            return
        wanted = np.array(sorted(self.bad_blobs), dtype="S32")
        for pid in self.per_pack:
            if pid in self.bad_packs:
                continue
            ents = self._entries(pid)
            raw = ents["id"][np.isin(ents["id"], wanted)].tobytes()
            for i in range(0, len(raw), ID_LEN):
                bid = raw[i : i + ID_LEN]
                if bid in self.bad_blobs and (bid, pid) not in self.bad_copies:
                    self.intact_elsewhere.add(bid)

    # ------------------------------------------------------------------ trees
    def _walk_snapshots(self) -> None:
        snaps = self.repo.snapshots(refresh=True)
        for text in self.repo.snapshot_problems:
            name, _, msg = text.partition(": ")
            self.issue(("snapshot", name), "snapshot-damaged", name, msg, HINT_SNAPSHOT)
        self.report.snapshots = len(snaps)
        self.progress.start("snapshots", items_total=len(snaps))
        for snap in snaps:
            self.progress.advance(current=snap.id[:8])
            self._walk_snapshot(snap)
            self.progress.advance(items=1)
        self.report.trees = len(self.memo)

    def _walk_snapshot(self, snap) -> None:
        try:
            root = bytes.fromhex(snap.tree)
            if len(root) != ID_LEN:
                raise ValueError("wrong length")
        except ValueError:
            self.issue(("snapshot", snap.id), "snapshot-damaged", "snapshots/" + snap.id,
                       f"snapshot {snap.id[:12]} has an invalid root tree id", HINT_SNAPSHOT)
            return
        for key in self._subtree(root, "/"):
            self.issues[key].snapshots.add(snap.id)

    # --------------------------------------------------------------- records
    def _check_records(self) -> None:
        """Hold records (legal holds, retention) and pending prune records."""
        records, problems = holds.load_records(self.repo)
        for text in problems:
            name, _, msg = text.partition(": ")
            self.issue(("hold", name), "hold-damaged", name, msg,
                       "copy this holds/ object back from a replica; until then 'ebas forget' removes nothing "
                       "(the record may protect any snapshot)")
        present = {s.id for s in self.repo.snapshots()}
        state = holds.HoldState.from_records(records)
        for sid, recs in sorted(state.holds.items()):
            if sid not in present:
                self.issue(("held", sid), "held-snapshot-missing", "snapshots/" + sid,
                           f"snapshot {sid[:12]} is under legal hold ({recs[0].reason or 'no reason given'}; record "
                           f"{recs[0].id[:12]}) but is missing from the repository",
                           "copy the snapshot object back from a replica: a legal hold requires it")
        recorded, names, bad = damage.load(self.repo)
        for name in bad:
            self.issue(("damage-record", name), "damage-record-damaged", name, f"the damage record {name} cannot "
                       "be read", HINT_DAMAGE_RECORDED)
        if recorded:
            copies = sum(len(p) for p in recorded.values())
            self.issue(("damage-recorded",), "damaged-blobs-recorded", damage.PREFIX, f"{len(names)} damage "
                       f"record(s) list {copies} damaged blob copies still in the index", HINT_DAMAGE_RECORDED)
        pending, bad = prunestate.load_all(self.repo)
        for name in bad:
            self.issue(("prune-record", name), "prune-record-damaged", name,
                       f"the pending prune record {name} cannot be read",
                       "run 'ebas prune': it removes unreadable records (they only list packs to delete)")
        for rec in pending:
            self.issue(("prune-record", rec.name), "prune-pending", rec.name,
                       f"a prune started {_age(rec.created_ns, self.repo.clock.now_ns())} ago on {rec.host or '?'} "
                       f"has {len(rec.packs)} pack(s) still to delete (phase {rec.phase})",
                       "nothing is wrong: the next 'ebas prune' finishes it (after the backups it waits for)")

    def _subtree(self, root: bytes, root_path: str) -> frozenset:
        """Issue keys of everything below ``root`` (each tree is loaded once, iteratively)."""
        stack: list[list] = [[root, root_path, None, set()]]
        while stack and root not in self.memo:
            frame = stack[-1]
            if frame[2] is None:
                nodes = self._load_tree(frame[0], frame[1], frame[3])
                frame[2] = iter(self._scan(nodes, frame[1], frame[3]) if nodes is not None else ())
            for child, path in frame[2]:
                if child in self.memo:
                    frame[3] |= self.memo[child]
                else:
                    stack.append([child, path, None, set()])
                    break
            else:
                stack.pop()
                self.memo[frame[0]] = done = frozenset(frame[3]) if frame[3] else frozenset()
                if stack:
                    stack[-1][3] |= done
        return self.memo[root]

    def _load_tree(self, tid: bytes, path: str, keys: set) -> list | None:
        loc = self.table.lookup(tid)
        if loc is None and (loc := self.orphans.lookup(tid)) is not None:
            keys.add(self._gap(tid))
        if loc is None:
            cause = "it is in no pack of the repository"
        else:
            pid, off, length = loc
            try:
                stored = self.ahead.pop(tid, None)
                if stored is None:
                    stored = self.store.get(pack_name(pid), off, length)
                    self._read_ahead(tid, stored)
                if len(stored) != length:
                    raise IntegrityError(f"pack {pid.hex()[:16]} is truncated")
                return decode_tree(self.repo.codec.decode(tid, stored))
            except ObjectNotFound:
                cause = f"pack {pid.hex()[:16]} holding it is missing"
            except DAMAGE as exc:
                cause = f"in pack {pid.hex()[:16]}: {exc}"
        keys.add(("tree", tid))
        self.issue(("tree", tid), "tree-damaged", f"tree {tid.hex()[:16]}", f"directory {path} (tree "
                   f"{tid.hex()[:16]}) cannot be read: {cause}; nothing below it can be restored", HINT_LOST
                   ).note(path)
        return None

    def _read_ahead(self, tid: bytes, stored: bytes) -> None:
        """After a tree read from the store, read the trees below it breadth-first with
        ranged reads covering many trees each (up to ``AHEAD_BYTES`` held). Best effort:
        whatever fails here is read, and reported, by :meth:`_load_tree` itself."""
        self.ahead.clear()
        try:
            frontier = [n.subtree for n in decode_tree(self.repo.codec.decode(tid, stored))
                        if n.type == DIR and n.subtree]
        except Exception:  # noqa: BLE001 - reported by _load_tree
            return
        held = 0
        while frontier and held < AHEAD_BYTES:
            head, frontier = frontier[:256], frontier[256:]
            locs = sorted((loc, t) for t in dict.fromkeys(head)
                          if t not in self.ahead and t not in self.memo and (loc := self.table.lookup(t)))
            for i, j, pid, start, end in read_runs([loc for loc, _t in locs], 256 << 10, 8 << 20):
                try:
                    data = self.store.get(pack_name(pid), start, end - start)
                except Exception:  # noqa: BLE001 - reported by _load_tree
                    data = b""
                for (_p, off, ln), t in locs[i:j]:
                    piece = bytes(data[off - start : off - start + ln])
                    if len(piece) != ln:
                        continue
                    self.ahead[t] = piece
                    held += ln
                    try:
                        frontier += [n.subtree for n in decode_tree(self.repo.codec.decode(t, piece))
                                     if n.type == DIR and n.subtree]
                    except Exception:  # noqa: BLE001 - reported by _load_tree
                        continue

    def _scan(self, nodes: list, path: str, keys: set) -> list[tuple[bytes, str]]:
        """Check the file entries of one tree; return its subdirectories."""
        base = path.rstrip("/") + "/"
        for fault in tree_faults(nodes):  # the verdict restore and dump apply: each fault makes them refuse
            where = path if fault.name is None else base + printable(fault.name)
            self._bad_entry(keys, where, fault.reason, directory=fault.name is None)
        children, files, ids = [], [], []
        for node in nodes:
            if node.type == DIR:
                if len(node.subtree) == ID_LEN:
                    children.append((node.subtree, base + node.display_name))
            elif node.type == FILE:
                files.append(node)
                ids.extend(node.chunk_ids)
        self.report.files += len(files)
        self.report.blobs += len(ids)
        if not ids or (not self.bad_packs and not self.bad_blobs and self.table.contains_many(ids).all()):
            return children
        for node in files:
            fpath = base + node.display_name
            hits = {k for k in (self._blob_key(b, fpath) for b in node.chunk_ids) if k is not None}
            for key in hits:
                self.issues[key].note(fpath)
            keys |= hits
        return children

    def _bad_entry(self, keys: set, path: str, what: str, directory: bool = False) -> None:
        key = ("entry", path, what)
        keys.add(key)
        self.issue(key, "tree-damaged", path, f"{'directory' if directory else 'tree entry'} {path} {what}: "
                   "restore refuses this snapshot", HINT_ENTRY)

    def _blob_key(self, bid: bytes, fpath: str) -> tuple | None:
        if bid in self.bad_blobs and bid not in self.intact_elsewhere:
            return ("pack-data", self.bad_blobs[bid])
        loc = self.table.lookup(bid)
        if loc is None:
            if self.orphans.lookup(bid) is not None:
                return self._gap(bid)
            self.issue(("lost", fpath), "data-missing", fpath, f"file {fpath} needs data blobs that are in no "
                       "pack of the repository", HINT_MISSING).note(blob=bid)
            return ("lost", fpath)
        limit = self.bad_packs.get(loc[0])
        return ("pack", loc[0]) if limit is not None and loc[1] + loc[2] > limit else None

    def _gap(self, bid: bytes) -> tuple:
        self.issue(("gap",), "index-incomplete", "index/", "blobs that snapshots need are missing from the "
                   "index but present in unindexed packs: restore cannot find them", HINT_REPAIR).note(blob=bid)
        return ("gap",)


def _age(then_ns: int, now_ns: int) -> str:
    secs = max(0, (now_ns - then_ns) // 10**9)
    if secs < 120:
        return f"{secs} s"
    if secs < 7200:
        return f"{secs // 60} min"
    if secs < 172800:
        return f"{secs // 3600} h"
    return f"{secs // 86400} days"
