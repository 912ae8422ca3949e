"""Streams into and out of the tape store's disk staging.

:class:`SpoolWriter` collects an ``open_write`` stream in a spooled temporary file and
writes it to tape on ``commit``; :class:`ConcatReader` reads the staged parts of a
resumable upload one after another. Both are seekable: after an end of medium in the
middle of a record the store reads the segment again from its start.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import BinaryIO

from ebas.errors import UsageError
from ebas.storage.base import ObjectWriter

SPOOL_IN_MEMORY = 32 * 1024 * 1024


class SpoolWriter(ObjectWriter):
    """Collects a stream in a spooled temporary file; ``commit`` writes it to tape."""

    def __init__(self, store, name: str):
        self._store, self._name = store, name
        spool_dir = os.path.join(store.root, "staging")
        os.makedirs(spool_dir, exist_ok=True)
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=spool_dir)
        self._size = 0
        self._status = "open"

    def write(self, data: bytes) -> None:
        if self._status != "open":
            raise UsageError(f"write to {self._name!r} after commit or abort")
        self._spool.write(data)
        self._size += len(data)

    def commit(self) -> None:
        if self._status == "committed":
            return
        if self._status != "open":
            raise UsageError(f"commit of {self._name!r} after abort")
        self._spool.seek(0)
        try:
            self._store._write(self._name, self._size, self._spool)
        except BaseException:
            self.abort()
            raise
        self._status = "committed"
        self._spool.close()

    def abort(self) -> None:
        if self._status == "open":
            self._status = "aborted"
            self._spool.close()


class ConcatReader(io.RawIOBase):
    """Reads several files one after another (the staged parts of an upload); seekable."""

    def __init__(self, paths: list[str]):
        self._all = list(paths)
        self._paths = list(paths)
        self._current: BinaryIO | None = None

    def read(self, n: int = -1) -> bytes:
        while True:
            if self._current is None:
                if not self._paths:
                    return b""
                self._current = open(self._paths.pop(0), "rb")
            chunk = self._current.read(n)
            if chunk:
                return chunk
            self._current.close()
            self._current = None

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        """Go to absolute position ``pos`` (only ``SEEK_SET``)."""
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks")
        if self._current is not None:
            self._current.close()
            self._current = None
        self._paths = list(self._all)
        left = pos
        while self._paths and left >= os.path.getsize(self._paths[0]):
            left -= os.path.getsize(self._paths.pop(0))
        if self._paths:
            self._current = open(self._paths.pop(0), "rb")
            self._current.seek(left)
        return pos

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()
