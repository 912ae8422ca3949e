"""Write sessions: ``put_blob`` with dedup, pack building, upload, index checkpoints.

Ordering rules (docs/format.md, "Write order"):

1. A pack is uploaded atomically, then its header is read back and checked before any
   of its blobs count as stored.
2. An index segment naming uploaded packs is written after the packs (every
   ``checkpoint_packs`` packs and at :meth:`flush`), so a crash loses at most the
   index of the last few packs; those packs are *adopted* by the next session
   (:meth:`adopt_unindexed_packs`) by reading their headers, not uploaded again.
3. The snapshot is written last (:meth:`commit`): it is the single commit point.

``put_blob`` is thread-safe; callers hash, compress and encrypt in their own threads,
and only the append to the open pack is serialised.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ebas.crypto.ids import pack_id as hash_pack
from ebas.errors import EbasError, IntegrityError
from ebas.repo.index import IndexSegment, segment_name
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
        self._pending: set[bytes] = set()
        # one open pack per class: trees apart from file data, so that a walk of the trees
        # (incremental backup, prune, check, catalog) reads dense tree packs, not data
        self._bufs: dict[int, bytearray] = {KIND_DATA: bytearray(), KIND_TREE: bytearray()}
        self._open: dict[int, list[PackEntry]] = {KIND_DATA: [], KIND_TREE: []}
        self._unindexed: dict[bytes, list[PackEntry]] = {}
        # a store that takes one write at a time (tape) gets one upload thread, so a pack's
        # header is read back before the next pack is written (no trip back to a cartridge)
        upload_threads = max(1, min(upload_threads, repo.store.capabilities.parallel_writes))
        self._slots = threading.Semaphore(upload_threads + 1)
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
            if bid in self._pending or bid in self.table:
                self.stats.blobs_dedup += 1
                return bid, False
            self._pending.add(bid)
        try:
            stored, codec = self.repo.codec.encode(bid, data)
        except BaseException:
            with self._lock:
                self._pending.discard(bid)
            raise
        sealed = None
        cls = KIND_TREE if kind == KIND_TREE else KIND_DATA
        with self._lock:
            buf = self._bufs[cls]
            self._open[cls].append(PackEntry(bid, kind, codec, len(buf), len(stored), len(data)))
            buf += stored
            self.stats.blobs_new += 1
            self.stats.bytes_raw_new += len(data)
            self.stats.bytes_stored_new += len(stored)
            if len(buf) >= self.pack_size:
                sealed = self._take_pack_locked(cls)
        if sealed is not None:
            self._submit(*sealed)
        return bid, True

    def put_stored(self, blob_id: bytes, kind: int, codec: int, stored, raw_length: int) -> bool:
        """Append an already encoded blob (prune copying a live blob out of a pack it
        repacks) without the dedup check against the table; False if this session
        already holds it. The caller has verified ``stored`` (``codec.decode``)."""
        if self._failed is not None:
            raise self._failed
        sealed = None
        cls = KIND_TREE if kind == KIND_TREE else KIND_DATA
        with self._lock:
            if blob_id in self._pending:
                return False
            self._pending.add(blob_id)
            buf = self._bufs[cls]
            self._open[cls].append(PackEntry(blob_id, kind, codec, len(buf), len(stored), raw_length))
            buf += stored
            self.stats.blobs_new += 1
            self.stats.bytes_raw_new += raw_length
            self.stats.bytes_stored_new += len(stored)
            if len(buf) >= self.pack_size:
                sealed = self._take_pack_locked(cls)
        if sealed is not None:
            self._submit(*sealed)
        return True

    def _take_pack_locked(self, cls: int) -> tuple[bytes, list[PackEntry]] | None:
        entries = self._open[cls]
        if not entries:
            return None
        data = self._bufs[cls]
        data += encode_header(self.repo.aead, entries)
        self._bufs[cls] = bytearray()  # ``data`` is handed over, never mutated again: no copy
        self._open[cls] = []
        return data, entries

    def _submit(self, data: bytes, entries: list[PackEntry]) -> None:
        self._slots.acquire()  # back-pressure: at most upload_threads+1 packs in memory
        try:
            self._futures.append(self._pool.submit(self._upload, data, entries))
        except BaseException:
            self._slots.release()
            raise

    def _upload(self, data: bytes, entries: list[PackEntry]) -> None:
        try:
            pid = hash_pack(data)
            name = pack_name(pid)
            self.repo.store.put(name, data)
            back = read_pack_header(self.repo.store, name, self.repo.aead, size=len(data))
            if back != entries:
                raise IntegrityError(f"pack {pid.hex()[:16]} did not read back as written",
                                     hint="the store may be faulty; run 'ebas check --read-data'")
            checkpoint = None
            with self._lock:
                for e in entries:
                    self.table.add(e.blob_id, pid, e.offset, e.length)
                    self._pending.discard(e.blob_id)
                self._unindexed[pid] = entries
                self.stats.packs_written += 1
                if len(self._unindexed) >= self.checkpoint_packs:
                    checkpoint = self._unindexed
                    self._unindexed = {}
            if checkpoint:
                self._write_segment(checkpoint)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            if self._failed is None:
                self._failed = exc
            raise
        finally:
            self._slots.release()

    def _write_segment(self, packs: dict[bytes, list[PackEntry]]) -> str:
        stored = IndexSegment.from_packs(packs).encode(self.repo.aead)
        name = segment_name(stored)
        self.repo.store.put(name, stored)
        with self._lock:
            self.stats.index_segments += 1
        return name

    # ------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        """Upload the open pack, wait for all uploads, and index every uploaded pack."""
        for cls in (KIND_DATA, KIND_TREE):
            with self._lock:
                sealed = self._take_pack_locked(cls)
            if sealed is not None:
                self._submit(*sealed)
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
                self._unindexed[pid] = entries
                self.stats.packs_adopted += 1
            adopted += 1
        return adopted
