"""Tree blobs: one per directory, a canonical encoding of its entries' metadata.

A tree is a list of :class:`Node` sorted by raw name bytes, encoded as compact JSON with
sorted keys, so an unchanged directory encodes to the same bytes (and the same blob id)
in every snapshot. Names and symlink targets are kept as raw bytes (``os.fsencode``):
valid UTF-8 is stored as a string, anything else as base64 under a ``*_b`` key, so a
name with invalid UTF-8 round-trips exactly. See docs/format.md, "Trees".
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Iterable

from ebas.errors import MalformedObject
from ebas.repo.fields import INT64_MAX, UINT64_MAX, Fields, load_json

TREE_VERSION = 1
ID_LEN = 32
UINT32_MAX = (1 << 32) - 1

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
FIFO = "fifo"
SOCKET = "socket"
NODE_TYPES = (FILE, DIR, SYMLINK, CHARDEV, BLOCKDEV, FIFO, SOCKET)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64 (``ValueError`` for anything else, including non-ASCII text)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def _put_bytes(out: dict, key: str, value: bytes) -> None:
    try:
        out[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_b"] = _b64(value)


@dataclass
class Node:
    """Metadata of one directory entry, as stored in a tree.

    ``name`` is the raw entry name (bytes). ``content`` is the concatenation of the
    32-byte ids of the file's data blobs in order; for a sparse file, ``extents`` lists
    ``(offset, length, chunk_count)`` of each data region and the chunks cover the
    regions back to back (everything else is a hole). ``subtree`` is the tree id of a
    directory. ``link_group`` is ``"dev:inode"`` for files with more than one hard link.
    """

    name: bytes
    type: str
    mode: int = 0  # permission bits incl. setuid/setgid/sticky (st_mode & 0o7777)
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    atime_ns: int = 0
    size: int = 0
    inode: int = 0
    dev: int = 0
    nlink: int = 1
    rdev: int = 0
    xattrs: dict[bytes, bytes] = field(default_factory=dict)
    acl_access: bytes = b""
    acl_default: bytes = b""
    target: bytes = b""
    link_group: str = ""
    content: bytes = b""
    extents: list[tuple[int, int, int]] = field(default_factory=list)
    subtree: bytes = b""
    error: str = ""

    # ------------------------------------------------------------------ helpers
    @property
    def chunk_ids(self) -> list[bytes]:
        """The file's data blob ids in order."""
        c = self.content
        return [c[i : i + ID_LEN] for i in range(0, len(c), ID_LEN)]

    @property
    def display_name(self) -> str:
        """The name for humans: undecodable bytes shown with surrogate escapes."""
        import os

        return os.fsdecode(self.name)

    def same_source_state(self, other: "Node") -> bool:
        """True if ``other`` (the previous backup's node) describes unchanged content."""
        return (
            self.type == other.type
            and self.size == other.size
            and self.mtime_ns == other.mtime_ns
            and self.ctime_ns == other.ctime_ns
            and self.inode == other.inode
        )

    # ----------------------------------------------------------------- encoding
    def to_dict(self) -> dict:
        """The canonical JSON-able form (defaults omitted)."""
        d: dict = {"type": self.type}
        _put_bytes(d, "name", self.name)
        for key in ("mode", "uid", "gid", "size", "inode", "dev", "rdev"):
            v = getattr(self, key)
            if v:
                d[key] = v
        if self.nlink != 1:
            d["nlink"] = self.nlink
        if self.user:
            d["user"] = self.user
        if self.group:
            d["group"] = self.group
        d["mtime"] = self.mtime_ns
        d["ctime"] = self.ctime_ns
        d["atime"] = self.atime_ns
        if self.xattrs:
            d["xattrs"] = [[_b64(k), _b64(v)] for k, v in sorted(self.xattrs.items())]
        if self.acl_access:
            d["acl_access"] = _b64(self.acl_access)
        if self.acl_default:
            d["acl_default"] = _b64(self.acl_default)
        if self.type == SYMLINK:
            _put_bytes(d, "target", self.target)
        if self.link_group:
            d["link_group"] = self.link_group
        if self.content:
            d["content"] = _b64(self.content)
        if self.extents:
            d["extents"] = [list(e) for e in self.extents]
        if self.subtree:
            d["subtree"] = self.subtree.hex()
        if self.error:
            d["error"] = self.error
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "Node":
        """Inverse of :meth:`to_dict`; every field's type and range is checked and any defect
        raises ``MalformedObject`` (an ``IntegrityError``) describing the entry."""
        f = Fields(d, "tree entry", where)
        try:
            name = _bytes_field(f, "name")
            if name is None:
                raise f.bad("name", "is missing")
            ntype = f.str("type", choices=NODE_TYPES)
            content = _b64_field(f, "content")
            if len(content) % ID_LEN:
                raise f.bad("content", "is not a whole number of blob ids")
            subtree = b""
            if "subtree" in d:
                subtree = bytes.fromhex(f.hex_id("subtree"))
            xattrs = {}
            for pair in f.list("xattrs", []):
                if type(pair) is not list or len(pair) != 2 or not all(type(x) is str for x in pair):
                    raise f.bad("xattrs", "must hold [name, value] pairs of base64 strings")
                xattrs[_unb64(pair[0])] = _unb64(pair[1])
            extents = []
            for e in f.list("extents", []):
                if type(e) is not list or len(e) != 3 or not all(type(x) is int and 0 <= x <= INT64_MAX for x in e):
                    raise f.bad("extents", "must hold [offset, length, chunk count] triples of integers >= 0")
                extents.append((e[0], e[1], e[2]))
            node = cls(
                name, ntype, f.int("mode", 0, lo=0, hi=0o7777), f.int("uid", 0, lo=0, hi=UINT32_MAX),
                f.int("gid", 0, lo=0, hi=UINT32_MAX), f.str("user", "", max_len=4096),
                f.str("group", "", max_len=4096), f.int("mtime", 0), f.int("ctime", 0), f.int("atime", 0),
                f.int("size", 0, lo=0), f.int("inode", 0, lo=0, hi=UINT64_MAX), f.int("dev", 0, lo=0, hi=UINT64_MAX),
                f.int("nlink", 1, lo=0, hi=UINT64_MAX), f.int("rdev", 0, lo=0, hi=UINT64_MAX), xattrs,
                _b64_field(f, "acl_access"), _b64_field(f, "acl_default"),
                (_bytes_field(f, "target") or b"") if ntype == SYMLINK else b"",
                f.str("link_group", "", max_len=4096), content, extents, subtree, f.str("error", ""),
            )
            return node
        except ValueError as exc:  # bad base64 or hex
            raise MalformedObject("tree entry", where, str(exc)) from None


def _bytes_field(f: Fields, key: str) -> bytes | None:
    """A raw-bytes field stored as UTF-8 text under ``key`` or base64 under ``key_b``."""
    if key in f.doc:
        text = f.str(key)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \udXXX escape
            raise f.bad(key, "is not valid UTF-8 text") from None
    if key + "_b" in f.doc:
        return _unb64(f.str(key + "_b"))
    return None


def _b64_field(f: Fields, key: str) -> bytes:
    return _unb64(f.str(key)) if key in f.doc else b""


def encode_tree(nodes: Iterable[Node]) -> bytes:
    """Canonical bytes of a directory: nodes sorted by raw name, compact sorted JSON."""
    ordered = sorted(nodes, key=lambda n: n.name)
    for a, b in zip(ordered, ordered[1:]):
        if a.name == b.name:
            raise ValueError(f"duplicate name in tree: {a.display_name!r}")
    doc = {"v": TREE_VERSION, "nodes": [n.to_dict() for n in ordered]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_tree(data: bytes) -> list[Node]:
    """Nodes of a tree blob; raises ``IntegrityError`` (``MalformedObject`` for an authentic
    blob of the wrong shape) if it is not a valid tree."""
    doc = load_json(data, "tree", "")
    if not isinstance(doc, dict) or doc.get("v") != TREE_VERSION or type(doc.get("nodes")) is not list:
        raise MalformedObject("tree", "", "unknown structure or version")
    if not all(isinstance(d, dict) for d in doc["nodes"]):
        raise MalformedObject("tree", "", "an entry is not an object")
    return [Node.from_dict(d, f"#{i}") for i, d in enumerate(doc["nodes"])]
