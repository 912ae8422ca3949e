"""Trees thousands of levels deep: every walk is iterative and works relative to fds.

Any local user can make a directory chain a few thousand levels deep (far past
PATH_MAX), so backup, restore, check, dump, diff, ls, the catalog and prune must all
work on one, and the walks must not need an fd per level. The trees here are made and
compared with fd-relative calls only, since their paths are longer than the kernel
accepts.
"""

from __future__ import annotations

import io
import json
import os
import resource
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest

from ebas import api
from ebas.backup import archiver, restorer
from ebas.backup.dump import dump
from ebas.catalog import FindQuery
from ebas.verify.check import check_repository

DEPTH = 5000
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
DEEP_NAME = "deepest.txt"


def make_chain(root: os.PathLike, depth: int, *, name: str = "d", payload: bytes = b"at the bottom\n") -> None:
    """``root/d/d/.../d/deepest.txt`` with ``depth`` directories, each also holding a
    small file, made with fd-relative calls (the path is longer than PATH_MAX)."""
    os.makedirs(root, exist_ok=True)
    fd = os.open(root, DIR_FLAGS)
    try:
        for i in range(depth):
            if i % 500 == 0:
                side = os.open(f"level-{i}", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
                os.write(side, b"level %d\n" % i)
                os.close(side)
            os.mkdir(name, 0o750, dir_fd=fd)
            nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
        f = os.open(DEEP_NAME, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, payload)
        os.close(f)
    finally:
        os.close(fd)


def append_deepest(root: os.PathLike, depth: int, data: bytes, name: str = "d") -> None:
    fd = os.open(root, DIR_FLAGS)
    for _ in range(depth):
        nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        fd = nfd
    f = os.open(DEEP_NAME, os.O_WRONLY | os.O_APPEND, dir_fd=fd)
    os.write(f, data)
    os.close(f)
    os.close(fd)


def fd_tree_state(root: os.PathLike) -> dict[tuple[bytes, ...], tuple]:
    """Type, mode, size, mtime and content of every entry below ``root``, walked with an
    explicit stack and fd-relative calls (no path ever handed to the kernel whole)."""
    out: dict[tuple[bytes, ...], tuple] = {}
    top = os.open(os.fsencode(os.fspath(root)), DIR_FLAGS)
    stack = [(top, ())]
    while stack:
        fd, rel = stack.pop()
        try:
            for name in sorted(os.listdir(fd)):
                bname = os.fsencode(name)
                st = os.stat(bname, dir_fd=fd, follow_symlinks=False)
                data = b""
                if stat.S_ISREG(st.st_mode):
                    f = os.open(bname, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
                    data = os.read(f, st.st_size + 1)
                    os.close(f)
                size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
                out[rel + (bname,)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), size, st.st_mtime_ns, data)
                if stat.S_ISDIR(st.st_mode):
                    stack.append((os.open(bname, DIR_FLAGS, dir_fd=fd), rel + (bname,)))
        finally:
            os.close(fd)
    return out


def remove_tree(root: os.PathLike) -> None:
    """Delete a directory tree of any depth (``shutil.rmtree`` recurses and fails on these)."""
    root = os.fsencode(os.fspath(root))
    if not os.path.lexists(root):
        return
    stack = [(os.open(root, DIR_FLAGS), b"")]
    while stack:
        fd, _name = stack[-1]
        sub = None
        for name in os.listdir(fd):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                sub = name
                break
            os.unlink(name, dir_fd=fd)
        if sub is not None:
            stack.append((os.open(sub, DIR_FLAGS, dir_fd=fd), sub))
            continue
        stack.pop()
        os.close(fd)
        if stack:
            os.rmdir(_name, dir_fd=stack[-1][0])
    os.rmdir(root)


def deepest_relpath(depth: int, name: str = "d") -> tuple[bytes, ...]:
    return (name.encode(),) * depth + (DEEP_NAME.encode(),)


def scratch_dir(tmp_path_factory) -> Path:
    """A directory on tmpfs when there is one: deep chains are ~30x faster to make and
    remove there than on a disk file system."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="ebas-deep-", dir=shm))
    return tmp_path_factory.mktemp("deep")


@pytest.fixture
def scratch(tmp_path_factory):
    base = scratch_dir(tmp_path_factory)
    yield base
    remove_tree(base)


@pytest.fixture(scope="module")
def deep(tmp_path_factory, fast_kdf_module):
    """A 5,000-level source tree backed up once (shared by the tests below, in order)."""
    base = scratch_dir(tmp_path_factory)
    src = base / "src"
    make_chain(src, DEPTH)
    repo = api.init_repository(str(base / "repo"), "pw", kdf=fast_kdf_module, pack_size=1 << 20)
    first = api.backup(repo, [str(src)])
    yield base, src, repo, first
    repo.close()
    remove_tree(base)


@pytest.fixture(scope="module")
def fast_kdf_module():
    from ebas.crypto.kdf import KdfParams
    from ebas.runtime import SYSTEM_ENTROPY

    return KdfParams.fast_for_tests(SYSTEM_ENTROPY)


def test_backup_of_a_5000_level_tree_is_complete(deep):
    _base, _src, _repo, first = deep
    assert not first.partial and first.errors == []
    assert first.stats.dirs >= DEPTH and first.stats.files == DEPTH // 500 + 1


def test_restore_of_a_5000_level_tree_is_byte_exact(deep):
    base, src, repo, first = deep
    target = base / "restored"
    res = api.restore(repo, first.snapshot.id, str(target))
    assert res.errors == [] and res.files == DEPTH // 500 + 1
    restored = fd_tree_state(os.path.join(target, str(src).lstrip("/")))
    assert restored == fd_tree_state(src)
    assert restored[deepest_relpath(DEPTH)][-1] == b"at the bottom\n"


def test_check_read_data_is_clean_on_a_5000_level_tree(deep):
    _base, _src, repo, _first = deep
    report = check_repository(repo, read_data=True)
    doc = report.to_json()
    assert doc["ok"] and doc["errors"] == []
    assert doc["trees"] >= DEPTH


def test_dump_of_a_5000_level_tree_holds_the_deepest_file(deep):
    _base, src, repo, first = deep
    buf = io.BytesIO()
    assert dump(repo, first.snapshot, str(src), buf) == "tar"
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        deepest = [m for m in tar.getmembers() if m.name.endswith("/" + DEEP_NAME)]
        assert len(deepest) == 1
        assert deepest[0].name.count("d/") == DEPTH
        assert tar.extractfile(deepest[0]).read() == b"at the bottom\n"


def test_ls_and_diff_reach_the_deepest_file(deep):
    _base, src, repo, first = deep
    entries = api.ls(repo, first.snapshot.id, str(src), recursive=True)
    assert sum(1 for p, n in entries if p.endswith("/" + DEEP_NAME)) == 1
    append_deepest(src, DEPTH, b"changed\n")
    second = api.backup(repo, [str(src)])
    changes = api.diff(repo, first.snapshot.id, second.snapshot.id)
    modified = [c for c in changes if c.kind == "modified"]
    assert len(modified) == 1 and modified[0].path == str(src) + "/d" * DEPTH + "/" + DEEP_NAME
    assert modified[0].new_size == len(b"at the bottom\nchanged\n")


def test_catalog_sync_finds_the_deepest_file(deep):
    base, src, repo, _first = deep
    deepest = str(src) + "/d" * DEPTH + "/" + DEEP_NAME
    with api.catalog(repo, str(base / "catalog.db")) as cat:
        cat.sync(repo)
        hits = cat.find(FindQuery(pattern=DEEP_NAME, match="exact")).hits
        exported = io.BytesIO()
        cat.export(exported)
    assert hits and {h.path for h in hits} == {deepest}
    with api.catalog(repo, str(base / "other-site.db"), site="b") as other:  # exchange between sites
        other.import_(io.BytesIO(exported.getvalue()))
        assert {h.path for h in other.find(FindQuery(pattern=DEEP_NAME, match="exact")).hits} == {deepest}


def test_forget_then_prune_keeps_the_deep_snapshot_restorable(deep):
    base, src, repo, first = deep
    snaps = sorted(repo.snapshots(refresh=True), key=lambda s: s.time_ns)
    assert len(snaps) == 2  # the first backup and the one after the change (previous test)
    api.forget(repo, snapshot_ids=[first.snapshot.id])
    result = api.prune(repo, grace=0)
    assert result.plan["trees"] >= DEPTH
    assert check_repository(repo, read_data=True).to_json()["ok"]
    target = base / "after-prune"
    api.restore(repo, "latest", str(target))
    restored = fd_tree_state(os.path.join(target, str(src).lstrip("/")))
    assert restored == fd_tree_state(src)
    assert restored[deepest_relpath(DEPTH)][-1] == b"at the bottom\nchanged\n"


def test_deep_walks_keep_few_directory_fds_open(scratch, fast_kdf, monkeypatch):
    """With the open-files limit far below the depth, backup and restore still work: the
    walks park ancestors' fds and reopen them through '..' (checking device and inode)."""
    tmp_path = scratch
    depth = 1500
    src = tmp_path / "src"
    make_chain(src, depth, name="sub")
    repo = api.init_repository(str(tmp_path / "repo"), "pw", kdf=fast_kdf)
    monkeypatch.setattr(archiver, "MAX_OPEN_DIRS", 40)
    monkeypatch.setattr(restorer, "MAX_OPEN_DIRS", 40)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(400, hard), hard))
    try:
        res = api.backup(repo, [str(src)])
        api.restore(repo, "latest", str(tmp_path / "out"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not res.partial and res.errors == []
    restored = fd_tree_state(os.path.join(tmp_path / "out", str(src).lstrip("/")))
    assert restored == fd_tree_state(src)
    assert deepest_relpath(depth, "sub") in restored


def test_a_directory_moved_while_parked_is_reported_not_followed(scratch, fast_kdf, monkeypatch):
    """A parked directory is reopened as '..' of its child; if it was moved meanwhile the
    backup says so instead of silently reading another directory."""
    tmp_path = scratch
    src = tmp_path / "src"
    make_chain(src, 30, name="m")
    repo = api.init_repository(str(tmp_path / "repo"), "pw", kdf=fast_kdf)
    monkeypatch.setattr(archiver, "MAX_OPEN_DIRS", 4)
    real_enter = archiver.Archiver._enter
    moved = []

    def enter(self, path, *args):
        frame = real_enter(self, path, *args)
        if not moved and path.count(b"/m") == 20:  # deep enough that src/m is parked
            os.rename(src / "m" / "m", tmp_path / "elsewhere")
            os.mkdir(src / "m" / "m")
            moved.append(path)
        return frame

    monkeypatch.setattr(archiver.Archiver, "_enter", enter)
    from ebas.errors import SourceError

    with pytest.raises(SourceError, match="moved during the backup"):
        api.backup(repo, [str(src)])
    assert moved


def test_cli_backup_restore_and_check_of_a_deep_tree(scratch, cli):
    """The same through the real executable, with --json output of long paths."""
    tmp_path = scratch
    src = tmp_path / "src"
    make_chain(src, 1500, name="dd")  # past the recursion limit, and 4,500 bytes: past PATH_MAX
    cli.ok("init")
    out = json.loads(cli.ok("--json", "backup", str(src)).stdout)
    assert out["partial"] is False
    cli.ok("restore", "latest", "--target", str(tmp_path / "out"))
    assert fd_tree_state(os.path.join(tmp_path / "out", str(src).lstrip("/"))) == fd_tree_state(src)
    assert cli("check", "--read-data").returncode == 0
    listing = cli.ok("ls", "latest", str(src), "--recursive").stdout
    assert listing.count(DEEP_NAME.encode()) == 1


def test_synthetic_full_export_and_lock_upkeep_walk_a_5000_level_tree(deep):
    """The other whole-snapshot walks: synthetic full (consolidating), export to another
    repository, and the object-lock deadlines of every pack a snapshot needs."""
    from ebas.lifecycle.objectlock import pack_deadlines
    from ebas.lifecycle.synthetic import synthesize
    from ebas.storage.registry import open_store
    from ebas.transfer.export import export_snapshot

    base, src, repo, _first = deep
    synth = synthesize(repo, "latest", consolidate=True)
    assert synth.blobs_copied >= DEPTH
    need, _snaps, trees = pack_deadlines(repo, 7)
    assert trees >= DEPTH and need
    repo.snapshots(refresh=True)
    result = export_snapshot(repo, synth.snapshot.id, open_store(str(base / "exported")), "pw2", new_key=True)
    other = api.open_repository(str(base / "exported"), "pw2")
    target = base / "from-export"
    api.restore(other, result.snapshot.id, str(target))
    restored = fd_tree_state(os.path.join(target, str(src).lstrip("/")))
    assert restored == fd_tree_state(src)
