"""One verdict on tree entries: restore, dump, check and catalog ingest agree.

Trees are sealed with the repository's real key (an attacker holding it, or a bug), so
they decode; :mod:`ebas.repo.treecheck` must make ``restore`` refuse, ``dump`` refuse,
``check`` report the snapshot and the path, and catalog ingest skip the entry and
report it without stopping. A normal tree still dumps to a tar that extracts.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebas import api
from ebas.backup.dump import dump
from ebas.catalog.location import open_catalog
from ebas.errors import UnsafePath
from ebas.repo.pack import KIND_DATA, KIND_TREE
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import Node, decode_tree
from ebas.repo.treecheck import names_faults, tree_faults
from ebas.verify.check import check_repository

PAYLOAD = b"payload written by a malicious tree"


def _file(name: str, **kw) -> dict:
    return {"name": name, "type": "file", "mode": 0o644, "mtime": 0, "ctime": 0, "atime": 0, **kw}


def _dir(name: str, **kw) -> dict:
    return {"name": name, "type": "dir", "mode": 0o755, "mtime": 0, "ctime": 0, "atime": 0, **kw}


def _link(name: str, target: str) -> dict:
    return {"name": name, "type": "symlink", "target": target, "mtime": 0, "ctime": 0, "atime": 0}


def _sealed_snapshot(repo, root: list[dict], subs: dict[str, list[dict]] | None = None, *,
                     wrap: str | None = None) -> str:
    """A snapshot whose root tree holds ``root`` (raw node dicts, in the given order,
    which may break every rule of the encoder). A directory named in ``subs`` gets that
    listing as its subtree; files get one data blob. ``wrap`` puts the whole root one
    directory deeper, under that name."""
    with repo.session() as s:
        data_id, _ = s.put_blob(KIND_DATA, PAYLOAD)

        def seal(nodes: list[dict]) -> bytes:
            out = []
            for d in nodes:
                d = dict(d)
                if d["type"] == "file":
                    d["content"], d["size"] = base64.b64encode(data_id).decode(), len(PAYLOAD)
                if d["type"] == "dir" and "subtree" not in d:
                    d["subtree"] = seal((subs or {}).get(d["name"], [])).hex()
                out.append(d)
            tid, _ = s.put_blob(KIND_TREE, json.dumps({"v": 1, "nodes": out}, sort_keys=True).encode())
            return tid

        root_id = seal(root)
        if wrap is not None:
            root_id = seal([_dir(wrap, subtree=root_id.hex())])
        s.flush()
    return repo.save_snapshot(Snapshot(time_ns=repo.clock.now_ns(), host="evil", paths=["/x"], tree=root_id.hex()))


# (root listing, subtrees, the faulted path, a word of the reason)
CASES = {
    "symlink-then-dir": ([_link("a", "/tmp"), _dir("a")], {"a": [_file("planted")]}, "/a", "duplicate"),
    "dir-then-symlink": ([_dir("a"), _link("a", "/tmp")], {"a": [_file("planted")]}, "/a", "duplicate"),
    "file-twice": ([_file("a"), _file("a")], None, "/a", "duplicate"),
    "dotdot": ([_file("..")], None, "/..", "unsafe"),
    "dot": ([_dir(".")], None, "/.", "unsafe"),
    "empty": ([_file("")], None, "/", "empty"),
    "slash": ([_file("x/y")], None, "/x/y", "'/'"),
    "nul": ([_file("nul\x00byte")], None, "/nul\\x00byte", "NUL"),
    "unsorted": ([_file("b"), _file("a")], None, "/", "out of order"),
    "symlink-nul-target": ([_link("l", "a\x00b")], None, "/l", "NUL"),
}


@pytest.fixture(params=sorted(CASES))
def bad(request, repo):
    root, subs, path, word = CASES[request.param]
    if request.param != "unsorted":  # canonical order (stable: duplicates keep theirs), beside a healthy entry
        root = sorted([_file("fine")] + root, key=lambda d: d["name"].encode())
    sid = _sealed_snapshot(repo, root, subs)
    return repo, sid, path, word


def test_check_reports_the_snapshot_and_the_path(bad):
    repo, sid, path, word = bad
    report = check_repository(repo)
    found = [p for p in report.errors if p.kind == "tree-damaged" and p.object == path]
    assert found, report.problems
    assert word in found[0].message and "restore refuses" in found[0].message
    assert sid in found[0].snapshots
    assert not report.ok


def test_restore_refuses(bad, tmp_path):
    repo, sid, path, word = bad
    outside = tmp_path / "tmp-outside"
    outside.mkdir()
    with pytest.raises(UnsafePath, match=word.strip("'")) as info:
        api.restore(repo, sid, str(tmp_path / "target"))
    assert info.value.exit_code == 13
    assert list(outside.iterdir()) == []


def test_dump_refuses_before_writing_a_faulted_entry(bad):
    repo, sid, path, word = bad
    out = io.BytesIO()
    with pytest.raises(UnsafePath):
        dump(repo, repo.find_snapshot(sid), "/", out)
    assert b"planted" not in out.getvalue()  # nothing of the faulted tree reached the stream


def test_catalog_ingest_skips_and_reports(bad, tmp_path):
    repo, sid, path, word = bad
    with open_catalog(str(tmp_path / "cat.sqlite"), repo_id=repo.config.repo_id) as cat:
        stats = cat.ingest_snapshot(repo, repo.find_snapshot(sid))
        assert stats.added
        assert any(s.startswith(f"{path}: ") and word in s for s in stats.skipped), stats.skipped
        listed = {e.path for x in cat.ls("/", snapshot=sid, recursive=True).listings for e in x.entries}
    assert "/planted" not in listed and "/a/planted" not in listed  # nothing of a refused entry is indexed
    if "out of order" not in word:
        assert "/fine" in listed  # the healthy neighbour is indexed


def test_restore_skip_damaged_restores_the_rest_and_lists_the_fault(bad, tmp_path):
    repo, sid, path, word = bad
    target = tmp_path / "target"
    res = api.restore(repo, sid, str(target), skip_damaged=True)
    assert any(f["path"] == path and word in f["reason"] for f in res.failed), res.failed
    if "out of order" not in word:
        assert (target / "fine").read_bytes() == PAYLOAD
    assert not (target / "a" / "planted").exists()


def test_a_fault_deep_in_the_tree_is_found_by_all(repo, tmp_path):
    sid = _sealed_snapshot(repo, [_link("a", str(tmp_path)), _dir("a"), _file("fine")], {"a": [_file("planted")]},
                           wrap="sub")
    report = check_repository(repo)
    assert any(p.object == "/sub/a" and sid in p.snapshots for p in report.errors)
    with pytest.raises(UnsafePath, match="/sub/a"):
        api.restore(repo, sid, str(tmp_path / "t1"))
    with pytest.raises(UnsafePath, match="/sub/a"):
        dump(repo, repo.find_snapshot(sid), "/sub", io.BytesIO())
    with pytest.raises(UnsafePath, match="/sub/a"):  # a path through the faulted tree: refused as well
        dump(repo, repo.find_snapshot(sid), "/sub/fine", io.BytesIO())
    assert not (tmp_path / "planted").exists()


def test_check_clean_means_restorable(repo, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 1000)
    os.symlink("d/f", src / "l")
    snap = api.backup(repo, [str(src)]).snapshot
    assert check_repository(repo).ok
    api.restore(repo, snap.id, str(tmp_path / "t"))


def test_tree_faults_on_trees_ebas_writes_are_empty(repo, tmp_path):
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "a b").write_bytes(b"1")
    (src / "\u00e9t\u00e9").write_bytes(b"2")
    os.symlink("/nowhere", src / "dangling")
    snap = api.backup(repo, [str(src)]).snapshot
    stack = [bytes.fromhex(snap.tree)]
    while stack:
        nodes = decode_tree(repo.get_blob(stack.pop()))
        assert tree_faults(nodes) == []
        stack += [n.subtree for n in nodes if n.type == "dir"]


def test_names_faults_lists_every_duplicate_once_and_every_bad_name():
    faults = names_faults([b"", b"a", b"a", b"a", b"b/c"], ["file", "dir", "symlink", "file", "file"])
    reasons = {(f.name, f.reason.split(" ")[0]) for f in faults}
    assert (b"a", "is") in reasons and sum(1 for f in faults if f.name == b"a") == 1
    assert "dir and symlink and file" in next(f.reason for f in faults if f.name == b"a")
    assert {f.name for f in faults} == {b"", b"a", b"b/c"}
    assert tree_faults([Node(name=b"d", type="dir")])[0].reason == "is a directory without a subtree"
    assert "mode" in tree_faults([Node(name=b"f", type="file", mode=1 << 40)])[0].reason


def test_dump_of_a_normal_tree_extracts_with_gnu_tar_and_python(repo, tmp_path):
    src = tmp_path / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "deep" / "leaf").write_bytes(os.urandom(70_000))
    (src / "top").write_bytes(b"top\n")
    os.symlink("docs/deep/leaf", src / "rel-link")
    os.link(src / "top", src / "hard")
    snap = api.backup(repo, [str(src)]).snapshot
    out = io.BytesIO()
    assert dump(repo, snap, str(src), out) == "tar"
    for how in ("gnu", "python"):
        dest = tmp_path / f"x-{how}"
        dest.mkdir()
        if how == "gnu":
            subprocess.run(["tar", "-x", "-C", str(dest)], input=out.getvalue(), check=True)
        else:
            with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
                tar.extractall(dest, filter="data")
        assert (dest / "docs" / "deep" / "leaf").read_bytes() == (src / "docs" / "deep" / "leaf").read_bytes()
        assert (dest / "top").read_bytes() == b"top\n"
        assert os.readlink(dest / "rel-link") == "docs/deep/leaf"
        assert os.stat(dest / "hard").st_ino == os.stat(dest / "top").st_ino
        assert sorted(str(p.relative_to(dest)) for p in Path(dest).rglob("*")) == sorted(
            str(p.relative_to(src)) for p in src.rglob("*"))


def test_the_cli_gives_the_same_verdict(repos, make_cli, tmp_path):
    repo = repos.init()
    sid = _sealed_snapshot(repo, [_link("a", str(tmp_path)), _dir("a"), _file("fine")], {"a": [_file("planted")]})
    cli = make_cli(repos.base / "repo")
    check = cli("check", "--json")
    assert check.returncode == 13
    found = [p for p in json.loads(check.stdout)["errors"] if p["object"] == "/a"]
    assert found and found[0]["snapshots"] == [sid] and "duplicate" in found[0]["message"]
    dumped = cli("dump", sid[:8], "/")
    assert dumped.returncode == 13 and b"duplicate name" in dumped.stderr and b"planted" not in dumped.stdout
    restored = cli("restore", sid[:8], "--target", str(tmp_path / "t"))
    assert restored.returncode == 13 and b"/a is a duplicate name" in restored.stderr
    salvaged = cli("restore", sid[:8], "--target", str(tmp_path / "t2"), "--skip-damaged")
    assert salvaged.returncode == 3 and b"not restored: /a: entry is a duplicate name" in salvaged.stderr
    assert (tmp_path / "t2" / "fine").read_bytes() == PAYLOAD
    synced = cli("catalog", "sync", "--json")
    assert synced.returncode == 0, synced.stderr.decode()
    assert any("/a: entry is a duplicate name" in s for s in json.loads(synced.stdout)["skipped"])
    assert not (tmp_path / "planted").exists()


# ------------------------------------------------------------------ property
NAMES = ["", ".", "..", "a", "a", "b", "a/b", "x\x00y", "\u00e9", "z"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(["file", "dir", "symlink"])),
                        min_size=1, max_size=5),
       canonical=st.booleans())
def test_any_odd_tree_gets_one_verdict_from_every_reader(entries, canonical, fast_kdf, tmp_path_factory):
    from ebas.repo.repository import Repository
    from ebas.storage.backends.memory import MemoryStore

    repo = Repository.init(MemoryStore(), "pw", kdf=fast_kdf)
    nodes = [_file(n) if t == "file" else _dir(n) if t == "dir" else _link(n, "target") for n, t in entries]
    if canonical:
        nodes.sort(key=lambda d: d["name"].encode())
    sid = _sealed_snapshot(repo, nodes)
    snap = repo.find_snapshot(sid)
    bad = bool(tree_faults(decode_tree(repo.get_blob(bytes.fromhex(snap.tree)))))
    work = tmp_path_factory.mktemp("odd")

    assert (not check_repository(repo).ok) == bad
    try:
        api.restore(repo, sid, str(work / "restore"))
        refused = False
    except UnsafePath:
        refused = True
    assert refused == bad
    try:
        dump(repo, snap, "/", io.BytesIO())
        dumped = True
    except UnsafePath:
        dumped = False
    assert dumped == (not bad)
    with open_catalog(str(work / "cat.sqlite"), repo_id="odd") as cat:
        assert bool(cat.ingest_snapshot(repo, snap).skipped) == bad  # never raises
    salvage = api.restore(repo, sid, str(work / "salvage"), skip_damaged=True)
    assert bool(salvage.failed) == bad
