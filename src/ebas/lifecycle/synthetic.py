"""Synthetic fulls: a new ``full`` snapshot made from an existing one without the source.

Every snapshot already holds a complete tree, so a synthetic full reuses that tree: it
is dated one nanosecond after its source (the same restore point, sorted right after
it), has no base, starts a new chain and becomes the base of later differentials and the
parent of later incrementals. Its ``stats`` carry ``synthetic: true`` and
``synthesized_from``.

With ``consolidate`` every blob the snapshot needs (trees and data, each once) is also
copied, still encrypted and verified first, into fresh packs in restore order: the
order a restore walks the tree (a directory's tree blob, then its entries by name; a
file's chunks in file order). Prune prefers, for a blob stored twice, the copy in the
pack with the highest live share, then the newest pack, so once prune has run the old
copies go (whole packs are freed when the old chain expires) and a restore of the
snapshot reads the new packs front to back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ebas.errors import IntegrityError
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo.blobcopy import read_verified, restore_order
from ebas.repo.pack import KIND_DATA
from ebas.repo.snapshots import Snapshot


@dataclass
class SynthResult:
    """The new snapshot and what consolidation copied."""

    snapshot: Snapshot
    source: Snapshot
    blobs_copied: int = 0
    bytes_copied: int = 0
    packs_written: int = 0

    def to_json(self) -> dict:
        return {"snapshot_id": self.snapshot.id, "source": self.source.id, "level": self.snapshot.level,
                "time": self.snapshot.time_iso, "consolidated": bool(self.blobs_copied),
                "blobs_copied": self.blobs_copied, "bytes_copied": self.bytes_copied,
                "packs_written": self.packs_written}


def synthesize(repo, ref: str, *, consolidate: bool = False, tags: list[str] | None = None,
               progress: Progress | None = None) -> SynthResult:
    """Make a synthetic full of snapshot ``ref`` (an id prefix or ``latest``)."""
    src = repo.find_snapshot(ref)
    lock = repo.locks().acquire(f"synthesize {src.id[:8]}")
    try:
        repo.invalidate_index()  # loaded under the lock (see docs/format.md, "Prune")
        with repo.session() as session:
            res = SynthResult(src, src)
            root = bytes.fromhex(src.tree)
            if consolidate:
                step = progress or NULL_PROGRESS
                step.start("copy")  # items: blobs, bytes: stored bytes copied
                for bid, kind in restore_order(repo, root):
                    b = read_verified(repo, bid, kind)
                    if session.put_stored(b.blob_id, b.kind, b.codec, b.stored, b.raw_length):
                        res.blobs_copied += 1
                        res.bytes_copied += len(b.stored)
                        step.advance(items=1, bytes=len(b.stored))
                    else:
                        step.advance(items=1)
            else:
                _require_complete(repo, root)
            stats = {k: src.stats[k] for k in ("files", "dirs", "others", "bytes_logical") if k in src.stats}
            stats.update(synthetic=True, synthesized_from=src.id, bytes_read=0,
                         bytes_stored_added=res.bytes_copied, blobs_new=res.blobs_copied)
            snap = Snapshot(time_ns=src.time_ns + 1, host=src.host, paths=list(src.paths), tree=src.tree,
                            level="full", tags=sorted(set(src.tags) | set(tags or [])), username=src.username,
                            parent=src.id, base=None, chain="", partial=src.partial, errors=list(src.errors),
                            stats=stats)
            session.commit(snap)
            res.snapshot = snap
            res.packs_written = session.stats.packs_written
    finally:
        lock.release()
    return res


def _require_complete(repo, root: bytes) -> None:
    """Raise ``IntegrityError`` unless every tree reads and every data blob is indexed."""
    missing = 0
    batch: list[bytes] = []
    table = repo.index.table
    for bid, kind in restore_order(repo, root):
        if kind == KIND_DATA:
            batch.append(bid)
            if len(batch) >= 10_000:
                missing += int((~table.contains_many(batch)).sum())
                batch = []
    if batch:
        missing += int((~table.contains_many(batch)).sum())
    if missing:
        raise IntegrityError(f"the snapshot needs {missing} data blob(s) that are not in the repository; a "
                             "synthetic full must not build on damaged data", hint="run 'ebas check'")
