"""Tests for ebas.backup.fswrite: safe creation in the target and metadata round trips."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from ebas.backup import fswrite
from ebas.backup.fsmeta import ACL_ACCESS, ACL_DEFAULT, OwnerNames, node_from_stat, read_extras
from ebas.backup.fswrite import TargetDir, apply_metadata, check_component, owner_ids, write_sparse
from ebas.errors import RestoreError, UnsafePath
from ebas.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node

MiB = 1 << 20
GiB = 1 << 30
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")
T1 = (1_600_000_000_123_456_789, 1_500_000_000_987_654_321)  # (atime, mtime) in ns


@pytest.fixture
def outside(tmp_path) -> bytes:
    path = os.fsencode(tmp_path / "outside")
    os.mkdir(path)
    with open(path + b"/victim", "wb") as f:
        f.write(b"original")
    os.chmod(path + b"/victim", 0o644)
    return path


@pytest.fixture
def target(tmp_path):
    with TargetDir.open_root(os.fsencode(tmp_path / "target")) as root:
        yield root


def tpath(root: TargetDir, *parts: bytes) -> bytes:
    return b"/".join((root.path, *parts))


def assert_untouched(outside: bytes) -> None:
    assert os.listdir(outside) == [b"victim"]
    with open(outside + b"/victim", "rb") as f:
        assert f.read() == b"original"
    st = os.lstat(outside + b"/victim")
    assert (stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid) == (0o644, 1, os.geteuid())


def write_file(root: TargetDir, name: bytes, data: bytes) -> None:
    fd = root.create_file(name)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def setfacl(*args) -> None:
    if shutil.which("setfacl") is None:
        pytest.skip("setfacl not installed")
    res = subprocess.run(["setfacl", *args], capture_output=True)
    if res.returncode:
        pytest.skip(f"no POSIX ACLs here: {res.stderr.decode(errors='replace')}")


def getfacl(path: bytes) -> str:
    out = subprocess.run(["getfacl", "-c", "-p", path], capture_output=True, check=True).stdout
    return out.decode()


def read_node(path: bytes) -> Node:
    node = node_from_stat(os.path.basename(path), os.lstat(path), owners=OwnerNames())
    read_extras(path, node)
    return node


def xnames(path: bytes) -> list[bytes]:
    return [os.fsencode(n) for n in os.listxattr(path, follow_symlinks=False)]


def user_xattrs_ok(path: bytes) -> bool:
    try:
        os.setxattr(path, b"user.probe", b"1", follow_symlinks=False)
        os.removexattr(path, b"user.probe", follow_symlinks=False)
        return True
    except OSError:
        return False


# -------------------------------------------------------------- check_component
@pytest.mark.parametrize(
    "name, shown",
    [(b"", "''"), (b".", "'.'"), (b"..", "'..'"), (b"a/b", "'a/b'"), (b"/etc", "'/etc'"),
     (b"a\0b", "'a\\x00b'"), (b"../\xff", "'../\\xff'")],
)
def test_check_component_refuses(name, shown):
    with pytest.raises(UnsafePath) as info:
        check_component(name)
    assert shown in str(info.value)
    assert info.value.exit_code == UnsafePath.exit_code


@pytest.mark.parametrize("name", [b"caf\xe9", b"...", b".hidden", b"a b", b"-", b"..a"])
def test_check_component_accepts(name):
    assert check_component(name) is name


def test_check_component_refuses_str():
    with pytest.raises(UnsafePath, match="not bytes"):
        check_component("name")  # type: ignore[arg-type]


# ------------------------------------------------------------------- TargetDir
def test_open_root_creates_and_closes(tmp_path):
    path = os.fsencode(tmp_path / "a" / "b")
    root = TargetDir.open_root(path)
    assert os.path.isdir(path) and root.fd >= 0 and root.root is root
    assert "a/b" in repr(root)
    root.close()
    root.close()  # idempotent
    assert root.fd == -1


def test_open_root_missing_without_create(tmp_path):
    with pytest.raises(RestoreError, match="cannot open restore target"):
        TargetDir.open_root(tmp_path / "nope", create=False)


def test_subdir_creates_and_reopens(target):
    with target.subdir(b"caf\xe9") as d:
        with d.subdir(b"inner", mode=0o750) as inner:
            write_file(inner, b"f", b"x")
            assert inner.root is target
    st = os.lstat(tpath(target, b"caf\xe9", b"inner"))
    assert stat.S_IMODE(st.st_mode) == 0o750 & ~_umask()
    with target.subdir(b"caf\xe9") as again:  # existing directory is fine
        assert os.listdir(again.fd) == ["inner"]


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@pytest.mark.parametrize("bad", [b"..", b"a/b", b"", b"/etc", b"x\0y", b"."])
def test_every_operation_refuses_unsafe_names(target, bad):
    for op in (
        lambda: target.subdir(bad),
        lambda: target.create_file(bad),
        lambda: target.symlink(bad, b"x"),
        lambda: target.mkfifo(bad),
        lambda: target.mknod(bad, CHARDEV, 0),
        lambda: target.socket(bad),
        lambda: target.hardlink([b"x"], bad),
        lambda: target.hardlink([bad], b"x"),
        lambda: apply_metadata(target, bad, Node(name=bad, type=FILE), restore_owner=False),
    ):
        with pytest.raises(UnsafePath):
            op()
    assert os.listdir(target.fd) == []


def test_planted_symlink_cannot_redirect_subdir(target, outside):
    os.symlink(outside, tpath(target, b"evil"))
    with pytest.raises(UnsafePath, match="evil: it is a symlink, not a directory"):
        target.subdir(b"evil")
    with pytest.raises(UnsafePath):
        target.create_file(b"evil/victim")
    assert_untouched(outside)


def test_relative_planted_symlink_cannot_redirect(target, outside):
    os.symlink(b"../outside", tpath(target, b"up"))
    with pytest.raises(UnsafePath):
        target.subdir(b"up")
    assert_untouched(outside)


def test_subdir_over_a_file_is_refused(target):
    write_file(target, b"f", b"")
    with pytest.raises(UnsafePath, match="it is a file, not a directory"):
        target.subdir(b"f")


def test_create_file_replaces_planted_symlink(target, outside):
    os.symlink(outside + b"/victim", tpath(target, b"evil"))
    write_file(target, b"evil", b"restored")
    st = os.lstat(tpath(target, b"evil"))
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    with open(tpath(target, b"evil"), "rb") as f:
        assert f.read() == b"restored"
    assert_untouched(outside)


def test_create_file_replaces_planted_hard_link(target, outside):
    os.link(outside + b"/victim", tpath(target, b"h"))
    write_file(target, b"h", b"new")
    assert os.lstat(tpath(target, b"h")).st_nlink == 1
    assert_untouched(outside)


def test_create_file_replaces_fifo_without_blocking(target):
    os.mkfifo(tpath(target, b"p"))
    write_file(target, b"p", b"data")
    assert stat.S_ISREG(os.lstat(tpath(target, b"p")).st_mode)


def test_create_file_truncates_existing_file(target):
    write_file(target, b"f", b"long old content")
    write_file(target, b"f", b"new")
    with open(tpath(target, b"f"), "rb") as f:
        assert f.read() == b"new"


def test_create_file_refuses_directory_in_the_way(target):
    os.mkdir(tpath(target, b"d"))
    with pytest.raises(RestoreError, match="a directory is in the way"):
        target.create_file(b"d")


def test_create_file_other_failure(target):
    target.close()
    with pytest.raises(RestoreError, match="cannot create file"):
        target.create_file(b"f")


def test_create_file_gives_up_on_an_entry_that_keeps_coming_back(target, monkeypatch):
    def always_exists(*a, **k):
        raise FileExistsError(errno.EEXIST, "File exists")

    write_file(target, b"x", b"")
    monkeypatch.setattr(fswrite.os, "unlink", lambda *a, **k: None)
    with pytest.raises(RestoreError, match="keeps being re-created"):
        target._make(b"x", "create file", always_exists)


def test_symlink_created_and_replaced(target, outside):
    target.symlink(b"l", b"caf\xe9/../../x")
    assert os.readlink(tpath(target, b"l")) == b"caf\xe9/../../x"
    target.symlink(b"l", outside)  # replaces, whatever the target
    assert os.readlink(tpath(target, b"l")) == outside
    write_file(target, b"l", b"file now")  # and a file replaces the link
    assert_untouched(outside)


def test_symlink_with_nul_target_is_a_restore_error(target):
    with pytest.raises(RestoreError):
        target.symlink(b"l", b"a\0b")


def test_hardlink_inside_target(target):
    with target.subdir(b"d") as d:
        write_file(d, b"f", b"shared")
    with target.subdir(b"e") as e:
        e.hardlink([b"d", b"f"], b"g")
        e.hardlink([b"d", b"f"], b"g")  # again: replaces / no-op, still one inode
    a, g = os.lstat(tpath(target, b"d", b"f")), os.lstat(tpath(target, b"e", b"g"))
    assert (a.st_ino, a.st_nlink) == (g.st_ino, 2)
    target.hardlink([b"e", b"g"], b"top")
    assert os.lstat(tpath(target, b"top")).st_nlink == 3


def test_hardlink_to_itself_is_noop(target):
    write_file(target, b"f", b"x")
    target.hardlink([b"f"], b"f")
    assert os.path.exists(tpath(target, b"f"))


def test_hardlink_replaces_existing_entry(target):
    write_file(target, b"f", b"x")
    write_file(target, b"other", b"y")
    target.hardlink([b"f"], b"other")
    assert os.lstat(tpath(target, b"other")).st_ino == os.lstat(tpath(target, b"f")).st_ino


@pytest.mark.parametrize(
    "source", [[], [b"..", b"outside", b"victim"], [b"/etc", b"passwd"], [b"a/../../outside"], [b"evil", b"victim"]]
)
def test_hardlink_sources_that_escape(target, outside, source):
    os.symlink(outside, tpath(target, b"evil"))
    with pytest.raises(UnsafePath):
        target.hardlink(source, b"h")
    assert not os.path.lexists(tpath(target, b"h"))
    assert_untouched(outside)


def test_hardlink_to_a_symlink_links_the_link_itself(target, outside):
    os.symlink(outside + b"/victim", tpath(target, b"ln"))
    target.hardlink([b"ln"], b"h")
    st = os.lstat(tpath(target, b"h"))
    assert stat.S_ISLNK(st.st_mode) and st.st_ino == os.lstat(tpath(target, b"ln")).st_ino
    assert_untouched(outside)


def test_hardlink_missing_source_and_closed_root(tmp_path):
    root = TargetDir.open_root(tmp_path / "t")
    with pytest.raises(RestoreError, match="missing"):
        root.hardlink([b"nope"], b"h")
    with pytest.raises(RestoreError, match="cannot open directory"):
        root.hardlink([b"nodir", b"nope"], b"h")
    sub = root.subdir(b"s")
    root.close()
    with pytest.raises(RestoreError, match="root is closed"):
        sub.hardlink([b"x"], b"h")
    sub.close()


def test_mkfifo_and_socket(target):
    target.mkfifo(b"p", 0o640)
    assert stat.S_ISFIFO(os.lstat(tpath(target, b"p")).st_mode)
    assert "socket not restored" in target.socket(b"s")
    assert not os.path.lexists(tpath(target, b"s"))


@needs_root
def test_mknod_as_root(target):
    assert target.mknod(b"null", CHARDEV, os.makedev(1, 3)) is None
    assert target.mknod(b"loop", BLOCKDEV, os.makedev(7, 0)) is None
    c, bl = os.lstat(tpath(target, b"null")), os.lstat(tpath(target, b"loop"))
    assert stat.S_ISCHR(c.st_mode) and c.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(bl.st_mode) and bl.st_rdev == os.makedev(7, 0)


def test_mknod_not_root_is_a_warning(target, monkeypatch):
    monkeypatch.setattr(fswrite.os, "geteuid", lambda: 1000)
    warning = target.mknod(b"null", CHARDEV, os.makedev(1, 3))
    assert "needs root" in warning and not os.path.lexists(tpath(target, b"null"))


def test_mknod_refused_by_kernel_is_a_warning(target, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fswrite.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fswrite.os, "mknod", refuse)
    assert "Operation not permitted" in target.mknod(b"null", CHARDEV, 0)


def test_mknod_other_failures_raise(target, monkeypatch):
    def fail(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fswrite.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fswrite.os, "mknod", fail)
    with pytest.raises(RestoreError, match="No space"):
        target.mknod(b"null", CHARDEV, 0)
    with pytest.raises(ValueError):
        target.mknod(b"x", FIFO, 0)


def test_special_dispatch(target):
    assert target.special(b"p", Node(name=b"p", type=FIFO)) is None
    assert "socket" in target.special(b"s", Node(name=b"s", type=SOCKET))
    if IS_ROOT:
        assert target.special(b"c", Node(name=b"c", type=CHARDEV, rdev=os.makedev(1, 3))) is None
    with pytest.raises(ValueError):
        target.special(b"f", Node(name=b"f", type=FILE))


# --------------------------------------------------------------- apply_metadata
@needs_root
def test_metadata_round_trip(tmp_path, target):
    src = os.fsencode(tmp_path / "src")
    os.mkdir(src)
    path = src + b"/caf\xe9"
    with open(path, "wb") as f:
        f.write(b"payload")
    if not user_xattrs_ok(path):
        pytest.skip("no user xattrs here")
    os.setxattr(path, b"user.note", b"\x00binary\xff")
    setfacl("-m", "u:nobody:rwx", path)
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o4750)  # after chown, which would clear setuid
    os.utime(path, ns=T1)
    node = read_node(path)
    assert node.acl_access and node.mode == 0o4750

    write_file(target, b"caf\xe9", b"payload")
    assert apply_metadata(target, b"caf\xe9", node, restore_owner=True) == []
    again = read_node(tpath(target, b"caf\xe9"))
    fields = ("type", "mode", "uid", "gid", "user", "group", "mtime_ns", "atime_ns", "xattrs", "acl_access", "size")
    for field in fields:
        assert getattr(again, field) == getattr(node, field), field
    assert getfacl(tpath(target, b"caf\xe9")) == getfacl(path)


def test_directory_default_acl_round_trip(tmp_path, target):
    src = os.fsencode(tmp_path / "srcdir")
    os.mkdir(src)
    setfacl("-m", "u:nobody:rx", "-d", "-m", "u:nobody:rwx", src)
    os.chmod(src, 0o1775)
    os.utime(src, ns=T1)
    node = read_node(src)
    assert node.acl_default and node.type == DIR
    with target.subdir(b"d"):
        pass
    assert apply_metadata(target, b"d", node, restore_owner=False) == []
    again = read_node(tpath(target, b"d"))
    assert (again.acl_access, again.acl_default, again.mode) == (node.acl_access, node.acl_default, 0o1775)
    assert (again.atime_ns, again.mtime_ns) == T1
    assert getfacl(tpath(target, b"d")) == getfacl(src)


def test_default_acl_only_on_directories(target):
    write_file(target, b"f", b"")
    node = Node(name=b"f", type=FILE, mode=0o640, acl_default=b"\x02\x00\x00\x00garbage")
    assert apply_metadata(target, b"f", node, restore_owner=False) == []
    assert ACL_DEFAULT not in xnames(tpath(target, b"f"))


def test_inherited_acl_is_removed_when_node_has_none(target):
    with target.subdir(b"d") as d:
        setfacl("-d", "-m", "u:nobody:rwx", tpath(target, b"d"))
        write_file(d, b"f", b"")
        with d.subdir(b"sub"):
            pass
        assert ACL_ACCESS in xnames(tpath(target, b"d", b"f"))
        assert apply_metadata(d, b"f", Node(name=b"f", type=FILE, mode=0o640), restore_owner=False) == []
        assert apply_metadata(d, b"sub", Node(name=b"sub", type=DIR, mode=0o755), restore_owner=False) == []
    names = xnames(tpath(target, b"d", b"f")) + xnames(tpath(target, b"d", b"sub"))
    assert ACL_ACCESS not in names and ACL_DEFAULT not in names
    assert stat.S_IMODE(os.lstat(tpath(target, b"d", b"f")).st_mode) == 0o640


def test_times_and_mode_in_ns(target):
    write_file(target, b"f", b"x")
    node = Node(name=b"f", type=FILE, mode=0o6711, atime_ns=T1[0], mtime_ns=T1[1])
    assert apply_metadata(target, b"f", node, restore_owner=False) == []
    st = os.lstat(tpath(target, b"f"))
    assert (st.st_atime_ns, st.st_mtime_ns, stat.S_IMODE(st.st_mode)) == (*T1, 0o6711)


def test_symlink_metadata_does_not_touch_the_target(target, outside):
    target.symlink(b"l", outside + b"/victim")
    node = Node(name=b"l", type=SYMLINK, mode=0o777, uid=65534, gid=65534, atime_ns=T1[0], mtime_ns=T1[1])
    warnings = apply_metadata(target, b"l", node, restore_owner=True)
    assert warnings == [] or not IS_ROOT
    st = os.lstat(tpath(target, b"l"))
    assert (st.st_atime_ns, st.st_mtime_ns) == T1
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert_untouched(outside)


def test_node_type_lies_about_a_symlink(target, outside):
    """A tampered tree with a duplicate name: the entry on disk is a symlink, the node says file."""
    target.symlink(b"x", outside + b"/victim")
    node = Node(name=b"x", type=FILE, mode=0o777, uid=65534, xattrs={b"user.evil": b"1"},
                acl_access=b"junk", atime_ns=1, mtime_ns=2)
    warnings = apply_metadata(target, b"x", node, restore_owner=True)
    assert any("is a symlink on disk but a file in the snapshot" in w for w in warnings)
    assert_untouched(outside)
    assert b"user.evil" not in xnames(outside + b"/victim")


def test_owner_names_preferred_over_ids(target):
    nobody = pwd.getpwnam("nobody")
    by_name = Node(name=b"f", type=FILE, uid=12345, gid=12345, user="nobody", group=_group_of(nobody.pw_gid))
    assert owner_ids(by_name) == (nobody.pw_uid, nobody.pw_gid)
    unknown = Node(name=b"f", type=FILE, uid=12345, gid=23456, user="no-such-user-xyz", group="no-such-group-xyz")
    assert owner_ids(unknown) == (12345, 23456)
    assert owner_ids(Node(name=b"f", type=FILE, uid=7, gid=8)) == (7, 8)
    if IS_ROOT:
        write_file(target, b"f", b"")
        assert apply_metadata(target, b"f", unknown, restore_owner=True) == []
        st = os.lstat(tpath(target, b"f"))
        assert (st.st_uid, st.st_gid) == (12345, 23456)


def _group_of(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def test_restore_owner_false_keeps_our_owner(target):
    write_file(target, b"f", b"")
    apply_metadata(target, b"f", Node(name=b"f", type=FILE, uid=12345, gid=12345, mode=0o644), restore_owner=False)
    st = os.lstat(tpath(target, b"f"))
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())


def test_failed_chown_drops_setuid(target, monkeypatch):
    write_file(target, b"f", b"")

    def refuse(*a, **k):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fswrite.os, "chown", refuse)
    warnings = apply_metadata(target, b"f", Node(name=b"f", type=FILE, mode=0o6755), restore_owner=True)
    assert warnings and "cannot set owner: Operation not permitted" in warnings[0]
    assert stat.S_IMODE(os.lstat(tpath(target, b"f")).st_mode) == 0o755


def test_xattr_failures_are_warnings(target):
    write_file(target, b"f", b"")
    node = Node(name=b"f", type=FILE, mode=0o600, xattrs={b"bogus.ns": b"1"}, atime_ns=T1[0], mtime_ns=T1[1])
    warnings = apply_metadata(target, b"f", node, restore_owner=False)
    assert len(warnings) == 1 and "cannot set xattr bogus.ns" in warnings[0]
    assert os.lstat(tpath(target, b"f")).st_mtime_ns == T1[1]  # later steps still ran


def test_missing_entry_is_a_warning(target):
    warnings = apply_metadata(target, b"gone", Node(name=b"gone", type=FILE), restore_owner=False)
    assert warnings == [f"{os.fsdecode(target.path)}/gone: metadata not restored: No such file or directory"]


def test_without_proc_xattrs_are_a_warning(target, monkeypatch):
    write_file(target, b"f", b"")
    monkeypatch.setattr(fswrite, "_have_proc", lambda: False)
    warnings = apply_metadata(target, b"f", Node(name=b"f", type=FILE, xattrs={b"user.a": b"1"}), restore_owner=False)
    assert warnings and "/proc is not mounted" in warnings[0]


def test_chmod_fallback_for_old_libc(target, monkeypatch):
    write_file(target, b"f", b"")
    target.symlink(b"l", b"f")
    real = os.chmod

    def chmod(path, mode, *, dir_fd=None, follow_symlinks=True):
        if not follow_symlinks:
            raise NotImplementedError("chmod: follow_symlinks unavailable on this platform")
        return real(path, mode, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(fswrite.os, "chmod", chmod)
    assert apply_metadata(target, b"f", Node(name=b"f", type=FILE, mode=0o751), restore_owner=False) == []
    assert stat.S_IMODE(os.lstat(tpath(target, b"f")).st_mode) == 0o751
    with pytest.raises(OSError):
        fswrite._chmod_nofollow(target.fd, b"l", 0o777)  # never through a symlink
    assert stat.S_IMODE(os.lstat(tpath(target, b"f")).st_mode) == 0o751


# ------------------------------------------------------------------ write_sparse
def test_write_sparse_leaves_holes(target):
    fd = target.create_file(b"sparse")
    try:
        os.pwrite(fd, b"\x07" * MiB, 2 * GiB)
        write_sparse(fd, 5 * GiB)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    assert st.st_size == 5 * GiB
    assert st.st_blocks * 512 < 16 * MiB
    with open(tpath(target, b"sparse"), "rb") as f:
        f.seek(2 * GiB - 1)
        assert f.read(2) == b"\x00\x07"


def test_write_sparse_failure(target):
    fd = os.open(target.path, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(RestoreError, match="cannot set the size"):
        write_sparse(fd, 10)


def test_acl_removal_failure_is_a_warning(target, monkeypatch):
    write_file(target, b"f", b"")

    def refuse(*a, **k):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fswrite.os, "removexattr", refuse)
    warnings = apply_metadata(target, b"f", Node(name=b"f", type=FILE, mode=0o600), restore_owner=False)
    where = os.fsdecode(target.path) + "/f"
    assert warnings == [f"{where}: cannot remove inherited system.posix_acl_access: Operation not permitted"]


def test_hardlink_source_that_cannot_be_examined(target, monkeypatch):
    write_file(target, b"f", b"")

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fswrite.os, "stat", refuse)
    with pytest.raises(RestoreError, match="cannot examine .*/f: Permission denied"):
        target.hardlink([b"f"], b"g")
