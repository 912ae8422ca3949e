"""Tests for ebas.backup.fsmeta: nodes from real files of every type, xattrs, ACLs, holes."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
from types import SimpleNamespace

import pytest

from ebas.backup import fsmeta
from ebas.backup.fsmeta import (
    ACL_ACCESS,
    ACL_DEFAULT,
    OwnerNames,
    data_extents,
    looks_sparse,
    node_from_stat,
    node_type,
    open_source_file,
    read_extras,
    show_path,
)
from ebas.errors import SourceError
from ebas.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node

MiB = 1 << 20
GiB = 1 << 30
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


def b(path) -> bytes:
    return os.fsencode(path)


def xattrs_supported(path: bytes) -> bool:
    probe = path + b"/.xattr-probe"
    open(probe, "wb").close()
    try:
        os.setxattr(probe, b"user.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


@pytest.fixture
def src(tmp_path) -> bytes:
    return b(tmp_path)


@pytest.fixture
def xsrc(src) -> bytes:
    if not xattrs_supported(src):
        pytest.skip("no user xattrs on this file system")
    return src


def setfacl(*args: bytes | str) -> None:
    if shutil.which("setfacl") is None:
        pytest.skip("setfacl not installed")
    res = subprocess.run(["setfacl", *args], capture_output=True)
    if res.returncode:
        pytest.skip(f"no POSIX ACLs here: {res.stderr.decode(errors='replace')}")


def node_of(path: bytes, owners: OwnerNames | None = None) -> Node:
    return node_from_stat(os.path.basename(path), os.lstat(path), owners=owners or OwnerNames())


# ------------------------------------------------------------------ OwnerNames
def test_owner_names_known_and_unknown():
    owners = OwnerNames()
    assert owners.user(0) == "root"
    assert owners.group(0) == "root"
    assert owners.user(3_999_999_999) == ""
    assert owners.group(3_999_999_999) == ""
    assert owners.user(2**63) == ""  # too large for the C call


def test_owner_names_cached():
    calls = []

    def getpwuid(uid):
        calls.append(("u", uid))
        if uid == 7:
            raise KeyError(uid)
        return SimpleNamespace(pw_name=f"user{uid}")

    def getgrgid(gid):
        calls.append(("g", gid))
        return SimpleNamespace(gr_name=f"group{gid}")

    owners = OwnerNames(getpwuid, getgrgid)
    assert [owners.user(5), owners.user(5), owners.user(7), owners.user(7)] == ["user5", "user5", "", ""]
    assert [owners.group(5), owners.group(5)] == ["group5", "group5"]
    assert calls == [("u", 5), ("u", 7), ("g", 5)]


# -------------------------------------------------------------- node_from_stat
def test_regular_file(src):
    path = src + b"/f"
    with open(path, "wb") as f:
        f.write(b"x" * 1234)
    os.chmod(path, 0o4751)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    st = os.lstat(path)
    n = node_of(path)
    assert (n.name, n.type, n.mode, n.size) == (b"f", FILE, 0o4751, 1234)
    assert (n.uid, n.gid, n.user, n.group) == (st.st_uid, st.st_gid, "root" if IS_ROOT else n.user, n.group)
    assert n.atime_ns == 1_600_000_000_123_456_789
    assert n.mtime_ns == 1_500_000_000_987_654_321
    assert n.ctime_ns == st.st_ctime_ns
    assert (n.inode, n.dev, n.nlink, n.rdev, n.link_group) == (st.st_ino, st.st_dev, 1, 0, "")


def test_directory_has_no_size_or_link_group(src):
    os.mkdir(src + b"/d")
    os.mkdir(src + b"/d/sub")  # nlink of d becomes 3
    n = node_of(src + b"/d")
    assert (n.type, n.size, n.link_group) == (DIR, 0, "")
    assert n.nlink >= 2


def test_symlink_node_and_target(src):
    os.symlink(b"some/where/caf\xe9", src + b"/l")
    n = node_of(src + b"/l")
    assert (n.type, n.size) == (SYMLINK, 0)
    read_extras(src + b"/l", n)
    assert n.target == b"some/where/caf\xe9"


def test_symlink_needs_a_path(src):
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="needs a path"):
            read_extras(fd, Node(name=b"l", type=SYMLINK))
    finally:
        os.close(fd)


def test_fifo(src):
    os.mkfifo(src + b"/p", 0o640)
    n = node_of(src + b"/p")
    assert (n.type, n.mode, n.size, n.rdev) == (FIFO, 0o640, 0, 0)


def test_socket(src, monkeypatch):
    monkeypatch.chdir(src)  # keep the sun_path short
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("sock")
        n = node_of(src + b"/sock")
    assert (n.type, n.size) == (SOCKET, 0)


@needs_root
def test_char_device(src):
    os.mknod(src + b"/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(src + b"/null", 0o666)  # mknod applies the umask
    n = node_of(src + b"/null")
    assert (n.type, n.mode, n.size, n.rdev) == (CHARDEV, 0o666, 0, os.makedev(1, 3))


@needs_root
def test_block_device(src):
    os.mknod(src + b"/loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    n = node_of(src + b"/loop")
    assert (n.type, n.rdev) == (BLOCKDEV, os.makedev(7, 0))


def test_unknown_file_type():
    with pytest.raises(SourceError, match="unsupported file type"):
        node_type(0o170000)  # S_IFMT with no known type bits


def test_hard_links_share_link_group(src):
    with open(src + b"/a", "wb") as f:
        f.write(b"data")
    os.link(src + b"/a", src + b"/b")
    a, bb = node_of(src + b"/a"), node_of(src + b"/b")
    st = os.lstat(src + b"/a")
    assert a.nlink == bb.nlink == 2
    assert a.link_group == bb.link_group == f"{st.st_dev}:{st.st_ino}"


def test_invalid_utf8_name(xsrc):
    path = xsrc + b"/caf\xe9"
    with open(path, "wb") as f:
        f.write(b"hello")
    os.setxattr(path, b"user.caf\xe9", b"\xff\x00")
    n = node_of(path)
    read_extras(path, n)
    assert (n.name, n.size) == (b"caf\xe9", 5)
    assert n.xattrs == {b"user.caf\xe9": b"\xff\x00"}
    assert n.display_name == os.fsdecode(b"caf\xe9")


def test_owner_names_filled(src):
    path = src + b"/f"
    open(path, "wb").close()
    if IS_ROOT:
        os.chown(path, 65534, 65534)
    owners = OwnerNames()
    n = node_of(path, owners)
    assert n.user == owners.user(os.lstat(path).st_uid)
    assert n.group == owners.group(os.lstat(path).st_gid)
    if IS_ROOT:
        import pwd

        assert n.user == pwd.getpwuid(65534).pw_name


# ------------------------------------------------------------------ read_extras
def test_xattrs_by_path_and_fd(xsrc):
    path = xsrc + b"/f"
    open(path, "wb").close()
    os.setxattr(path, b"user.one", b"1")
    os.setxattr(path, b"user.empty", b"")
    n = Node(name=b"f", type=FILE)
    read_extras(path, n)
    assert n.xattrs == {b"user.one": b"1", b"user.empty": b""}
    fd = os.open(path, os.O_RDONLY)
    try:
        n2 = Node(name=b"f", type=FILE)
        read_extras(fd, n2)
    finally:
        os.close(fd)
    assert n2.xattrs == n.xattrs
    n3 = Node(name=b"f", type=FILE)
    read_extras(os.fsdecode(path), n3)  # str paths are accepted too
    assert n3.xattrs == n.xattrs


def test_symlink_xattrs_not_followed(xsrc):
    path = xsrc + b"/f"
    open(path, "wb").close()
    os.setxattr(path, b"user.on_target", b"1")
    os.symlink(b"f", xsrc + b"/l")
    n = Node(name=b"l", type=SYMLINK)
    read_extras(xsrc + b"/l", n)
    assert n.xattrs == {} and n.target == b"f"
    followed = Node(name=b"l", type=FILE)
    read_extras(xsrc + b"/l", followed, follow=True)
    assert followed.xattrs == {b"user.on_target": b"1"}


def test_acls_are_kept_apart_from_xattrs(xsrc):
    path = xsrc + b"/f"
    open(path, "wb").close()
    setfacl("-m", "u:nobody:rwx", path)
    os.mkdir(xsrc + b"/d")
    setfacl("-d", "-m", "u:nobody:rx", xsrc + b"/d")
    n = Node(name=b"f", type=FILE)
    read_extras(path, n)
    assert n.acl_access == os.getxattr(path, ACL_ACCESS)
    assert n.acl_access and n.acl_default == b""
    assert ACL_ACCESS not in n.xattrs
    d = Node(name=b"d", type=DIR)
    read_extras(xsrc + b"/d", d)
    assert d.acl_default == os.getxattr(xsrc + b"/d", ACL_DEFAULT)
    assert d.acl_default and ACL_DEFAULT not in d.xattrs


@pytest.mark.parametrize("code", [errno.ENOTSUP, errno.EOPNOTSUPP])
def test_no_xattr_support_is_not_an_error(src, monkeypatch, code):
    open(src + b"/f", "wb").close()

    def refuse(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fsmeta.os, "listxattr", refuse)
    n = Node(name=b"f", type=FILE)
    read_extras(src + b"/f", n)
    assert n.xattrs == {}


def test_xattr_vanishing_between_list_and_get(xsrc, monkeypatch):
    path = xsrc + b"/f"
    open(path, "wb").close()
    os.setxattr(path, b"user.keep", b"1")
    monkeypatch.setattr(fsmeta.os, "listxattr", lambda *a, **k: ["user.gone", "user.keep"])
    n = Node(name=b"f", type=FILE)
    read_extras(path, n)
    assert n.xattrs == {b"user.keep": b"1"}


@pytest.mark.parametrize(
    "exc", [PermissionError(errno.EACCES, "Permission denied"), PermissionError(errno.EPERM, "Operation not permitted")]
)
def test_xattr_permission_errors_raise_source_error(src, monkeypatch, exc):
    path = src + b"/caf\xe9"
    open(path, "wb").close()

    def refuse(*a, **k):
        raise exc

    monkeypatch.setattr(fsmeta.os, "listxattr", refuse)
    with pytest.raises(SourceError, match=r"caf\\xe9: " + exc.strerror):
        read_extras(path, Node(name=b"x", type=FILE))
    monkeypatch.setattr(fsmeta.os, "listxattr", lambda *a, **k: ["user.x"])
    monkeypatch.setattr(fsmeta.os, "getxattr", refuse)
    with pytest.raises(SourceError, match="caf"):
        read_extras(path, Node(name=b"x", type=FILE))


def test_vanished_file_raises_source_error(src):
    with pytest.raises(SourceError, match="No such file"):
        read_extras(src + b"/missing", Node(name=b"missing", type=FILE))


def test_unreadable_symlink_raises_source_error(src):
    open(src + b"/f", "wb").close()
    with pytest.raises(SourceError, match="read symbolic link"):
        read_extras(src + b"/f", Node(name=b"f", type=SYMLINK))  # not a link (any more)


def test_show_path_escapes():
    assert show_path(b"caf\xe9") == "caf\\xe9"
    assert show_path(b"a\nb\x00") == "a\\nb\\x00"
    assert show_path("plain/é") == "plain/é"
    assert show_path(10**6) == "<fd 1000000>"


# ------------------------------------------------------------------ sparse files
def test_sparse_file_extents(src):
    path = src + b"/sparse"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 5 * GiB)
        os.pwrite(fd, b"\x01" * (3 * MiB), 2 * GiB)
        os.pwrite(fd, b"\x02" * MiB, 4 * GiB)
        os.fsync(fd)
        st = os.fstat(fd)
        assert looks_sparse(st)
        os.lseek(fd, 12345, os.SEEK_SET)
        extents = data_extents(fd, st.st_size)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 12345  # offset restored
    finally:
        os.close(fd)
    if extents is None:
        pytest.skip("file system cannot report holes")
    assert extents == sorted(extents)
    total = sum(n for _, n in extents)
    assert 4 * MiB <= total <= 8 * MiB
    covered = lambda off: any(s <= off < s + n for s, n in extents)  # noqa: E731
    assert covered(2 * GiB) and covered(2 * GiB + 3 * MiB - 1) and covered(4 * GiB + MiB - 1)
    assert not covered(0) and not covered(3 * GiB) and not covered(5 * GiB - 1)


def test_data_extents_clips_to_size(src):
    path = src + b"/f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 64 * MiB)
        os.pwrite(fd, b"x" * MiB, 8 * MiB)
        extents = data_extents(fd, 8 * MiB + 4096)
        if extents is None:
            pytest.skip("file system cannot report holes")
        assert extents == [(8 * MiB, 4096)]
        assert data_extents(fd, 4 * MiB) == []  # only a hole in that range
    finally:
        os.close(fd)


def test_not_sparse_and_empty_files(src):
    path = src + b"/dense"
    with open(path, "wb") as f:
        f.write(os.urandom(256 * 1024))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert data_extents(fd, 256 * 1024) is None
        assert data_extents(fd, 0) is None
        assert not looks_sparse(os.fstat(fd))
    finally:
        os.close(fd)


def test_all_hole_file(src):
    path = src + b"/holes"
    with open(path, "wb") as f:
        f.truncate(16 * MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert data_extents(fd, 16 * MiB) == []
    finally:
        os.close(fd)


def test_data_extents_unsupported(src, monkeypatch):
    path = src + b"/f"
    with open(path, "wb") as f:
        f.truncate(MiB)
    real = os.lseek

    def lseek(fd, pos, how):
        if how in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, pos, how)

    fd = os.open(path, os.O_RDONLY)
    try:
        monkeypatch.setattr(fsmeta.os, "lseek", lseek)
        assert data_extents(fd, MiB) is None
    finally:
        monkeypatch.undo()
        os.close(fd)


def test_data_extents_other_error(src, monkeypatch):
    fd = os.open(src, os.O_RDONLY)  # any fd; lseek is faked
    real = os.lseek

    def lseek(fd, pos, how):
        if how == os.SEEK_DATA:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, pos, how)

    try:
        monkeypatch.setattr(fsmeta.os, "lseek", lseek)
        with pytest.raises(SourceError, match="Input/output error"):
            data_extents(fd, MiB)
    finally:
        monkeypatch.undo()
        os.close(fd)


def test_looks_sparse_ignores_non_files_and_small_tails():
    def fake(mode, size, blocks):
        return SimpleNamespace(st_mode=mode, st_size=size, st_blocks=blocks, st_blksize=4096)

    assert not looks_sparse(fake(stat.S_IFDIR | 0o755, 10 * MiB, 0))
    assert not looks_sparse(fake(stat.S_IFREG | 0o644, 3000, 0))  # inline data
    assert looks_sparse(fake(stat.S_IFREG | 0o644, 10 * MiB, 8))


# ------------------------------------------------------------- open_source_file
def test_open_source_file_reads(src):
    path = src + b"/caf\xe9"
    with open(path, "wb") as f:
        f.write(b"content")
    fd = open_source_file(path)
    try:
        assert os.read(fd, 100) == b"content"
        assert os.get_blocking(fd)
    finally:
        os.close(fd)
    dfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_source_file(b"caf\xe9", dir_fd=dfd)
        os.close(fd)
    finally:
        os.close(dfd)


def test_open_source_file_missing(src):
    with pytest.raises(SourceError, match=r"^cannot read .*/missing: No such file or directory; skipped$"):
        open_source_file(src + b"/missing")


def test_open_source_file_refuses_symlink_fifo_dir(src):
    open(src + b"/f", "wb").close()
    os.symlink(b"f", src + b"/l")
    os.mkfifo(src + b"/p")
    with pytest.raises(SourceError, match="symbolic link"):
        open_source_file(src + b"/l")
    with pytest.raises(SourceError, match="not a regular file"):
        open_source_file(src + b"/p")  # must not hang waiting for a writer
    with pytest.raises(SourceError, match="not a regular file"):
        open_source_file(src)


def test_open_source_file_permission_denied(src, monkeypatch):
    open(src + b"/f", "wb").close()

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fsmeta.os, "open", refuse)
    with pytest.raises(SourceError) as info:
        open_source_file(src + b"/f")
    assert str(info.value) == f"cannot read {os.fsdecode(src)}/f: Permission denied; skipped"


def test_open_source_file_without_noatime(src, monkeypatch):
    with open(src + b"/f", "wb") as f:
        f.write(b"z")
    real, flags_seen = os.open, []

    def fake_open(path, flags, *a, **k):
        flags_seen.append(flags)
        if flags & os.O_NOATIME:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(path, flags, *a, **k)

    monkeypatch.setattr(fsmeta.os, "open", fake_open)
    fd = open_source_file(src + b"/f")
    monkeypatch.undo()
    os.close(fd)
    assert len(flags_seen) == 2 and not flags_seen[1] & os.O_NOATIME


@pytest.mark.skipif(IS_ROOT is False, reason="needs root to drop privileges")
def test_open_source_file_really_denied(src):
    """As a non-root user in a child process, an unreadable file gives a clean message."""
    path = src + b"/secret"
    with open(path, "wb") as f:
        f.write(b"s")
    os.chmod(path, 0o600)
    os.chmod(src, 0o755)
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                open_source_file(path)
            except SourceError as exc:
                code = 0 if str(exc).endswith("secret: Permission denied; skipped") else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
