"""FileStore specifics: on-disk layout, errno mapping, atomicity under failures, resume."""

from __future__ import annotations

import errno
import gc
import json
import os
from array import array

import pytest

from ebas.errors import (
    ObjectNotFound,
    PermissionDenied,
    StoreError,
    StoreFull,
    TransientStoreError,
    UsageError,
)
from ebas.runtime import FakeClock
from ebas.storage.backends import _fs
from ebas.storage.backends import file as file_mod
from ebas.storage.backends.file import TMP_DIR, UPLOADS_DIR, FileStore, path_from_url
from ebas.storage.wrappers.retry import RetryingStore


@pytest.fixture
def root(tmp_path):
    return tmp_path / "repo"


@pytest.fixture
def store(root):
    return FileStore(root)


def leftovers(root) -> list[str]:
    """Files in the temp directory (must be empty after any finished write)."""
    tmp = root / TMP_DIR
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def raising(code: int, after: int = 0):
    """A replacement for an os function that fails with ``code`` after ``after`` good calls."""
    calls = {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(code, os.strerror(code))
        return REAL[fake.name](*args, **kwargs)

    return fake


REAL = {"write": os.write, "fsync": os.fsync, "open": os.open, "pread": os.pread,
        "replace": os.replace, "rename": os.rename, "scandir": os.scandir}


def patch_os(monkeypatch, name, code, after=0):
    fake = raising(code, after)
    fake.name = name
    monkeypatch.setattr(os, name, fake)


# ---------------------------------------------------------------- layout
def test_layout_and_mode(store, root):
    store.put("data/ab/abcdef", b"pack")
    path = root / "data" / "ab" / "abcdef"
    assert path.read_bytes() == b"pack"
    assert path.stat().st_mode & 0o777 == 0o600
    assert leftovers(root) == []
    assert store.url == root.as_uri() and repr(store) == f"<FileStore {root.as_uri()}>"


def test_opening_creates_nothing(root):
    store = FileStore(root)
    assert list(store.list()) == [] and store.uploads() == []
    with pytest.raises(ObjectNotFound):
        store.get("config")
    assert not root.exists()


def test_reserved_names_rejected(store):
    for name in (TMP_DIR, f"{TMP_DIR}/x", f"{UPLOADS_DIR}/y"):
        with pytest.raises(UsageError, match="reserved"):
            store.put(name, b"x")


def test_list_rejects_nul_in_prefix(store):
    with pytest.raises(UsageError):
        store.list("a\x00")


def test_temp_files_never_listed(store, root):
    w = store.open_write("data/x")
    w.write(b"in flight")
    uid = store.begin_upload("data/y")
    store.upload_part(uid, 1, b"part")
    assert len(leftovers(root)) == 1
    assert list(store.list()) == [] and list(store.list(".ebas")) == []
    w.abort()
    assert leftovers(root) == []


def test_dropped_writer_removes_its_temp_file(store, root):
    w = store.open_write("x")
    w.write(b"abc")
    del w
    gc.collect()
    assert leftovers(root) == []


def test_writer_misuse(store):
    w = store.open_write("x")
    w.commit()
    with pytest.raises(UsageError):
        w.write(b"late")
    w2 = store.open_write("y")
    w2.abort()
    with pytest.raises(UsageError):
        w2.commit()


def test_non_byte_buffers(store):
    store.put("ints", memoryview(array("I", [1, 2])))
    assert store.get("ints") == array("I", [1, 2]).tobytes()


def test_fsync_false_never_fsyncs(root, monkeypatch):
    patch_os(monkeypatch, "fsync", errno.EIO)
    store = FileStore(root, fsync=False)
    store.put("a/b", b"x")
    assert store.get("a/b") == b"x"


# ---------------------------------------------------------------- errno mapping and atomicity
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_on_put_leaves_nothing(store, root, monkeypatch, code):
    store.put("data/obj", b"old")
    with monkeypatch.context() as m:
        patch_os(m, "write", code)
        with pytest.raises(StoreFull) as info:
            store.put("data/obj", b"new content")
        with pytest.raises(StoreFull):
            store.put("data/new", b"content")
    assert info.value.__cause__.errno == code
    assert "free space" in info.value.hint
    assert store.get("data/obj") == b"old"
    assert not store.exists("data/new")
    assert leftovers(root) == []


def test_disk_full_mid_stream_leaves_nothing(store, root, monkeypatch):
    w = store.open_write("data/stream")
    w.write(b"first chunk")
    with monkeypatch.context() as m:
        patch_os(m, "write", errno.ENOSPC)
        with pytest.raises(StoreFull):
            w.write(b"second chunk")
    assert leftovers(root) == [] and not store.exists("data/stream")
    with pytest.raises(UsageError):
        w.commit()


def test_disk_full_at_fsync_leaves_nothing(store, root, monkeypatch):
    with monkeypatch.context() as m:
        patch_os(m, "fsync", errno.ENOSPC)
        with pytest.raises(StoreFull):
            store.put("data/x", b"abc")
    assert leftovers(root) == [] and list(store.list()) == []


def test_disk_full_in_upload_part(store, root, monkeypatch):
    uid = store.begin_upload("big")
    with monkeypatch.context() as m:
        patch_os(m, "write", errno.ENOSPC)
        with pytest.raises(StoreFull):
            store.upload_part(uid, 1, b"part")
    assert store.parts(uid) == [] and leftovers(root) == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_permission_errors(store, root, monkeypatch, code):
    store.put("obj", b"x")
    with monkeypatch.context() as m:
        patch_os(m, "open", code)
        with pytest.raises(PermissionDenied):
            store.put("other", b"y")
        with pytest.raises(PermissionDenied):
            store.get("obj")
    assert leftovers(root) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_real_permission_errors(store, root):  # pragma: no cover - needs a non-root user
    store.put("data/x", b"1")
    os.chmod(root / "data", 0o500)
    try:
        with pytest.raises(PermissionDenied):
            store.put("data/y", b"2")
        assert store.get("data/x") == b"1" and leftovers(root) == []
    finally:
        os.chmod(root / "data", 0o700)


def test_permission_denied_on_list(store, monkeypatch):
    store.put("a/b", b"x")
    monkeypatch.setattr(os, "scandir", raising(errno.EACCES))
    with pytest.raises(PermissionDenied):
        list(store.list())


def test_eio_is_transient_and_retried(store, monkeypatch, clock):
    store.put("obj", b"payload")
    patch_os(monkeypatch, "pread", errno.EIO)
    with pytest.raises(TransientStoreError):
        store.get("obj")
    fails = {"n": 0}

    def flaky_pread(fd, n, off):
        fails["n"] += 1
        if fails["n"] == 1:
            raise OSError(errno.EIO, "I/O error")
        return REAL["pread"](fd, n, off)

    monkeypatch.setattr(os, "pread", flaky_pread)
    assert RetryingStore(store, clock).get("obj") == b"payload"
    assert len(clock.sleeps) == 1


def test_short_and_truncated_reads(store, monkeypatch):
    store.put("obj", b"0123456789")
    monkeypatch.setattr(os, "pread", lambda fd, n, off: REAL["pread"](fd, min(n, 3), off))
    assert store.get("obj", 1) == b"123456789"
    monkeypatch.setattr(os, "pread", lambda fd, n, off: b"")
    assert store.get("obj") == b""


@pytest.mark.parametrize("code,kind", [(errno.ELOOP, StoreError), (errno.ENAMETOOLONG, UsageError),
                                       (errno.ESTALE, TransientStoreError)])
def test_other_errno_mapping(code, kind):
    err = _fs.map_os_error(OSError(code, os.strerror(code)), "n", "file:///r", "get")
    assert type(err) is kind


def test_real_name_too_long(store):
    with pytest.raises(UsageError, match="too long"):
        store.put("x" * 300, b"x")


# ---------------------------------------------------------------- names that nest
def test_object_and_directory_conflicts(store):
    store.put("a/b", b"x")
    for op in (store.get, store.stat, store.delete):
        with pytest.raises(ObjectNotFound):
            op("a")
        with pytest.raises(ObjectNotFound):
            op("a/b/c")
    with pytest.raises(StoreError, match="conflict") as info:
        store.put("a", b"y")
    assert "cannot hold both" in info.value.hint
    with pytest.raises(StoreError, match="conflict"):
        store.put("a/b/c", b"z")
    store.delete("a/b")
    store.put("a", b"now a file")  # the empty directory 'a' gives way
    assert store.get("a") == b"now a file"
    assert [i.name for i in store.list()] == ["a"]


def test_root_is_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    store = FileStore(tmp_path / "f")
    with pytest.raises(StoreError):
        store.put("x", b"y")
    assert list(store.list()) == []


def test_list_skips_entries_deleted_while_listing(store, monkeypatch):
    store.put("a/1", b"x")
    store.put("a/2", b"x")

    class Vanishing:
        def __init__(self, entry):
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self):
            return self.entry.is_dir()

        def is_file(self):
            if self.name == "1":
                raise FileNotFoundError(errno.ENOENT, "gone")
            return self.entry.is_file()

        def stat(self):
            return self.entry.stat()

    class Scan:
        def __init__(self, path):
            self.it = REAL["scandir"](path)

        def __enter__(self):
            return (Vanishing(e) for e in self.it)

        def __exit__(self, *exc):
            self.it.close()

    monkeypatch.setattr(os, "scandir", Scan)
    assert [i.name for i in store.list("a/")] == ["a/2"]


# ---------------------------------------------------------------- resumable uploads on disk
def test_upload_state_on_disk_and_resume_from_fresh_instance(root):
    first = FileStore(root)
    uid = first.begin_upload("packs/big")
    first.upload_part(uid, 2, b"BBB")
    folder = root / UPLOADS_DIR / uid
    assert json.loads((folder / "upload.json").read_text())["name"] == "packs/big"
    assert sorted(os.listdir(folder)) == ["00002", "00002.etag", "upload.json"]
    del first  # "the process died"
    second = FileStore(str(root))
    assert [(u.name, u.upload_id) for u in second.uploads()] == [("packs/big", uid)]
    assert [(p.number, p.size) for p in second.parts(uid)] == [(2, 3)]
    second.upload_part(uid, 1, b"AA")
    second.complete(uid)
    assert second.get("packs/big") == b"AABBB"
    assert os.listdir(root / UPLOADS_DIR) == [] and leftovers(root) == []


def test_stale_or_bad_etag_records_are_ignored(store, root):
    uid = store.begin_upload("obj")
    store.upload_part(uid, 1, b"abc")
    assert store.parts(uid)[0].etag == "900150983cd24fb0d6963f7d28e17f72"
    record = root / UPLOADS_DIR / uid / "00001.etag"
    record.write_text("900150983cd24fb0d6963f7d28e17f72 12345")  # another inode
    assert store.parts(uid)[0].etag == ""
    record.write_bytes(b"\xff\xfe")
    assert store.parts(uid)[0].etag == ""
    record.unlink()
    assert store.parts(uid)[0].etag == ""


def test_damaged_or_half_begun_uploads(store, root):
    good = store.begin_upload("good")
    bad = store.begin_upload("bad")
    (root / UPLOADS_DIR / bad / "upload.json").write_text("{not json")
    half = "f" * 32
    (root / UPLOADS_DIR / half).mkdir()  # crash between mkdir and writing upload.json
    (root / UPLOADS_DIR / "junk").mkdir()
    assert [u.upload_id for u in store.uploads()] == [good]
    with pytest.raises(StoreError, match="damaged"):
        store.complete(bad)
    with pytest.raises(ObjectNotFound):
        store.parts(half)
    store.abort(bad)
    store.abort(half)
    assert sorted(os.listdir(root / UPLOADS_DIR)) == [good, "junk"]


def test_part_upload_racing_an_abort(store, monkeypatch):
    uid = store.begin_upload("obj")
    store.abort(uid)
    monkeypatch.setattr(store, "_upload_meta", lambda upload_id: "obj")
    with pytest.raises(ObjectNotFound, match="upload"):
        store.upload_part(uid, 1, b"late part")


def test_upload_errors_are_mapped(store, monkeypatch):
    uid = store.begin_upload("obj")
    store.upload_part(uid, 1, b"x")
    with monkeypatch.context() as m:
        m.setattr(os, "rename", raising(errno.EACCES))
        with pytest.raises(PermissionDenied):
            store.abort(uid)
    with monkeypatch.context() as m:
        m.setattr(file_mod, "open", lambda *a, **k: (_ for _ in ()).throw(
            OSError(errno.EIO, "I/O error")), raising=False)
        with pytest.raises(TransientStoreError):
            store.parts(uid)
    real_open = open

    def failing_part_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("00001"):
            raise OSError(errno.EIO, "I/O error")
        return real_open(path, mode, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(file_mod, "open", failing_part_open, raising=False)
        with pytest.raises(TransientStoreError):
            store.complete(uid)
    assert not store.exists("obj") and store.parts(uid)[0].size == 1


def test_remove_stale(root):
    clock = FakeClock()
    store = FileStore(root, clock=clock)
    w = store.open_write("x")
    w.write(b"abandoned")
    uid = store.begin_upload("y")
    store.abort(uid)  # leaves nothing; fake an aborted leftover and a fresh temp file
    leftover = root / UPLOADS_DIR / f"{uid}.aborted-0000"
    leftover.mkdir()
    (leftover / "00001").write_bytes(b"x")
    pending = store.begin_upload("z")
    old = clock.now() - 2 * 86400
    for path in (root / TMP_DIR / os.listdir(root / TMP_DIR)[0], leftover, root / UPLOADS_DIR / pending):
        os.utime(path, (old, old))
    fresh = store.open_write("fresh")
    fresh.write(b"x")
    assert store.remove_stale(older_than=86400) == 2
    assert len(leftovers(root)) == 1
    assert [u.upload_id for u in store.uploads()] == [pending]
    assert FileStore(root / "nothing-here").remove_stale() == 0


# ---------------------------------------------------------------- URLs
def test_path_from_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert path_from_url("file:///srv/backup") == "/srv/backup"
    assert path_from_url("file://localhost/srv/b") == "/srv/b"
    assert path_from_url("file:///srv/a%20b") == "/srv/a b"
    assert path_from_url("rel/repo") == str(tmp_path / "rel" / "repo")
    assert path_from_url("~/x") == os.path.expanduser("~/x")
    for bad in ("file://otherhost/x", "http://x/y", "file://"):
        with pytest.raises(UsageError):
            path_from_url(bad)
    assert FileStore.from_url("file:///srv/b", fsync=False).root == "/srv/b"
