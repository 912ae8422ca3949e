"""Fetch the small files of many directories at once during a restore.

A restore writes the small files of a directory as one group (one fetch). On a share of
many small directories that is still one request per directory, and object stores
answer each request after tens of milliseconds. :class:`SmallFilesAhead` walks the
snapshot ahead of the restore, in the order the restore asks for groups (a directory's
subdirectories first, then its own files, as the restore flushes them), and when a
group asks for blobs it does not hold, fetches them together with the blobs of the next
small files, up to ``budget`` bytes and ``max_ids`` blobs: one :meth:`get_blobs` call
(a few ranged reads in pack order) serves many directories.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

from ebas.repo.tree import DIR, FILE, ID_LEN, Node

BUDGET = 16 << 20  # plaintext bytes held ahead of the restore
MAX_IDS = 4096


class SmallFilesAhead:
    """``get(ids)``: plaintexts of small-file blobs, fetched many directories ahead."""

    def __init__(self, repo, load_tree: Callable[[bytes], list[Node]], root: bytes,
                 is_small: Callable[[Node], bool], *, budget: int = BUDGET, max_ids: int = MAX_IDS):
        self.repo, self.load_tree, self.is_small = repo, load_tree, is_small
        self.budget, self.max_ids = budget, max_ids
        self._order = self._walk(root)
        self._have: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def _walk(self, root: bytes) -> Iterator[tuple[bytes, int]]:
        """``(chunk id, plaintext size)`` of small files, subdirectories before files."""
        stack: list[tuple[list[Node], int]] = [(self._nodes(root), 0)]
        while stack:
            nodes, i = stack.pop()
            while i < len(nodes) and nodes[i].type != DIR:
                i += 1
            if i < len(nodes):
                stack.append((nodes, i + 1))
                sub = nodes[i].subtree
                if sub and len(sub) == ID_LEN:
                    stack.append((self._nodes(sub), 0))
                continue
            for node in nodes:
                if node.type == FILE and self.is_small(node):
                    n = len(node.chunk_ids)
                    for cid in node.chunk_ids:
                        yield cid, node.size // max(1, n)

    def _nodes(self, tree: bytes) -> list[Node]:
        try:
            return self.load_tree(tree)
        except Exception:  # noqa: BLE001 - the restore itself meets (and reports) a bad tree
            return []

    def get(self, ids: list[bytes]) -> list[bytes]:
        """The plaintexts of ``ids``, in order (verified by ``get_blobs``)."""
        with self._lock:
            missing = list(dict.fromkeys(i for i in ids if i not in self._have))
            if missing:
                size = sum(len(v) for v in self._have.values())
                if size >= self.budget:  # what is held was passed by the restore (an early group): drop it
                    self._have = {i: self._have[i] for i in ids if i in self._have}
                    size = sum(len(v) for v in self._have.values())
                want = set(missing)
                while len(want) < self.max_ids and size < self.budget:
                    nxt = next(self._order, None)
                    if nxt is None:
                        break
                    cid, n = nxt
                    if cid not in want and cid not in self._have:
                        want.add(cid)
                        missing.append(cid)
                        size += n
                self._have.update(zip(missing, self.repo.get_blobs(missing)))
                self.fetches += 1
            out = [self._have[i] for i in ids]
            for i in ids:
                self._have.pop(i, None)
            return out
