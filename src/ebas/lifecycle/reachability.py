"""Which blobs snapshots reference, and how often: the mark phase of prune.

:func:`collect_references` walks the trees of the given snapshots, each distinct tree
once (Merkle: an equal tree id means an equal subtree), and returns a :class:`KeySet`
of every referenced blob with its *reference count*:

    refs(b) = number of snapshot manifests whose root tree is b
            + number of distinct trees naming b as a subtree
            + number of times b appears in the chunk lists of the files of distinct trees

(a tree shared by many snapshots is counted once, as in a file system's link count).
A blob with count 0 is garbage. Keys are the first 128 bits of the blob id as two
uint64 (the dedup table's key, docs/format.md "Dedup table"); memory is 24 bytes per
distinct referenced blob plus the ids of distinct trees.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ebas.errors import IntegrityError
from ebas.progress import Progress

ID_LEN = 32
_FLUSH_REFS = 4_000_000  # merge the pending references into the sorted set this often


def split_ids(buf: bytes | bytearray | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` uint64 keys of concatenated 32-byte ids (first 16 bytes, big-endian)."""
    words = np.frombuffer(buf, dtype=">u8").reshape(-1, 4)
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def _sort_order(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """An order sorting by (hi, lo); fast path sorts by hi alone when that suffices."""
    order = np.argsort(hi, kind="stable")
    hs, ls = hi[order], lo[order]
    if len(hs) > 1 and bool(np.any((hs[1:] == hs[:-1]) & (ls[1:] != ls[:-1]))):
        order = np.lexsort((lo, hi))  # distinct ids sharing 64 bits: sort fully
    return order


@dataclass
class KeySet:
    """Sorted distinct 128-bit keys with a count each."""

    hi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    lo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def build(cls, hi: np.ndarray, lo: np.ndarray, counts: np.ndarray | None = None) -> "KeySet":
        """Distinct keys of (hi, lo) with summed counts (1 each when ``counts`` is None)."""
        if counts is None:
            counts = np.ones(len(hi), np.int64)
        if not len(hi):
            return cls()
        order = _sort_order(hi, lo)
        hs, ls, cs = hi[order], lo[order], counts[order]
        start = np.ones(len(hs), bool)
        start[1:] = (hs[1:] != hs[:-1]) | (ls[1:] != ls[:-1])
        idx = np.flatnonzero(start)
        return cls(hs[idx], ls[idx], np.add.reduceat(cs, idx).astype(np.int64))

    def merge(self, hi: np.ndarray, lo: np.ndarray, counts: np.ndarray | None = None) -> "KeySet":
        """A new set with more keys (counts add up)."""
        if counts is None:
            counts = np.ones(len(hi), np.int64)
        return KeySet.build(np.concatenate([self.hi, hi]), np.concatenate([self.lo, lo]),
                            np.concatenate([self.counts, counts]))

    def __len__(self) -> int:
        return len(self.hi)

    def positions(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Index of each key in the set, or -1 (queries are sorted first: cache friendly)."""
        out = np.full(len(hi), -1, np.int64)
        if not len(self.hi) or not len(hi):
            return out
        q = np.argsort(hi)
        left = self.hi.searchsorted(hi[q], "left")
        right = self.hi.searchsorted(hi[q], "right")
        n = right - left
        one = np.flatnonzero(n == 1)
        hit = self.lo[left[one]] == lo[q][one]
        out[q[one[hit]]] = left[one[hit]]
        for j in np.flatnonzero(n > 1):  # several keys share these 64 bits
            match = np.flatnonzero(self.lo[left[j]:right[j]] == lo[q[j]])
            if len(match):
                out[q[j]] = left[j] + match[0]
        return out

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Bool array: which keys are in the set."""
        return self.positions(hi, lo) >= 0

    def count_of(self, blob_id: bytes) -> int:
        """The count of one blob (0 if absent)."""
        hi, lo = split_ids(blob_id[:ID_LEN])
        pos = int(self.positions(hi, lo)[0])
        return int(self.counts[pos]) if pos >= 0 else 0


@dataclass
class References:
    """The result of a mark: referenced blobs with counts, trees visited, trees unreadable."""

    blobs: KeySet
    trees: set[bytes]
    unreadable: list[tuple[bytes, str]]
    roots: int = 0

    @property
    def complete(self) -> bool:
        """False if some tree could not be read: its children are unknown."""
        return not self.unreadable


def tree_children(plain: bytes) -> tuple[list[bytes], bytes]:
    """``(subtree ids, concatenated data blob ids)`` of a tree blob's plaintext."""
    try:
        doc = json.loads(plain)
        nodes = doc["nodes"]
        if doc.get("v") != 1 or not isinstance(nodes, list):
            raise ValueError("unknown tree version")
        subs: list[bytes] = []
        content = bytearray()
        for d in nodes:
            if "content" in d:
                c = base64.b64decode(d["content"], validate=True)
                if len(c) % ID_LEN:
                    raise ValueError("content is not a whole number of ids")
                content += c
            if "subtree" in d:
                s = bytes.fromhex(d["subtree"])
                if len(s) != ID_LEN:
                    raise ValueError("bad subtree id")
                subs.append(s)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise IntegrityError(f"malformed tree: {exc}") from exc
    return subs, bytes(content)


def collect_references(read_blob: Callable[[bytes], bytes], roots: Iterable[bytes], *,
                       known_trees: set[bytes] | None = None,
                       progress: Progress | None = None) -> References:
    """Walk every tree reachable from ``roots`` (one root per snapshot) once.

    ``read_blob(tree_id)`` returns a verified plaintext or raises. Trees in
    ``known_trees`` are counted as referenced but not read again (their subtrees were
    accounted for by an earlier walk; used by prune's second phase). ``progress`` is
    advanced by the trees read (in batches of 1000), in the caller's phase.
    """
    roots = list(roots)
    known = known_trees or set()
    seen: set[bytes] = set()
    unreadable: list[tuple[bytes, str]] = []
    pending = bytearray(b"".join(roots))
    acc = KeySet()
    stack = [r for r in dict.fromkeys(roots)]
    done = 0
    while stack:
        tid = stack.pop()
        if tid in seen:
            continue
        seen.add(tid)
        if tid in known:
            continue
        try:
            subs, content = tree_children(read_blob(tid))
        except Exception as exc:  # noqa: BLE001 - any failure means "children unknown"
            unreadable.append((tid, getattr(exc, "message", str(exc))))
            continue
        pending += b"".join(subs)
        pending += content
        stack.extend(s for s in subs if s not in seen)
        done += 1
        if progress is not None and done % 1000 == 0:
            progress.advance(items=1000)
        if len(pending) >= _FLUSH_REFS * ID_LEN:
            acc = acc.merge(*split_ids(pending))
            pending = bytearray()
    if pending:
        acc = acc.merge(*split_ids(pending))
    if progress is not None and done % 1000:
        progress.advance(items=done % 1000)
    return References(acc, seen, unreadable, roots=len(roots))
