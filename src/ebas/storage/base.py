"""The ``Store`` contract: named immutable objects in a flat namespace.

Promises every backend keeps (the conformance suite in ``ebas.storage.testing`` checks
them against every backend and wrapper):

* ``put`` is atomic: a reader sees either no object or the whole object, never a prefix.
  A ``put`` over an existing name replaces it atomically (repository objects are
  content-addressed, so a replacement carries the same bytes).
* A read after a completed write sees the write.
* A missing object raises :class:`ebas.errors.ObjectNotFound` from ``get``, ``stat``
  and ``delete``.
* ``get(name, start, length)`` with a range that starts past the end raises
  :class:`ebas.errors.InvalidRange`; a range running past the end returns what exists.
* ``list(prefix)`` yields only complete objects (never temporary or in-flight uploads),
  in no particular order.
* Resumable uploads: ``begin_upload`` returns an id that survives the process; parts
  uploaded are visible through ``parts(upload_id)`` from any process, ``complete``
  assembles them atomically under the final name in part-number order, ``abort``
  discards them; ``uploads(prefix)`` finds uploads left behind by a crash.
* Backend failures are mapped to ebas errors; only :class:`TransientStoreError` is
  retryable.

Names are ``/``-separated, relative, without ``.``/``..`` segments, empty segments or
NUL bytes (``check_name``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Iterator

from ebas.errors import UsageError


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object."""

    name: str
    size: int
    mtime_ns: int = 0


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part of a resumable upload."""

    number: int
    size: int
    etag: str = ""


@dataclass(frozen=True)
class PendingUpload:
    """An upload that was begun and neither completed nor aborted."""

    name: str
    upload_id: str


@dataclass(frozen=True)
class Capabilities:
    """What differs between stores, as data rather than extra methods."""

    atomic_rename: bool = True
    ranged_reads: bool = True
    random_access: bool = True  # False for tape: reads are sequential and costly
    deletes: bool = True  # False for append-only views and tape volumes
    max_part_size: int = 5 * 1024**3
    min_part_size: int = 1  # S3 requires 5 MiB for all parts but the last
    cold_tier: bool = False
    parallel_writes: int = 8
    extra: dict = field(default_factory=dict)


class ObjectWriter(abc.ABC):
    """A streaming write; nothing is visible under the final name until ``commit``."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append bytes to the object being written."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the whole object visible atomically under its final name."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard what was written; safe to call more than once."""

    def __enter__(self) -> "ObjectWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class BufferedWriter(ObjectWriter):
    """An ``ObjectWriter`` that collects bytes in memory and calls ``store.put`` on commit."""

    def __init__(self, store: "Store", name: str):
        self._store = store
        self._name = name
        self._parts: list[bytes] = []
        self._done = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError("write after commit/abort")
        self._parts.append(bytes(data))

    def commit(self) -> None:
        if self._done:
            return
        self._store.put(self._name, b"".join(self._parts))
        self._done = True
        self._parts = []

    def abort(self) -> None:
        self._done = True
        self._parts = []


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise ``UsageError``."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"invalid object name {name!r}: empty")
    if "\x00" in name or name.startswith("/") or name.endswith("/"):
        raise UsageError(f"invalid object name {name!r}")
    for seg in name.split("/"):
        if seg in ("", ".", ".."):
            raise UsageError(f"invalid object name {name!r}: bad segment {seg!r}")
    return name


MAX_PART_NUMBER = 10_000  # S3's limit; every backend accepts parts 1..MAX_PART_NUMBER


def range_bounds(name: str, size: int, start: int = 0, length: int | None = None) -> tuple[int, int]:
    """Clamp a read of ``length`` bytes at ``start`` to an object of ``size`` bytes.

    Returns ``(start, end)`` with ``end <= size``. Raises ``UsageError`` for a negative
    ``start`` or ``length`` and :class:`~ebas.errors.InvalidRange` when ``start`` lies
    past the end (``start == size`` is allowed and reads nothing).
    """
    from ebas.errors import InvalidRange

    if start < 0 or (length is not None and length < 0):
        raise UsageError(f"invalid range start={start} length={length} for {name!r}")
    if start > size:
        raise InvalidRange(f"range start {start} is past the end of {name!r} ({size} bytes)")
    end = size if length is None else min(size, start + length)
    return start, end


def check_part_number(number: int) -> int:
    """Return ``number`` if it is a valid part number (1..``MAX_PART_NUMBER``), else ``UsageError``."""
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= MAX_PART_NUMBER:
        raise UsageError(f"invalid part number {number!r}: must be 1..{MAX_PART_NUMBER}")
    return number


class Store(abc.ABC):
    """A flat namespace of immutable named objects (see the module docstring)."""

    url: str = ""
    capabilities: Capabilities = Capabilities()

    # -- objects
    @abc.abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` atomically."""

    def open_write(self, name: str) -> ObjectWriter:
        """A streaming writer for ``name``; visible only after ``commit``."""
        return BufferedWriter(self, check_name(name))

    @abc.abstractmethod
    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Bytes of ``name`` from ``start``; ``length`` None reads to the end."""

    def get_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """``(name, bytes)`` of every object in ``names``, in the order the store reads
        best: the order given by default; a tape store reads in tape order, mounting
        each cartridge once. Missing objects raise ``ObjectNotFound``."""
        for name in dict.fromkeys(names):
            yield name, self.get(name)

    @abc.abstractmethod
    def stat(self, name: str) -> ObjectInfo:
        """Size (and mtime where known) of ``name``."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every complete object whose name starts with ``prefix``."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name``; ``ObjectNotFound`` if it does not exist."""

    def exists(self, name: str) -> bool:
        """True if ``name`` is stored."""
        from ebas.errors import ObjectNotFound

        try:
            self.stat(name)
            return True
        except ObjectNotFound:
            return False

    # -- resumable uploads
    @abc.abstractmethod
    def begin_upload(self, name: str) -> str:
        """Start a resumable upload to ``name`` and return its id."""

    @abc.abstractmethod
    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Upload (or re-upload) part ``number`` (1-based) of an upload."""

    @abc.abstractmethod
    def parts(self, upload_id: str) -> list[PartInfo]:
        """Parts already stored for an upload, sorted by number."""

    @abc.abstractmethod
    def complete(self, upload_id: str) -> None:
        """Assemble the parts in number order and publish the object atomically."""

    @abc.abstractmethod
    def abort(self, upload_id: str) -> None:
        """Discard an upload and its parts."""

    @abc.abstractmethod
    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Uploads begun but neither completed nor aborted (e.g. left by a crash)."""

    # -- write-once retention (S3 Object Lock); most stores have none
    def object_lock(self) -> tuple[str, float] | None:
        """``(mode, days)`` of the retention every write sets, or None."""
        return None

    def set_object_lock(self, mode: str, days: float) -> None:
        """Make every later write set ``mode`` retention for ``days`` days."""
        raise UsageError(f"{self.url}: this store does not support object lock (write-once retention)")

    def retention(self, name: str) -> tuple[str | None, "datetime | None"]:
        """``(mode, retain_until)`` of ``name`` (aware UTC datetime), ``(None, None)`` if unlocked."""
        return None, None

    def extend_retention(self, name: str, until: "datetime") -> "datetime":
        """Keep ``name`` retained until at least ``until`` (never shortens); the date in force."""
        raise UsageError(f"{self.url}: this store does not support object lock (write-once retention)")

    def close(self) -> None:
        """Release connections and handles."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
