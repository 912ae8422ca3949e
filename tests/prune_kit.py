"""Helpers for the retention, forget and prune tests: quick snapshots, file generations,
a naive reference recount, and pack accounting."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

from ebas import api
from ebas.repo.pack import KIND_DATA, KIND_TREE
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import DIR, FILE, Node, encode_tree

DAY = 86400 * 10**9
T0 = 1_700_000_000 * 10**9  # 2023-11-14


def quick_snapshot(repo, time_ns: int, *, host: str = "h", paths=("/d",), tags=(), payload: bytes | None = None):
    """A committed snapshot whose tree holds one small file (no source tree needed)."""
    with repo.session() as s:
        data = payload if payload is not None else f"{host}{time_ns}".encode()
        bid, _ = s.put_blob(KIND_DATA, data)
        tree, _ = s.put_blob(KIND_TREE, encode_tree([Node(b"f", FILE, size=len(data), content=bid)]))
        snap = Snapshot(time_ns=time_ns, host=host, paths=list(paths), tree=tree.hex(), tags=list(tags))
        s.commit(snap)
    return snap


def generation(src: Path, day: int, *, files: int = 6, size: int = 40_000, churn: int = 2) -> None:
    """Day ``day`` of a changing source: ``churn`` files are rewritten every day."""
    src.mkdir(parents=True, exist_ok=True)
    (src / "sub").mkdir(exist_ok=True)
    for i in range(files):
        path = src / ("sub" if i % 2 else ".") / f"file{i}.bin"
        version = day if i < churn else 0
        if i < churn or not path.exists():
            path.write_bytes(random.Random(i * 100_000 + version).randbytes(size))
    (src / "static.txt").write_bytes(b"never changes\n" * 500)


def backup_day(repo, src: Path, day: int, **kw):
    generation(src, day)
    kw.setdefault("update_catalog", False)  # these tests are about the repository, not the catalog
    return api.backup(repo, [str(src)], time_ns=T0 + day * DAY, **kw).snapshot


def pack_bytes(repo) -> int:
    return sum(i.size for i in repo.store.list("data/"))


def names(repo, prefix: str) -> set[str]:
    return {i.name for i in repo.store.list(prefix)}


def naive_recount(repo) -> Counter:
    """Reference counts by the definition, computed the slow and obvious way."""
    counts: Counter = Counter()
    trees: set[bytes] = set()
    todo = []
    for s in repo.snapshots(refresh=True):
        root = bytes.fromhex(s.tree)
        counts[root] += 1
        todo.append(root)
    while todo:
        tid = todo.pop()
        if tid in trees:
            continue
        trees.add(tid)
        for node in repo.load_tree(tid):
            if node.type == DIR and node.subtree:
                counts[node.subtree] += 1
                todo.append(node.subtree)
            for c in node.chunk_ids:
                counts[c] += 1
    return counts


def read_all(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out
