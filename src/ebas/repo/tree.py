"""Tree blobs: one per directory, a canonical encoding of its entries' metadata.

A tree is a list of :class:`Node` sorted by raw name bytes, encoded as compact JSON with
sorted keys, so an unchanged directory encodes to the same bytes (and the same blob id)
in every snapshot. Names and symlink targets are kept as raw bytes (``os.fsencode``):
valid UTF-8 is stored as a string, anything else as base64 under a ``*_b`` key, so a
name with invalid UTF-8 round-trips exactly. See docs/format.md, "Trees".
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Iterable

from ebas.errors import IntegrityError

TREE_VERSION = 1
ID_LEN = 32

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
    return base64.b64decode(text.encode("ascii"), validate=True)


def _put_bytes(out: dict, key: str, value: bytes) -> None:
    try:
        out[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_b"] = _b64(value)


def _get_bytes(data: dict, key: str) -> bytes | None:
    if key in data:
        return data[key].encode("utf-8")
    if key + "_b" in data:
        return _unb64(data[key + "_b"])
    return None


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
    def from_dict(cls, d: dict) -> "Node":
        """Inverse of :meth:`to_dict`; raises ``IntegrityError`` on malformed input."""
        try:
            get = d.get
            name = get("name")
            name = name.encode("utf-8") if name is not None else _get_bytes(d, "name")
            if name is None:
                raise ValueError("node without a name")
            ntype = d["type"]
            if ntype not in NODE_TYPES:
                raise ValueError(f"unknown node type {ntype!r}")
            content = _unb64(d["content"]) if "content" in d else b""
            if len(content) % ID_LEN:
                raise ValueError("content is not a whole number of blob ids")
            subtree = bytes.fromhex(d["subtree"]) if "subtree" in d else b""
            if subtree and len(subtree) != ID_LEN:
                raise ValueError("bad subtree id")
            ints = (get("mode", 0), get("uid", 0), get("gid", 0), get("mtime", 0), get("ctime", 0),
                    get("atime", 0), get("size", 0), get("inode", 0), get("dev", 0), get("nlink", 1), get("rdev", 0))
            for v in ints:
                if type(v) is not int:
                    raise ValueError("a numeric field is not an integer")
            mode, uid, gid, mtime, ctime, atime, size, inode, dev, nlink, rdev = ints
            texts = (get("user", ""), get("group", ""), get("link_group", ""), get("error", ""))
            for v in texts:
                if type(v) is not str:
                    raise ValueError("a text field is not a string")
            user, group, link_group, error = texts
            node = cls(name, ntype, mode, uid, gid, user, group, mtime, ctime, atime, size,
                       inode, dev, nlink, rdev,
                       {_unb64(k): _unb64(v) for k, v in d["xattrs"]} if "xattrs" in d else {},
                       _unb64(d["acl_access"]) if "acl_access" in d else b"",
                       _unb64(d["acl_default"]) if "acl_default" in d else b"",
                       (_get_bytes(d, "target") or b"") if ntype == SYMLINK else b"",
                       link_group, content,
                       [(int(a), int(b), int(c)) for a, b, c in d["extents"]] if "extents" in d else [],
                       subtree, error)
            return node
        except IntegrityError:
            raise
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            # AttributeError: a non-string where text is expected ({"name": 5});
            # OverflowError: int() of an infinite float (in "extents")
            raise IntegrityError(f"malformed tree entry: {exc}") from exc


def encode_tree(nodes: Iterable[Node]) -> bytes:
    """Canonical bytes of a directory: nodes sorted by raw name, compact sorted JSON."""
    ordered = sorted(nodes, key=lambda n: n.name)
    for a, b in zip(ordered, ordered[1:]):
        if a.name == b.name:
            raise ValueError(f"duplicate name in tree: {a.display_name!r}")
    doc = {"v": TREE_VERSION, "nodes": [n.to_dict() for n in ordered]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_tree(data: bytes) -> list[Node]:
    """Nodes of a tree blob; raises ``IntegrityError`` if it is not a valid tree."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IntegrityError(f"tree blob is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != TREE_VERSION or not isinstance(doc.get("nodes"), list):
        raise IntegrityError("tree blob has an unknown structure or version")
    if not all(isinstance(d, dict) for d in doc["nodes"]):
        raise IntegrityError("tree blob has an entry that is not an object")
    return [Node.from_dict(d) for d in doc["nodes"]]
