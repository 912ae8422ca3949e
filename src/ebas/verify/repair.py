"""Repair: rebuild the index from the packs (``ebas repair index``).

The index is derived data: every pack ends with an encrypted header listing its blobs,
so the index can always be rebuilt from the packs alone. Nothing is indexed from a pack
that is not exactly what its writer stored: a pack is *intact* when its bytes hash to
its name (the pack id is the BLAKE3 of the pack), its header decrypts, and every blob it
lists decrypts, decompresses and hashes to its keyed id. :func:`rebuild_index` works in
this order, so that a crash at any moment leaves a usable index and loses nothing:

1. Take an exclusive repository lock: no backup or prune runs meanwhile.
2. List the existing index segments (damaged or not); these are the ones replaced.
3. Read every pack in ``data/`` whole, one at a time (memory: one pack). Intact packs are
   indexed as they are. Every other pack is a *suspect*: bit rot, a truncated upload, or
   a copy of a pack stored under another name (an *impostor*: its bytes hash to a
   different name). Its header entries (or, if the header is unreadable, the entries the
   *old* index had for it) are verified blob by blob.
4. The verified blobs of suspects that no intact pack holds are copied (as stored: blobs
   are encrypted with their own id as associated data, so they may move) into new packs,
   which are written, read back and indexed like any pack. Damaged blobs are left out of
   the index: the next backup finds their data missing and stores it again, and no
   backup can deduplicate against them. Each suspect is copied to ``quarantine/<its
   name>`` and the copy read back.
5. Meanwhile new segments are written as they fill (at most about ``MAX_SEGMENT_ENTRIES``
   entries each), each read back. The *last* one lists every old segment in
   ``supersedes``. Only then are the old segments deleted, and then the suspects are
   removed from ``data/`` (their quarantined copies stay for the administrator: never
   deleted by ebas, so a genuine pack is never lost, and a replica can still supply the
   original by its name).
6. Forget the repository's loaded index so the next use reads the new one.

A crash before step 5 ends leaves the old segments in force next to some new ones (the
same blobs listed twice, harmless) and maybe unindexed salvage packs (indexed by the next
repair or adopted by the next backup). A crash after it leaves superseded segments or
suspects still in ``data/``, unindexed; their copies under ``quarantine/`` keep backups and
prune from adopting them, and the next repair finishes the job.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ebas.crypto.ids import pack_id as hash_pack
from ebas.errors import IntegrityError, InvalidRange, ObjectNotFound, PermissionDenied
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo import damage
from ebas.repo.dedup import DedupTable
from ebas.repo.index import IndexSegment, check_segment_name, segment_name
from ebas.repo.pack import (
    QUARANTINE,
    PackEntry,
    encode_header,
    pack_id_from_name,
    pack_name,
    parse_pack,
    read_pack_header,
)

MAX_SEGMENT_ENTRIES = 100_000
DAMAGE = (IntegrityError, ObjectNotFound, InvalidRange)
_SEGMENT = re.compile(r"index/[0-9a-f]{64}")


@dataclass
class QuarantinedPack:
    """A pack that was not intact, moved out of ``data/`` and out of the index.

    ``salvaged`` intact blobs were copied into new packs; ``duplicates`` blobs (intact or
    not) have an intact copy elsewhere that is indexed; ``damaged`` blobs failed to verify,
    have no intact copy and are not indexed (the next backup stores their data again). ``moved_to`` is empty if the store refused
    to remove the pack from ``data/`` (it is still not indexed, and no backup adopts it)."""

    name: str
    reason: str
    moved_to: str = ""
    salvaged: int = 0
    duplicates: int = 0
    damaged: int = 0
    damaged_ids: list[str] = field(default_factory=list)  # id prefixes of the first damaged blobs
    hint: str = ""


@dataclass
class RepairReport:
    """What :func:`rebuild_index` read, wrote, left out and quarantined."""

    packs_read: int = 0  # intact packs indexed as they are
    blobs_indexed: int = 0  # entries in the new index (salvaged blobs included)
    blobs_salvaged: int = 0  # intact blobs of suspect packs copied into new packs
    blobs_damaged: int = 0  # blobs that failed to verify: left out of the index
    packs_written: list[str] = field(default_factory=list)  # new packs holding salvaged blobs
    segments_written: list[str] = field(default_factory=list)
    segments_removed: list[str] = field(default_factory=list)
    quarantined: list[QuarantinedPack] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if every pack was intact (nothing was quarantined)."""
        return not self.quarantined

    def to_json(self) -> dict:
        """Machine-readable form."""
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        """Readable lines for a terminal (``ebas repair index``)."""
        lines = [f"read {self.packs_read} intact pack(s), indexed {self.blobs_indexed} blob(s) in "
                 f"{len(self.segments_written)} new segment(s), removed {len(self.segments_removed)} old segment(s)"]
        for q in self.quarantined:
            where = f"moved to {q.moved_to}" if q.moved_to else "left in data/ (the store refused to remove it)"
            lines.append(f"quarantined pack {q.name} ({where}): {q.reason}; {q.salvaged} intact blob(s) copied to "
                         f"new packs, {q.duplicates} already in intact packs, {q.damaged} damaged blob(s) left out "
                         f"of the index\n  hint: {q.hint}")
        if self.blobs_damaged:
            lines.append(f"{self.blobs_damaged} damaged blob(s) are no longer indexed: the next backup stores that "
                         "data again; 'ebas check' lists the older snapshots that cannot restore it")
        return "\n".join(lines)


@dataclass
class _Suspect:
    pid: bytes
    name: str
    reason: str
    good: list[PackEntry] | None  # verified header entries; None: header unreadable
    damaged: list[bytes] = field(default_factory=list)


def rebuild_index(repo, *, progress: Progress | None = None) -> RepairReport:
    """Replace every index segment of ``repo`` with segments built from intact packs.

    Promises: takes (and releases) an exclusive lock, raising ``LockError`` if another
    operation holds one; afterwards the index lists exactly the blobs of intact packs
    plus the verified blobs salvaged from the others (see the module docstring), and no
    blob that failed verification; old segments are deleted only after the new ones are
    stored and read back; a pack is removed from ``data/`` only after a copy of it is
    stored under ``quarantine/`` and read back. ``progress`` receives the phases ``"packs"``
    (items: packs, bytes: their sizes) and ``"salvage"`` (items: suspect packs).
    """
    report = RepairReport()
    step = progress or NULL_PROGRESS
    lock = repo.locks().acquire("repair index", exclusive=True)
    try:
        old = sorted(info.name for info in repo.store.list("index/"))
        packs = sorted((info.name, info.size) for info in repo.store.list("data/"))
        out = _SegmentWriter(repo, report)
        suspects: list[_Suspect] = []
        step.start("packs", items_total=len(packs), bytes_total=sum(size for _, size in packs))
        for name, size in packs:
            step.advance(items=1, bytes=size, current=name)
            try:
                pid = pack_id_from_name(name)
            except IntegrityError:
                continue  # not a pack; 'ebas check' reports it
            try:
                data = repo.store.get(name)
            except ObjectNotFound:
                continue
            entries, suspect = _judge(repo, pid, name, data)
            if suspect is None:
                out.add(pid, entries)
                report.packs_read += 1
            else:
                suspects.append(suspect)
            del data
        copies: list[tuple[_Suspect, QuarantinedPack]] = []
        if suspects:
            copies = _salvage(repo, old, suspects, out, report, step)
        out.finish(supersedes=[bytes.fromhex(n[6:]) for n in old if _SEGMENT.fullmatch(n)])
        for name in old:
            if name in report.segments_written:  # cannot happen (random nonces), but never delete new ones
                continue
            try:
                repo.store.delete(name)
            except ObjectNotFound:
                pass
            report.segments_removed.append(name)
        for suspect, q in copies:
            _remove_original(repo, suspect, q)
            report.quarantined.append(q)
        damage.remove_all(repo)  # the new index holds no damaged copy: nothing left to steer around
        repo.invalidate_index()
    finally:
        lock.release()
    return report


def _judge(repo, pid: bytes, name: str, data: bytes) -> tuple[list[PackEntry], _Suspect | None]:
    """``(entries, None)`` if the pack is intact, else what is wrong with it and which blobs verify."""
    view = memoryview(data)
    hash_ok = hash_pack(data) == pid
    try:
        entries = parse_pack(repo.aead, view)
    except IntegrityError as exc:
        return [], _Suspect(pid, name, _why(repo, data, hash_ok, f"its header is unreadable ({exc.message})"), None)
    good, bad = [], []
    for e in entries:
        (good if _verifies(repo, e, view) else bad).append(e)
    if hash_ok and not bad:
        return entries, None
    what = f"{len(bad)} of its {len(entries)} blob(s) are damaged" if bad else "all of its blobs verify"
    return entries, _Suspect(pid, name, _why(repo, data, hash_ok, what), good, [e.blob_id for e in bad])


def _why(repo, data: bytes, hash_ok: bool, what: str) -> str:
    if hash_ok:
        return what
    true = pack_name(hash_pack(data))
    if repo.store.exists(true):
        return f"its bytes do not hash to its name: it is a copy of pack {true} stored under another name; {what}"
    return f"its bytes do not hash to its name (changed since it was written, or stored under a wrong name); {what}"


def _verifies(repo, e: PackEntry, view: memoryview) -> bool:
    stored = view[e.offset : e.offset + e.length]
    if len(stored) != e.length:
        return False
    try:
        return len(repo.codec.decode(e.blob_id, stored)) == e.raw_length
    except IntegrityError:
        return False


class _SegmentWriter:
    """Writes full batches as they fill (memory: one batch); :meth:`finish` writes the last."""

    def __init__(self, repo, report: RepairReport):
        self.repo, self.report = repo, report
        self.batch: dict[bytes, list[PackEntry]] = {}
        self.count = 0

    def add(self, pid: bytes, entries: list[PackEntry]) -> None:
        if self.batch and self.count + len(entries) > MAX_SEGMENT_ENTRIES:
            self._flush(None)
        self.batch[pid] = entries
        self.count += len(entries)

    def covered(self, ids: set[bytes]) -> set[bytes]:
        """Which of ``ids`` the segments written so far (and the open batch) list."""
        table = DedupTable()
        for name in self.report.segments_written:
            seg = IndexSegment.decode(self.repo.aead, self.repo.store.get(name), name)
            table.add_segment(seg.packs, seg.entries)
        seg = IndexSegment.from_packs(self.batch)
        table.add_segment(seg.packs, seg.entries)
        table.compact()
        return {b for b in ids if b in table}

    def finish(self, supersedes: list[bytes]) -> None:
        """Write the last batch, naming the old segments it replaces (if any pack exists)."""
        if self.batch:
            self._flush(supersedes)

    def _flush(self, supersedes: list[bytes] | None) -> None:
        _store_segment(self.repo, IndexSegment.from_packs(self.batch, supersedes), self.report)
        self.report.blobs_indexed += self.count
        self.batch, self.count = {}, 0


def _store_segment(repo, seg: IndexSegment, report: RepairReport) -> None:
    stored = seg.encode(repo.aead)
    name = segment_name(stored)
    repo.store.put(name, stored)
    check_segment_name(name, repo.store.get(name))  # read back before old segments go
    report.segments_written.append(name)


class _Packer:
    """Builds new packs from verified stored blobs; each is written, read back and indexed."""

    def __init__(self, repo, out: _SegmentWriter, report: RepairReport):
        self.repo, self.out, self.report = repo, out, report
        self.buf, self.entries = bytearray(), []

    def add(self, e: PackEntry, stored: bytes) -> None:
        self.entries.append(PackEntry(e.blob_id, e.kind, e.codec, len(self.buf), len(stored), e.raw_length))
        self.buf += stored
        if len(self.buf) >= self.repo.config.pack_size:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        data = bytes(self.buf + encode_header(self.repo.aead, self.entries))
        pid = hash_pack(data)
        name = pack_name(pid)
        self.repo.store.put(name, data)
        if read_pack_header(self.repo.store, name, self.repo.aead, size=len(data)) != self.entries:
            raise IntegrityError(f"pack {pid.hex()[:16]} did not read back as written",
                                 hint="the store may be faulty; nothing was removed; run 'ebas repair index' again")
        self.out.add(pid, self.entries)
        self.report.packs_written.append(name)
        self.buf, self.entries = bytearray(), []


def _old_entries(repo, old: list[str], pids: set[bytes]) -> dict[bytes, dict[tuple, PackEntry]]:
    """The old index's entries for ``pids`` (packs whose header is unreadable)."""
    wanted: dict[bytes, dict[tuple, PackEntry]] = {pid: {} for pid in pids}
    for name in old:
        try:
            stored = repo.store.get(name)
            check_segment_name(name, stored)
            seg = IndexSegment.decode(repo.aead, stored, name)
        except DAMAGE:
            continue
        ids = seg.entries["id"].tobytes()  # not bytes(row["id"]): numpy drops trailing NULs
        for i, row in enumerate(seg.entries):
            pid = seg.packs[int(row["pack"])]
            if pid in wanted:
                e = PackEntry(ids[32 * i : 32 * i + 32], int(row["kind"]), int(row["codec"]),
                              int(row["offset"]), int(row["length"]), int(row["raw"]))
                wanted[pid][(e.blob_id, e.offset)] = e
    return wanted


def _salvage(repo, old: list[str], suspects: list[_Suspect], out: _SegmentWriter, report: RepairReport,
             step: Progress) -> list[tuple[_Suspect, QuarantinedPack]]:
    """Copy the verified blobs of suspects that no intact pack holds into new packs, and a
    copy of each suspect into ``quarantine/``. Returns what to remove from ``data/``."""
    headerless = {s.pid for s in suspects if s.good is None}
    from_index = _old_entries(repo, old, headerless) if headerless else {}
    wanted = {e.blob_id for s in suspects for e in (s.good or ())} | {b for s in suspects for b in s.damaged}
    wanted |= {b for entries in from_index.values() for b, _off in entries}
    held = out.covered(wanted)  # intact packs already hold these: never copied twice
    packer, copied = _Packer(repo, out, report), set()
    done = []
    step.start("salvage", items_total=len(suspects))
    for s in suspects:
        step.advance(items=1, current=s.name)
        try:
            data = repo.store.get(s.name)
        except ObjectNotFound:
            continue
        view = memoryview(data)
        if s.good is None:  # header unreadable: the old index said where its blobs are
            cands = sorted(from_index.get(s.pid, {}).values(), key=lambda e: e.offset)
            s.good = [e for e in cands if _verifies(repo, e, view)]
            s.damaged = [e.blob_id for e in cands if e not in s.good]
        lost = [b for b in s.damaged if b not in held and b not in copied]  # else an intact copy is indexed
        q = QuarantinedPack(s.name, s.reason, duplicates=len(s.damaged) - len(lost), damaged=len(lost),
                            damaged_ids=[b.hex()[:16] for b in lost[:5]])
        for e in s.good:
            if e.blob_id in held or e.blob_id in copied:
                q.duplicates += 1
                continue
            packer.add(e, bytes(view[e.offset : e.offset + e.length]))
            copied.add(e.blob_id)
            q.salvaged += 1
        q.moved_to = _copy_to_quarantine(repo, s.name, data)
        q.hint = _hint(q)
        report.blobs_salvaged += q.salvaged
        report.blobs_damaged += q.damaged
        done.append((s, q))
        del data, view
    packer.flush()
    return done


def _copy_to_quarantine(repo, name: str, data: bytes) -> str:
    """Store ``data`` under ``quarantine/<name>`` (or a numbered variant) and read it back."""
    for k in range(1000):
        dest = QUARANTINE + name + (f".{k}" if k else "")
        try:
            if repo.store.get(dest) == data:
                return dest  # an earlier, interrupted repair already copied it
            continue
        except ObjectNotFound:
            pass
        repo.store.put(dest, data)
        if repo.store.get(dest) != data:
            raise IntegrityError(f"the quarantine copy {dest} did not read back as written",
                                 hint="the store may be faulty; nothing was removed; run 'ebas repair index' again")
        return dest
    raise IntegrityError(f"too many quarantined copies of {name}", hint=f"look at and clean up {QUARANTINE}{name}.*")


def _remove_original(repo, s: _Suspect, q: QuarantinedPack) -> None:
    try:
        repo.store.delete(s.name)
    except ObjectNotFound:
        pass
    except PermissionDenied as exc:  # append-only credentials or write-once retention
        q.hint = (f"the store refused to delete {s.name} ({exc.message}); it is not indexed and no backup adopts "
                  "it; remove it with maintenance credentials. " + q.hint)
        q.moved_to = ""


def _hint(q: QuarantinedPack) -> str:
    if not q.damaged and not q.salvaged:
        return (f"nothing was lost: intact packs hold every blob of it; delete {q.moved_to} once you have looked "
                "at it (how did it get there?)")
    if not q.damaged:
        return f"nothing was lost: its blobs now live in new packs; delete {q.moved_to} once you have looked at it"
    return (f"if a replica of this repository has {q.name}, copy it back (a pack is proved by its name) and run "
            "'ebas repair index' again; otherwise the next backup stores the damaged data again and 'ebas check' "
            f"lists the older snapshots that cannot restore it; keep {q.moved_to} until then")
