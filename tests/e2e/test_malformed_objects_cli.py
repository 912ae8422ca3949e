"""Authentic but malformed snapshots and trees, through the API and the real executable.

Objects sealed with the right key but with wrong field types or ranges are integrity
errors (exit 13) for that object alone: the other snapshots stay listed and usable, and
no command ends in "unexpected TypeError".
"""

from __future__ import annotations

import json
import re

import blake3
import pytest

from ebas.errors import MalformedObject
from ebas.repo import snapshots as snaps
from ebas.repo.pack import KIND_TREE
from ebas.repo.repository import Repository
from ebas.storage.backends.file import FileStore

PASSWORD = "correct horse battery staple"  # the password the cli fixture uses (tests/conftest.py)

_UNEXPECTED = re.compile(rb"unexpected [A-Za-z]*(Error|Exception)")  # the last-resort message of a crash


def _open(path) -> Repository:
    return Repository.open(FileStore(path, fsync=False), PASSWORD)


def forge_snapshot(repo: Repository, changes: dict) -> str:
    """Seal a copy of the first snapshot with ``changes`` applied; its id."""
    doc = json.loads(repo.snapshots()[0].encode())
    doc.update(changes)
    stored = repo.aead.seal(json.dumps(doc).encode(), snaps.AAD)
    sid = blake3.blake3(stored).hexdigest()
    repo.store.put(snaps.PREFIX + sid, stored)
    return sid


def forge_tree_snapshot(repo: Repository, entry_changes: dict) -> str:
    """A snapshot whose root tree holds one file entry with ``entry_changes`` applied."""
    entry = {"name": "evil", "type": "file", "mode": 0o644, "size": 0, "mtime": 1, "ctime": 1, "atime": 1}
    entry.update(entry_changes)
    with repo.session() as session:
        root, _ = session.put_blob(KIND_TREE, json.dumps({"v": 1, "nodes": [entry]}).encode())
        session.commit(snaps.Snapshot(time_ns=5, host="forged", paths=["/forged"], tree=root.hex()))
    return next(s.id for s in repo.snapshots(refresh=True) if s.host == "forged")


@pytest.fixture
def two_good(tmp_path, cli):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n")
    cli.ok("init")
    cli.ok("backup", str(src))
    (src / "b.txt").write_bytes(b"beta\n")
    cli.ok("backup", str(src))
    return src


BAD_SNAPSHOTS = [
    {"time_ns": "yesterday"}, {"paths": None}, {"tree": 12345}, {"time_ns": 1.5}, {"time_ns": -7},
    {"time_ns": 2**80}, {"stats": {"files": "many"}}, {"tags": [["nested"]]}, {"partial": "yes"},
    {"holds": [{"type": "retain", "until_ns": "soon"}]}, {"unexpected": {"extra": [1, 2]}},
]


@pytest.mark.parametrize("changes", BAD_SNAPSHOTS, ids=[next(iter(c)) + "-" + type(next(iter(c.values()))).__name__
                                                       for c in BAD_SNAPSHOTS])
def test_a_malformed_snapshot_is_named_and_the_others_keep_working(tmp_path, cli, two_good, changes):
    repo = _open(tmp_path / "repo")
    bad = forge_snapshot(repo, changes)

    # API: the good snapshots are listed, the bad one is reported with its id
    fresh = _open(tmp_path / "repo")
    assert len(fresh.snapshots()) == 2
    assert len(fresh.snapshot_problems) == 1 and bad[:12] in fresh.snapshot_problems[0]
    with pytest.raises(MalformedObject):
        snaps.unseal(fresh.aead, bad, fresh.store.get(snaps.PREFIX + bad))

    listed = cli("--json", "snapshots")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2
    assert bad[:12].encode() in listed.stderr and b"malformed" in listed.stderr

    check = cli("check")
    assert check.returncode == 13, check.stderr
    assert bad[:12].encode() in check.stdout + check.stderr and b"malformed" in check.stdout + check.stderr

    for args in (("forget", "--keep-last", "1", "--dry-run"), ("prune", "--dry-run"), ("forget", "--keep-last", "5")):
        res = cli(*args)
        # 0, or 13 where the command refuses to decide deletions with an unreadable snapshot present
        assert res.returncode in (0, 13), (args, res.stderr)
        assert not _UNEXPECTED.search(res.stderr) and b"Traceback" not in res.stderr, res.stderr

    restored = cli("restore", "latest", "--target", str(tmp_path / "out"))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "out" / str(two_good).lstrip("/") / "b.txt").read_bytes() == b"beta\n"


@pytest.mark.parametrize("changes", [{"mode": 2**40}, {"size": -5}, {"uid": 2**64}, {"mtime": 2**70},
                                     {"extents": [[0, -1, 0]]}, {"mode": 1.5}, {"subtree": 7}])
def test_a_malformed_tree_is_an_integrity_error_for_its_snapshot_only(tmp_path, cli, two_good, changes):
    repo = _open(tmp_path / "repo")
    bad = forge_tree_snapshot(repo, changes)
    res = cli("restore", bad[:12], "--target", str(tmp_path / "out"))
    assert res.returncode == 13, res.stderr
    assert b"malformed" in res.stderr and not _UNEXPECTED.search(res.stderr)
    listing = cli("ls", bad[:12], "/")
    assert listing.returncode == 13 and not _UNEXPECTED.search(listing.stderr)
    check = cli("check")
    assert check.returncode == 13 and b"tree-damaged" in check.stdout + check.stderr
    assert cli("restore", "latest", "--target", str(tmp_path / "good")).returncode == 0  # a good one (newer)
    assert (tmp_path / "good" / str(two_good).lstrip("/") / "b.txt").read_bytes() == b"beta\n"
    res = cli("prune", "--dry-run")
    assert res.returncode in (0, 13) and not _UNEXPECTED.search(res.stderr), res.stderr
