"""An in-memory store for tests and scratch work.

``memory://NAME`` names a namespace shared by every ``MemoryStore`` opened with that
name in this process, so a test can "reopen" a store and see what an earlier instance
wrote (including pending resumable uploads). ``memory://`` (no name) is private to one
instance. Every operation is thread-safe.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import unquote, urlsplit

from ebas.errors import ObjectNotFound, UsageError
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.base import (
    Capabilities,
    ObjectInfo,
    PartInfo,
    PendingUpload,
    Store,
    check_name,
    check_part_number,
    range_bounds,
)
from ebas.storage.redact import redact_url


@dataclass
class _Upload:
    name: str
    parts: dict[int, bytes] = field(default_factory=dict)


@dataclass
class _Namespace:
    lock: threading.RLock = field(default_factory=threading.RLock)
    objects: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)


_SHARED: dict[str, _Namespace] = {}
_SHARED_LOCK = threading.Lock()


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class MemoryStore(Store):
    """A thread-safe store held in process memory.

    ``MemoryStore("name")`` attaches to the shared namespace ``name`` (created on first
    use, kept until :meth:`drop_namespace`); ``MemoryStore()`` gets a private one.
    """

    capabilities = Capabilities(parallel_writes=64, extra={"kind": "memory"})

    def __init__(self, name: str | None = None, *, clock: Clock | None = None,
                 entropy: Entropy | None = None):
        self._clock = clock or SYSTEM_CLOCK
        self._entropy = entropy or SYSTEM_ENTROPY
        if name:
            with _SHARED_LOCK:
                self._ns = _SHARED.setdefault(name, _Namespace())
        else:
            self._ns = _Namespace()
        self.url = f"memory://{name or ''}"

    @classmethod
    def from_url(cls, url: str, **options) -> "MemoryStore":
        """Open ``memory://NAME`` (shared by NAME) or ``memory://`` (private)."""
        parts = urlsplit(url)
        if parts.scheme != "memory":
            raise UsageError(f"not a memory store URL: {redact_url(url)!r}")
        name = unquote(parts.netloc + parts.path)
        return cls(name or None, **options)

    @staticmethod
    def drop_namespace(name: str) -> None:
        """Forget the shared namespace ``name`` (existing instances keep their data)."""
        with _SHARED_LOCK:
            _SHARED.pop(name, None)

    # -- objects
    def put(self, name: str, data: bytes) -> None:
        """Store a copy of ``data`` under ``name``; atomic because it is one dict update."""
        check_name(name)
        blob = bytes(data)
        with self._ns.lock:
            self._ns.objects[name] = (blob, self._clock.now_ns())

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Bytes ``start`` .. ``start + length`` of ``name`` (see ``Store.get``)."""
        blob = self._blob(name)
        lo, hi = range_bounds(name, len(blob), start, length)
        return blob[lo:hi]

    def stat(self, name: str) -> ObjectInfo:
        """Size and write time of ``name``."""
        check_name(name)
        with self._ns.lock:
            try:
                blob, mtime = self._ns.objects[name]
            except KeyError:
                raise ObjectNotFound(name, store=self.url) from None
        return ObjectInfo(name, len(blob), mtime)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """A snapshot of the objects under ``prefix`` taken when called."""
        with self._ns.lock:
            infos = [ObjectInfo(n, len(b), m) for n, (b, m) in self._ns.objects.items()
                     if n.startswith(prefix)]
        return iter(infos)

    def delete(self, name: str) -> None:
        """Remove ``name``; ``ObjectNotFound`` if absent."""
        check_name(name)
        with self._ns.lock:
            if self._ns.objects.pop(name, None) is None:
                raise ObjectNotFound(name, store=self.url)

    def _blob(self, name: str) -> bytes:
        check_name(name)
        with self._ns.lock:
            try:
                return self._ns.objects[name][0]
            except KeyError:
                raise ObjectNotFound(name, store=self.url) from None

    # -- resumable uploads
    def begin_upload(self, name: str) -> str:
        """Register an upload to ``name`` in the namespace and return its id."""
        check_name(name)
        upload_id = self._entropy.token_bytes(16).hex()
        with self._ns.lock:
            self._ns.uploads[upload_id] = _Upload(name)
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Store (or replace) part ``number`` of the upload."""
        check_part_number(number)
        blob = bytes(data)
        with self._ns.lock:
            self._upload(upload_id).parts[number] = blob
        return PartInfo(number, len(blob), _etag(blob))

    def parts(self, upload_id: str) -> list[PartInfo]:
        """Parts stored so far, sorted by number."""
        with self._ns.lock:
            parts = dict(self._upload(upload_id).parts)
        return [PartInfo(n, len(b), _etag(b)) for n, b in sorted(parts.items())]

    def complete(self, upload_id: str) -> None:
        """Join the parts in number order and publish them in one step."""
        with self._ns.lock:
            upload = self._upload(upload_id)
            data = b"".join(b for _, b in sorted(upload.parts.items()))
            self._ns.objects[upload.name] = (data, self._clock.now_ns())
            del self._ns.uploads[upload_id]

    def abort(self, upload_id: str) -> None:
        """Discard the upload; ``ObjectNotFound`` if it is unknown."""
        with self._ns.lock:
            self._upload(upload_id)
            del self._ns.uploads[upload_id]

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Pending uploads whose target name starts with ``prefix``."""
        with self._ns.lock:
            return [PendingUpload(u.name, uid) for uid, u in self._ns.uploads.items()
                    if u.name.startswith(prefix)]

    def _upload(self, upload_id: str) -> _Upload:
        try:
            return self._ns.uploads[upload_id]
        except (KeyError, TypeError):
            raise ObjectNotFound(f"upload {upload_id}", store=self.url,
                                 hint="the upload was completed, aborted or never begun") from None
