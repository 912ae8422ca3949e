"""``restore --skip-damaged``: one flipped byte costs one file, not the restore.

Without the option a damaged blob stops the restore (exit 13). With it every file that
can be restored is restored byte for byte, each one that cannot is listed with its path
and the reason, nothing wrong is left under its name, and the CLI exits 3 (partial).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from ebas import api
from ebas.errors import IntegrityError
from ebas.repo.pack import pack_name
from ebas.repo.tree import decode_tree


def _node(repo, snap, rel: str):
    """The tree node of ``rel`` (path relative to the backed-up source)."""
    tree = bytes.fromhex(snap.tree)
    comps = [c for c in (snap.paths[0] + "/" + rel).split("/") if c]
    node = None
    for comp in comps:
        node = next(n for n in decode_tree(repo.get_blob(tree)) if n.name == comp.encode())
        tree = node.subtree
    return node


def _flip(repo_dir: Path, repo, blob: bytes) -> None:
    pid, off, length = repo.index.table.lookup(blob)
    path = repo_dir / pack_name(pid)
    data = bytearray(path.read_bytes())
    data[off + length // 2] ^= 0x40
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


@pytest.fixture
def damaged(repos, tmp_path):
    """201 small files, one large file and a hard-linked pair; one blob of ``f100``, one
    of ``big`` and the blob of ``linked`` are corrupt."""
    repo = repos.init()
    src = tmp_path / "src"
    (src / "many").mkdir(parents=True)
    for i in range(201):
        (src / "many" / f"f{i:03d}").write_bytes(random.Random(i).randbytes(3000 + i))
    (src / "big").write_bytes(random.Random(7).randbytes(400_000))
    (src / "linked").write_bytes(random.Random(8).randbytes(5000))
    os.link(src / "linked", src / "linked2")
    snap = api.backup(repo, [str(src)]).snapshot
    for rel, k in (("many/f100", 0), ("big", 3), ("linked", 0)):
        _flip(repos.base / "repo", repo, _node(repo, snap, rel).chunk_ids[k])
    return repos.reopen(repo), snap, src


def test_without_the_option_damage_stops_the_restore(damaged, tmp_path):
    repo, snap, _src = damaged
    with pytest.raises(IntegrityError):
        api.restore(repo, snap.id, str(tmp_path / "t"))


def test_skip_damaged_restores_everything_else_and_lists_the_damage(damaged, tmp_path):
    repo, snap, src = damaged
    target = tmp_path / "t"
    res = api.restore(repo, snap.id, str(target), skip_damaged=True)
    base = snap.paths[0]
    failed = {f["path"]: f["reason"] for f in res.failed}
    assert set(failed) == {f"{base}/many/f100", f"{base}/big", f"{base}/linked", f"{base}/linked2"}
    assert "corrupt" in failed[f"{base}/many/f100"] and "hard link" in failed[f"{base}/linked2"]
    out = target / base.lstrip("/")
    for i in range(201):
        p = out / "many" / f"f{i:03d}"
        if i == 100:
            assert not p.exists()  # nothing wrong left under the name
        else:
            assert p.read_bytes() == (src / "many" / f"f{i:03d}").read_bytes()
    assert not (out / "big").exists() and not (out / "linked").exists() and not (out / "linked2").exists()
    assert res.files == 200


def test_cli_skip_damaged_exits_3_and_lists_paths(damaged, make_cli, repos, tmp_path):
    repo, snap, _src = damaged
    cli = make_cli(repos.base / "repo")
    res = cli("restore", snap.id[:8], "--target", str(tmp_path / "t"), "--skip-damaged", "--json")
    assert res.returncode == 3, res.stderr.decode()
    out = json.loads(res.stdout)
    assert len(out["failed"]) == 4 and out["files"] == 200
    assert f"not restored: {snap.paths[0]}/many/f100: data cannot be read" in res.stderr.decode()
    plain = cli("restore", snap.id[:8], "--target", str(tmp_path / "t2"))
    assert plain.returncode == 13 and b"Traceback" not in plain.stderr
