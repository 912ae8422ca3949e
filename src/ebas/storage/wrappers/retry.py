"""``RetryingStore``: retry retryable failures with exponential backoff and full jitter.

Only errors whose ``retryable`` flag is set (``TransientStoreError``) are retried; the
delay comes from :class:`ebas.flow.Backoff` and is slept through the injected ``Clock``.
Every store operation is safe to repeat: ``put`` and ``upload_part`` resend the same
bytes, reads have no effect. Two are made idempotent here: a ``delete`` or upload
``abort`` that fails transiently and then finds nothing on a later attempt counts as
done (the earlier attempt probably succeeded). ``list`` is read completely before it
is returned, so a retry never yields an object twice. A stream from ``open_write`` is
opened with retries, but its ``write`` and ``commit`` are not retried: the bytes are
gone, and the caller must restart the stream (nothing partial was published).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, TypeVar

from ebas.errors import ObjectNotFound
from ebas.flow.backoff import Backoff
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.base import ObjectInfo, ObjectWriter, PartInfo, PendingUpload, Store
from ebas.storage.wrappers.base import StoreWrapper

T = TypeVar("T")
RetryHook = Callable[[str, int, BaseException, float], None]


class RetryingStore(StoreWrapper):
    """Retries each operation up to ``attempts`` times in all (1 = no retries).

    ``on_retry(op, attempt, error, delay)`` is called before each sleep (for logs and
    metrics); ``retries`` counts the retries done so far.
    """

    def __init__(self, inner: Store, clock: Clock | None = None, entropy: Entropy | None = None, *,
                 attempts: int = 5, base_delay: float = 0.2, max_delay: float = 30.0,
                 on_retry: RetryHook | None = None):
        super().__init__(inner)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.clock = clock or SYSTEM_CLOCK
        self.entropy = entropy or SYSTEM_ENTROPY
        self.attempts = attempts
        self.backoff = Backoff(base=base_delay, cap=max_delay)
        self.on_retry = on_retry
        self.retries = 0
        self._lock = threading.Lock()

    def _call(self, op: str, fn: Callable[[], T], *, gone_is_done: bool = False) -> T:
        failed_before = False
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if gone_is_done and failed_before and isinstance(exc, ObjectNotFound):
                    return None  # type: ignore[return-value]
                if not getattr(exc, "retryable", False):
                    raise
                if attempt == self.attempts:
                    exc.add_note(f"ebas: {op} gave up after {self.attempts} attempts")
                    raise
                failed_before = True
                self._pause(op, attempt, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, op: str, attempt: int, exc: BaseException) -> None:
        delay = self.backoff.delay(attempt, self.entropy)
        with self._lock:
            self.retries += 1
        if self.on_retry is not None:
            self.on_retry(op, attempt, exc, delay)
        self.clock.sleep(delay)

    def get_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """The inner store's batch read (its order is kept); after a retryable failure the
        objects not returned yet are asked for again, so each is yielded once."""
        todo = dict.fromkeys(names)
        attempt = 0
        while todo:
            try:
                for name, data in self.inner.get_many(list(todo)):
                    todo.pop(name, None)
                    attempt = 0
                    yield name, data
                return
            except Exception as exc:
                attempt += 1
                if not getattr(exc, "retryable", False):
                    raise
                if attempt >= self.attempts:
                    exc.add_note(f"ebas: get_many gave up after {self.attempts} attempts")
                    raise
                self._pause("get_many", attempt, exc)

    def put(self, name: str, data: bytes) -> None:
        self._call("put", lambda: self.inner.put(name, data))

    def open_write(self, name: str) -> ObjectWriter:
        return self._call("open_write", lambda: self.inner.open_write(name))

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        return self._call("get", lambda: self.inner.get(name, start, length))

    def stat(self, name: str) -> ObjectInfo:
        return self._call("stat", lambda: self.inner.stat(name))

    def retention(self, name: str):
        return self._call("retention", lambda: self.inner.retention(name))

    def extend_retention(self, name: str, until):
        return self._call("extend_retention", lambda: self.inner.extend_retention(name, until))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._call("list", lambda: [*self.inner.list(prefix)]))

    def delete(self, name: str) -> None:
        self._call("delete", lambda: self.inner.delete(name), gone_is_done=True)

    def begin_upload(self, name: str) -> str:
        return self._call("begin_upload", lambda: self.inner.begin_upload(name))

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        return self._call("upload_part", lambda: self.inner.upload_part(upload_id, number, data))

    def parts(self, upload_id: str) -> list[PartInfo]:
        return self._call("parts", lambda: self.inner.parts(upload_id))

    def complete(self, upload_id: str) -> None:
        self._call("complete", lambda: self.inner.complete(upload_id))

    def abort(self, upload_id: str) -> None:
        self._call("abort", lambda: self.inner.abort(upload_id), gone_is_done=True)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        return self._call("uploads", lambda: self.inner.uploads(prefix))
