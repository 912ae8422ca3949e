"""Repair: rebuild the index from pack headers (``ebas repair index``).

The index is derived data: every pack ends with an encrypted header listing its blobs,
so the index can always be rebuilt from the packs alone. :func:`rebuild_index` does it
in this order, so that a crash at any moment leaves a usable index:

1. Take an exclusive repository lock: no backup or prune runs meanwhile.
2. List the existing index segments (damaged or not); these are the ones replaced.
3. Read the header of every pack in ``data/`` (two ranged reads per pack). A pack whose
   header is unreadable is reported; the blobs that the *old* index located in it are
   read back and kept only if they still decrypt and match their ids (salvage), so a
   damaged header alone loses nothing, and damaged blobs leave the index, which makes
   the next backup store those files again instead of deduplicating against them.
4. Write the new segments (at most about ``MAX_SEGMENT_ENTRIES`` entries each), reading
   each back. The *last* one lists every old segment in ``supersedes``.
5. Only then delete the old segments.
6. Forget the repository's loaded index so the next use reads the new one.

A crash during step 4 leaves the old segments in force next to some new ones: the same
blobs listed twice with identical locations, which is harmless. A crash after the last
new segment is written leaves old segments that are superseded (ignored when loading)
and deleted by the next repair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from ebas.errors import IntegrityError, InvalidRange, ObjectNotFound
from ebas.repo.index import IndexSegment, check_segment_name, segment_name
from ebas.repo.pack import PackEntry, pack_id_from_name, pack_name, read_pack_header

MAX_SEGMENT_ENTRIES = 100_000
HINT_UNREADABLE = "restore the pack from a replica or run prune to drop it"
DAMAGE = (IntegrityError, ObjectNotFound, InvalidRange)


@dataclass
class UnreadablePack:
    """A pack whose header could not be read; ``salvaged`` blobs were kept from the old index."""

    name: str
    message: str
    salvaged: int = 0
    hint: str = HINT_UNREADABLE


@dataclass
class RepairReport:
    """What :func:`rebuild_index` read, wrote and removed."""

    packs_read: int = 0
    blobs_indexed: int = 0
    blobs_salvaged: int = 0
    segments_written: list[str] = field(default_factory=list)
    segments_removed: list[str] = field(default_factory=list)
    unreadable_packs: list[UnreadablePack] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if every pack's header was readable."""
        return not self.unreadable_packs

    def to_json(self) -> dict:
        """Machine-readable form."""
        return {**asdict(self), "ok": self.ok}


def rebuild_index(repo, *, progress: Callable[[str, int, int], None] | None = None) -> RepairReport:
    """Replace every index segment of ``repo`` with segments built from pack headers.

    Promises: takes (and releases) an exclusive lock, raising ``LockError`` if another
    operation holds one; afterwards the index lists every blob of every pack whose
    header is readable (plus salvaged, verified blobs of packs whose header is not) and
    nothing else; old segments are deleted only after the new ones are stored and read
    back. ``progress(phase, done, total)`` is called per pack (phase ``"headers"``).
    """
    report = RepairReport()
    lock = repo.locks().acquire("repair index", exclusive=True)
    try:
        old = sorted(info.name for info in repo.store.list("index/"))
        packs = sorted((info.name, info.size) for info in repo.store.list("data/"))
        found: dict[bytes, list[PackEntry]] = {}
        broken: dict[bytes, UnreadablePack] = {}
        for n, (name, size) in enumerate(packs):
            if progress is not None:
                progress("headers", n, len(packs))
            try:
                pid = pack_id_from_name(name)
            except IntegrityError:
                continue  # not a pack; 'ebas check' reports it
            if pack_name(pid) != name:
                continue
            try:
                found[pid] = read_pack_header(repo.store, name, repo.aead, size=size)
                report.packs_read += 1
            except DAMAGE as exc:
                broken[pid] = UnreadablePack(name, f"pack {pid.hex()[:16]}: header unreadable: {exc}")
        if broken:
            _salvage(repo, old, broken, found, report)
        _write_segments(repo, found, old, report)
        for name in old:
            if name not in report.segments_written:
                try:
                    repo.store.delete(name)
                except ObjectNotFound:
                    pass
                report.segments_removed.append(name)
        report.unreadable_packs = list(broken.values())
        repo.invalidate_index()
    finally:
        lock.release()
    return report


def _write_segments(repo, found: dict[bytes, list[PackEntry]], old: list[str], report: RepairReport) -> None:
    """Store ``found`` in segments of bounded size; the last one supersedes ``old``."""
    supersedes = []
    for name in old:
        try:
            sid = bytes.fromhex(name[len("index/"):])
        except ValueError:
            continue
        if len(sid) == 32:
            supersedes.append(sid)
    batch: dict[bytes, list[PackEntry]] = {}
    count = 0
    items = list(found.items())
    for i, (pid, entries) in enumerate(items):
        batch[pid] = entries
        count += len(entries)
        last = i == len(items) - 1
        if last or count + len(items[i + 1][1]) > MAX_SEGMENT_ENTRIES:
            _store_segment(repo, IndexSegment.from_packs(batch, supersedes if last else None), report)
            report.blobs_indexed += count
            batch, count = {}, 0


def _store_segment(repo, seg: IndexSegment, report: RepairReport) -> None:
    stored = seg.encode(repo.aead)
    name = segment_name(stored)
    repo.store.put(name, stored)
    check_segment_name(name, repo.store.get(name))  # read back before old segments go
    report.segments_written.append(name)


def _salvage(repo, old: list[str], broken: dict[bytes, UnreadablePack],
             found: dict[bytes, list[PackEntry]], report: RepairReport) -> None:
    """Keep the old index's entries for header-damaged packs whose blobs still verify."""
    wanted: dict[bytes, dict[tuple, PackEntry]] = {pid: {} for pid in broken}
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
    for pid, entries in wanted.items():
        if not entries:
            continue
        try:
            data = memoryview(repo.store.get(pack_name(pid)))
        except DAMAGE:
            continue
        keep = []
        for e in sorted(entries.values(), key=lambda e: e.offset):
            try:
                repo.codec.decode(e.blob_id, data[e.offset : e.offset + e.length])
                keep.append(e)
            except IntegrityError:
                continue
        if keep:
            found[pid] = keep
            broken[pid].salvaged = len(keep)
            report.blobs_salvaged += len(keep)
