"""Copying stored blobs between repositories: the blobs of a snapshot in restore order,
each read back in stored form and verified before it is written elsewhere (synthetic
fulls and exports)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from ebas.repo.pack import KIND_DATA, KIND_TREE
from ebas.repo.tree import DIR, FILE


def restore_order(repo, root: bytes) -> Iterator[tuple[bytes, int]]:
    """``(blob id, kind)`` of every blob under ``root``, each once, in restore order."""
    seen: set[bytes] = set()
    stack: list[bytes] = [root]
    while stack:
        tid = stack.pop()
        if tid in seen:
            continue
        seen.add(tid)
        yield tid, KIND_TREE
        subdirs = []
        for node in repo.load_tree(tid):
            if node.type == FILE:
                for c in node.chunk_ids:
                    if c not in seen:
                        seen.add(c)
                        yield c, KIND_DATA
            elif node.type == DIR and node.subtree:
                subdirs.append(node.subtree)
        stack.extend(reversed(subdirs))  # depth first, in name order


@dataclass
class CopiedBlob:
    """A stored blob ready for ``WriteSession.put_stored``."""

    blob_id: bytes
    kind: int
    codec: int
    stored: bytes
    raw_length: int


def read_verified(repo, blob_id: bytes, kind: int, reseal: Callable[[bytes, bytes], bytes] | None = None) -> CopiedBlob:
    """The stored form of a blob, verified (tag, decompression, id); resealed under
    another key by ``reseal(plain, blob_id)`` when given."""
    stored = repo.read_stored_blob(blob_id)
    data = repo.codec.decode(blob_id, stored)
    plain = repo.aead.open(stored, blob_id)  # codec byte || payload
    if reseal is not None:
        stored = reseal(plain, blob_id)
    return CopiedBlob(blob_id, kind, plain[0], bytes(stored), len(data))
