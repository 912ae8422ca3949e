"""A store in a local or mounted directory: ``file:///srv/backup`` or a plain path.

Layout under the root::

    <name>                       every object is a file at its name ('/' = directory)
    .ebas-tmp/<random>.tmp       writes in progress (same filesystem, so rename is atomic)
    .ebas-uploads/<id>/upload.json   a resumable upload: {"name": target, "created_ns": ...}
    .ebas-uploads/<id>/00001     its parts, with 00001.etag = "<md5> <inode>"

Names whose first segment is ``.ebas-tmp`` or ``.ebas-uploads`` are reserved. Nothing
is created until the first write, so opening a mistyped path has no side effect.
Deletes are not fsynced (a delete lost in a crash is repeated by the next prune).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat as stat_mod
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from ebas.errors import ObjectNotFound, StoreError, UsageError
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.backends._fs import AtomicFile, map_os_error, translated
from ebas.storage.base import (
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PartInfo,
    PendingUpload,
    Store,
    check_name,
    check_part_number,
    range_bounds,
)
from ebas.storage.redact import redact_url

TMP_DIR = ".ebas-tmp"
UPLOADS_DIR = ".ebas-uploads"
RESERVED = (TMP_DIR, UPLOADS_DIR)
COPY_CHUNK = 8 * 1024 * 1024
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
_PART = re.compile(r"[0-9]{5}\Z")


def path_from_url(url: str) -> str:
    """The absolute directory named by ``file:///abs/path``, ``file://localhost/p`` or a path."""
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
        raise UsageError(f"not a local file URL: {redact_url(url)!r}",
                         hint="use file:///absolute/path (three slashes) or a plain path")
    return os.path.abspath(unquote(parts.path))


class FileStore(Store):
    """Objects as files under ``root``, written atomically (see the module docstring).

    ``fsync=False`` skips fsync calls (faster, not crash-safe: tests and scratch only).
    ``mode`` is the permission of new object files.
    """

    capabilities = Capabilities(parallel_writes=8, extra={"kind": "file"})

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True, mode: int = 0o600,
                 clock: Clock | None = None, entropy: Entropy | None = None):
        self.root = os.path.abspath(os.fspath(root))
        self.url = Path(self.root).as_uri()
        self._fsync, self._mode = fsync, mode
        self._clock = clock or SYSTEM_CLOCK
        self._entropy = entropy or SYSTEM_ENTROPY
        self._tmp = os.path.join(self.root, TMP_DIR)
        self._uploads = os.path.join(self.root, UPLOADS_DIR)

    @classmethod
    def from_url(cls, url: str, **options) -> "FileStore":
        """Open the directory named by a ``file://`` URL or a plain path."""
        return cls(path_from_url(url), **options)

    # -- objects
    def put(self, name: str, data: bytes) -> None:
        """Write ``data`` to a temp file, fsync, rename onto ``name``, fsync the directory."""
        with self.open_write(name) as writer:
            writer.write(data)

    def open_write(self, name: str) -> ObjectWriter:
        """A streaming writer to a temp file; ``commit`` publishes it atomically."""
        return self._atomic(self._path(name), name)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Read a range with ``pread``; a directory at ``name`` is not an object."""
        path = self._path(name)
        with translated(name, self.url, "get", reading=True):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                info = os.fstat(fd)
                if not stat_mod.S_ISREG(info.st_mode):
                    raise ObjectNotFound(name, store=self.url)
                lo, hi = range_bounds(name, info.st_size, start, length)
                chunks = []
                while lo < hi:
                    chunk = os.pread(fd, hi - lo, lo)
                    if not chunk:  # truncated under us; objects are immutable, so rare
                        break
                    chunks.append(chunk)
                    lo += len(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)

    def stat(self, name: str) -> ObjectInfo:
        """Size and mtime of the file holding ``name``."""
        path = self._path(name)
        with translated(name, self.url, "stat", reading=True):
            info = os.stat(path)
        if not stat_mod.S_ISREG(info.st_mode):
            raise ObjectNotFound(name, store=self.url)
        return ObjectInfo(name, info.st_size, info.st_mtime_ns)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk only the directories that can hold names starting with ``prefix``."""
        if "\x00" in prefix:
            raise UsageError(f"invalid prefix {prefix!r}")
        return self._walk(prefix.rpartition("/")[0], prefix)

    def _walk(self, rel_dir: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(os.path.join(self.root, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise map_os_error(exc, prefix, self.url, "list") from exc
        for entry in entries:
            if not rel_dir and entry.name in RESERVED:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir():
                    if rel.startswith(prefix) or prefix.startswith(rel + "/"):
                        yield from self._walk(rel, prefix)
                elif entry.is_file() and rel.startswith(prefix):
                    info = entry.stat()
                    yield ObjectInfo(rel, info.st_size, info.st_mtime_ns)
            except FileNotFoundError:  # deleted while we listed
                continue

    def delete(self, name: str) -> None:
        """Unlink the file holding ``name``; ``ObjectNotFound`` if there is none."""
        path = self._path(name)
        with translated(name, self.url, "delete", reading=True):
            os.unlink(path)

    def remove_stale(self, older_than: float = 86400.0) -> int:
        """Delete temp files and aborted-upload leftovers older than ``older_than`` seconds.

        A crash can leave these behind; they are never listed, only waste space. Returns
        how many entries were removed. Pending uploads are left alone (see ``uploads``).
        """
        cutoff = self._clock.now_ns() - int(older_than * 1e9)
        removed = 0
        for base, pick in ((self._tmp, lambda n: True), (self._uploads, lambda n: ".aborted-" in n)):
            with contextlib.suppress(FileNotFoundError), os.scandir(base) as it:
                for entry in it:
                    if pick(entry.name) and entry.stat(follow_symlinks=False).st_mtime_ns < cutoff:
                        _remove_tree(entry.path)
                        removed += 1
        return removed

    # -- resumable uploads
    def begin_upload(self, name: str) -> str:
        """Create ``.ebas-uploads/<id>/upload.json`` naming the target; return the id."""
        self._path(name)
        upload_id = self._entropy.token_bytes(16).hex()
        meta = json.dumps({"name": name, "created_ns": self._clock.now_ns()}).encode()
        with self._atomic(os.path.join(self._uploads, upload_id, "upload.json"), name) as w:
            w.write(meta)
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Write part ``number`` atomically (replacing an earlier one) plus its etag."""
        check_part_number(number)
        folder = self._upload_dir(upload_id)
        self._upload_meta(upload_id)
        part = os.path.join(folder, f"{number:05d}")
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            with self._atomic(part, f"upload {upload_id} part {number}", make_parents=False) as w:
                w.write(data)
            inode = w.inode
            with self._atomic(part + ".etag", f"upload {upload_id} part {number}",
                              make_parents=False) as w:
                w.write(f"{etag} {inode}".encode())
        except ObjectNotFound:  # the upload was aborted or completed meanwhile
            raise self._no_upload(upload_id) from None
        return PartInfo(number, len(data), etag)

    def parts(self, upload_id: str) -> list[PartInfo]:
        """Parts on disk, sorted; the etag is empty if its record does not match the part."""
        self._upload_meta(upload_id)
        return [info for info, _ in self._part_files(upload_id)]

    def complete(self, upload_id: str) -> None:
        """Concatenate the parts into a temp file, publish it, then drop the upload."""
        name = self._upload_meta(upload_id)
        with self.open_write(name) as writer:
            for info, path in self._part_files(upload_id):
                with translated(name, self.url, f"complete (part {info.number})"), \
                        open(path, "rb", buffering=0) as f:
                    while chunk := f.read(COPY_CHUNK):
                        writer.write(chunk)
        self._drop_upload(upload_id)

    def abort(self, upload_id: str) -> None:
        """Discard an upload and its parts; ``ObjectNotFound`` if it is unknown."""
        self._drop_upload(upload_id)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Uploads with readable metadata whose target starts with ``prefix``."""
        found = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self._uploads) as it:
            for entry in it:
                if not _UPLOAD_ID.match(entry.name):
                    continue
                try:
                    name = self._upload_meta(entry.name)
                except (ObjectNotFound, StoreError):
                    continue
                if name.startswith(prefix):
                    found.append(PendingUpload(name, entry.name))
        return found

    # -- helpers
    def _path(self, name: str) -> str:
        check_name(name)
        if name.split("/", 1)[0] in RESERVED:
            raise UsageError(f"object name {name!r} is reserved by the file store")
        return os.path.join(self.root, name)

    def _atomic(self, final: str, name: str, *, make_parents: bool = True) -> AtomicFile:
        return AtomicFile(self._tmp, final, name=name, url=self.url, entropy=self._entropy,
                          fsync=self._fsync, mode=self._mode, make_parents=make_parents)

    def _no_upload(self, upload_id: str) -> ObjectNotFound:
        return ObjectNotFound(f"upload {upload_id}", store=self.url,
                              hint="the upload was completed, aborted or never begun")

    def _upload_dir(self, upload_id: str) -> str:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise self._no_upload(upload_id)
        return os.path.join(self._uploads, upload_id)

    def _upload_meta(self, upload_id: str) -> str:
        path = os.path.join(self._upload_dir(upload_id), "upload.json")
        try:
            with open(path, "rb") as f:
                meta = json.loads(f.read())
            return check_name(meta["name"])
        except (FileNotFoundError, NotADirectoryError):
            raise self._no_upload(upload_id) from None
        except OSError as exc:
            raise map_os_error(exc, f"upload {upload_id}", self.url, "read upload") from exc
        except (ValueError, KeyError, TypeError, UsageError) as exc:
            raise StoreError(f"upload {upload_id} in {self.url} has damaged metadata: {exc}",
                             hint="abort the upload and start it again") from exc

    def _part_files(self, upload_id: str) -> list[tuple[PartInfo, str]]:
        folder = self._upload_dir(upload_id)
        out = []
        with translated(f"upload {upload_id}", self.url, "parts"), os.scandir(folder) as it:
            entries = [e for e in it if _PART.match(e.name)]
        for entry in sorted(entries, key=lambda e: e.name):
            with translated(f"upload {upload_id}", self.url, "parts"):
                info = entry.stat()
            out.append((PartInfo(int(entry.name), info.st_size, _etag(entry.path, info.st_ino)),
                        entry.path))
        return out

    def _drop_upload(self, upload_id: str) -> None:
        folder = self._upload_dir(upload_id)
        doomed = f"{folder}.aborted-{self._entropy.token_bytes(6).hex()}"
        try:
            os.rename(folder, doomed)  # disappears atomically, then is removed at leisure
        except FileNotFoundError:
            raise self._no_upload(upload_id) from None
        except OSError as exc:
            raise map_os_error(exc, f"upload {upload_id}", self.url, "abort") from exc
        _remove_tree(doomed)


def _etag(part_path: str, inode: int) -> str:
    """The recorded md5 of a part, if the record describes this very file (same inode)."""
    try:
        with open(part_path + ".etag", "rb") as f:
            etag, _, rec_inode = f.read(100).decode().partition(" ")
    except (OSError, UnicodeDecodeError):
        return ""
    return etag if rec_inode == str(inode) and len(etag) == 32 else ""


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
