"""``CountingStore``: count the requests and bytes a client sends to a store.

Cloud storage is billed per request as well as per byte (S3: PUT, COPY, POST and LIST
in one price class, GET and HEAD in a cheaper one; Azure and GCS have similar
classes), so what a repository costs to run depends on how many store calls its
backups, restores and prunes make. ``CountingStore`` records, per operation, how many
calls were made and how many failed, the bytes sent and received and the objects
listed. It sits directly on the backend, inside the retry wrapper, so that every
attempt counts as the request it is::

    counts = StoreCounts()
    store = build_stack(open_store(url), counts=counts)   # backend -> counting -> retry
    before = counts.snapshot()
    ...                                                  # a backup through ``store``
    spent = counts.snapshot() - before
    spent.classes()   # {"put": 41, "get": 3, "list": 9, "other": 2}

How calls map onto provider requests: ``put``, ``get`` (whole or ranged), ``stat``
(HEAD), ``delete`` and each resumable-upload step are one request each on the cloud
backends; a ``list`` is one request per page, estimated as one page per started 1,000
names (S3 and GCS pages hold 1,000, Azure 5,000: an upper bound there). Exceptions the
counts do not see: a ``put`` above a backend's multipart threshold (S3 64 MiB, GCS
resumable uploads above 8 MiB: an initiation plus one request per chunk), a stream
from ``open_write`` longer than one part (counted once, at ``commit``), deletes in a
versioned S3 bucket (a listing of versions plus one delete per version), and the
retries an SDK makes on its own (ebas sets them to 0 by default). SFTP has no billing;
its counts are SFTP operations.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from ebas.storage.base import ObjectInfo, ObjectWriter, PartInfo, PendingUpload, Store
from ebas.storage.wrappers.base import StoreWrapper

PAGE = 1000
"""Names per listing page assumed by ``list_pages`` (S3 and GCS; Azure pages hold 5,000)."""

CLASSES = {
    "put": ("put", "commit", "begin_upload", "upload_part", "complete"),
    "get": ("get",),
    "list": ("list_pages", "parts", "uploads"),
    "other": ("stat", "delete", "abort"),
}
"""Request classes as the bills group them: writes, reads, listings, and the rest
(HEAD is billed like a GET by S3, DELETE is free there; both are shown apart)."""


@dataclass(frozen=True)
class Counts:
    """An immutable reading of a :class:`StoreCounts`; subtract two to get a phase.

    ``calls`` and ``errors`` are keyed by operation (``put``, ``get``, ``stat``, ``list``,
    ``delete``, ``begin_upload``, ``upload_part``, ``parts``, ``complete``, ``abort``,
    ``uploads``, and ``commit`` for streams from ``open_write``); ``calls["list_pages"]``
    is the estimated number of listing requests. ``bytes_sent`` counts object bytes
    written, ``bytes_received`` object bytes read, ``listed`` the names listings returned.
    """

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    listed: int = 0

    def __sub__(self, other: "Counts") -> "Counts":
        return Counts(_minus(self.calls, other.calls), _minus(self.errors, other.errors),
                      self.bytes_sent - other.bytes_sent, self.bytes_received - other.bytes_received,
                      self.listed - other.listed)

    def classes(self) -> dict[str, int]:
        """Requests per class (``put``, ``get``, ``list``, ``other``; see :data:`CLASSES`)."""
        return {cls: sum(self.calls.get(op, 0) for op in ops) for cls, ops in CLASSES.items()}

    @property
    def requests(self) -> int:
        """Every request counted (listings by estimated pages)."""
        return sum(self.classes().values())

    def to_json(self) -> dict:
        """JSON-able form, with the classes and the request total."""
        return {"calls": dict(sorted(self.calls.items())), "errors": dict(sorted(self.errors.items())),
                "classes": self.classes(), "requests": self.requests, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "listed": self.listed}


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)}
    return {k: v for k, v in out.items() if v}


class StoreCounts:
    """Thread-safe live counters, shared by every :class:`CountingStore` given them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._sent = 0
        self._received = 0
        self._listed = 0

    def call(self, op: str, *, sent: int = 0, pages: int = 0) -> None:
        """Record one call of ``op`` (``sent`` bytes of payload)."""
        with self._lock:
            self._calls[op] += 1
            if pages:
                self._calls["list_pages"] += pages
            self._sent += sent

    def failed(self, op: str) -> None:
        """Record that a call of ``op`` raised (it still counts as a request)."""
        with self._lock:
            self._errors[op] += 1

    def received(self, nbytes: int) -> None:
        """Record ``nbytes`` of object data read."""
        with self._lock:
            self._received += nbytes

    def listed(self, *, new_page: bool = False) -> None:
        """One more name returned by a listing (``new_page``: it starts another page)."""
        with self._lock:
            self._listed += 1
            if new_page:
                self._calls["list_pages"] += 1

    def snapshot(self) -> Counts:
        """The counts so far."""
        with self._lock:
            return Counts(dict(self._calls), dict(self._errors), self._sent, self._received, self._listed)


class CountingStore(StoreWrapper):
    """Forwards every call to ``inner`` and records it in ``counts`` (see the module docstring)."""

    def __init__(self, inner: Store, counts: StoreCounts | None = None):
        super().__init__(inner)
        self.counts = counts if counts is not None else StoreCounts()

    def _run(self, op: str, fn, *args, sent: int = 0, pages: int = 0):
        self.counts.call(op, sent=sent, pages=pages)
        try:
            return fn(*args)
        except BaseException:
            self.counts.failed(op)
            raise

    def put(self, name: str, data: bytes) -> None:
        self._run("put", self.inner.put, name, data, sent=len(data))

    def open_write(self, name: str) -> ObjectWriter:
        return _CountingWriter(self.inner.open_write(name), self.counts)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        data = self._run("get", self.inner.get, name, start, length)
        self.counts.received(len(data))
        return data

    def get_many(self, names):
        """The inner store's batch read, each object counted as one ``get``."""
        it = iter(self.inner.get_many(names))
        while True:
            try:
                name, data = next(it)
            except StopIteration:
                return
            except BaseException:
                self.counts.call("get")
                self.counts.failed("get")
                raise
            self.counts.call("get")
            self.counts.received(len(data))
            yield name, data

    def stat(self, name: str) -> ObjectInfo:
        return self._run("stat", self.inner.stat, name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        it = self._run("list", self.inner.list, prefix, pages=1)
        return self._count_list(it)

    def _count_list(self, it: Iterator[ObjectInfo]) -> Iterator[ObjectInfo]:
        n = 0
        try:
            for info in it:
                self.counts.listed(new_page=n > 0 and n % PAGE == 0)
                n += 1
                yield info
        except GeneratorExit:  # the caller stopped reading: not a failure
            raise
        except BaseException:
            self.counts.failed("list")
            raise

    def delete(self, name: str) -> None:
        self._run("delete", self.inner.delete, name)

    def begin_upload(self, name: str) -> str:
        return self._run("begin_upload", self.inner.begin_upload, name)

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        return self._run("upload_part", self.inner.upload_part, upload_id, number, data, sent=len(data))

    def parts(self, upload_id: str) -> list[PartInfo]:
        return self._run("parts", self.inner.parts, upload_id)

    def complete(self, upload_id: str) -> None:
        self._run("complete", self.inner.complete, upload_id)

    def abort(self, upload_id: str) -> None:
        self._run("abort", self.inner.abort, upload_id)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        return self._run("uploads", self.inner.uploads, prefix)


class _CountingWriter(ObjectWriter):
    """A stream whose bytes count as sent and whose ``commit`` counts as one request."""

    def __init__(self, inner: ObjectWriter, counts: StoreCounts):
        self.inner, self.counts, self.size = inner, counts, 0

    def write(self, data: bytes) -> None:
        self.inner.write(data)
        self.size += len(data)

    def commit(self) -> None:
        self.counts.call("commit", sent=self.size)
        try:
            self.inner.commit()
        except BaseException:
            self.counts.failed("commit")
            raise

    def abort(self) -> None:
        self.inner.abort()


__all__ = ["CLASSES", "Counts", "CountingStore", "PAGE", "StoreCounts"]
