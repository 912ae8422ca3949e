"""Read trees ahead of a depth-first walk, level by level, in batches.

A walk of a snapshot (restore, the previous snapshot during an incremental backup) loads
one tree per directory. On object storage each load is a request with its own latency
and its own line on the bill. :class:`TreeAhead` fetches the trees below a directory
breadth-first, ``batch`` at a time with :meth:`Repository.get_blobs` (one ranged read per
run of nearby blobs: tree packs hold trees only, so a level is a few reads), and keeps
the encoded blobs until the walk asks for them, within ``budget`` bytes.
"""

from __future__ import annotations

import threading
from typing import Callable

from ebas.repo.tree import DIR, Node, decode_tree

BATCH = 256  # trees per fetch
BUDGET = 64 << 20  # encoded tree bytes held ahead of the walk


class TreeAhead:
    """``load(tree_id)`` returns a tree's nodes, from the read-ahead when it has them.

    A load the read-ahead cannot answer means the walk has left the region read so far:
    the read-ahead is dropped and refilled from that directory down, breadth-first, up to
    ``budget`` bytes. Trees stay until then, so identical subtrees (empty directories,
    copies) are read once."""

    def __init__(self, repo, *, batch: int = BATCH, budget: int = BUDGET,
                 read_blob: Callable[[bytes], bytes] | None = None):
        self.repo, self.batch, self.budget = repo, batch, budget
        self.read_blob = read_blob or repo.get_blob  # a miss (prune passes one that also reads unindexed packs)
        self._blobs: dict[bytes, bytes] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.fetches = 0  # get_blobs calls made ahead of the walk

    def load(self, tree_id: bytes, *, ahead: bool = True) -> list[Node]:
        """The nodes of ``tree_id``; with ``ahead``, a miss reads the trees below it ahead
        (errors in the read-ahead are left for the walk to meet, and report, when it loads
        those trees itself). A walk that will skip most subtrees passes ``ahead=False``."""
        return decode_tree(self.blob(tree_id, ahead=ahead))

    def blob(self, tree_id: bytes, *, ahead: bool = True) -> bytes:
        """The verified plaintext of a tree blob (what :meth:`load` decodes)."""
        with self._lock:
            blob = self._blobs.get(tree_id)
        if blob is not None:
            return blob
        blob = self.read_blob(tree_id)
        if ahead:
            with self._lock:  # kept too: a second walk over the same trees (restore's small files) reads it
                self._blobs, self._bytes = {tree_id: blob}, len(blob)
            self._ahead([n.subtree for n in decode_tree(blob) if n.type == DIR and n.subtree])
        return blob

    def _ahead(self, frontier: list[bytes]) -> None:
        while frontier and self._bytes < self.budget:
            head, frontier = frontier[: self.batch], frontier[self.batch :]
            table = self.repo.index.table
            with self._lock:  # only what the index locates (a miss reads the rest its own way)
                part = [t for t in dict.fromkeys(head) if t not in self._blobs and t in table]
            if not part:
                continue
            try:
                blobs = self.repo.get_blobs(part)
            except Exception:  # noqa: BLE001 - the walk loads (and reports) these trees itself
                return
            self.fetches += 1
            for tid, blob in zip(part, blobs):
                try:
                    frontier.extend(n.subtree for n in decode_tree(blob) if n.type == DIR and n.subtree)
                except Exception:  # noqa: BLE001 - as above
                    continue
                with self._lock:
                    if tid not in self._blobs:
                        self._blobs[tid] = blob
                        self._bytes += len(blob)
