"""Reading file-system metadata during backup.

Turns what the kernel says about a directory entry into a :class:`~ebas.repo.tree.Node`:
``node_from_stat`` is pure apart from owner-name lookups; ``read_extras`` adds what needs
more system calls (xattrs, POSIX ACLs, symlink targets); ``data_extents`` maps the data
regions of a sparse file; ``open_source_file`` opens a file for reading without following
symlinks, touching atime or blocking on something that is not a regular file.

Paths are ``bytes`` throughout, so names that are not valid UTF-8 work. Every failure to
read a source becomes a :class:`~ebas.errors.SourceError` whose message names the path,
so the archiver can record it on the node and carry on.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from typing import Callable

from ebas.errors import SourceError
from ebas.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node

ACL_ACCESS = b"system.posix_acl_access"
ACL_DEFAULT = b"system.posix_acl_default"

# "This file system has no xattrs (here)": not an error, just nothing to record.
_NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA}
# lseek(SEEK_DATA/SEEK_HOLE) not available on this file system.
_NO_SEEK_DATA = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENXIO}

_TYPES = (
    (stat.S_ISREG, FILE),
    (stat.S_ISDIR, DIR),
    (stat.S_ISLNK, SYMLINK),
    (stat.S_ISCHR, CHARDEV),
    (stat.S_ISBLK, BLOCKDEV),
    (stat.S_ISFIFO, FIFO),
    (stat.S_ISSOCK, SOCKET),
)


def show_path(path: bytes | str | int) -> str:
    """A path (or fd) for messages, one printable line, never raising.

    Bytes that are not UTF-8 appear as ``\\xNN`` and control characters (NUL,
    newline, ...) as escapes; an fd is shown as the path the kernel reports for it.
    """
    if isinstance(path, int):
        try:
            return show_path(os.readlink(f"/proc/self/fd/{path}".encode()))
        except OSError:
            return f"<fd {path}>"
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class OwnerNames:
    """Caches uid → user name and gid → group name; ``""`` when the id has no name.

    Each id is looked up at most once per instance (name services can be slow).
    The lookup functions are injectable for tests.
    """

    def __init__(
        self,
        getpwuid: Callable[[int], object] = pwd.getpwuid,
        getgrgid: Callable[[int], object] = grp.getgrgid,
    ):
        self._getpwuid = getpwuid
        self._getgrgid = getgrgid
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def user(self, uid: int) -> str:
        """The user name of ``uid``, or ``""`` if this machine does not know it."""
        if uid not in self._users:
            try:
                self._users[uid] = self._getpwuid(uid).pw_name  # type: ignore[attr-defined]
            except (KeyError, OverflowError):
                self._users[uid] = ""
        return self._users[uid]

    def group(self, gid: int) -> str:
        """The group name of ``gid``, or ``""`` if this machine does not know it."""
        if gid not in self._groups:
            try:
                self._groups[gid] = self._getgrgid(gid).gr_name  # type: ignore[attr-defined]
            except (KeyError, OverflowError):
                self._groups[gid] = ""
        return self._groups[gid]


def node_type(st_mode: int) -> str:
    """The tree node type of a ``st_mode``; ``SourceError`` for a type ebas cannot store."""
    for test, name in _TYPES:
        if test(st_mode):
            return name
    raise SourceError(f"unsupported file type {stat.S_IFMT(st_mode):#o}")


def node_from_stat(name: bytes, st: os.stat_result, *, owners: OwnerNames) -> Node:
    """A node filled from an ``lstat`` result; no I/O except (cached) owner lookups.

    ``size`` is set for regular files only, ``rdev`` for device nodes only, and
    ``link_group`` (``"dev:inode"``) for non-directories with more than one link.
    Raises ``SourceError`` for a file type that has no node type (never on Linux).
    """
    ntype = node_type(st.st_mode)
    return Node(
        name=name,
        type=ntype,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        user=owners.user(st.st_uid),
        group=owners.group(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        atime_ns=st.st_atime_ns,
        size=st.st_size if ntype == FILE else 0,
        inode=st.st_ino,
        dev=st.st_dev,
        nlink=st.st_nlink,
        rdev=st.st_rdev if ntype in (CHARDEV, BLOCKDEV) else 0,
        link_group=f"{st.st_dev}:{st.st_ino}" if ntype != DIR and st.st_nlink > 1 else "",
    )


def _source_error(what: str, path: bytes | str | int, exc: OSError) -> SourceError:
    err = SourceError(f"cannot {what} {show_path(path)}: {exc.strerror or exc}")
    err.__cause__ = exc
    return err


def read_extras(path_or_fd: bytes | str | int, node: Node, *, follow: bool = False) -> None:
    """Fill ``node.xattrs``, ``node.acl_access``/``acl_default`` and ``node.target``.

    ``path_or_fd`` is a bytes path (str is encoded with ``os.fsencode``) or an fd opened
    for reading (a file or directory; a symlink node needs a path, else ``ValueError``).
    With a path, a symlink itself is examined unless ``follow`` is true. All xattrs are
    read as raw bytes; the two POSIX ACL xattrs go to ``acl_access``/``acl_default``
    instead of ``xattrs``. A file system without xattr support (ENOTSUP) or an xattr
    that vanished between list and read (ENODATA) is not an error. For a symlink node,
    ``target`` is the raw link text. Any other failure (EACCES, EPERM, ENOENT, ...)
    raises ``SourceError`` naming the path.
    """
    target: bytes | int = os.fsencode(path_or_fd) if isinstance(path_or_fd, str) else path_or_fd
    if isinstance(target, int) and node.type == SYMLINK:
        raise ValueError("read_extras: a symlink node needs a path, not an fd")
    kw = {} if isinstance(target, int) else {"follow_symlinks": follow}
    try:
        names = os.listxattr(target, **kw)
    except OSError as exc:
        if exc.errno not in _NO_XATTRS:
            raise _source_error("read extended attributes of", target, exc) from exc
        names = []
    for attr in sorted(os.fsencode(n) for n in names):
        try:
            value = os.getxattr(target, attr, **kw)
        except OSError as exc:
            if exc.errno in _NO_XATTRS:
                continue
            raise _source_error("read extended attributes of", target, exc) from exc
        if attr == ACL_ACCESS:
            node.acl_access = value
        elif attr == ACL_DEFAULT:
            node.acl_default = value
        else:
            node.xattrs[attr] = value
    if node.type == SYMLINK:
        try:
            node.target = os.readlink(target)
        except OSError as exc:
            raise _source_error("read symbolic link", target, exc) from exc


def looks_sparse(st: os.stat_result) -> bool:
    """True if a regular file occupies noticeably less space than its size.

    A cheap hint only (compressed file systems also say yes): confirm with
    :func:`data_extents`. The slack of one block avoids flagging small files whose
    tail or inline data is not counted in ``st_blocks``.
    """
    if not stat.S_ISREG(st.st_mode):
        return False
    slack = max(getattr(st, "st_blksize", 0), 4096)
    return st.st_blocks * 512 + slack < st.st_size


def data_extents(fd: int, size: int) -> list[tuple[int, int]] | None:
    """``(offset, length)`` of each data region of the first ``size`` bytes of ``fd``.

    Everything between the regions is a hole (reads as zeros). Returns ``None`` when
    the file is not sparse (one region covering everything, or ``size`` is 0) or the
    file system cannot report holes, so the caller reads the file as a whole; ``[]``
    means ``size`` bytes of holes. Regions are clipped to ``size``. The file offset is
    put back where it was. Other failures raise ``SourceError``.
    """
    if size <= 0:
        return None
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    extents: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole from here to EOF
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            extents.append((start, end - start))
            offset = end
    except OSError as exc:
        if exc.errno in _NO_SEEK_DATA:
            return None
        raise _source_error("map the holes of", fd, exc) from exc
    finally:
        os.lseek(fd, pos, os.SEEK_SET)
    if extents == [(0, size)]:
        return None
    return extents


def open_source_file(path: bytes, *, dir_fd: int | None = None) -> int:
    """Open a regular file for reading and return the fd (the caller closes it).

    Uses ``O_RDONLY | O_NOFOLLOW | O_NOATIME | O_NONBLOCK`` (retrying without
    ``O_NOATIME`` when the kernel refuses it with EPERM, i.e. we do not own the file),
    relative to ``dir_fd`` if given. If the entry is now a symlink, fifo, device or
    anything but a regular file, it is not read (no hang on a fifo) and ``SourceError``
    is raised; so is any open failure, as "cannot read /x/y: Permission denied; skipped".
    """
    path = os.fsencode(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    noatime = getattr(os, "O_NOATIME", 0)
    try:
        try:
            fd = os.open(path, flags | noatime, dir_fd=dir_fd)
        except PermissionError as exc:
            if not noatime or exc.errno != errno.EPERM:
                raise
            fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ELOOP:
            reason = "it is a symbolic link now (changed during backup)"
        raise SourceError(f"cannot read {show_path(path)}: {reason}; skipped") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SourceError(f"cannot read {show_path(path)}: it is not a regular file now; skipped")
    os.set_blocking(fd, True)
    return fd
