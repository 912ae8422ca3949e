"""Writing a restored tree to disk without ever writing outside the target.

The safety rules, all enforced here so the restorer cannot forget one:

* every name is one path component (:func:`check_component`): no ``""``, ``.``,
  ``..``, ``/`` or NUL;
* directories are entered only through fds opened with ``O_DIRECTORY | O_NOFOLLOW``
  relative to their parent (:class:`TargetDir`), so a symlink restored earlier or planted
  in the target cannot redirect later writes (``UnsafePath``);
* an existing non-directory entry is unlinked and re-created, never written through, so a
  planted symlink, hard link, fifo or device node cannot receive data;
* metadata is applied with no-follow system calls (:func:`apply_metadata`).

Failures to write become :class:`~ebas.errors.RestoreError`; only an unsafe name or path
becomes :class:`~ebas.errors.UnsafePath`. Metadata failures are returned as warnings.
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import stat
from typing import Callable, TypeVar

from ebas.backup.fsmeta import ACL_ACCESS, ACL_DEFAULT, node_type, show_path
from ebas.errors import RestoreError, UnsafePath
from ebas.repo.tree import BLOCKDEV, CHARDEV, FIFO, SOCKET, Node

T = TypeVar("T")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_ATTR = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP}


def check_component(name: bytes) -> bytes:
    """Return ``name`` if it is a single, harmless path component; else raise ``UnsafePath``.

    Refused: non-bytes, ``b""``, ``b"."``, ``b".."`` and anything containing ``/`` or NUL.
    The message shows the name with unprintable bytes escaped.
    """
    if not isinstance(name, bytes):
        raise UnsafePath(f"unsafe name in tree: {name!r} is not bytes")
    if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise UnsafePath(f"unsafe name in tree: '{show_path(name)}'")
    return name


class TargetDir:
    """An open directory of the restore target; all creation happens relative to its fd.

    Children made by :meth:`subdir` keep a reference to the root, which must stay open
    while they create hard links. Usable as a context manager (closes the fd).
    """

    def __init__(self, fd: int, path: bytes, root: TargetDir | None = None):
        self.fd = fd
        self.path = path  # for messages only; never used to open anything
        self.root = root if root is not None else self

    @classmethod
    def open_root(cls, path: bytes | str, create: bool = True) -> TargetDir:
        """Open (creating it and its parents with mode 0700 if ``create``) the restore root.

        The root path itself is trusted and may contain symlinks. ``RestoreError`` if it
        cannot be created or opened as a directory.
        """
        bpath = os.fsencode(path)
        try:
            if create:
                os.makedirs(bpath, mode=0o700, exist_ok=True)
            fd = os.open(bpath, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise RestoreError(f"cannot open restore target {show_path(bpath)}: {exc.strerror}") from exc
        return cls(fd, bpath)

    # ------------------------------------------------------------------ helpers
    def where(self, name: bytes) -> str:
        """``name`` in this directory, for messages."""
        return show_path(self.path + b"/" + name)

    def _lstat(self, name: bytes) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RestoreError(f"cannot examine {self.where(name)}: {exc.strerror}") from exc

    def _open_dir(self, name: bytes, *, create: bool, mode: int = 0o700) -> TargetDir:
        check_component(name)
        try:
            if create:
                try:
                    os.mkdir(name, mode, dir_fd=self.fd)
                except FileExistsError:
                    pass
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                st = self._lstat(name)
                kind = node_type(st.st_mode) if st else "vanished entry"
                raise UnsafePath(f"refusing to enter {self.where(name)}: it is a {kind}, not a directory") from exc
            raise RestoreError(f"cannot open directory {self.where(name)}: {exc.strerror}") from exc
        return TargetDir(fd, self.path + b"/" + name, self.root)

    def _make(self, name: bytes, what: str, make: Callable[[], T]) -> T:
        """Run ``make`` to create ``name``; an existing non-directory is unlinked first."""
        check_component(name)
        try:
            for _ in range(3):
                try:
                    return make()
                except FileExistsError:
                    pass
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise RestoreError(f"cannot {what} {self.where(name)}: a directory is in the way")
                os.unlink(name, dir_fd=self.fd)
        except (OSError, ValueError) as exc:  # ValueError: e.g. NUL in a symlink target
            raise RestoreError(f"cannot {what} {self.where(name)}: {getattr(exc, 'strerror', None) or exc}") from exc
        raise RestoreError(f"cannot {what} {self.where(name)}: it keeps being re-created")

    # --------------------------------------------------------------- operations
    def subdir(self, name: bytes, mode: int = 0o700) -> TargetDir:
        """Create the child directory ``name`` if missing (with ``mode``) and open it.

        Never follows a symlink: ``UnsafePath`` if the entry is a symlink or not a
        directory. The caller closes the returned ``TargetDir``.
        """
        return self._open_dir(name, create=True, mode=mode)

    def create_file(self, name: bytes) -> int:
        """Create ``name`` as a new, empty regular file (mode 0600) and return a write fd.

        An existing entry that is not a directory (a file, a symlink, a hard link to
        something else, a fifo, a device) is unlinked first, never opened, so nothing is
        written through it; ``RestoreError`` if a directory is in the way.
        """
        return self._make(name, "create file", lambda: os.open(name, _FILE_FLAGS, 0o600, dir_fd=self.fd))

    def symlink(self, name: bytes, target: bytes) -> None:
        """Create the symlink ``name`` → ``target`` (any bytes; never followed by us)."""
        self._make(name, "create symlink", lambda: os.symlink(target, name, dir_fd=self.fd))

    def hardlink(self, existing: list[bytes], name: bytes) -> None:
        """Make ``name`` a hard link to ``existing``, given as components from the root.

        Each component is checked and each directory opened without following symlinks,
        so the source cannot lie outside the target (``UnsafePath``). A symlink as the
        last component is linked itself, not its target. ``RestoreError`` if the source
        is missing or the link fails. Linking a name to itself is a no-op.
        """
        check_component(name)
        if not existing:
            raise UnsafePath(f"hard link {self.where(name)} has an empty source path")
        for comp in existing:
            check_component(comp)
        if self.root.fd < 0:
            raise RestoreError(f"cannot link {self.where(name)}: the restore root is closed")
        parent = self.root
        try:
            for comp in existing[:-1]:  # one directory fd open at a time: any depth works
                child = parent._open_dir(comp, create=False)
                if parent is not self.root:
                    parent.close()
                parent = child
            src = existing[-1]
            sst = parent._lstat(src)
            if sst is None:
                raise RestoreError(f"cannot link {self.where(name)}: source {parent.where(src)} is missing")
            dst = self._lstat(name)
            if dst is not None and (dst.st_dev, dst.st_ino) == (sst.st_dev, sst.st_ino):
                return
            self._make(name, "create hard link", lambda: os.link(
                src, name, src_dir_fd=parent.fd, dst_dir_fd=self.fd, follow_symlinks=False))
        finally:
            if parent is not self.root:
                parent.close()

    def mkfifo(self, name: bytes, mode: int = 0o600) -> None:
        """Create the named pipe ``name`` (replacing a non-directory entry)."""
        self._make(name, "create fifo", lambda: os.mkfifo(name, mode, dir_fd=self.fd))

    def mknod(self, name: bytes, kind: str, rdev: int, mode: int = 0o600) -> str | None:
        """Create a ``chardev``/``blockdev`` node; returns a warning instead when not allowed.

        Only root (with CAP_MKNOD) can do this; otherwise nothing is created and the
        returned string says so. ``None`` means the node was created.
        """
        fmt = {CHARDEV: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK}.get(kind)
        if fmt is None:
            raise ValueError(f"mknod: {kind!r} is not a device type")
        if os.geteuid() != 0:
            return f"{self.where(name)}: device node not restored (needs root)"
        try:
            self._make(name, "create device node", lambda: os.mknod(name, fmt | mode, rdev, dir_fd=self.fd))
        except RestoreError as exc:
            if isinstance(exc.__cause__, PermissionError):
                return f"{self.where(name)}: device node not restored: {exc.__cause__.strerror}"
            raise
        return None

    def socket(self, name: bytes) -> str:
        """Sockets cannot be restored (they belong to a running process): returns a note."""
        check_component(name)
        return f"{self.where(name)}: socket not restored"

    def special(self, name: bytes, node: Node) -> str | None:
        """Create a fifo, device or socket entry as ``node`` says; a warning or ``None``."""
        if node.type == FIFO:
            self.mkfifo(name)
            return None
        if node.type in (CHARDEV, BLOCKDEV):
            return self.mknod(name, node.type, node.rdev)
        if node.type == SOCKET:
            return self.socket(name)
        raise ValueError(f"special: {node.type!r} is not a special file type")

    def close(self) -> None:
        """Close the directory fd (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TargetDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TargetDir({show_path(self.path)!r}, fd={self.fd})"


@functools.lru_cache(maxsize=4096)
def _local_id(kind: str, name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def owner_ids(node: Node) -> tuple[int, int]:
    """The uid and gid to restore: the node's user/group names if they exist here, else its ids."""
    uid = _local_id("user", node.user) if node.user else None
    gid = _local_id("group", node.group) if node.group else None
    return (node.uid if uid is None else uid, node.gid if gid is None else gid)


def _chmod_nofollow(dir_fd: int, name: bytes, mode: int) -> None:
    try:
        os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=False)
        return
    except (NotImplementedError, ValueError):  # older libc: go through an O_PATH fd
        pass
    pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if stat.S_ISLNK(os.fstat(pfd).st_mode):
            raise OSError(errno.ELOOP, "is a symbolic link")
        os.chmod(f"/proc/self/fd/{pfd}", mode)
    finally:
        os.close(pfd)


@functools.cache
def _have_proc() -> bool:
    return os.path.isdir("/proc/self/fd")


def _drop_xattr(path: bytes, key: bytes) -> None:
    try:
        os.removexattr(path, key, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_ATTR:
            raise


def apply_metadata(tdir: TargetDir, name: bytes, node: Node, *, restore_owner: bool) -> list[str]:
    """Give the entry ``name`` in ``tdir`` the node's owner, xattrs, ACLs, mode and times.

    Call after the content is written. Order: owner (names mapped through this machine's
    users/groups when they exist, else numeric ids; only if ``restore_owner``), xattrs,
    ACLs (made exactly the node's: an inherited access ACL the node lacks is removed;
    default ACL on directories only), mode (after chown, which clears setuid; not on
    symlinks; setuid/setgid dropped if the owner could not be set), times last (ns).
    Every call is no-follow and decides by the entry actually on disk, not the node's
    type. Nothing raises for a failed step (except ``UnsafePath`` for a bad name): the
    returned list holds one warning per step that failed.
    """
    check_component(name)
    where = tdir.where(name)
    warnings: list[str] = []

    def attempt(what: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
            return True
        except (OSError, ValueError, NotImplementedError) as exc:
            warnings.append(f"{where}: cannot {what}: {getattr(exc, 'strerror', None) or exc}")
            return False

    try:
        st = os.stat(name, dir_fd=tdir.fd, follow_symlinks=False)
    except OSError as exc:
        return [f"{where}: metadata not restored: {exc.strerror}"]
    is_link, is_dir = stat.S_ISLNK(st.st_mode), stat.S_ISDIR(st.st_mode)
    actual = node_type(st.st_mode)
    if actual != node.type:
        warnings.append(f"{where}: is a {actual} on disk but a {node.type} in the snapshot")
    mode = node.mode
    if restore_owner:
        uid, gid = owner_ids(node)
        if not attempt("set owner", lambda: os.chown(name, uid, gid, dir_fd=tdir.fd, follow_symlinks=False)):
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
    if not _have_proc():
        if node.xattrs or node.acl_access or node.acl_default:
            warnings.append(f"{where}: xattrs and ACLs not restored: /proc is not mounted")
    else:
        path = f"/proc/self/fd/{tdir.fd}/".encode() + name  # the dir fd pins the directory
        for key, value in sorted(node.xattrs.items()):
            attempt(f"set xattr {show_path(key)}", lambda: os.setxattr(path, key, value, follow_symlinks=False))
        acls = {} if is_link else {ACL_ACCESS: node.acl_access}
        if is_dir:
            acls[ACL_DEFAULT] = node.acl_default
        for key, value in acls.items():
            if value:
                attempt(f"set {show_path(key)}", lambda: os.setxattr(path, key, value, follow_symlinks=False))
            else:
                attempt(f"remove inherited {show_path(key)}", lambda: _drop_xattr(path, key))
    if not is_link:
        attempt("set mode", lambda: _chmod_nofollow(tdir.fd, name, mode))
    times = (node.atime_ns, node.mtime_ns)
    attempt("set times", lambda: os.utime(name, ns=times, dir_fd=tdir.fd, follow_symlinks=False))
    return warnings


def write_sparse(fd: int, size: int) -> None:
    """Set the file's length to ``size``; regions never written stay holes.

    Call after writing the data regions (or before: extending with ftruncate never
    allocates). ``RestoreError`` if the file system refuses (EFBIG, ENOSPC, ...).
    """
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        raise RestoreError(f"cannot set the size of {show_path(fd)} to {size}: {exc.strerror}") from exc
