"""Backup, restore and export through the progress protocol: the totals reached are the
result's figures (files and bytes), also for unchanged files, hard links and --include."""

from __future__ import annotations

import os

from progress_kit import Recorder

from ebas import api
from ebas.backup.archiver import Archiver, BackupOptions
from ebas.backup.restorer import Restorer
from ebas.progress import Tracker
from ebas.runtime import FakeClock
from ebas.storage.backends.memory import MemoryStore
from ebas.transfer.export import export_snapshot


def make_tree(src, seed: int = 0) -> None:
    """Files of many sizes (empty, small, several chunks), a hard link, a symlink."""
    rnd = __import__("random").Random(seed)
    for d in range(4):
        sub = src / f"dir{d}"
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(30):
            (sub / f"f{i}.bin").write_bytes(rnd.randbytes(rnd.choice([0, 10, 3000, 70_000])))
    (src / "big.bin").write_bytes(rnd.randbytes(400_000))
    os.link(src / "big.bin", src / "big-link.bin")
    os.symlink("big.bin", src / "sym")


def figures(tracker: Tracker) -> tuple:
    st = tracker.status()
    return st.items_done, st.items_total, st.bytes_done, st.bytes_total


def test_backup_and_restore_totals_equal_the_results(repo, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    t = Tracker(clock=FakeClock())
    res = api.backup(repo, [str(src)], progress=t)
    st = res.stats
    assert st.files == 122 and st.files_unmodified == 0
    assert figures(t) == (st.files, st.files, st.bytes_logical, st.bytes_logical)
    assert t.status().phase == "backup" and t.status().current.startswith(str(src))

    (src / "dir0" / "f1.bin").write_bytes(b"changed")  # one changed, one new, the rest unchanged
    (src / "new.bin").write_bytes(b"x" * 5000)
    t2 = Tracker(clock=FakeClock())
    res2 = api.backup(repo, [str(src)], progress=t2)
    st2 = res2.stats
    assert st2.files_unmodified >= 120 and st2.files_new == 1 and st2.files_changed == 1
    assert figures(t2) == (st2.files, st2.files, st2.bytes_logical, st2.bytes_logical)

    t3 = Tracker(clock=FakeClock())
    out = api.restore(repo, res2.snapshot.id, str(tmp_path / "out"), progress=t3)
    assert out.files == st2.files  # hard links count as files, restored without data
    assert figures(t3) == (out.files, out.files, out.bytes, out.bytes)
    assert out.bytes == st2.bytes_logical - 400_000  # the link's bytes are not written twice


def test_restore_of_included_paths_grows_its_totals(repo, tmp_path):
    src = tmp_path / "src"
    make_tree(src, seed=1)
    snap = api.backup(repo, [str(src)]).snapshot
    t = Tracker(clock=FakeClock())
    out = api.restore(repo, snap.id, str(tmp_path / "out"), includes=[f"{src}/dir2"], progress=t)
    assert out.files == 30
    assert figures(t) == (out.files, out.files, out.bytes, out.bytes)


def test_partial_snapshot_restore_does_not_trust_its_file_count(repo, tmp_path):
    src = tmp_path / "src"
    make_tree(src, seed=2)
    snap = api.backup(repo, [str(src)]).snapshot
    snap.partial = True  # as if some files could not be read: stats count more files than the tree
    snap.stats["files"] += 5
    t = Tracker(clock=FakeClock())
    out = Restorer(repo, snap, str(tmp_path / "out"), progress=t).run()
    assert figures(t) == (out.files, out.files, out.bytes, out.bytes)


def test_backup_of_standard_input_reports_one_file(repo, tmp_path, monkeypatch):
    import io
    import sys

    data = os.urandom(100_000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    t = Tracker(clock=FakeClock())
    res = Archiver(repo, BackupOptions(stdin_filename="dump.sql"), progress=t).run()
    assert figures(t) == (1, 1, len(data), len(data)) == (res.stats.files, 1, res.stats.bytes_logical, len(data))


def test_backup_errors_reach_the_progress_receiver(repo, tmp_path, monkeypatch):
    from ebas.backup.fileread import FileReader
    from ebas.errors import SourceError

    src = tmp_path / "src"
    make_tree(src, seed=3)
    read = FileReader.read

    def failing(self, node, path, **kw):  # a read error (root reads files of mode 000)
        if path.endswith(b"dir1/f3.bin"):
            raise SourceError(f"cannot read {path.decode()}: Permission denied")
        return read(self, node, path, **kw)

    monkeypatch.setattr(FileReader, "read", failing)
    (src / "dir1" / "f3.bin").write_bytes(b"data")
    t = Tracker(clock=FakeClock())
    res = api.backup(repo, [str(src)], progress=t)
    assert res.partial and t.status().errors == len(res.errors) == 1
    assert figures(t)[0] == figures(t)[1] == res.stats.files  # the failed file is over, too


def test_export_reports_blobs_and_bytes_copied(repo, tmp_path, fast_kdf):
    src = tmp_path / "src"
    make_tree(src, seed=4)
    snap = api.backup(repo, [str(src)]).snapshot
    rec = Recorder()
    res = export_snapshot(repo, snap.id, MemoryStore(), "pw", kdf=fast_kdf, progress=rec.tracker)
    st = rec.final("export")
    assert rec.phases == ["export"]
    assert st.items_done == res.blobs_copied + res.blobs_present and st.bytes_done == res.bytes_copied > 0
