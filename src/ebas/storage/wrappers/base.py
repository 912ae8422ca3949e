"""``StoreWrapper``: a store that forwards every call to an inner store.

Wrappers subclass it and override only the operations whose behaviour they change.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ebas.storage.base import Capabilities, ObjectInfo, ObjectWriter, PartInfo, PendingUpload, Store


class StoreWrapper(Store):
    """Forwards everything to ``inner``; ``url`` and ``capabilities`` are the inner ones."""

    def __init__(self, inner: Store):
        self.inner = inner

    @property
    def url(self) -> str:  # type: ignore[override]
        return self.inner.url

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    def object_lock(self) -> tuple[str, float] | None:
        return self.inner.object_lock()

    def set_object_lock(self, mode: str, days: float) -> None:
        self.inner.set_object_lock(mode, days)

    def retention(self, name: str):
        return self.inner.retention(name)

    def extend_retention(self, name: str, until):
        return self.inner.extend_retention(name, until)

    def put(self, name: str, data: bytes) -> None:
        self.inner.put(name, data)

    def open_write(self, name: str) -> ObjectWriter:
        return self.inner.open_write(name)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, start, length)

    def get_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        return self.inner.get_many(names)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def begin_upload(self, name: str) -> str:
        return self.inner.begin_upload(name)

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        return self.inner.upload_part(upload_id, number, data)

    def parts(self, upload_id: str) -> list[PartInfo]:
        return self.inner.parts(upload_id)

    def complete(self, upload_id: str) -> None:
        self.inner.complete(upload_id)

    def abort(self, upload_id: str) -> None:
        self.inner.abort(upload_id)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        return self.inner.uploads(prefix)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.inner!r}>"
