"""``dump``: write one file of a snapshot to a stream, or a directory as a tar stream.

Every blob is verified as it is read. Sparse files come out with their holes as zeros
(tar streams carry them as data, like GNU tar without ``--sparse``). Every tree on the
way to ``path`` and below it is judged by :mod:`ebas.repo.treecheck`, as restore judges
it: a faulted tree (an unsafe or duplicate name, e.g. a symlink ``a`` beside a directory
``a`` through which an extractor would write outside its target) stops the dump with
``UnsafePath`` before its entries are written.
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import BinaryIO

from ebas.backup.browse import resolve
from ebas.repo.locks import reader_lock
from ebas.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node
from ebas.repo.treecheck import printable, require_valid_tree

ZERO = bytes(1 << 20)
BATCH = 64


def iter_file(repo, node: Node):
    """Yield the bytes of a file node in order, holes as zeros."""
    ids = node.chunk_ids
    pos = 0
    i = 0
    for offset, _length, count in node.extents or [(0, node.size, len(ids))]:
        yield from _zeros(offset - pos)
        pos = offset
        for k in range(i, i + count, BATCH):
            for data in repo.get_blobs(ids[k : min(k + BATCH, i + count)]):
                pos += len(data)
                yield data
        i += count
    yield from _zeros(node.size - pos)


def _zeros(n: int):
    while n > 0:
        k = min(n, len(ZERO))
        yield ZERO[:k]
        n -= k


class _FileStream(io.RawIOBase):
    def __init__(self, chunks):
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _tarinfo(path: str, node: Node) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(path.lstrip("/") or ".")
    ti.mode = node.mode
    ti.uid, ti.gid = node.uid, node.gid
    ti.uname, ti.gname = node.user, node.group
    ti.mtime = node.mtime_ns / 1e9
    if node.type == FILE:
        ti.type, ti.size = tarfile.REGTYPE, node.size
    elif node.type == DIR:
        ti.type = tarfile.DIRTYPE
    elif node.type == SYMLINK:
        ti.type, ti.linkname = tarfile.SYMTYPE, os.fsdecode(node.target)
    elif node.type == FIFO:
        ti.type = tarfile.FIFOTYPE
    elif node.type in (CHARDEV, BLOCKDEV):
        ti.type = tarfile.CHRTYPE if node.type == CHARDEV else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(node.rdev), os.minor(node.rdev)
    if node.xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
                          for k, v in node.xattrs.items()}
    return ti


def dump(repo, snapshot, path: str, out: BinaryIO) -> str:
    """Write ``path`` of ``snapshot`` to ``out``: file bytes, or a tar of a directory.
    Returns "file" or "tar"."""
    with reader_lock(repo.locks(), f"dump {path}"):
        return _dump(repo, snapshot, path, out)


def _valid_tree(repo, tree_id: bytes, path: str) -> list[Node]:
    return require_valid_tree(repo.load_tree(tree_id), printable(os.fsencode(path or "/")))


def _check_path(repo, snapshot, path: str) -> None:
    """Judge every tree from the root down to ``path`` (``UnsafePath`` on a fault)."""
    tree, here = bytes.fromhex(snapshot.tree), ""
    for comp in [os.fsencode(c) for c in path.split("/") if c]:
        node = next((n for n in _valid_tree(repo, tree, here) if n.name == comp), None)
        if node is None or node.type != DIR:
            return  # resolve() reports a missing path; a file ends the way down
        tree, here = node.subtree, here + "/" + os.fsdecode(comp)


def _walk(repo, tree_id: bytes, prefix: str):
    """``(path, node)`` below a tree, depth first in name order, every tree judged first."""
    stack = [(iter(_valid_tree(repo, tree_id, prefix)), prefix)]
    while stack:
        entries, base = stack[-1]
        node = next(entries, None)
        if node is None:
            stack.pop()
            continue
        p = base.rstrip("/") + "/" + node.display_name
        yield p, node
        if node.type == DIR:
            stack.append((iter(_valid_tree(repo, node.subtree, p)), p))


def _dump(repo, snapshot, path: str, out: BinaryIO) -> str:
    _check_path(repo, snapshot, path)
    node, tree = resolve(repo, snapshot, path)
    if node is not None and node.type == FILE:
        for data in iter_file(repo, node):
            out.write(data)
        return "file"
    if node is not None and node.type != DIR:
        out.write(node.target if node.type == SYMLINK else b"")
        return "file"
    base = path.rstrip("/")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        links: dict[str, str] = {}
        for p, n in _walk(repo, tree, base or "/"):
            rel = p[len(base):].lstrip("/") if base else p.lstrip("/")
            ti = _tarinfo(rel, n)
            if n.type == FILE and n.link_group:
                if n.link_group in links:
                    ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, links[n.link_group], 0
                    tar.addfile(ti)
                    continue
                links[n.link_group] = ti.name
            if n.type == FILE:
                tar.addfile(ti, io.BufferedReader(_FileStream(iter_file(repo, n)), 1 << 20))
            else:
                tar.addfile(ti)
    return "tar"
