"""One judgement of a tree's entries, shared by restore, dump, check and catalog ingest.

A tree that decodes (:func:`ebas.repo.tree.decode_tree`) can still be unfit to restore:
its key proves who sealed it, not that it is well formed. :func:`tree_faults` lists every
such condition, so that "``ebas check`` is clean" means "``ebas restore`` will not refuse
it", and ``dump`` never writes a tar an extractor would follow out of its target:

* a name that is not one path component: empty, ``.``, ``..``, containing ``/`` or NUL;
* two or more entries with the same name, of any types (a symlink ``a`` and a directory
  ``a`` would let a later write go through the link): every one of them is faulted;
* entries not in the canonical order (sorted by raw name bytes): the tree was not written
  by ebas; this fault concerns the whole tree (``name`` is ``None``);
* an entry that restore cannot write: a directory without a 32-byte subtree id, a symlink
  whose target is empty or contains NUL, a file whose extents do not cover exactly its
  chunks, a negative size or offset, a mode, owner id, device number or time out of the
  range the operating system accepts.

Callers decide what a fault means for them: restore and dump refuse
(:func:`require_valid_tree`, ``UnsafePath``, exit 13), check reports each fault with the
snapshots and path, ingest skips the faulted entries (a tree-level fault: the whole
tree) and reports them, ``restore --skip-damaged`` skips and lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ebas.errors import UnsafePath
from ebas.repo.tree import DIR, FILE, ID_LEN, SYMLINK, Node

MAX_MODE = 0o7777
MAX_ID = 2**32 - 1  # uid_t / gid_t
MAX_RDEV = 2**64 - 1
MIN_NS, MAX_NS = -(2**63), 2**63 - 1  # what utimensat (and Python's os.utime) accepts in ns


@dataclass(frozen=True)
class TreeFault:
    """One reason a tree cannot be restored as stored.

    ``name`` is the raw name of the faulted entry, or ``None`` when the fault concerns
    the tree as a whole (entries out of order). ``reason`` is a short phrase for humans
    ("has an unsafe name", "is a duplicate name (symlink and dir)").
    """

    name: bytes | None
    reason: str

    def describe(self, dir_path: str) -> str:
        """``"<path> <reason>"`` with the entry's path under ``dir_path`` (printable)."""
        if self.name is None:
            return f"directory {dir_path} {self.reason}"
        return f"{entry_path(dir_path, self.name)} {self.reason}"


def printable(name: bytes) -> str:
    """A raw name as one printable line: undecodable bytes as ``\\xNN``, control characters escaped."""
    text = name.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def entry_path(dir_path: str, name: bytes) -> str:
    """The path of entry ``name`` in directory ``dir_path``, for messages."""
    return dir_path.rstrip("/") + "/" + printable(name)


def name_fault(name: object) -> str | None:
    """Why ``name`` cannot be one path component, or ``None`` if it can."""
    if not isinstance(name, bytes):
        return "has a name that is not bytes"
    if name == b"":
        return "has an empty name"
    if name in (b".", b".."):
        return f"has the unsafe name '{printable(name)}'"
    if b"/" in name:
        return "has a name containing '/'"
    if b"\0" in name:
        return "has a name containing a NUL byte"
    return None


def names_faults(names: Sequence[bytes], types: Sequence[str] | None = None) -> list[TreeFault]:
    """Faults of a directory's names alone: bad components, duplicates, order.

    ``types`` (optional, parallel to ``names``) only improves the duplicate message.
    Used directly where entries are not :class:`Node` objects (catalog ingest).
    """
    faults: list[TreeFault] = []
    seen: dict[bytes, list[int]] = {}
    for i, name in enumerate(names):
        why = name_fault(name)
        if why is not None:
            faults.append(TreeFault(name if isinstance(name, bytes) else repr(name).encode(), why))
        if isinstance(name, bytes):
            seen.setdefault(name, []).append(i)
    for name, where in seen.items():
        if len(where) > 1:
            kinds = " and ".join(types[i] for i in where) if types is not None else f"{len(where)} entries"
            faults.append(TreeFault(name, f"is a duplicate name ({kinds} share it)"))
    if all(isinstance(n, bytes) for n in names) and any(a > b for a, b in zip(names, names[1:])):
        faults.append(TreeFault(None, "has entries out of order (not written by ebas)"))
    return faults


def node_fault(node: Node) -> str | None:
    """Why restore could not write this entry as stored (besides its name), or ``None``."""
    if node.type == DIR and len(node.subtree) != ID_LEN:
        return "is a directory without a subtree"
    if node.type == SYMLINK and (not node.target or b"\0" in node.target):
        return "is a symlink with an empty target" if not node.target else "is a symlink whose target contains NUL"
    if node.size < 0:
        return "has a negative size"
    if node.type == FILE and node.extents:
        if sum(c for _, _, c in node.extents) != len(node.content) // ID_LEN:
            return "has extents that do not match its chunks"
        if any(o < 0 or ln < 0 or c < 0 for o, ln, c in node.extents):
            return "has extents with a negative offset, length or count"
    if not 0 <= node.mode <= MAX_MODE:
        return f"has an invalid mode {node.mode:#o}"
    if not (0 <= node.uid <= MAX_ID and 0 <= node.gid <= MAX_ID):
        return "has an owner id out of range"
    if not 0 <= node.rdev <= MAX_RDEV:
        return "has a device number out of range"
    if not all(MIN_NS <= t <= MAX_NS for t in (node.mtime_ns, node.atime_ns, node.ctime_ns)):
        return "has a time out of range"
    return None


def tree_faults(nodes: Sequence[Node]) -> list[TreeFault]:
    """Every fault of one tree's entries (empty: restore can write it as stored)."""
    faults = names_faults([n.name for n in nodes], [n.type for n in nodes])
    for n in nodes:
        why = node_fault(n)
        if why is not None:
            faults.append(TreeFault(n.name, why))
    return faults


def faulted_names(faults: Sequence[TreeFault]) -> set[bytes] | None:
    """Names of the entries to skip, or ``None`` when the whole tree must be skipped."""
    if any(f.name is None for f in faults):
        return None
    return {f.name for f in faults if f.name is not None}


def require_valid_tree(nodes: list[Node], dir_path: str) -> list[Node]:
    """Return ``nodes`` if the tree has no fault; else raise ``UnsafePath`` (exit 13)
    naming the first fault's path (``dir_path`` is the directory's path in the snapshot)."""
    faults = tree_faults(nodes)
    if faults:
        more = f" (and {len(faults) - 1} more fault(s) in this directory)" if len(faults) > 1 else ""
        raise UnsafePath(f"refusing the snapshot's tree: {faults[0].describe(dir_path)}{more}",
                         hint="the snapshot's tree is malformed or tampered with; 'ebas check' lists every "
                              "such entry; 'ebas restore --skip-damaged' restores everything else")
    return nodes


__all__ = ["TreeFault", "entry_path", "faulted_names", "name_fault", "names_faults", "node_fault", "printable",
           "require_valid_tree", "tree_faults"]
