"""Backup and restore through the Python API on real files.

Levels and change detection, faithful restores (content and metadata, links, specials,
odd names, sparse files), excludes, --one-file-system, unreadable / changing / vanishing
files, very large directories and very long paths, partial restores, dump, diff, and
restores of malicious or damaged snapshots.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from ebas import api
from ebas.backup.dump import dump
from ebas.backup.fileread import FileReader
from ebas.errors import IntegrityError, RestoreError, UnsafePath, UsageError
from ebas.repo.pack import KIND_DATA, KIND_TREE, pack_name
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import DIR, FILE, Node, encode_tree

T0 = 1_600_000_000_123_456_789  # a fixed mtime with nanoseconds


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def set_mtime(path, ns: int) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def make_source(root: Path) -> Path:
    """A small tree with every kind of entry ebas must reproduce."""
    src = root / "src"
    (src / "docs" / "deep" / "er").mkdir(parents=True)
    (src / "empty-dir").mkdir()
    (src / "bin").mkdir()
    (src / "big.bin").write_bytes(rand(700_000, 1))  # many chunks, several packs
    (src / "docs" / "readme.txt").write_bytes(b"hello ebas\n" * 3000)  # compressible
    (src / "docs" / "deep" / "er" / "leaf").write_bytes(rand(5000, 2))
    (src / "empty").write_bytes(b"")
    (src / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(src / "bin" / "tool", 0o4755)
    (src / "private").write_bytes(b"secret")
    os.chmod(src / "private", 0o600)
    os.symlink("docs/readme.txt", src / "rel-link")
    os.symlink("/nonexistent/target", src / "dangling")
    os.link(src / "big.bin", src / "docs" / "hardlink-to-big")
    os.mkfifo(src / "fifo")
    bad = os.fsencode(str(src)) + b"/bad-\xff\xfe-name"
    with open(bad, "wb") as fh:
        fh.write(b"undecodable name")
    os.setxattr(src / "docs" / "readme.txt", "user.comment", b"\x00binary\xffvalue")
    os.setxattr(src / "empty-dir", "user.dir", b"x")
    if os.geteuid() == 0:
        os.chown(src / "private", 12345, 23456)  # ids with no name on this machine
    for p in sorted(src.rglob("*"), key=lambda p: -len(p.parts)):
        set_mtime(p, T0 + len(p.parts))
    set_mtime(bad, T0 + 7)
    set_mtime(src, T0)
    return src


def restore_to(repo, tmp_path: Path, ref: str = "latest", name: str = "out", **kw) -> Path:
    target = tmp_path / name
    api.restore(repo, ref, str(target), **kw)
    return target


def r(target: Path, src: Path) -> Path:
    return target / str(src).lstrip("/")


# ======================================================================= restore
def test_restore_is_bit_for_bit_with_metadata(repos, repo, tmp_path, state):
    src = make_source(tmp_path)
    before = state(src, root_meta=True)
    result = api.backup(repo, [str(src)])
    assert not result.partial and result.errors == [] and result.warnings == []
    assert result.snapshot.level == "full"
    st = result.snapshot.stats
    assert st["files"] == 8 and st["dirs"] == 6 and st["others"] == 3
    target = restore_to(repo, tmp_path)
    out = r(target, src)
    assert state(out, root_meta=True) == before
    # hard links come back as links, not copies
    assert os.stat(out / "big.bin").st_ino == os.stat(out / "docs" / "hardlink-to-big").st_ino
    assert os.stat(out / "big.bin").st_nlink == 2
    assert os.readlink(out / "dangling") == "/nonexistent/target"
    assert os.getxattr(out / "docs" / "readme.txt", "user.comment") == b"\x00binary\xffvalue"
    assert os.stat(out / "bin" / "tool").st_mode & 0o7777 == 0o4755
    assert os.stat(out / "docs" / "readme.txt").st_mtime_ns == T0 + len((src / "docs" / "readme.txt").parts)
    if os.geteuid() == 0:
        assert (os.stat(out / "private").st_uid, os.stat(out / "private").st_gid) == (12345, 23456)
    # a second repository object (nothing cached) restores the same
    again = restore_to(repos.reopen(repo), tmp_path, name="out2")
    assert state(r(again, src), root_meta=True) == before


def test_small_files_restore_with_few_requests(repo, tmp_path):
    """A directory of 300 small files restores through a handful of ranged reads, not one
    request per file (what object stores bill and what their latency punishes)."""
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    src = tmp_path / "many"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for k in range(100):
            (src / f"d{d}" / f"f{k:03d}.txt").write_bytes(rand(500 + 37 * k, 1000 * d + k))
    (src / "d0" / "empty").write_bytes(b"")
    (src / "d0" / "big.bin").write_bytes(rand(3_000_000, 5))  # a big file restores beside the groups
    snap = api.backup(repo, [str(src)]).snapshot
    counts = StoreCounts()
    reader = api.Repository.open(CountingStore(repo.store, counts), "correct horse battery staple")
    reader.index  # load the index first: count only what the restore itself reads
    before = counts.snapshot()
    out = tmp_path / "out"
    res = api.restore(reader, snap.id, str(out))
    gets = (counts.snapshot() - before).calls.get("get", 0)
    assert res.files == 302
    for p in src.rglob("*"):
        if p.is_file():
            assert (r(out, src) / p.relative_to(src)).read_bytes() == p.read_bytes(), p
    assert gets < 40, gets  # 4 trees + a few ranged reads per directory and for big.bin; was 300+


def test_sparse_5gib_file_is_restored_with_holes(repo, tmp_path):
    src = tmp_path / "sp"
    src.mkdir()
    f = src / "disk.raw"
    with open(f, "wb") as fh:
        fh.truncate(5 << 30)
        fh.seek(1 << 30)
        fh.write(b"first data region")
        fh.seek((4 << 30) + 12345)
        fh.write(rand(100_000, 3))
    if os.stat(f).st_blocks * 512 > 4 << 20:
        pytest.skip("this file system does not keep holes")
    result = api.backup(repo, [str(src)])
    assert result.stats.bytes_read < 1 << 20  # holes are not read
    stored = sum(i.size for i in repo.store.list("data/"))
    assert stored < 1 << 20
    out = r(restore_to(repo, tmp_path), src) / "disk.raw"
    st = os.stat(out)
    assert st.st_size == 5 << 30
    assert st.st_blocks * 512 < 4 << 20  # restored as holes, not 5 GiB of zeros
    with open(out, "rb") as fh:
        assert os.pread(fh.fileno(), 17, 1 << 30) == b"first data region"
        assert os.pread(fh.fileno(), 100_000, (4 << 30) + 12345) == rand(100_000, 3)
        assert os.pread(fh.fileno(), 4096, 0) == bytes(4096)
        assert os.pread(fh.fileno(), 4096, (3 << 30)) == bytes(4096)
        assert os.pread(fh.fileno(), 4096, (5 << 30) - 4096) == bytes(4096)
    # the incremental backup reuses it without reading
    again = api.backup(repo, [str(src)])
    assert again.stats.files_unmodified == 1 and again.stats.bytes_read == 0


def test_sparse_file_dump_has_zeros_in_the_holes(repo, tmp_path):
    src = tmp_path / "sp"
    src.mkdir()
    with open(src / "s", "wb") as fh:
        fh.truncate(3 << 20)
        fh.seek(1 << 20)
        fh.write(b"middle")
    api.backup(repo, [str(src)])
    snap = repo.find_snapshot("latest")
    buf = io.BytesIO()
    assert dump(repo, snap, str(src / "s"), buf) == "file"
    assert buf.getvalue() == (src / "s").read_bytes()


def test_restore_into_existing_target_replaces_entries(repo, tmp_path, state):
    src = make_source(tmp_path)
    api.backup(repo, [str(src)])
    target = tmp_path / "out"
    out = r(target, src)
    out.mkdir(parents=True)
    (out / "big.bin").write_bytes(b"stale")
    os.symlink("/etc/passwd", out / "private")  # a planted symlink must not be written through
    api.restore(repo, "latest", str(target))
    assert state(out, root_meta=True) == state(src, root_meta=True)
    assert not os.path.islink(out / "private")


# ======================================================================== levels
def test_levels_full_incremental_differential(repo, tmp_path, state):
    src = tmp_path / "data"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}").write_bytes(rand(20_000, 10 + i))
    total = 10 * 20_000

    b1 = api.backup(repo, [str(src)], tags=["t"])  # asked incremental, nothing before: full
    s1 = b1.snapshot
    assert s1.level == "full" and s1.parent is None and s1.base is None and s1.chain == ""
    assert b1.stats.files_new == 10 and b1.stats.bytes_read == total
    state1 = state(src)

    (src / "f1").write_bytes(rand(25_000, 99))  # changed content and size
    (src / "new").write_bytes(b"n" * 1000)
    b2 = api.backup(repo, [str(src)])
    s2 = b2.snapshot
    assert s2.level == "incremental" and s2.parent == s1.id and s2.base == s1.id and s2.chain == s1.id
    assert (b2.stats.files_unmodified, b2.stats.files_changed, b2.stats.files_new) == (9, 1, 1)
    assert b2.stats.bytes_read == 25_000 + 1000
    state2 = state(src)

    # same size and mtime, new content: the ctime (and so the inode change) gives it away
    old = os.stat(src / "f2")
    (src / "f2").write_bytes(rand(20_000, 77))
    set_mtime(src / "f2", old.st_mtime_ns)
    b3 = api.backup(repo, [str(src)])
    s3 = b3.snapshot
    assert s3.parent == s2.id and s3.base == s1.id and s3.chain == s1.id
    assert (b3.stats.files_unmodified, b3.stats.files_changed, b3.stats.bytes_read) == (10, 1, 20_000)
    state3 = state(src)

    b4 = api.backup(repo, [str(src)], level="differential")
    s4 = b4.snapshot
    assert s4.level == "differential" and s4.parent == s1.id and s4.base == s1.id
    # everything changed since the full is read again: f1, f2 and the new file
    assert (b4.stats.files_unmodified, b4.stats.files_changed, b4.stats.files_new) == (8, 2, 1)
    assert b4.stats.bytes_read == 25_000 + 20_000 + 1000
    assert b4.snapshot.stats["bytes_added"] < 20_000  # only tree blobs: the data deduplicated

    b5 = api.backup(repo, [str(src)], level="full")
    s5 = b5.snapshot
    assert s5.level == "full" and s5.parent is None and s5.base is None
    assert b5.stats.bytes_read == total + 5000 + 1000  # everything re-read
    assert b5.stats.files_unmodified == 0
    assert s5.stats["bytes_added"] < 20_000  # ... and deduplicated (only trees may be new)

    b6 = api.backup(repo, [str(src)], level="differential")
    assert b6.snapshot.parent == s5.id and b6.snapshot.base == s5.id
    assert b6.stats.files_unmodified == 11 and b6.stats.bytes_read == 0

    # every snapshot restores alone, to the state it recorded
    for snap, want in ((s1, state1), (s2, state2), (s3, state3), (s4, state3), (s5, state3)):
        out = restore_to(repo, tmp_path, snap.id[:10], name="r-" + snap.id[:8])
        assert state(r(out, src)) == want
    assert [s.tags for s in repo.snapshots(refresh=True)][0] == ["t"]


def test_incremental_is_per_source_and_host(repo, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "x").write_bytes(rand(5000, 1))
    api.backup(repo, [str(a)])
    rb = api.backup(repo, [str(b)])
    assert rb.snapshot.level == "full" and rb.snapshot.parent is None
    rh = api.backup(repo, [str(a)], host="other-host")
    assert rh.snapshot.level == "full" and rh.snapshot.host == "other-host"
    rab = api.backup(repo, [str(a), str(b)])
    assert rab.snapshot.level == "full"
    assert api.backup(repo, [str(b), str(a)]).snapshot.parent == rab.snapshot.id


def test_unknown_level_and_missing_source_are_usage_errors(repo, tmp_path):
    with pytest.raises(UsageError):
        api.backup(repo, [str(tmp_path)], level="weekly")
    with pytest.raises(UsageError, match="does not exist"):
        api.backup(repo, [str(tmp_path / "nope")])
    with pytest.raises(UsageError):
        api.backup(repo, [])


# ====================================================================== excludes
def test_excludes_and_exclude_file(repo, tmp_path):
    src = tmp_path / "src"
    (src / "cache").mkdir(parents=True)
    (src / "keep").mkdir()
    (src / "keep" / "cache").write_bytes(b"a file called cache: kept (pattern is dir-only)")
    (src / "cache" / "x").write_bytes(b"x")
    (src / "a.tmp").write_bytes(b"t")
    (src / "keep" / "b.tmp").write_bytes(b"t")
    (src / "keep" / "notes.txt").write_bytes(b"n")
    (src / "node_modules" / "m").mkdir(parents=True)
    (src / "node_modules" / "m" / "i.js").write_bytes(b"j")
    (src / "secret.key").write_bytes(b"k")
    (src / "keep" / "secret.key").write_bytes(b"k2")
    patterns = tmp_path / "excludes.txt"
    patterns.write_text(f"# comment line\n\nnode_modules\n{src}/secret.key\n")
    res = api.backup(repo, [str(src)], excludes=["*.tmp", "cache/"], exclude_files=[str(patterns)])
    names = sorted(p for p, _ in api.ls(repo, "latest", str(src), recursive=True))
    base = str(src)
    assert names == sorted([f"{base}/keep", f"{base}/keep/cache", f"{base}/keep/notes.txt",
                            f"{base}/keep/secret.key"])
    assert res.stats.files == 3
    with pytest.raises(UsageError, match="exclude file"):
        api.backup(repo, [str(src)], exclude_files=[str(tmp_path / "missing.txt")])


def test_exclude_matches_undecodable_names(repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(os.fsencode(str(src)) + b"/junk-\xff.tmp", "wb") as fh:
        fh.write(b"x")
    (src / "ok").write_bytes(b"y")
    api.backup(repo, [str(src)], excludes=["*.tmp"])
    assert [p for p, _ in api.ls(repo, "latest", str(src))] == [f"{src}/ok"]


# =============================================================== one file system
@pytest.fixture
def mounted(tmp_path):
    mnt = tmp_path / "src" / "mnt"
    mnt.mkdir(parents=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "ebas-test", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        (mnt / "inside").write_bytes(b"on another file system")
        yield tmp_path / "src", mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_one_file_system(repo, tmp_path, mounted):
    src, mnt = mounted
    (src / "here").write_bytes(b"same fs")
    res = api.backup(repo, [str(src)], one_file_system=True)
    listed = {p: n for p, n in api.ls(repo, "latest", str(src), recursive=True)}
    assert f"{src}/here" in listed and f"{mnt}" in listed
    assert listed[str(mnt)].type == DIR
    assert f"{mnt}/inside" not in listed
    assert any("other file system" in w for w in res.warnings) and not res.partial
    res2 = api.backup(repo, [str(src)])  # without the option the mount is crossed
    assert f"{mnt}/inside" in {p for p, _ in api.ls(repo, res2.snapshot.id, str(src), recursive=True)}


# ================================================================ source trouble
def test_unreadable_file_makes_a_partial_snapshot(repo, tmp_path, monkeypatch, state):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(rand(30_000, 1))
    (src / "locked").write_bytes(b"cannot read me")
    (src / "z").write_bytes(rand(30_000, 2))
    real_open = os.open

    def guarded_open(path, flags, *args, **kw):
        p = os.fsencode(path) if isinstance(path, (str, bytes)) else b""
        if p.endswith(b"/locked") or (p == b"locked" and kw.get("dir_fd") is not None):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", guarded_open)
    res = api.backup(repo, [str(src)])
    monkeypatch.undo()
    assert res.partial and res.snapshot.partial
    assert len(res.errors) == 1 and "locked" in res.errors[0] and "Permission denied" in res.errors[0]
    assert res.snapshot.errors == res.errors and res.stats.errors == 1
    out = r(restore_to(repo, tmp_path), src)
    assert sorted(os.listdir(out)) == ["a", "z"]
    assert (out / "a").read_bytes() == rand(30_000, 1) and (out / "z").read_bytes() == rand(30_000, 2)
    # the next backup (file readable again) is complete and picks the file up
    res2 = api.backup(repo, [str(src)])
    assert not res2.partial and res2.stats.files_unmodified == 2
    out2 = r(restore_to(repo, tmp_path, name="out2"), src)
    assert state(out2) == state(src)


def test_unlistable_directory_is_an_error_not_a_crash(repo, tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "closed").mkdir(parents=True)
    (src / "closed" / "f").write_bytes(b"x")
    (src / "open").write_bytes(b"y")
    real_open = os.open

    def guarded_open(path, flags, *args, **kw):
        if isinstance(path, (str, bytes)) and os.fsencode(path) in (b"closed", os.fsencode(src / "closed")):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", guarded_open)
    res = api.backup(repo, [str(src)])
    monkeypatch.undo()
    assert res.partial and any("closed" in e for e in res.errors)
    listed = {p for p, _ in api.ls(repo, "latest", str(src), recursive=True)}
    assert listed == {f"{src}/closed", f"{src}/open"}


def _watch_reads(monkeypatch, path: Path, on_first_read):
    """Call ``on_first_read(attempt)`` right after each read pass over ``path`` starts."""
    ino = os.stat(path).st_ino
    real_read, real_readv = os.read, os.readv
    attempts = [0]

    def seen(fd, n):
        try:
            st = os.fstat(fd)
        except OSError:
            return
        if st.st_ino == ino and n and os.lseek(fd, 0, os.SEEK_CUR) == n:  # read from offset 0
            attempts[0] += 1
            on_first_read(attempts[0])

    def read(fd, n):
        data = real_read(fd, n)
        seen(fd, len(data))
        return data

    def readv(fd, buffers):  # the file reader fills its chunker's buffers in place
        n = real_readv(fd, buffers)
        seen(fd, n)
        return n

    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(os, "readv", readv)
    return attempts


def test_file_that_changes_once_during_read_is_read_again(repo, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    f = src / "log"
    f.write_bytes(rand(50_000, 5))

    def grow(attempt):
        if attempt == 1:
            with open(f, "ab") as fh:
                fh.write(b"appended while being read\n")

    attempts = _watch_reads(monkeypatch, f, grow)
    res = api.backup(repo, [str(src)])
    monkeypatch.undo()
    assert attempts[0] == 2 and res.warnings == [] and not res.partial
    out = r(restore_to(repo, tmp_path), src) / "log"
    assert out.read_bytes() == f.read_bytes()  # the second, consistent read was kept
    assert os.stat(out).st_mtime_ns == os.stat(f).st_mtime_ns


def test_file_that_keeps_changing_is_stored_consistently_with_a_warning(repo, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    f = src / "hot"
    f.write_bytes(rand(50_000, 6))

    def grow(attempt):
        with open(f, "ab") as fh:
            fh.write(b"x" * 3000)

    attempts = _watch_reads(monkeypatch, f, grow)
    res = api.backup(repo, [str(src)])
    monkeypatch.undo()
    assert attempts[0] == 3  # RETRIES + 1 passes
    assert any("kept changing" in w for w in res.warnings) and not res.partial
    (_, node), = api.ls(repo, "latest", str(f))
    restored = (r(restore_to(repo, tmp_path), src) / "hot").read_bytes()
    dumped = io.BytesIO()
    dump(repo, repo.find_snapshot("latest"), str(f), dumped)
    # what the snapshot says, what restore writes and what dump streams agree
    assert node.size == len(restored) == len(dumped.getvalue())
    assert restored == dumped.getvalue()
    assert restored.startswith(rand(50_000, 6))
    # the next backup sees the file as it is now and stores it whole
    res2 = api.backup(repo, [str(src)])
    assert res2.warnings == []
    assert (r(restore_to(repo, tmp_path, name="o2"), src) / "hot").read_bytes() == f.read_bytes()


def test_file_vanishing_between_scan_and_read(repo, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "stays").write_bytes(b"s")
    (src / "goes").write_bytes(b"g")
    real_read = FileReader.read

    def read(self, node, path, **kw):
        if path.endswith(b"/goes"):
            os.unlink(path)
        return real_read(self, node, path, **kw)

    monkeypatch.setattr(FileReader, "read", read)
    res = api.backup(repo, [str(src)])
    assert not res.partial and res.errors == []
    assert any("vanished" in w and "goes" in w for w in res.warnings)
    assert [p for p, _ in api.ls(repo, "latest", str(src))] == [f"{src}/stays"]


def test_file_replaced_by_fifo_is_not_read(repo, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    real_read = FileReader.read

    def read(self, node, path, **kw):
        os.unlink(path)
        os.mkfifo(path)  # opening this for reading would block forever
        return real_read(self, node, path, **kw)

    monkeypatch.setattr(FileReader, "read", read)
    res = api.backup(repo, [str(src)])
    assert res.partial and "not a regular file" in res.errors[0]


# ============================================================== scale and depth
@pytest.mark.slow
def test_directory_with_200000_entries(repos, shm_dir):
    repo = repos.init(store=repos.store(shm_dir / "repo"))
    src = shm_dir / "src"
    big = src / "big"
    big.mkdir(parents=True)
    fd = os.open(big, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(200_000):
            os.close(os.open(b"e%06d" % i, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    (big / "e123456").write_bytes(b"one file with data")
    res = api.backup(repo, [str(src)])
    assert res.stats.files == 200_000 and not res.partial
    out = shm_dir / "out"
    rr = api.restore(repo, "latest", str(out))
    assert rr.files == 200_000
    restored = out / str(big).lstrip("/")
    assert len(os.listdir(restored)) == 200_000
    assert (restored / "e123456").read_bytes() == b"one file with data"
    assert (restored / "e199999").read_bytes() == b""


def _make_deep(root: Path, total: int) -> tuple[list[bytes], bytes]:
    """Nested directories with 255-byte names until the path is ``total`` bytes long."""
    names = []
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    length = len(os.fsencode(str(root)))
    i = 0
    try:
        while length < total:
            name = (b"%03d" % i) + b"d" * 252
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            names.append(name)
            length += 1 + len(name)
            i += 1
        leaf = os.open(b"leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"at the bottom")
        os.close(leaf)
    finally:
        os.close(fd)
    return names, b"leaf"


def _read_deep(root: Path, names: list[bytes], leaf: bytes) -> bytes:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for n in names:
            nfd = os.open(n, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        f = os.open(leaf, os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(f, 100)
        finally:
            os.close(f)
    finally:
        os.close(fd)


def test_restore_writes_a_20000_byte_path(repo, tmp_path):
    """Restore works relative to directory fds, so paths far beyond PATH_MAX work."""
    with repo.session() as s:
        data_id, _ = s.put_blob(KIND_DATA, b"at the bottom")
        child, _ = s.put_blob(KIND_TREE, encode_tree([Node(name=b"leaf", type=FILE, mode=0o644, size=13,
                                                           content=data_id)]))
        names = [(b"%03d" % i) + b"d" * 252 for i in range(79)]
        for name in reversed(names):
            child, _ = s.put_blob(KIND_TREE, encode_tree([Node(name=name, type=DIR, mode=0o755, subtree=child)]))
        s.flush()
    repo.save_snapshot(Snapshot(time_ns=1, host="h", paths=["/deep"], tree=child.hex()))
    target = tmp_path / "out"
    rr = api.restore(repo, "latest", str(target))
    assert rr.dirs == 79 and rr.files == 1
    assert sum(len(n) + 1 for n in names) > 20_000
    assert _read_deep(target, names, b"leaf") == b"at the bottom"


def test_backup_of_a_20000_byte_path(repo, tmp_path):
    src = tmp_path / "deep"
    src.mkdir()
    names, leaf = _make_deep(src, 20_000)
    res = api.backup(repo, [str(src)])
    assert not res.partial, res.errors[:1]
    target = tmp_path / "out"
    api.restore(repo, "latest", str(target))
    assert _read_deep(target / str(src).lstrip("/"), names, leaf) == b"at the bottom"


# ================================================================ partial restore
def test_restore_with_includes(repo, tmp_path):
    src = make_source(tmp_path)
    api.backup(repo, [str(src)])
    out = restore_to(repo, tmp_path, includes=[f"{src}/docs/deep", f"{src}/private"])
    top = r(out, src)
    assert sorted(os.listdir(top)) == ["docs", "private"]
    assert sorted(os.listdir(top / "docs")) == ["deep"]
    assert (top / "docs" / "deep" / "er" / "leaf").read_bytes() == rand(5000, 2)
    # the second name of a hard link alone is restored as a plain file
    out2 = restore_to(repo, tmp_path, name="o2", includes=[f"{src}/docs/hardlink-to-big"])
    f = r(out2, src) / "docs" / "hardlink-to-big"
    assert f.read_bytes() == rand(700_000, 1) and os.stat(f).st_nlink == 1
    with pytest.raises(RestoreError, match="nothing in the snapshot"):
        restore_to(repo, tmp_path, name="o3", includes=[f"{src}/no/such/path"])


# ============================================================== dump, ls, diff
def test_dump_file_and_directory_as_tar(repo, tmp_path):
    src = make_source(tmp_path)
    api.backup(repo, [str(src)])
    snap = repo.find_snapshot("latest")
    buf = io.BytesIO()
    assert dump(repo, snap, f"{src}/big.bin", buf) == "file"
    assert buf.getvalue() == rand(700_000, 1)
    buf = io.BytesIO()
    assert dump(repo, snap, str(src), buf) == "tar"
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        files = {}
        for name, m in members.items():
            if m.isreg():
                files[name] = tar.extractfile(m).read()
    expected = {}
    for p in src.rglob("*"):
        rel = str(p.relative_to(src))
        expected[rel] = p
    assert os.fsdecode(b"bad-\xff\xfe-name") in expected
    assert set(members) == set(expected)
    assert files["big.bin"] == rand(700_000, 1)
    assert files["docs/readme.txt"] == b"hello ebas\n" * 3000
    assert files["empty"] == b""
    assert members["docs/hardlink-to-big"].islnk() or files.get("docs/hardlink-to-big") == rand(700_000, 1)
    if members["docs/hardlink-to-big"].islnk():
        assert members["docs/hardlink-to-big"].linkname == "big.bin"
    assert members["rel-link"].issym() and members["rel-link"].linkname == "docs/readme.txt"
    assert members["fifo"].isfifo()
    assert members["empty-dir"].isdir() and members["docs/deep/er"].isdir()
    assert members["bin/tool"].mode == 0o4755
    assert int(members["docs/readme.txt"].mtime) == (T0 + len((src / "docs" / "readme.txt").parts)) // 10**9
    assert members["docs/readme.txt"].pax_headers.get("SCHILY.xattr.user.comment") is not None
    # tar extracts to the same content
    buf.seek(0)
    ext = tmp_path / "untar"
    with tarfile.open(fileobj=buf, mode="r:") as tar:
        tar.extractall(ext, filter="fully_trusted")
    assert (ext / "big.bin").read_bytes() == rand(700_000, 1)
    assert (ext / "docs" / "deep" / "er" / "leaf").read_bytes() == rand(5000, 2)


def test_ls_lists_entries(repo, tmp_path):
    src = make_source(tmp_path)
    api.backup(repo, [str(src)])
    top = dict(api.ls(repo, "latest", str(src)))
    assert {os.path.basename(p) for p in top} == {"big.bin", "docs", "empty-dir", "bin", "empty", "private",
                                                   "rel-link", "dangling", "fifo", os.fsdecode(b"bad-\xff\xfe-name")}
    assert top[f"{src}/big.bin"].size == 700_000 and top[f"{src}/rel-link"].target == b"docs/readme.txt"
    single = api.ls(repo, "latest", f"{src}/docs/readme.txt")
    assert [p for p, _ in single] == [f"{src}/docs/readme.txt"]
    with pytest.raises(UsageError, match="does not exist"):
        api.ls(repo, "latest", f"{src}/missing")


def test_diff_added_removed_modified_metadata(repo, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "same").write_bytes(b"same")
    (src / "mod").write_bytes(b"v1")
    (src / "gone").write_bytes(b"bye")
    (src / "perm").write_bytes(b"p")
    (src / "d" / "x").write_bytes(b"x")
    a = api.backup(repo, [str(src)]).snapshot
    (src / "mod").write_bytes(b"version 2")
    os.unlink(src / "gone")
    os.chmod(src / "perm", 0o600)
    (src / "added").write_bytes(b"12345")
    (src / "newdir").mkdir()
    (src / "newdir" / "inner").write_bytes(b"i")
    b = api.backup(repo, [str(src)]).snapshot
    changes = {(c.kind, c.path.removeprefix(str(src))) for c in api.diff(repo, a.id, b.id)}
    assert ("added", "/added") in changes and ("added", "/newdir/") in changes and ("added", "/newdir/inner") in changes
    assert ("removed", "/gone") in changes
    assert ("modified", "/mod") in changes
    assert ("metadata", "/perm") in changes
    assert not any(p in ("/same", "/d/x") for _, p in changes)
    sizes = {c.path.removeprefix(str(src)): (c.old_size, c.new_size) for c in api.diff(repo, a.id, b.id)}
    assert sizes["/mod"] == (2, 9) and sizes["/added"] == (0, 5) and sizes["/gone"] == (3, 0)
    assert api.diff(repo, b.id, b.id) == []
    back = {(c.kind, c.path.removeprefix(str(src))) for c in api.diff(repo, b.id, a.id)}
    assert ("removed", "/added") in back and ("added", "/gone") in back


# ============================================================ malicious snapshots
def _snapshot_of(repo, root_nodes_json: list[dict] | None = None, nodes: list[Node] | None = None,
                 sub: dict[bytes, list[Node]] | None = None) -> str:
    """Store a snapshot whose root tree is ``nodes`` (or raw node dicts, which may break
    the encoder's rules, e.g. duplicate names); ``sub`` gives subtrees by directory name."""
    with repo.session() as s:
        data_id, _ = s.put_blob(KIND_DATA, b"payload written by a malicious tree")
        subtrees = {}
        for name, children in (sub or {}).items():
            for c in children:
                if c.type == FILE:
                    c.content, c.size = data_id, 35
            subtrees[name], _ = s.put_blob(KIND_TREE, encode_tree(children))
        if root_nodes_json is not None:
            for d in root_nodes_json:
                if d.get("type") == "dir":
                    d["subtree"] = subtrees[os.fsencode(d["name"])].hex()
                if d.get("type") == "file":
                    import base64

                    d["content"], d["size"] = base64.b64encode(data_id).decode(), 35
            blob = json.dumps({"v": 1, "nodes": root_nodes_json}, sort_keys=True).encode()
        else:
            for n in nodes:
                if n.type == FILE:
                    n.content, n.size = data_id, 35
                if n.type == DIR:
                    n.subtree = subtrees[n.name]
            blob = encode_tree(nodes)
        root, _ = s.put_blob(KIND_TREE, blob)
        s.flush()
    return repo.save_snapshot(Snapshot(time_ns=repo.clock.now_ns(), host="evil", paths=["/x"], tree=root.hex()))


def _listing(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.mark.parametrize("name", [b"..", b".", b"", b"a/b", b"../../escape", b"/etc/evil", b"nul\x00byte"])
def test_restore_refuses_unsafe_names(repo, tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"untouched")
    before = _listing(tmp_path)
    sid = _snapshot_of(repo, nodes=[Node(name=b"fine", type=FILE, mode=0o644),
                                    Node(name=name, type=FILE, mode=0o644)])
    target = tmp_path / "target"
    with pytest.raises(UnsafePath):
        api.restore(repo, sid, str(target))
    after = _listing(tmp_path)
    assert {p for p in after - before if not p.startswith("target") and not p.startswith("repo")} == set()
    assert (outside / "sentinel").read_bytes() == b"untouched"
    assert not Path("/etc/evil").exists()


def test_restore_refuses_unsafe_names_in_subdirectories(repo, tmp_path):
    sid = _snapshot_of(repo, nodes=[Node(name=b"sub", type=DIR, mode=0o755)],
                       sub={b"sub": [Node(name=b"..", type=DIR, mode=0o755, subtree=b"\x00" * 32)]})
    with pytest.raises(UnsafePath):
        api.restore(repo, sid, str(tmp_path / "target"))


def test_symlink_then_directory_of_the_same_name_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    sid = _snapshot_of(
        repo,
        root_nodes_json=[
            {"name": "link", "type": "symlink", "target": str(outside), "mtime": 0, "ctime": 0, "atime": 0},
            {"name": "link", "type": "dir", "mode": 0o755, "mtime": 0, "ctime": 0, "atime": 0},
        ],
        sub={b"link": [Node(name=b"planted", type=FILE, mode=0o644)]},
    )
    with pytest.raises(UnsafePath, match="symlink|not a directory"):
        api.restore(repo, sid, str(tmp_path / "target"))
    assert list(outside.iterdir()) == []


def test_symlink_then_file_of_the_same_name_does_not_write_through(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"original")
    sid = _snapshot_of(
        repo,
        root_nodes_json=[
            {"name": "link", "type": "symlink", "target": str(victim), "mtime": 0, "ctime": 0, "atime": 0},
            {"name": "link", "type": "file", "mode": 0o644, "mtime": 0, "ctime": 0, "atime": 0},
        ],
    )
    with pytest.raises(UnsafePath, match="duplicate name"):  # one verdict with check and dump: refused
        api.restore(repo, sid, str(tmp_path / "target"))
    assert victim.read_bytes() == b"original"
    assert not os.path.islink(tmp_path / "target" / "link")


def test_hard_link_group_cannot_reach_outside(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    sid = _snapshot_of(repo, nodes=[
        Node(name=b"a", type=FILE, mode=0o644, link_group="1:1", nlink=2),
        Node(name=b"b", type=FILE, mode=0o644, link_group="1:1", nlink=2),
    ])
    api.restore(repo, sid, str(tmp_path / "target"))
    t = tmp_path / "target"
    assert os.stat(t / "a").st_ino == os.stat(t / "b").st_ino
    assert (t / "a").read_bytes() == b"payload written by a malicious tree"


# ============================================================== damaged snapshots
def _flip_stored_byte(repo, blob_id: bytes, delta: int = 40) -> None:
    pack_id, offset, length = repo.index.table.lookup(blob_id)
    path = Path(repo.store.root) / pack_name(pack_id)
    with open(path, "r+b") as fh:
        fh.seek(offset + min(delta, length - 1))
        b = fh.read(1)
        fh.seek(offset + min(delta, length - 1))
        fh.write(bytes([b[0] ^ 0x10]))


def test_tampered_tree_blob_is_a_clear_integrity_error(repos, repo, tmp_path):
    src = make_source(tmp_path)
    snap = api.backup(repo, [str(src)]).snapshot
    _flip_stored_byte(repo, bytes.fromhex(snap.tree))
    again = repos.reopen(repo)
    with pytest.raises(IntegrityError, match="corrupt") as err:
        api.restore(again, "latest", str(tmp_path / "out"))
    assert snap.tree[:16] in err.value.message
    assert err.value.exit_code == 13 and "check" in err.value.hint


def test_tampered_data_blob_is_a_clear_integrity_error(repos, repo, tmp_path):
    src = make_source(tmp_path)
    api.backup(repo, [str(src)])
    node = dict(api.ls(repo, "latest", str(src)))[f"{src}/big.bin"]
    _flip_stored_byte(repo, node.chunk_ids[3], delta=500)
    again = repos.reopen(repo)
    with pytest.raises(IntegrityError, match=node.chunk_ids[3].hex()[:16]):
        api.restore(again, "latest", str(tmp_path / "out"))
    buf = io.BytesIO()
    with pytest.raises(IntegrityError):
        dump(again, again.find_snapshot("latest"), f"{src}/big.bin", buf)


def test_missing_data_pack_is_a_clear_integrity_error(repos, repo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(rand(600_000, 8))
    api.backup(repo, [str(src)])
    node = dict(api.ls(repo, "latest", str(src)))[f"{src}/f"]
    pack_id, _, _ = repo.index.table.lookup(node.chunk_ids[0])
    repo.store.delete(pack_name(pack_id))
    again = repos.reopen(repo)
    with pytest.raises(IntegrityError, match="missing"):
        api.restore(again, "latest", str(tmp_path / "out"))


def test_blob_missing_from_the_index_is_a_clear_integrity_error(repo, tmp_path):
    missing = b"\x42" * 32
    sid = None
    with repo.session() as s:
        root, _ = s.put_blob(KIND_TREE, encode_tree([Node(name=b"f", type=FILE, mode=0o644, size=5,
                                                          content=missing)]))
        s.flush()
    sid = repo.save_snapshot(Snapshot(time_ns=1, host="h", paths=["/x"], tree=root.hex()))
    with pytest.raises(IntegrityError, match="not in the index"):
        api.restore(repo, sid, str(tmp_path / "out"))


def test_backup_after_data_loss_reads_files_again(repos, repo, tmp_path):
    """A backup never builds on data that is no longer stored."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(rand(600_000, 9))
    api.backup(repo, [str(src)])
    node = dict(api.ls(repo, "latest", str(src)))[f"{src}/f"]
    pack_id, _, _ = repo.index.table.lookup(node.chunk_ids[0])
    repo.store.delete(pack_name(pack_id))
    again = repos.reopen(repo)
    again.index.table.remove_packs({pack_id})  # what prune/repair would do after losing it
    res = api.backup(again, [str(src)])
    assert any("missing" in w for w in res.warnings) and res.stats.files_changed == 1
    out = restore_to(again, tmp_path)
    assert (r(out, src) / "f").read_bytes() == rand(600_000, 9)


def _replace_subtree(repo, session, tree_id: bytes, comps: list[bytes], new_subtree: bytes) -> bytes:
    """A copy of ``tree_id`` whose directory at ``comps`` points to ``new_subtree``."""
    nodes = repo.load_tree(tree_id)
    for n in nodes:
        if n.name == comps[0]:
            n.subtree = new_subtree if len(comps) == 1 else _replace_subtree(repo, session, n.subtree, comps[1:],
                                                                             new_subtree)
    bid, _ = session.put_blob(KIND_TREE, encode_tree(nodes))
    return bid


def test_backup_does_not_build_on_an_unreadable_parent_tree(repo, tmp_path):
    """The parent snapshot names a subtree that is not stored: the next backup must
    store the directory again rather than point at the missing tree."""
    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "f").write_bytes(b"file")
    first = api.backup(repo, [str(src)]).snapshot
    lost = b"\x13" * 32  # a tree id the repository does not have
    with repo.session() as s:
        root = _replace_subtree(repo, s, bytes.fromhex(first.tree),
                                [os.fsencode(c) for c in str(src / "empty").strip("/").split("/")], lost)
        s.flush()
    damaged = Snapshot(time_ns=first.time_ns + 1, host=first.host, paths=first.paths, tree=root.hex(),
                       chain=first.chain)
    repo.save_snapshot(damaged)
    res = api.backup(repo, [str(src)])
    assert res.snapshot.parent == damaged.id
    assert any("unreadable" in w for w in res.warnings)
    out = restore_to(repo, tmp_path)
    assert os.listdir(r(out, src) / "empty") == [] and (r(out, src) / "f").read_bytes() == b"file"


def test_backup_of_single_files_and_several_paths(repo, tmp_path, state):
    a = tmp_path / "one" / "a.txt"
    a.parent.mkdir()
    a.write_bytes(b"single file")
    d = tmp_path / "two"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x").write_bytes(rand(50_000, 12))
    res = api.backup(repo, [str(a), str(d), str(d / "sub")])  # /two/sub is inside /two
    assert res.snapshot.paths == sorted({str(a), str(d), str(d / "sub")})
    assert res.stats.files == 2
    out = restore_to(repo, tmp_path)
    assert (r(out, a)).read_bytes() == b"single file"
    assert state(r(out, d)) == state(d)
    a.write_bytes(b"single file, changed")
    res2 = api.backup(repo, [str(a), str(d), str(d / "sub")])
    assert res2.snapshot.parent == res.snapshot.id
    assert (res2.stats.files_changed, res2.stats.files_unmodified) == (1, 1)
    assert r(restore_to(repo, tmp_path, name="o2"), a).read_bytes() == b"single file, changed"


@pytest.mark.skipif(os.geteuid() != 0, reason="creating device nodes needs root")
def test_device_nodes_are_restored_as_root(repo, tmp_path):
    import stat as stat_mod

    src = tmp_path / "src"
    src.mkdir()
    os.mknod(src / "null", 0o600 | stat_mod.S_IFCHR, os.makedev(1, 3))
    os.chmod(src / "null", 0o666)
    res = api.backup(repo, [str(src)])
    assert res.stats.others == 1
    out = r(restore_to(repo, tmp_path), src) / "null"
    st = os.lstat(out)
    assert stat_mod.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and st.st_mode & 0o777 == 0o666


def test_backup_of_the_root_directory_is_restorable(repo, tmp_path, monkeypatch):
    """``ebas backup /``: the root tree is the listing of / (no entry with an empty name).
    The walk of the real / is replaced by a small stand-in directory."""
    from ebas.backup.archiver import Archiver

    fake_root = tmp_path / "fakeroot"
    (fake_root / "etc").mkdir(parents=True)
    (fake_root / "etc" / "hostname").write_bytes(b"box\n")
    real_walk = Archiver._walk_dir

    def walk(self, path, prev_tree, root_dev, parent_fd=None):
        if path == b"/":
            path = os.fsencode(str(fake_root))
        return real_walk(self, path, prev_tree, root_dev, parent_fd)

    monkeypatch.setattr(Archiver, "_walk_dir", walk)
    res = api.backup(repo, ["/"])
    assert res.snapshot.paths == ["/"]
    assert [p for p, _ in api.ls(repo, "latest", "/")] == ["/etc"]
    out = restore_to(repo, tmp_path)
    assert (out / "etc" / "hostname").read_bytes() == b"box\n"
    res2 = api.backup(repo, ["/"])
    assert res2.snapshot.parent == res.snapshot.id and res2.stats.files_unmodified == 1


def test_incremental_picks_up_xattr_changes_and_reuses_unchanged_metadata(repo, tmp_path):
    """Metadata of an unchanged file (same ctime and inode) is taken from the previous
    backup without reading it again; an xattr change moves ctime and is picked up."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"alpha")
    (src / "b").write_bytes(b"beta")
    try:
        os.setxattr(src / "a", "user.kind", b"v1")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    api.backup(repo, [str(src)])
    res = api.backup(repo, [str(src)])
    assert res.stats.files_unmodified == 2
    nodes = {p.rsplit("/", 1)[-1]: n for p, n in api.ls(repo, "latest", str(src))}
    assert nodes["a"].xattrs == {b"user.kind": b"v1"}
    os.setxattr(src / "b", "user.kind", b"v2")
    res = api.backup(repo, [str(src)])
    assert res.stats.files_unmodified == 1
    nodes = {p.rsplit("/", 1)[-1]: n for p, n in api.ls(repo, "latest", str(src))}
    assert nodes["a"].xattrs == {b"user.kind": b"v1"} and nodes["b"].xattrs == {b"user.kind": b"v2"}
    out = restore_to(repo, tmp_path)
    assert os.getxattr(r(out, src) / "b", "user.kind") == b"v2"


def test_incremental_reads_previous_trees_in_batches(repo, tmp_path):
    """An incremental backup of 120 unchanged directories reads the previous snapshot's
    trees with a few ranged reads, not one request per directory."""
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    src = tmp_path / "tree"
    for a in range(6):
        for b in range(20):
            d = src / f"a{a}" / f"b{b:02d}"
            d.mkdir(parents=True)
            (d / "f.txt").write_bytes(rand(300, 100 * a + b))
    first = api.backup(repo, [str(src)]).snapshot
    (src / "a3" / "b07" / "f.txt").write_bytes(b"changed")
    counts = StoreCounts()
    writer = api.Repository.open(CountingStore(repo.store, counts), "correct horse battery staple")
    writer.index
    before = counts.snapshot()
    second = api.backup(writer, [str(src)]).snapshot
    gets = (counts.snapshot() - before).calls.get("get", 0)
    assert second.parent == first.id and second.stats["files_changed"] == 1
    assert gets < 30, gets  # 127 previous trees; one request each before
    out = restore_to(api.Repository.open(repo.store, "correct horse battery staple"), tmp_path)
    assert (r(out, src) / "a3" / "b07" / "f.txt").read_bytes() == b"changed"
    assert (r(out, src) / "a5" / "b19" / "f.txt").read_bytes() == rand(300, 519)


def test_restore_reads_trees_ahead_but_not_outside_an_include(repo, tmp_path):
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    src = tmp_path / "wide"
    for a in range(5):
        for b in range(10):
            (src / f"a{a}" / f"b{b}" / "c").mkdir(parents=True)  # 106 directories, one file
    (src / "a4" / "b9" / "f").write_bytes(rand(100, 49))
    snap = api.backup(repo, [str(src)]).snapshot

    def gets(**kw) -> int:
        counts = StoreCounts()
        reader = api.Repository.open(CountingStore(repo.store, counts), "correct horse battery staple")
        reader.index
        before = counts.snapshot()
        api.restore(reader, snap.id, str(tmp_path / f"out{len(kw)}"), **kw)
        return (counts.snapshot() - before).calls.get("get", 0)

    depth = len(src.parts)  # the single-directory chain from / down to the source: a read per level
    assert gets() <= depth + 6  # 106 trees below it: a read or two per level, not one per directory
    assert (r(tmp_path / "out0", src) / "a4" / "b9" / "f").read_bytes() == rand(100, 49)
    assert (r(tmp_path / "out0", src) / "a0" / "b0" / "c").is_dir()
    one = gets(includes=[f"{src}/a4/b9"])
    assert one <= depth + 6  # the trees on the way down (no read-ahead outside the include) and the file
    assert sorted(p.name for p in (r(tmp_path / "out1", src)).iterdir()) == ["a4"]
    assert (r(tmp_path / "out1", src) / "a4" / "b9" / "f").read_bytes() == rand(100, 49)


def test_small_files_of_many_directories_share_fetches(repo, tmp_path):
    from ebas.storage.wrappers.counting import CountingStore, StoreCounts

    src = tmp_path / "many-dirs"
    for d in range(120):
        (src / f"d{d:03d}" / "sub").mkdir(parents=True)
        for k in range(3):
            (src / f"d{d:03d}" / f"f{k}").write_bytes(rand(700 + k, 10 * d + k))
        (src / f"d{d:03d}" / "sub" / "g").write_bytes(rand(300, 5000 + d))
    snap = api.backup(repo, [str(src)]).snapshot
    counts = StoreCounts()
    reader = api.Repository.open(CountingStore(repo.store, counts), "correct horse battery staple")
    reader.index
    before = counts.snapshot()
    out = tmp_path / "out"
    res = api.restore(reader, snap.id, str(out))
    gets = (counts.snapshot() - before).calls.get("get", 0)
    assert res.files == 480 and res.dirs >= 240
    for p in src.rglob("*"):
        if p.is_file():
            assert (r(out, src) / p.relative_to(src)).read_bytes() == p.read_bytes(), p
    assert gets <= len(src.parts) + 20, gets  # 240 directories of small files: was one fetch per directory
