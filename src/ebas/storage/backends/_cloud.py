"""Pieces shared by the network backends (S3, Azure Blob, GCS, SFTP) and tape.

* :func:`split_url` and :class:`Options`: ``scheme://netloc/path?opt=value`` plus
  keyword options (keywords win), each converted and checked once.
* :class:`KeyMap`: object names under a key prefix, with the reserved ``.ebas-*``
  first segment hidden from listings.
* :class:`PartedWriter`: an ``open_write`` stream that buffers up to one part and
  becomes a single put when small, or a multipart/block/resumable upload when large;
  nothing is visible until ``commit``.
* :class:`ObjectArchived` and :class:`ObjectLocked` (defined in :mod:`ebas.errors`, re-exported): the errors for a cold
  tier and for write-once retention (subclasses of the ebas tree, so callers that
  catch ``StoreError`` / ``PermissionDenied`` keep working).
"""

from __future__ import annotations

import datetime as dt
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from ebas.errors import ObjectArchived, ObjectLocked, UsageError  # noqa: F401 - re-exported for the backends
from ebas.storage.base import ObjectWriter, check_name
from ebas.storage.redact import redact_url
from ebas.units import parse_duration, parse_size

MiB = 1024 * 1024
RESERVED_PREFIX = ".ebas-"  # first path segment reserved for backend bookkeeping




# ------------------------------------------------------------------ URL and options
def split_url(url: str, scheme: str | tuple[str, ...]) -> tuple[str, str, dict[str, str], str]:
    """``(netloc, path, query options, scheme)`` of ``url``; the path has no leading ``/``."""
    schemes = (scheme,) if isinstance(scheme, str) else scheme
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        raise UsageError(f"not a {'/'.join(s + '://' for s in schemes)} URL: {redact_url(url)!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parts.netloc, unquote(parts.path).strip("/"), query, parts.scheme.lower()


def as_bool(value) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (case-insensitive) or a real bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"expected a yes/no value, got {value!r}")


def as_size(value) -> int:
    """A byte count: an int, or a size of :func:`ebas.units.parse_size` (``8MiB``, ``512K``,
    ``1048576``; ``MB`` is 1000-based, ``M`` and ``MiB`` 1024-based)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise UsageError(f"a size cannot be negative: {value}")
        return value
    return parse_size(str(value))


def as_seconds(value) -> float:
    """Seconds: a number (these options have always been seconds) or a duration of
    :func:`ebas.units.parse_duration` (``90s``, ``2min``)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return parse_duration(str(value))
    if seconds < 0:
        raise UsageError(f"a duration cannot be negative: {value!r}")
    return seconds


def as_float(value) -> float:
    """A float (seconds)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"expected a number, got {value!r}") from None


def as_prefixes(value) -> tuple[str, ...]:
    """A tuple of name prefixes from a tuple/list or a comma-separated string."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if str(v))
    return tuple(p for p in str(value).split(",") if p)


class Options:
    """URL query options merged with keyword options, converted per ``spec``.

    ``spec`` maps an option name to ``(converter, default)``. Unknown options raise
    ``UsageError`` naming the known ones, so a typo never silently does nothing.
    """

    def __init__(self, backend: str, spec: dict[str, tuple[Callable, object]],
                 query: dict[str, str], keywords: dict):
        self.values: dict[str, object] = {}
        given = {**query, **keywords}
        unknown = sorted(set(given) - set(spec))
        if unknown:
            raise UsageError(f"unknown {backend} store option(s): {', '.join(unknown)}",
                             hint=f"known options: {', '.join(sorted(spec))}")
        for key, (convert, default) in spec.items():
            raw = given.get(key, default)
            self.values[key] = raw if raw is None or key not in given else convert(raw)

    def __getitem__(self, key: str):
        return self.values[key]

    def get(self, key: str, default=None):
        value = self.values.get(key)
        return default if value is None else value


# ------------------------------------------------------------------ names and keys
class KeyMap:
    """Maps object names to provider keys under ``prefix`` and back."""

    def __init__(self, prefix: str):
        self.prefix = prefix.strip("/")
        self.root = f"{self.prefix}/" if self.prefix else ""

    def key(self, name: str) -> str:
        """The provider key of object ``name`` (checked, not reserved)."""
        check_name(name)
        if name.startswith(RESERVED_PREFIX):
            raise UsageError(f"object names starting with {RESERVED_PREFIX!r} are reserved "
                             f"for the store's bookkeeping: {name!r}")
        return self.root + name

    def internal(self, name: str) -> str:
        """The key of a bookkeeping object (``.ebas-...``) under the prefix."""
        return self.root + name

    def name(self, key: str) -> str | None:
        """The object name for ``key``, or None for bookkeeping and foreign keys."""
        if not key.startswith(self.root):
            return None
        name = key[len(self.root):]
        if not name or name.startswith(RESERVED_PREFIX):
            return None
        return name

    def list_prefix(self, prefix: str) -> str:
        """The provider listing prefix for object-name ``prefix``."""
        if "\x00" in prefix:
            raise UsageError(f"invalid prefix {prefix!r}")
        return self.root + prefix


def utc_ns(value: dt.datetime | None) -> int:
    """Nanoseconds since the epoch of an aware datetime (0 for None)."""
    if value is None:
        return 0
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp()) * 10**9 + value.microsecond * 1000


# ------------------------------------------------------------------ streaming writer
class PartedWriter(ObjectWriter):
    """Buffers a stream; one ``put_small`` if it stays under ``part_size``, else parts.

    Hooks: ``put_small(data)``; ``start() -> state``; ``send(state, number, data)``;
    ``finish(state, count)`` publishes atomically; ``cancel(state)`` discards. With
    ``tail_in_finish`` the last (possibly short) part is not sent by ``send`` but given
    to ``finish(state, count, tail)`` (GCS must mark the final chunk). A failed hook
    aborts the stream (nothing is published) and the error propagates.
    """

    def __init__(self, name: str, part_size: int, *, put_small: Callable[[bytes], None],
                 start: Callable[[], object], send: Callable[[object, int, bytes], None],
                 finish: Callable[..., None], cancel: Callable[[object], None],
                 tail_in_finish: bool = False):
        self._tail_in_finish = tail_in_finish
        self._name, self._part_size = name, part_size
        self._put_small, self._start, self._send = put_small, start, send
        self._finish, self._cancel = finish, cancel
        self._buf = bytearray()
        self._state: object = None
        self._started = False
        self._count = 0
        self._status = "open"

    def write(self, data: bytes) -> None:
        """Append ``data``; full parts are sent as they fill."""
        if self._status != "open":
            raise UsageError(f"write to {self._name!r} after commit or abort")
        self._buf += memoryview(data).cast("B")
        while len(self._buf) > self._part_size:  # keep the tail: it may be the last part
            self._flush(self._part_size)

    def _flush(self, size: int) -> None:
        try:
            if not self._started:
                self._state = self._start()
                self._started = True
            chunk = bytes(self._buf[:size])
            self._count += 1
            self._send(self._state, self._count, chunk)
            del self._buf[:size]
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        """Send what is left and publish the object. Idempotent."""
        if self._status == "committed":
            return
        if self._status != "open":
            raise UsageError(f"commit of {self._name!r} after abort")
        try:
            if not self._started:
                self._put_small(bytes(self._buf))
            elif self._tail_in_finish:
                self._finish(self._state, self._count, bytes(self._buf))
            else:
                if self._buf:
                    self._flush(len(self._buf))
                self._finish(self._state, self._count)
        except BaseException:
            self.abort()
            raise
        self._buf = bytearray()
        self._status = "committed"

    def abort(self) -> None:
        """Discard the stream; safe to call more than once."""
        if self._status != "open":
            return
        self._status = "aborted"
        self._buf = bytearray()
        if self._started:
            try:
                self._cancel(self._state)
            except Exception:  # noqa: BLE001 - best effort; leftovers are listed by uploads()
                pass
