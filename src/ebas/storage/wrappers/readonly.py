"""Views of a store that refuse some operations: read-only and append-only.

These are client-side guards against mistakes. Protection against a hostile client
holding the same credentials needs the store's own enforcement (S3 Object Lock, Azure
immutability policies, a server that refuses deletes for these credentials).
"""

from __future__ import annotations

import dataclasses

from ebas.errors import PermissionDenied
from ebas.storage.base import Capabilities, ObjectWriter, PartInfo, Store, check_name
from ebas.storage.wrappers.base import StoreWrapper

APPEND_ONLY_MESSAGE = ("this repository is append-only for this client; "
                       "prune needs maintenance credentials")


class ReadOnlyStore(StoreWrapper):
    """Reads pass through; every write, delete or upload step raises ``PermissionDenied``."""

    def _refuse(self, op: str, what: str) -> None:
        raise PermissionDenied(f"cannot {op} {what!r}: {self.inner.url} is opened read-only",
                               hint="open the repository without --read-only to change it")

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        caps = self.inner.capabilities
        return dataclasses.replace(caps, deletes=False, extra={**caps.extra, "read_only": True})

    def put(self, name: str, data: bytes) -> None:
        self._refuse("write", name)

    def open_write(self, name: str) -> ObjectWriter:
        self._refuse("write", name)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, name: str) -> None:
        self._refuse("delete", name)

    def begin_upload(self, name: str) -> str:
        self._refuse("upload", name)
        raise AssertionError("unreachable")  # pragma: no cover

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        self._refuse("upload to", upload_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def complete(self, upload_id: str) -> None:
        self._refuse("complete upload", upload_id)

    def abort(self, upload_id: str) -> None:
        self._refuse("abort upload", upload_id)

    def extend_retention(self, name: str, until):
        self._refuse("extend the retention of", name)


class AppendOnlyStore(StoreWrapper):
    """Writes and uploads pass through; ``delete`` raises ``PermissionDenied``.

    Names starting with one of ``deletable_prefixes`` (e.g. a repository's lock files)
    may still be deleted. Aborting an unfinished upload is allowed: it removes no object.
    """

    def __init__(self, inner: Store, *, deletable_prefixes: tuple[str, ...] = ()):
        super().__init__(inner)
        self.deletable_prefixes = tuple(deletable_prefixes)

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        caps = self.inner.capabilities
        return dataclasses.replace(caps, deletes=False, extra={**caps.extra, "append_only": True})

    def delete(self, name: str) -> None:
        check_name(name)
        if self.deletable_prefixes and name.startswith(self.deletable_prefixes):
            self.inner.delete(name)
            return
        raise PermissionDenied(f"cannot delete {name!r}: {APPEND_ONLY_MESSAGE}",
                               hint="run prune or forget from a host with maintenance credentials")
