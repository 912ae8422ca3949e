"""Read one source file into data blobs and fill its node's content.

Regular files are cut by FastCDC, or into fixed blocks when a fixed-block rule of the
chunker parameters matches (disk images, databases). Sparse files are read extent by
extent (``SEEK_DATA``/``SEEK_HOLE``) so holes are neither read nor stored, and are
restored as holes. A file that changes while it is read is read again (up to
``RETRIES`` times); if it keeps changing, what was read last is kept with a warning.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

from ebas.backup.fsmeta import data_extents, looks_sparse, open_source_file, show_path
from ebas.chunking.chunker import Chunker
from ebas.errors import SourceError
from ebas.repo.pack import KIND_DATA
from ebas.repo.subkeys import chunker_seed
from ebas.repo.tree import Node

RETRIES = 2
BATCH = 4 * 1024 * 1024
MAX_PENDING = 1  # batches of one file queued for the blob pool (each pins its read buffers)


@dataclass
class ReadInfo:
    """What reading one file cost and noticed."""

    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)


def _lexists(path: bytes, dir_fd: int | None) -> bool:
    try:
        os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


class FileReader:
    """Turns files and streams into data blobs through a write session."""

    def __init__(self, repo, session, params, pool: Executor | None = None):
        self.repo = repo
        self.session = session
        self.params = params
        self.chunker = Chunker(params, seed=chunker_seed(repo.master) if params.keyed else None)
        self.pool = pool
        self._fanout = threading.Semaphore(1)  # files whose batches go to the pool at once

    def _store_chunks(self, read, block_size: int, size_hint: int | None = None,
                      readinto=None) -> tuple[bytes, int, int]:
        """Chunk a stream and store each chunk; returns (ids, total bytes, chunk count).

        Chunks are stored in batches of ``BATCH`` bytes; a file larger than one batch has
        its batches hashed, compressed and encrypted in parallel on ``self.pool`` (zstd
        and BLAKE3 release the GIL), while this thread keeps reading and cutting. One
        file at a time fans out like this: every queued batch holds its read buffers, and
        a second large file read at the same time is stored by its own reader thread
        (the cores are busy either way).
        """
        ids = bytearray()
        total = 0
        count = 0
        batch: list = []
        size = 0
        pending: deque = deque()
        fanout = None  # None: not decided yet; True: this file uses the pool
        try:
            for chunk in self.chunker.chunks(read, block_size, size_hint, readinto):
                batch.append(chunk)
                size += len(chunk)
                count += 1
                if size >= BATCH:
                    total += size
                    if fanout is None:
                        fanout = self.pool is not None and self._fanout.acquire(blocking=False)
                    if fanout:
                        pending.append(self.pool.submit(self._put_batch, batch))
                        while len(pending) > MAX_PENDING:
                            ids += pending.popleft().result()
                    else:
                        ids += self._put_batch(batch)
                    batch, size = [], 0
            while pending:
                ids += pending.popleft().result()
        finally:
            if fanout:
                self._fanout.release()
        if batch:
            total += size
            ids += self._put_batch(batch)
        return bytes(ids), total, count

    def _put_batch(self, chunks: list) -> bytes:
        put = self.session.put_blob
        return b"".join(put(KIND_DATA, c)[0] for c in chunks)

    def read_stream(self, node: Node, read) -> ReadInfo:
        """Store a whole stream (e.g. stdin) as the content of ``node``."""
        ids, total, _ = self._store_chunks(read, 0)
        node.content, node.size = ids, total
        return ReadInfo(bytes_read=total)

    def read(self, node: Node, path: bytes, *, dir_fd: int | None = None) -> ReadInfo:
        """Read ``path`` into ``node.content`` (and ``extents`` for sparse files).

        With ``dir_fd``, the file is opened as ``node.name`` relative to that directory
        (no length limit on the full path, which is only used in messages)."""
        info = ReadInfo()
        try:
            if dir_fd is None:
                fd = open_source_file(path)
            else:
                fd = open_source_file(node.name, dir_fd=dir_fd)
        except SourceError as exc:
            if not _lexists(path if dir_fd is None else node.name, dir_fd):
                raise SourceError(f"{show_path(path)} vanished during backup; skipped") from exc
            if dir_fd is not None:
                reason = str(exc).split(": ", 1)[-1]
                raise SourceError(f"cannot read {show_path(path)}: {reason}") from exc
            raise
        try:
            for attempt in range(RETRIES + 1):
                before = os.fstat(fd)
                self._read_fd(fd, node, before, path, info)
                after = os.fstat(fd)
                if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
                    break
                if attempt == RETRIES:
                    info.warnings.append(f"{show_path(path)} kept changing while it was read; "
                                         "the last read is stored and may be inconsistent")
                    break
                os.lseek(fd, 0, os.SEEK_SET)
            # node.size was set by _read_fd to the bytes actually stored (the file's size
            # when it held still; what the last read saw when it kept changing)
            node.mtime_ns, node.ctime_ns = after.st_mtime_ns, after.st_ctime_ns
        except OSError as exc:
            raise SourceError(f"cannot read {show_path(path)}: {exc.strerror}; skipped") from exc
        finally:
            os.close(fd)
        return info

    def _read_fd(self, fd: int, node: Node, st, path: bytes, info: ReadInfo) -> None:
        name = os.path.basename(path).decode("utf-8", "surrogateescape")
        block = self.params.fixed_block_for(name, st.st_size)
        extents = data_extents(fd, st.st_size) if looks_sparse(st) else None
        if extents is None:
            os.lseek(fd, 0, os.SEEK_SET)
            ids, total, _ = self._store_chunks(lambda n: os.read(fd, n), block, st.st_size,
                                               lambda view: os.readv(fd, (view,)))
            node.content, node.extents = ids, []
            node.size = total
            info.bytes_read += total
            return
        all_ids = bytearray()
        out = []
        for offset, length in extents:
            pos = offset
            end = offset + length

            def read(n: int, _fd=fd) -> bytes:
                nonlocal pos
                n = min(n, end - pos)
                if n <= 0:
                    return b""
                data = os.pread(_fd, n, pos)
                pos += len(data)
                return data

            def readinto(view: memoryview, _fd=fd) -> int:
                nonlocal pos
                n = min(len(view), end - pos)
                if n <= 0:
                    return 0
                got = os.preadv(_fd, (view[:n],), pos)
                pos += got
                return got

            ids, total, count = self._store_chunks(read, block, length, readinto)
            all_ids += ids
            out.append((offset, total, count))
            info.bytes_read += total
        node.content, node.extents = bytes(all_ids), out
        node.size = st.st_size
