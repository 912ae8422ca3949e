"""Write sessions: ``put_blob`` with dedup, pack building, upload, index checkpoints.

Ordering rules (docs/format.md, "Write order"):

1. A pack is uploaded atomically, then its header is read back and checked before any
   of its blobs count as stored.
2. An index segment naming uploaded packs is written after the packs (every
   ``checkpoint_packs`` packs and at :meth:`flush`), so a crash loses at most the
   index of the last few packs; those packs are *adopted* by the next session
   (:meth:`adopt_unindexed_packs`) by reading their headers, not uploaded again.
3. The snapshot is written last (:meth:`commit`): it is the single commit point.

``put_blob`` is thread-safe; callers hash and compress in their own threads, and the
blob is encrypted straight into its place in the open pack under the session lock
(AES-GCM holds the GIL anyway). Packs are built in a few reused buffers
(:mod:`ebas.repo.packbuf`): the two open packs and one per upload thread, so a session's
pack memory is bounded and the writers wait while every buffer is uploading.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ebas.crypto.aead import OVERHEAD
from ebas.crypto.ids import pack_id as hash_pack
from ebas.errors import EbasError, IntegrityError
from ebas.repo import damage
from ebas.repo.index import IndexSegment, entries_array, segment_name
from ebas.repo.pack import (
    KIND_DATA,
    KIND_TREE,
    QUARANTINE,
    PackEntry,
    encode_header,
    pack_id_from_name,
    pack_name,
    read_pack_header,
)
from ebas.repo.packbuf import PackBuffer, PackBufferPool
from ebas.repo.prunestate import condemned_packs


@dataclass
class SessionStats:
    """What a session added to the repository."""

    blobs_new: int = 0
    blobs_dedup: int = 0
    bytes_raw_new: int = 0
    bytes_stored_new: int = 0
    packs_written: int = 0
    packs_adopted: int = 0
    index_segments: int = 0

    def to_dict(self) -> dict:
        """JSON-able form."""
        return dict(self.__dict__)


class WriteSession:
    """Adds blobs to a repository; see the module docstring for its guarantees."""

    def __init__(self, repo, *, upload_threads: int = 2, checkpoint_packs: int = 32):
        repo.require_healthy_index()
        self.repo = repo
        self.table = repo.index.table
        self.pack_size = repo.config.pack_size
        self.checkpoint_packs = checkpoint_packs
        self.stats = SessionStats()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # a pack buffer was given back
        self._pending: set[bytes] = set()
        # blobs whose indexed copy 'check --read-data' recorded as damaged (and no intact
        # copy is indexed): stored again, never deduplicated against (docs/format.md)
        self._damaged = _damaged_blobs(repo, self.table)
        # one open pack per class: trees apart from file data, so that a walk of the trees
        # (incremental backup, prune, check, catalog) reads dense tree packs, not data
        self._open: dict[int, PackBuffer | None] = {KIND_DATA: None, KIND_TREE: None}
        self._unindexed: dict[bytes, np.ndarray] = {}
        # a store that takes one write at a time (tape) gets one upload thread, so a pack's
        # header is read back before the next pack is written (no trip back to a cartridge)
        upload_threads = max(1, min(upload_threads, repo.store.capabilities.parallel_writes))
        # packs in memory: the two open ones and one per upload thread (back-pressure beyond)
        self._buffers = PackBufferPool(self.pack_size + _slack(repo), upload_threads + 2)
        self._pool = ThreadPoolExecutor(upload_threads, thread_name_prefix="ebas-upload")
        self._futures: list[Future] = []
        self._failed: BaseException | None = None
        self.closed = False

    # ------------------------------------------------------------------ blobs
    def put_blob(self, kind: int, data, blob_id: bytes | None = None) -> tuple[bytes, bool]:
        """Store ``data`` unless an identical blob exists; return ``(id, newly_stored)``."""
        if self._failed is not None:
            raise self._failed
        bid = blob_id if blob_id is not None else self.repo.ids.blob_id(data)
        with self._lock:
            if bid in self._pending or (bid in self.table and bid not in self._damaged):
                self.stats.blobs_dedup += 1
                return bid, False
            self._pending.add(bid)
        try:
            codec, plain = self.repo.codec.plaintext(data)
            aead = self.repo.codec.aead
            self._append(bid, kind, codec, len(plain) + OVERHEAD, len(data),
                         lambda out: aead.seal_into(plain, bid, out))
        except BaseException:
            with self._lock:
                self._pending.discard(bid)
            raise
        return bid, True

    def has_blobs(self, blob_ids: list[bytes]) -> np.ndarray:
        """Per id, True if a backup may reference the blob: it is indexed and its copy is
        not one a damage record lists (bool array)."""
        present = self.table.contains_many(blob_ids)
        if self._damaged:
            with self._lock:
                for i, bid in enumerate(blob_ids):
                    if bid in self._damaged:
                        present[i] = False
        return present

    def put_stored(self, blob_id: bytes, kind: int, codec: int, stored, raw_length: int) -> bool:
        """Append an already encoded blob (prune copying a live blob out of a pack it
        repacks) without the dedup check against the table; False if this session
        already holds it. The caller has verified ``stored`` (``codec.decode``)."""
        if self._failed is not None:
            raise self._failed
        with self._lock:
            if blob_id in self._pending:
                return False
            self._pending.add(blob_id)
        try:
            self._append(blob_id, kind, codec, len(stored), raw_length, lambda out: out.__setitem__(slice(None), stored))
        except BaseException:
            with self._lock:
                self._pending.discard(blob_id)
            raise
        return True

    def _append(self, bid: bytes, kind: int, codec: int, length: int, raw_length: int, fill) -> None:
        """Write one blob of ``length`` stored bytes into the open pack of its class with
        ``fill(view)``; seal and upload the pack when it reaches the pack size. Encryption
        runs under the lock: it holds the GIL anyway, and the blob lands in place."""
        cls = KIND_TREE if kind == KIND_TREE else KIND_DATA
        with self._lock:
            pack = self._room_for_locked(cls, length)
            offset = pack.used
            out = pack.reserve(length)
            try:
                fill(out)
            except BaseException:
                pack.used = offset  # nothing after it: the lock is held
                raise
            finally:
                out.release()
            pack.entries.append(PackEntry(bid, kind, codec, offset, length, raw_length))
            self.stats.blobs_new += 1
            self.stats.bytes_raw_new += raw_length
            self.stats.bytes_stored_new += length
            if pack.used >= self.pack_size:
                self._seal_locked(cls)

    def _room_for_locked(self, cls: int, length: int) -> PackBuffer:
        """The open pack of ``cls`` with room for ``length`` more bytes: the current one,
        or a new one after sealing it (waits while every pack buffer is in use)."""
        while True:
            if self._failed is not None:
                raise self._failed
            pack = self._open[cls]
            if pack is not None:
                if pack.fits(length):
                    return pack
                if pack.entries:
                    self._seal_locked(cls)  # the blob starts the next pack
                    continue
                self._open[cls] = None  # an empty buffer too small for this blob
                self._buffers.give(pack)
            pack = self._buffers.take(length)
            if pack is None:
                self._room.wait()
                continue
            self._open[cls] = pack

    def _seal_locked(self, cls: int) -> None:
        """Close the open pack of ``cls`` with its header and start its upload."""
        pack = self._open[cls]
        self._open[cls] = None
        if pack is None:
            return
        if not pack.entries:
            self._buffers.give(pack)
            return
        header = encode_header(self.repo.aead, pack.entries)
        end = pack.used + len(header)
        if end > pack.capacity:  # cannot happen: fits() kept room for the header
            raise IntegrityError("pack header does not fit its buffer")
        pack.view[pack.used : end] = header
        pack.used = end
        # never blocks (packs in memory are bounded by the buffer pool), so safe under the lock
        self._futures.append(self._pool.submit(self._upload, pack))

    def _upload(self, pack: PackBuffer) -> None:
        data = pack.view[: pack.used]
        entries = pack.entries
        try:
            pid = hash_pack(data)
            name = pack_name(pid)
            self.repo.store.put(name, data)
            back = read_pack_header(self.repo.store, name, self.repo.aead, size=len(data))
            if back != entries:
                raise IntegrityError(f"pack {pid.hex()[:16]} did not read back as written",
                                     hint="the store may be faulty; run 'ebas check --read-data'")
            checkpoint = None
            listed = entries_array(entries)  # 52 bytes a blob until the next index segment
            with self._lock:
                for e in entries:
                    self.table.add(e.blob_id, pid, e.offset, e.length)
                    if e.blob_id in self._damaged:  # stored again: read (and dedup) this copy
                        self.table.prefer(e.blob_id, pid, e.offset, e.length)
                        self._damaged.discard(e.blob_id)
                    self._pending.discard(e.blob_id)
                self._unindexed[pid] = listed
                self.stats.packs_written += 1
                if len(self._unindexed) >= self.checkpoint_packs:
                    checkpoint = self._unindexed
                    self._unindexed = {}
            if checkpoint:
                self._write_segment(checkpoint)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            with self._lock:
                if self._failed is None:
                    self._failed = exc
            raise
        finally:
            data.release()
            with self._lock:
                self._buffers.give(pack)
                self._room.notify_all()

    def _write_segment(self, packs: dict[bytes, np.ndarray]) -> str:
        stored = IndexSegment.from_packs(packs).encode(self.repo.aead)
        name = segment_name(stored)
        self.repo.store.put(name, stored)
        with self._lock:
            self.stats.index_segments += 1
        return name

    # ------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        """Upload the open pack, wait for all uploads, and index every uploaded pack."""
        with self._lock:
            for cls in (KIND_DATA, KIND_TREE):
                self._seal_locked(cls)
            futures, self._futures = self._futures, []
        for f in futures:
            try:
                f.result()
            except BaseException:  # noqa: BLE001 - reported below through _failed
                pass
        if self._failed is not None:
            raise self._failed
        with self._lock:
            packs, self._unindexed = self._unindexed, {}
        if packs:
            self._write_segment(packs)

    def commit(self, snapshot) -> str:
        """Flush everything, then store ``snapshot`` (the commit point); return its id."""
        self.flush()
        return self.repo.save_snapshot(snapshot)

    def close(self) -> None:
        """Stop the upload threads (pending data not flushed is dropped, never half-written)."""
        if not self.closed:
            self.closed = True
            self._pool.shutdown(wait=True)
            with self._lock:
                for cls in (KIND_DATA, KIND_TREE):  # unflushed data is dropped
                    pack, self._open[cls] = self._open[cls], None
                    if pack is not None:
                        self._buffers.give(pack)
                self._buffers.close()

    def __enter__(self) -> "WriteSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------- recovery
    def adopt_unindexed_packs(self) -> int:
        """Index packs that are stored but not indexed (left by a crashed or concurrent
        session) after verifying their headers and that their bytes hash to their names
        (a pack changed since it was written, or a copy stored under another name, is
        never trusted: 'ebas repair index' quarantines it), so their blobs are reused
        instead of uploaded again. Returns the number of packs adopted."""
        adopted = 0
        condemned = condemned_packs(self.repo)  # a prune is deleting these: never depend on them
        for info in self.repo.store.list("data/"):
            try:
                pid = pack_id_from_name(info.name)
            except IntegrityError:
                continue
            if self.table.has_pack(pid) or pid in condemned:
                continue
            try:
                entries = read_pack_header(self.repo.store, info.name, self.repo.aead, size=info.size)
                if hash_pack(self.repo.store.get(info.name)) != pid or self.repo.store.exists(QUARANTINE + info.name):
                    continue  # damaged, misnamed, or judged not intact by a repair that did not finish
            except EbasError:
                continue  # a damaged orphan is left for check/prune to report
            with self._lock:
                for e in entries:
                    self.table.add(e.blob_id, pid, e.offset, e.length)
                self._unindexed[pid] = entries_array(entries)
                self.stats.packs_adopted += 1
            adopted += 1
        return adopted


def _damaged_blobs(repo, table) -> set[bytes]:
    """Ids of blobs that ``table`` resolves to a copy a damage record lists."""
    recorded = damage.load(repo)[0]
    return {bid for bid, pids in recorded.items() if (loc := table.lookup(bid)) is not None and loc[0] in pids}


def _slack(repo) -> int:
    """Room in a pack buffer beyond the pack size: the largest chunk the chunker cuts
    (a pack is sealed once it reaches the pack size, so it can end one blob past it), and
    its header."""
    chunker = getattr(repo.config, "chunker", None)
    largest = getattr(chunker, "max_size", 0) or (4 << 20)
    return largest + (1 << 20)
