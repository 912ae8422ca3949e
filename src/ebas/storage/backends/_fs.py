"""Filesystem helpers for the file backend: error mapping and atomic files.

``AtomicFile`` is the only way the file backend writes: bytes stream into a temporary
file in a hidden directory on the same filesystem, then ``fsync``, ``os.replace`` onto
the final path and ``fsync`` of the directory. A failure at any step removes the
temporary file, so nothing partial is ever visible under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import os

from ebas.errors import (
    EbasError,
    ObjectNotFound,
    PermissionDenied,
    StoreError,
    StoreFull,
    TransientStoreError,
    UsageError,
)
from ebas.runtime import Entropy
from ebas.storage.base import ObjectWriter

_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_TRANSIENT = {
    errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE,
    errno.ECONNRESET, errno.ECONNABORTED, errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH,
}
_SHAPE = {errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY}

CONFLICT_HINT = ("a file store keeps objects as files, so it cannot hold both 'a' and 'a/b'; "
                 "use names that do not nest under other objects")


def map_os_error(exc: OSError, name: str, url: str, op: str, *, reading: bool = False) -> EbasError:
    """The ebas error for an ``OSError`` raised while doing ``op`` on object ``name``.

    ``reading`` marks operations on an existing object (get, stat, delete), where a path
    that is a directory, or runs through a file, means the object does not exist.
    """
    code = exc.errno
    what = f"{op} {name!r} in {url}: {exc.strerror or exc}"
    if code == errno.ENOENT or (reading and code in _SHAPE):
        return ObjectNotFound(name, store=url)
    if code in _PERMISSION:
        return PermissionDenied(f"permission denied: {what}")
    if code in _FULL:
        return StoreFull(f"no space left: {what}")
    if code in _TRANSIENT:
        return TransientStoreError(f"I/O error (may be temporary): {what}")
    if code == errno.ENAMETOOLONG:
        return UsageError(f"object name too long for this file system: {what}")
    if code in _SHAPE:
        return StoreError(f"name conflict: {what}", hint=CONFLICT_HINT)
    return StoreError(f"file store error: {what}")


@contextlib.contextmanager
def translated(name: str, url: str, op: str, *, reading: bool = False):
    """Re-raise any ``OSError`` inside the block as the matching ebas error."""
    try:
        yield
    except OSError as exc:
        raise map_os_error(exc, name, url, op, reading=reading) from exc


def fsync_dir(path: str) -> None:
    """Flush a directory's entries (new, renamed or removed names) to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str, *, fsync: bool) -> None:
    """Create ``path`` and missing parents; with ``fsync``, make each new entry durable.

    Raises ``NotADirectoryError`` when a component exists and is not a directory.
    """
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:  # pragma: no cover - the filesystem root always exists
            break
        path = parent
    for new in reversed(missing):
        try:
            os.mkdir(new)
        except FileExistsError:
            if not os.path.isdir(new):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), new) from None
            continue
        if fsync:
            fsync_dir(os.path.dirname(new))


class AtomicFile(ObjectWriter):
    """Streams into ``tmp_dir`` and, on ``commit``, renames onto ``final`` atomically.

    ``make_parents=False`` refuses to create the final directory (the caller treats a
    missing directory as "gone", e.g. an aborted upload). Errors are raised as ebas
    errors naming ``name``; after any error the temporary file is gone.
    """

    def __init__(self, tmp_dir: str, final: str, *, name: str, url: str, entropy: Entropy,
                 fsync: bool = True, mode: int = 0o600, make_parents: bool = True):
        self.final = final
        self._name, self._url, self._fsync, self._make_parents = name, url, fsync, make_parents
        self._state = "open"
        self._fd = -1
        self.tmp = os.path.join(tmp_dir, entropy.token_bytes(12).hex() + ".tmp")
        with translated(name, url, "open_write"):
            make_dirs(tmp_dir, fsync=fsync)
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            self.inode = os.fstat(self._fd).st_ino

    def write(self, data: bytes) -> None:
        """Append ``data`` to the temporary file (loops over short writes)."""
        if self._state != "open":
            raise UsageError(f"write to {self._name!r} after commit or abort")
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._fail(exc, "write")

    def commit(self) -> None:
        """fsync, rename onto the final path, fsync the directory. Idempotent."""
        if self._state == "committed":
            return
        if self._state != "open":
            raise UsageError(f"commit of {self._name!r} after abort")
        try:
            if self._fsync:
                os.fsync(self._fd)
            fd, self._fd = self._fd, -1
            os.close(fd)
            self._publish()
        except OSError as exc:
            self._fail(exc, "commit")
        self._state = "committed"

    def abort(self) -> None:
        """Close and delete the temporary file; safe to call more than once."""
        if self._state == "open":
            self._state = "aborted"
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._state != "committed":
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)

    def __del__(self) -> None:  # a writer dropped without commit must not leak a temp file
        if getattr(self, "_state", None) == "open":
            self.abort()

    def _fail(self, exc: OSError, op: str) -> None:
        self.abort()
        raise map_os_error(exc, self._name, self._url, op) from exc

    def _publish(self) -> None:
        parent = os.path.dirname(self.final)
        for _ in range(3):
            try:
                os.replace(self.tmp, self.final)
                break
            except FileNotFoundError:
                if not self._make_parents or not os.path.exists(self.tmp):
                    raise
                make_dirs(parent, fsync=self._fsync)
            except IsADirectoryError:
                os.rmdir(self.final)  # an empty directory left by a deleted 'a/b' may go
        else:  # pragma: no cover - parents removed three times in a row by a racing delete
            raise FileNotFoundError(errno.ENOENT, "parent directory keeps vanishing", parent)
        if self._fsync:
            fsync_dir(parent)
