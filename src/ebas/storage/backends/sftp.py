"""A store on an SSH server over SFTP, via paramiko.

URL: ``sftp://[USER@]HOST[:PORT]/PATH[?option=value&...]``. ``PATH`` is relative to
the login directory; ``sftp://host//srv/backup`` (two slashes) is absolute. Options:

``key_file``        private key (default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)
``known_hosts``     known-hosts file (default ~/.ssh/known_hosts)
``accept_new_host_key``  ``1``: trust and record an unknown host key on first contact
                    (like ``StrictHostKeyChecking=accept-new``); a *changed* key is
                    always refused
``connections``     SFTP channels used in parallel (default 4)
``timeout``         seconds (or a duration, 2min) for connecting and each request (default 30)

Keyword-only: ``password`` (else ``EBAS_SFTP_PASSWORD``), ``passphrase`` for the key,
``clock``, ``entropy``. An unknown host key raises :class:`PermissionDenied` showing the
key's SHA256 fingerprint, so the admin can compare it before accepting it.

Layout under PATH (as in the file store): objects are files at their names; writes go
to ``.ebas-tmp/<random>.tmp`` and are renamed onto the name with the OpenSSH
``posix-rename`` extension (atomic replace); a resumable upload is
``.ebas-uploads/<id>/upload.json`` plus one file per part (each written to a temporary
name and renamed). ``complete`` assembles the parts into a temporary file, each part
at its offset, with the server-side ``copy-data`` extension when the server has it
(OpenSSH 9.0+, asyncssh), else by reading and writing through this client, and then
renames it onto the final name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import queue
import re
import socket
import stat as stat_mod
import threading
from typing import Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_DATA, CMD_EXTENDED, CMD_READ, int64

from ebas.errors import (
    EbasError,
    ObjectNotFound,
    PermissionDenied,
    StoreError,
    TransientStoreError,
    UsageError,
)
from ebas.runtime import SYSTEM_ENTROPY, Entropy
from ebas.storage.backends._cloud import Options, as_bool, as_seconds
from ebas.storage.backends._fs import map_os_error
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
COPY_CHUNK = 4 * 1024 * 1024
READ_REQUEST = 256 * 1024  # per SFTP read request (OpenSSH serves up to 256 KiB; shorter answers are followed up)
READ_WINDOW = 64  # read requests in flight (16 MiB)
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
_PART = re.compile(r"[0-9]{5}\Z")

OPTIONS = {
    "key_file": (str, None), "known_hosts": (str, None), "accept_new_host_key": (as_bool, False),
    "connections": (int, 4), "timeout": (as_seconds, 30.0), "password": (str, None),
    "passphrase": (str, None), "clock": (lambda v: v, None), "entropy": (lambda v: v, None),
}


class UnknownHostKey(PermissionDenied):
    """The server's host key is not in known_hosts (or differs from the recorded one)."""


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, accept: bool, known_hosts: str):
        self.accept, self.known_hosts = accept, known_hosts

    def missing_host_key(self, client, hostname, key):
        if self.accept:
            client.get_host_keys().add(hostname, key.get_name(), key)
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(self.known_hosts) or ".", exist_ok=True)
                client.save_host_keys(self.known_hosts)
            return
        raise UnknownHostKey(
            f"the SSH host key of {hostname} is not known: {key.get_name()} {key.fingerprint}",
            hint=f"verify the fingerprint with the server's administrator, then add it to {self.known_hosts} "
                 "(ssh-keyscan) or open the store once with accept_new_host_key=1")


class SFTPStore(Store):
    """Objects as files under ``path`` on an SFTP server (see the module docstring)."""

    def __init__(self, host: str, path: str, *, port: int = 22, user: str | None = None, **options):
        opts = Options("sftp", OPTIONS, {}, options)
        if not host:
            raise UsageError("an SFTP URL needs a host: sftp://user@host:port/path")
        self.host, self.port, self.user = host, port, user or os.environ.get("USER") or "root"
        self.root = path.rstrip("/") or "."
        self.entropy: Entropy = opts["entropy"] or SYSTEM_ENTROPY
        self.timeout = opts["timeout"]
        self.key_file = os.path.expanduser(opts["key_file"]) if opts["key_file"] else None
        self.known_hosts = os.path.expanduser(opts["known_hosts"] or "~/.ssh/known_hosts")
        self.accept_new = opts["accept_new_host_key"]
        self.password = opts["password"] or os.environ.get("EBAS_SFTP_PASSWORD")
        self.passphrase = opts["passphrase"]
        shown = self.root if self.root.startswith("/") else "/" + self.root
        self.url = f"sftp://{self.user}@{host}:{port}{'/' if self.root.startswith('/') else ''}{shown}"
        self.capabilities = Capabilities(parallel_writes=opts["connections"], extra={"kind": "sftp"})
        self._slots = threading.BoundedSemaphore(max(1, opts["connections"]))
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._lock = threading.Lock()
        self._ssh: paramiko.SSHClient | None = None
        self._generation = 0
        self._dirs: set[str] = set()
        self._copy_data: bool | None = None

    @classmethod
    def from_url(cls, url: str, **options) -> "SFTPStore":
        """Open ``sftp://user@host:port/path?options``."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "sftp":
            raise UsageError(f"not an sftp:// URL: {redact_url(url)!r}")
        raw = unquote(parts.path)
        path = "/" + raw.lstrip("/") if raw.startswith("//") else raw.lstrip("/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            port = parts.port or 22
        except ValueError:
            raise UsageError(f"bad port in {redact_url(url)!r}") from None
        if parts.password is not None and "password" not in query and "password" not in options:
            query["password"] = unquote(parts.password)  # accepted, never printed; prefer EBAS_SFTP_PASSWORD
        return cls(parts.hostname or "", path, port=port, user=unquote(parts.username) if parts.username else None,
                   **{**query, **options})

    # ------------------------------------------------------------ connections
    def _connect(self) -> paramiko.SSHClient:
        ssh = paramiko.SSHClient()
        if os.path.exists(self.known_hosts):  # (a failed load would also break save_host_keys)
            ssh.load_host_keys(self.known_hosts)
        ssh.set_missing_host_key_policy(_HostKeyPolicy(self.accept_new, self.known_hosts))
        try:
            ssh.connect(self.host, self.port, username=self.user, key_filename=self.key_file,
                        password=self.password, passphrase=self.passphrase, timeout=self.timeout,
                        banner_timeout=self.timeout, auth_timeout=self.timeout,
                        allow_agent=self.key_file is None, look_for_keys=self.key_file is None)
        except EbasError:
            ssh.close()
            raise
        except paramiko.BadHostKeyException as exc:
            ssh.close()
            raise UnknownHostKey(
                f"the SSH host key of {self.host}:{self.port} has CHANGED (got {exc.key.fingerprint}); "
                "refusing to connect", hint="if the server was legitimately re-keyed, remove the old entry "
                f"from {self.known_hosts} (ssh-keygen -R) and verify the new fingerprint") from exc
        except paramiko.AuthenticationException as exc:
            ssh.close()
            raise PermissionDenied(f"SSH authentication to {self.user}@{self.host}:{self.port} failed: {exc}",
                                   hint="check the key (key_file=), the ssh-agent, or the server's "
                                        "authorized_keys for this user") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            ssh.close()
            raise TransientStoreError(f"cannot connect to SFTP server {self.host}:{self.port}: {exc}") from exc
        return ssh

    @contextlib.contextmanager
    def _sftp(self, name: str, op: str, *, reading: bool = False):
        """Borrow an SFTP channel; translate errors; drop the connection if it died."""
        self._slots.acquire()
        try:
            client, generation = self._checkout()
            try:
                yield client
            except EbasError:
                self._idle.put((client, generation))
                raise
            except Exception as exc:  # noqa: BLE001 - translated at the boundary
                dead = not client.get_channel().get_transport().is_active()
                if dead or isinstance(exc, (paramiko.SSHException, socket.timeout, TimeoutError,
                                            ConnectionError, EOFError)):
                    self._drop(generation)
                else:
                    self._idle.put((client, generation))
                raise self._error(exc, name, op, reading=reading, dead=dead) from exc
            self._idle.put((client, generation))
        finally:
            self._slots.release()

    def _checkout(self) -> tuple[paramiko.SFTPClient, int]:
        while True:
            try:
                client, generation = self._idle.get_nowait()
            except queue.Empty:
                break
            if generation == self._generation and client.get_channel().get_transport().is_active():
                return client, generation
            with contextlib.suppress(Exception):
                client.close()
        with self._lock:
            if self._ssh is None or not self._ssh.get_transport() or not self._ssh.get_transport().is_active():
                if self._ssh is not None:
                    self._ssh.close()
                self._ssh = self._connect()
                self._generation += 1
            ssh, generation = self._ssh, self._generation
        try:
            client = ssh.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop(generation)
            raise TransientStoreError(f"cannot open an SFTP channel to {self.host}:{self.port}: {exc}") from exc
        client.get_channel().settimeout(self.timeout)
        return client, generation

    def _drop(self, generation: int) -> None:
        with self._lock:
            if self._ssh is not None and generation == self._generation:
                self._ssh.close()
                self._ssh = None

    def _error(self, exc: BaseException, name: str, op: str, *, reading: bool, dead: bool) -> EbasError:
        what = f"SFTP {op} {name!r} in {self.url}"
        if dead or isinstance(exc, (paramiko.SSHException, socket.timeout, TimeoutError, ConnectionError)):
            return TransientStoreError(f"{what}: connection lost or timed out (temporary): {exc}")
        if isinstance(exc, EOFError):
            return TransientStoreError(f"{what}: unexpected end of data: {exc}")
        if isinstance(exc, OSError) and exc.errno is not None:
            return map_os_error(exc, name, self.url, f"SFTP {op}", reading=reading)
        return StoreError(f"{what}: the server reported: {exc}",
                          hint="check the server's free space and permissions (SFTP reports most "
                               "failures without detail)")

    # ------------------------------------------------------------ paths
    def _path(self, name: str) -> str:
        check_name(name)
        if name.split("/", 1)[0] in RESERVED:
            raise UsageError(f"object name {name!r} is reserved by the SFTP store")
        return posixpath.join(self.root, name)

    def _mkdirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        if path in self._dirs or path in ("", ".", "/"):
            return
        try:
            info = sftp.stat(path)
            if not stat_mod.S_ISDIR(info.st_mode or 0):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        except FileNotFoundError:
            self._mkdirs(sftp, posixpath.dirname(path))
            try:
                sftp.mkdir(path)
            except OSError:
                if not stat_mod.S_ISDIR(sftp.stat(path).st_mode or 0):
                    raise
        self._dirs.add(path)

    def _tmp_name(self) -> str:
        return posixpath.join(self.root, TMP_DIR, self.entropy.token_bytes(12).hex() + ".tmp")

    def _rename(self, sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
        """Atomic replace with posix-rename; else rename, removing an existing target first."""
        try:
            sftp.posix_rename(src, dst)
            return
        except OSError as exc:
            if exc.errno is not None:
                raise
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(dst)  # no posix-rename: replacing is not atomic on this server
        sftp.rename(src, dst)

    def _publish(self, sftp: paramiko.SFTPClient, tmp: str, final: str) -> None:
        try:
            self._rename(sftp, tmp, final)
        except FileNotFoundError:
            self._dirs.discard(posixpath.dirname(final))
            self._mkdirs(sftp, posixpath.dirname(final))
            self._rename(sftp, tmp, final)

    def _write_file(self, sftp: paramiko.SFTPClient, final: str, data: bytes) -> str:
        """Write ``data`` to a temporary file and rename it onto ``final``; return the md5."""
        tmp = self._tmp_name()
        self._mkdirs(sftp, posixpath.dirname(tmp))
        try:
            with sftp.open(tmp, "wb") as f:
                f.set_pipelined(True)
                f.write(data)
            self._publish(sftp, tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                sftp.remove(tmp)
            raise
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    # ------------------------------------------------------------ objects
    def put(self, name: str, data: bytes) -> None:
        """Temporary file, then posix-rename onto the name."""
        final = self._path(name)
        with self._sftp(name, "put") as sftp:
            self._write_file(sftp, final, bytes(data))

    def open_write(self, name: str) -> ObjectWriter:
        """A stream into a temporary file on the server, renamed on ``commit``."""
        return _SFTPWriter(self, name, self._path(name))

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Pipelined reads of the range (``readv``)."""
        path = self._path(name)
        with self._sftp(name, "get", reading=True) as sftp:
            with sftp.open(path, "rb") as f:
                info = f.stat()
                if not stat_mod.S_ISREG(info.st_mode or 0):
                    raise ObjectNotFound(name, store=self.url)
                lo, hi = range_bounds(name, info.st_size or 0, start, length)
                if hi <= lo:
                    return b""
                data = _pread(sftp, f.handle, lo, hi - lo)
        if len(data) != hi - lo:
            raise TransientStoreError(f"SFTP get {name!r}: short read ({len(data)} of {hi - lo} bytes)")
        return data

    def stat(self, name: str) -> ObjectInfo:
        """Size and mtime of the file."""
        path = self._path(name)
        with self._sftp(name, "stat", reading=True) as sftp:
            info = sftp.stat(path)
        if not stat_mod.S_ISREG(info.st_mode or 0):
            raise ObjectNotFound(name, store=self.url)
        return ObjectInfo(name, info.st_size or 0, int(info.st_mtime or 0) * 10**9)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk only the directories that can hold names starting with ``prefix``."""
        if "\x00" in prefix:
            raise UsageError(f"invalid prefix {prefix!r}")
        with self._sftp(prefix, "list") as sftp:
            found = list(self._walk(sftp, prefix.rpartition("/")[0], prefix))
        return iter(found)

    def _walk(self, sftp: paramiko.SFTPClient, rel_dir: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(sftp.listdir_attr(posixpath.join(self.root, rel_dir)), key=lambda e: e.filename)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        for entry in entries:
            if not rel_dir and entry.filename in RESERVED:
                continue
            rel = f"{rel_dir}/{entry.filename}" if rel_dir else entry.filename
            mode = entry.st_mode or 0
            if stat_mod.S_ISDIR(mode):
                if rel.startswith(prefix) or prefix.startswith(rel + "/"):
                    yield from self._walk(sftp, rel, prefix)
            elif stat_mod.S_ISREG(mode) and rel.startswith(prefix):
                yield ObjectInfo(rel, entry.st_size or 0, int(entry.st_mtime or 0) * 10**9)

    def delete(self, name: str) -> None:
        """Remove the file (a server refusing removes yields ``PermissionDenied``)."""
        path = self._path(name)
        with self._sftp(name, "delete", reading=True) as sftp:
            if not stat_mod.S_ISREG(sftp.stat(path).st_mode or 0):
                raise ObjectNotFound(name, store=self.url)
            sftp.remove(path)

    # ------------------------------------------------------------ resumable uploads
    def _upload_dir(self, upload_id) -> str:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise self._no_upload(upload_id)
        return posixpath.join(self.root, UPLOADS_DIR, upload_id)

    def _no_upload(self, upload_id) -> ObjectNotFound:
        return ObjectNotFound(f"upload {upload_id}", store=self.url,
                              hint="the upload was completed, aborted or never begun")

    def _target(self, sftp: paramiko.SFTPClient, upload_id: str) -> str:
        try:
            with sftp.open(posixpath.join(self._upload_dir(upload_id), "upload.json"), "rb") as f:
                return check_name(json.loads(f.read())["name"])
        except FileNotFoundError:
            raise self._no_upload(upload_id) from None
        except (ValueError, KeyError, TypeError, UsageError) as exc:
            raise StoreError(f"upload {upload_id} in {self.url} has damaged metadata: {exc}",
                             hint="abort the upload and start it again") from exc

    def begin_upload(self, name: str) -> str:
        """Create ``.ebas-uploads/<id>/upload.json`` naming the target."""
        self._path(name)
        upload_id = self.entropy.token_bytes(16).hex()
        folder = self._upload_dir(upload_id)
        with self._sftp(name, "begin_upload") as sftp:
            self._mkdirs(sftp, folder)
            self._write_file(sftp, posixpath.join(folder, "upload.json"), json.dumps({"name": name}).encode())
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Write the part to a temporary name, then rename it to ``<id>/<part:05d>``."""
        check_part_number(number)
        folder = self._upload_dir(upload_id)
        data = bytes(data)
        with self._sftp(f"upload {upload_id}", "upload_part") as sftp:
            self._target(sftp, upload_id)
            try:
                etag = self._write_part(sftp, folder, number, data)
            except FileNotFoundError:  # aborted meanwhile
                raise self._no_upload(upload_id) from None
        return PartInfo(number, len(data), etag)

    def _write_part(self, sftp, folder: str, number: int, data: bytes) -> str:
        tmp = posixpath.join(folder, f"{number:05d}.{self.entropy.token_bytes(6).hex()}.partial")
        try:
            with sftp.open(tmp, "wb") as f:
                f.set_pipelined(True)
                f.write(data)
            self._rename(sftp, tmp, posixpath.join(folder, f"{number:05d}"))
        except BaseException:
            with contextlib.suppress(Exception):
                sftp.remove(tmp)
            raise
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def _part_files(self, sftp, upload_id: str) -> list[tuple[int, int, str]]:
        folder = self._upload_dir(upload_id)
        try:
            entries = sftp.listdir_attr(folder)
        except FileNotFoundError:
            raise self._no_upload(upload_id) from None
        return sorted((int(e.filename), e.st_size or 0, posixpath.join(folder, e.filename))
                      for e in entries if _PART.match(e.filename))

    def parts(self, upload_id: str) -> list[PartInfo]:
        """The part files, from any process (no etag: SFTP has no checksum request)."""
        with self._sftp(f"upload {upload_id}", "parts") as sftp:
            self._target(sftp, upload_id)
            return [PartInfo(number, size) for number, size, _ in self._part_files(sftp, upload_id)]

    def complete(self, upload_id: str) -> None:
        """Assemble the parts at their offsets into a temporary file, rename it, drop the upload."""
        with self._sftp(f"upload {upload_id}", "complete") as sftp:
            name = self._target(sftp, upload_id)
            final = self._path(name)
            tmp = self._tmp_name()
            self._mkdirs(sftp, posixpath.dirname(tmp))
            try:
                with sftp.open(tmp, "wb") as out:
                    out.set_pipelined(True)
                    offset = 0
                    for _, size, path in self._part_files(sftp, upload_id):
                        self._copy_part(sftp, path, size, out, offset)
                        offset += size
                self._publish(sftp, tmp, final)
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
                raise
            self._remove_upload(sftp, upload_id)

    def _copy_part(self, sftp, path: str, size: int, out, offset: int) -> None:
        """Copy a part file into ``out`` at ``offset``: server-side if possible."""
        with sftp.open(path, "rb") as src:
            if self._copy_data is not False and size:
                try:
                    out.flush()
                    sftp._request(CMD_EXTENDED, "copy-data", src.handle, int64(0), int64(size),
                                  out.handle, int64(offset))
                    self._copy_data = True
                    out.seek(offset + size)
                    return
                except OSError as exc:
                    if exc.errno is not None or self._copy_data:
                        raise
                    self._copy_data = False  # "Operation unsupported": copy through the client
            src.prefetch(size)
            out.seek(offset)
            done = 0
            while done < size:
                chunk = src.read(min(COPY_CHUNK, size - done))
                if not chunk:
                    raise TransientStoreError(f"SFTP: part {path} ended early")
                out.write(chunk)
                done += len(chunk)

    def abort(self, upload_id: str) -> None:
        """Remove the upload's folder."""
        with self._sftp(f"upload {upload_id}", "abort") as sftp:
            self._target(sftp, upload_id)
            self._remove_upload(sftp, upload_id)

    def _remove_upload(self, sftp, upload_id: str) -> None:
        folder = self._upload_dir(upload_id)
        doomed = f"{folder}.aborted-{self.entropy.token_bytes(6).hex()}"
        try:
            sftp.rename(folder, doomed)  # disappears in one step, then is removed at leisure
        except FileNotFoundError:
            raise self._no_upload(upload_id) from None
        for entry in sftp.listdir(doomed):
            with contextlib.suppress(OSError):
                sftp.remove(posixpath.join(doomed, entry))
        with contextlib.suppress(OSError):
            sftp.rmdir(doomed)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Upload folders with readable metadata whose target starts with ``prefix``."""
        base = posixpath.join(self.root, UPLOADS_DIR)
        found = []
        with self._sftp(prefix, "uploads") as sftp:
            try:
                entries = sftp.listdir(base)
            except FileNotFoundError:
                return []
            for upload_id in entries:
                if not _UPLOAD_ID.match(upload_id):
                    continue
                try:
                    name = self._target(sftp, upload_id)
                except (ObjectNotFound, StoreError):
                    continue
                if name.startswith(prefix):
                    found.append(PendingUpload(name, upload_id))
        return found

    def close(self) -> None:
        """Close every channel and the SSH connection."""
        while True:
            try:
                client, _ = self._idle.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(Exception):
                client.close()
        with self._lock:
            if self._ssh is not None:
                self._ssh.close()
                self._ssh = None


def _pread(sftp: paramiko.SFTPClient, handle: bytes, start: int, length: int) -> bytes:
    """Read ``length`` bytes at ``start`` with up to ``READ_WINDOW`` pipelined requests.

    paramiko's own ``readv``/``read`` send 32 KiB requests and wait more than they
    stream (8-50 MB/s on loopback); this keeps 16 MiB in flight (~140 MB/s). A shorter answer than
    asked (a server's per-request cap) is followed by a request for the rest; an early
    end of file is an error (the object changed size under us).
    """
    chunks: dict[int, bytes] = {}
    todo = [(off, min(READ_REQUEST, start + length - off)) for off in range(start, start + length, READ_REQUEST)]
    todo.reverse()
    pending: dict[int, tuple[int, int]] = {}
    while todo or pending:
        while todo and len(pending) < READ_WINDOW:
            off, size = todo.pop()
            pending[sftp._async_request(type(None), CMD_READ, handle, int64(off), size)] = (off, size)
        kind, raw = sftp._read_packet()
        msg = paramiko.Message(raw)
        off, size = pending.pop(msg.get_int())
        if kind != CMD_DATA:
            try:
                sftp._convert_status(msg)
            except EOFError:
                raise TransientStoreError(f"SFTP read: file ended at {off} while {size} more bytes were expected "
                                          "(changed while read)") from None
            raise StoreError(f"SFTP read at {off}: unexpected answer {kind}")
        data = msg.get_string()
        if not data:
            raise TransientStoreError(f"SFTP read: empty answer at {off}")
        chunks[off] = data
        if len(data) < size:
            todo.append((off + len(data), size - len(data)))
    return b"".join(chunks[off] for off in sorted(chunks))


class _SFTPWriter(ObjectWriter):
    """Streams into a temporary file on one borrowed channel; ``commit`` renames it."""

    def __init__(self, store: SFTPStore, name: str, final: str):
        self._store, self._name, self._final = store, name, final
        self._tmp = store._tmp_name()
        self._status = "open"
        self._file = None
        self._cm = None
        self._sftp = None

    def _open(self):
        if self._file is None:
            self._cm = self._store._sftp(self._name, "open_write")
            self._sftp = self._cm.__enter__()
            self._store._mkdirs(self._sftp, posixpath.dirname(self._tmp))
            self._file = self._sftp.open(self._tmp, "wb")
            self._file.set_pipelined(True)
        return self._file

    def _guard(self, fn, op: str):
        try:
            return fn()
        except BaseException as exc:
            self._fail(exc)
            raise

    def write(self, data: bytes) -> None:
        if self._status != "open":
            raise UsageError(f"write to {self._name!r} after commit or abort")
        self._guard(lambda: self._open().write(bytes(data)), "write")

    def commit(self) -> None:
        if self._status == "committed":
            return
        if self._status != "open":
            raise UsageError(f"commit of {self._name!r} after abort")

        def finish():
            self._open().close()
            self._store._publish(self._sftp, self._tmp, self._final)

        self._guard(finish, "commit")
        self._status = "committed"
        self._release(None)

    def abort(self) -> None:
        if self._status != "open":
            return
        self._status = "aborted"
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            with contextlib.suppress(Exception):
                self._sftp.remove(self._tmp)
        self._release(None)

    def _fail(self, exc: BaseException) -> None:
        """Abort after an error, handing the error to the channel context for translation."""
        self._status = "aborted"
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            with contextlib.suppress(Exception):
                self._sftp.remove(self._tmp)
        self._release(exc)

    def _release(self, exc: BaseException | None) -> None:
        cm, self._cm = self._cm, None
        if cm is None:
            return
        if exc is None:
            cm.__exit__(None, None, None)
            return
        try:
            cm.__exit__(type(exc), exc, exc.__traceback__)
        except EbasError as translated:
            raise translated from exc


__all__ = ["SFTPStore", "UnknownHostKey"]
