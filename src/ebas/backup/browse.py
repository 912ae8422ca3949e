"""Browsing snapshots: resolve a path, list entries, compare two snapshots.

Comparison follows the Merkle structure: subtrees with equal ids are skipped without
being read, so ``diff`` costs what changed, not the size of the snapshots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

from ebas.errors import UsageError
from ebas.repo.tree import DIR, FILE, Node


def _split(path: str) -> list[bytes]:
    return [os.fsencode(c) for c in path.split("/") if c]


def resolve(repo, snapshot, path: str) -> tuple[Node | None, bytes]:
    """``(node, tree id)`` at ``path`` in ``snapshot``; node is None for the root.

    For a directory the tree id is its subtree; for anything else it is the id of the
    tree that holds it. Raises ``UsageError`` if the path does not exist.
    """
    tree = bytes.fromhex(snapshot.tree)
    node = None
    for comp in _split(path):
        if node is not None and node.type != DIR:
            raise UsageError(f"{path!r} does not exist in snapshot {snapshot.id[:8]} ({os.fsdecode(node.name)} is not a directory)")
        found = next((n for n in repo.load_tree(tree) if n.name == comp), None)
        if found is None:
            raise UsageError(f"{path!r} does not exist in snapshot {snapshot.id[:8]}",
                             hint=f"list it with 'ebas ls {snapshot.id[:8]}'")
        node = found
        if node.type == DIR:
            tree = node.subtree
    return node, tree


def walk(repo, tree_id: bytes, prefix: str = "/", recursive: bool = True) -> Iterator[tuple[str, Node]]:
    """Yield ``(path, node)`` for every entry under a tree, depth first in name order.

    Iterative (an explicit stack of directory iterators): trees of any depth."""
    stack: list[tuple[str, Iterator[Node]]] = [(prefix.rstrip("/") + "/", iter(repo.load_tree(tree_id)))]
    while stack:
        base, entries = stack[-1]
        node = next(entries, None)
        if node is None:
            stack.pop()
            continue
        path = base + node.display_name
        yield path, node
        if recursive and node.type == DIR and node.subtree:
            stack.append((path + "/", iter(repo.load_tree(node.subtree))))


def list_path(repo, snapshot, path: str = "/", recursive: bool = False) -> Iterator[tuple[str, Node]]:
    """Entries at ``path`` (the entry itself if it is not a directory)."""
    node, tree = resolve(repo, snapshot, path)
    if node is not None and node.type != DIR:
        yield "/" + "/".join(os.fsdecode(c) for c in _split(path)), node
        return
    yield from walk(repo, tree, "/" + "/".join(os.fsdecode(c) for c in _split(path)), recursive)


@dataclass
class Change:
    """One difference between two snapshots."""

    kind: str  # added, removed, modified, metadata, type
    path: str
    old_size: int = 0
    new_size: int = 0

    def to_json(self) -> dict:
        """JSON-able form."""
        return dict(self.__dict__)


def _meta(n: Node) -> tuple:
    return (n.mode, n.uid, n.gid, n.mtime_ns, n.xattrs, n.acl_access, n.acl_default, n.target)


def _size(n: Node | None) -> int:
    if n is None:
        return 0
    return n.size if n.type == FILE else 0


def diff_trees(repo, old: bytes | None, new: bytes | None, prefix: str = "") -> Iterator[Change]:
    """Differences between two trees (either may be None, meaning empty), depth first.

    Iterative: each directory level is a generator on an explicit stack that yields its
    changes and the pairs of subtrees still to compare, so trees of any depth work."""
    stack = [_diff_level(repo, old, new, prefix)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, Change):
            yield item
        else:
            stack.append(_diff_level(repo, *item))


def _diff_level(repo, old: bytes | None, new: bytes | None, prefix: str) -> Iterator[Change | tuple]:
    """One directory: its changes, and ``(old subtree, new subtree, path)`` to descend into."""
    if old == new:
        return
    a = {n.name: n for n in repo.load_tree(old)} if old else {}
    b = {n.name: n for n in repo.load_tree(new)} if new else {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        path = prefix + "/" + os.fsdecode(name)
        if x is None or y is None:
            kind = "added" if x is None else "removed"
            node = y if x is None else x
            yield Change(kind, path + ("/" if node.type == DIR else ""), _size(x), _size(y))
            if node.type == DIR:
                yield ((None, node.subtree) if x is None else (node.subtree, None)) + (path,)
            continue
        if x.type != y.type:
            yield Change("type", path, _size(x), _size(y))
            if x.type == DIR:
                yield (x.subtree, None, path)
            if y.type == DIR:
                yield (None, y.subtree, path)
            continue
        if x.type == DIR:
            if _meta(x) != _meta(y):
                yield Change("metadata", path + "/")
            yield (x.subtree, y.subtree, path)
        elif x.content != y.content or x.size != y.size or x.target != y.target or x.extents != y.extents:
            yield Change("modified", path, _size(x), _size(y))
        elif _meta(x) != _meta(y):
            yield Change("metadata", path, _size(x), _size(y))


def diff_snapshots(repo, a, b) -> list[Change]:
    """All differences from snapshot ``a`` to snapshot ``b``."""
    return list(diff_trees(repo, bytes.fromhex(a.tree), bytes.fromhex(b.tree)))
