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
4. Meanwhile write the new segments as they fill (at most about ``MAX_SEGMENT_ENTRIES``
   entries each, so memory holds one segment's entries), reading each back. The *last*
   one, written after every header was read, lists every old segment in ``supersedes``.
5. Only then delete the old segments.
6. Forget the repository's loaded index so the next use reads the new one.

A crash during step 4 leaves the old segments in force next to some new ones: the same
blobs listed twice with identical locations, which is harmless. A crash after the last
new segment is written leaves old segments that are superseded (ignored when loading)
and deleted by the next repair.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ebas.errors import IntegrityError, InvalidRange, ObjectNotFound
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo.index import IndexSegment, check_segment_name, segment_name
from ebas.repo.pack import PackEntry, pack_id_from_name, pack_name, read_pack_header

MAX_SEGMENT_ENTRIES = 100_000
HINT_UNREADABLE = "restore the pack from a replica or run prune to drop it"
DAMAGE = (IntegrityError, ObjectNotFound, InvalidRange)
_SEGMENT = re.compile(r"index/[0-9a-f]{64}")


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

    def summary(self) -> str:
        """Readable lines for a terminal (``ebas repair index``)."""
        lines = [f"read {self.packs_read} pack header(s), indexed {self.blobs_indexed} blob(s) in "
                 f"{len(self.segments_written)} new segment(s), removed {len(self.segments_removed)} old segment(s)"]
        for p in self.unreadable_packs:
            kept = f"; kept {p.salvaged} verified blob(s) from the old index" if p.salvaged else ""
            lines.append(f"unreadable pack {p.name}: {p.message}{kept}\n  hint: {p.hint}")
        return "\n".join(lines)


def rebuild_index(repo, *, progress: Progress | None = None) -> RepairReport:
    """Replace every index segment of ``repo`` with segments built from pack headers.

    Promises: takes (and releases) an exclusive lock, raising ``LockError`` if another
    operation holds one; afterwards the index lists every blob of every pack whose
    header is readable (plus salvaged, verified blobs of packs whose header is not) and
    nothing else; old segments are deleted only after the new ones are stored and read
    back. ``progress`` receives the phase ``"headers"``: items are packs, bytes their sizes.
    """
    report = RepairReport()
    lock = repo.locks().acquire("repair index", exclusive=True)
    try:
        old = sorted(info.name for info in repo.store.list("index/"))
        packs = sorted((info.name, info.size) for info in repo.store.list("data/"))
        out = _SegmentWriter(repo, report)
        broken: dict[bytes, UnreadablePack] = {}
        step = progress or NULL_PROGRESS
        step.start("headers", items_total=len(packs), bytes_total=sum(size for _, size in packs))
        for name, size in packs:
            step.advance(items=1, bytes=size, current=name)
            try:
                pid = pack_id_from_name(name)
            except IntegrityError:
                continue  # not a pack; 'ebas check' reports it
            if pack_name(pid) != name:
                continue
            try:
                out.add(pid, read_pack_header(repo.store, name, repo.aead, size=size))
                report.packs_read += 1
            except DAMAGE as exc:
                broken[pid] = UnreadablePack(name, f"pack {pid.hex()[:16]}: header unreadable: {exc}")
        if broken:
            _salvage(repo, old, broken, out, report)
        out.finish(supersedes=[bytes.fromhex(n[6:]) for n in old if _SEGMENT.fullmatch(n)])
        for name in old:
            if name in report.segments_written:  # cannot happen (random nonces), but never delete new ones
                continue
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


def _salvage(repo, old: list[str], broken: dict[bytes, UnreadablePack], out: _SegmentWriter,
             report: RepairReport) -> None:
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
            out.add(pid, keep)
            broken[pid].salvaged = len(keep)
            report.blobs_salvaged += len(keep)
