"""The dedup table: blob id -> (pack, offset, length) for every blob in the repository.

Steady-state memory is 28 bytes per blob: the first 16 bytes of the id (two uint64
arrays, sorted), a uint32 pack number, offset and stored length. Ids are keyed BLAKE3
outputs, so a 128-bit prefix collision between two distinct blobs has probability about
n^2 / 2^129 (10^-20 at a billion blobs); a read verifies the full id anyway. Blobs added
since the last merge sit in a small dict that is merged into the sorted arrays in bulk
(at 16k-200k pending, an eighth of the table in between: a backup of many small files
holds ~30 bytes per new blob, not ~200).
See docs/format.md, "Dedup table".
"""

from __future__ import annotations

import struct
import threading
from bisect import bisect_left

import numpy as np

MERGE_AT = 200_000  # pending additions are merged at this many at most...
MERGE_MIN = 16_384  # ...and at this many at least, or an eighth of the table if more: the
# pending dict costs ~200 bytes a blob against 28 merged, and merging costs O(table)
_KEYS = struct.Struct(">QQ").unpack_from  # (hi, lo) of an id in one call


def _split(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) uint64 keys from an array of 32-byte ids (dtype S32)."""
    words = np.frombuffer(ids.tobytes(), dtype=">u8").reshape(-1, 4)
    return words[:, 0].copy(), words[:, 1].copy()


class DedupTable:
    """Bounded-memory map from blob id to location; thread-safe for add/lookup."""

    def __init__(self) -> None:
        self.packs: list[bytes] = []
        self._pack_no: dict[bytes, int] = {}
        self._hi = np.zeros(0, np.uint64)
        self._lo = np.zeros(0, np.uint64)
        self._pack = np.zeros(0, np.uint32)
        self._off = np.zeros(0, np.uint32)
        self._len = np.zeros(0, np.uint32)
        self._delta: dict[bytes, tuple[int, int, int]] = {}
        self._preferred: dict[bytes, tuple[int, int, int]] = {}  # steered away from a damaged copy
        self._lock = threading.RLock()
        # (the _hi array it was built for, bucket directory, shift, memoryviews of hi, lo,
        # pack, offset, length): one attribute, read once per lookup
        self._state: tuple = (None,)

    @classmethod
    def from_sorted(cls, packs: list[bytes], hi: np.ndarray, lo: np.ndarray, pack: np.ndarray, off: np.ndarray,
                    length: np.ndarray) -> "DedupTable":
        """A table from arrays already sorted by (hi, lo) without duplicate keys (bulk load,
        ``ebas.repo.dedupload``); the arrays may be read-only memory maps."""
        t = cls()
        t.packs = list(packs)
        t._pack_no = {p: i for i, p in enumerate(t.packs)}
        t._hi, t._lo, t._pack, t._off, t._len = hi, lo, pack, off, length
        return t

    # ----------------------------------------------------------------- packs
    def pack_number(self, pack_id: bytes) -> int:
        """Small integer for a pack id (allocated on first use)."""
        with self._lock:
            n = self._pack_no.get(pack_id)
            if n is None:
                n = self._pack_no[pack_id] = len(self.packs)
                self.packs.append(pack_id)
            return n

    def has_pack(self, pack_id: bytes) -> bool:
        """True if any blob of this pack is known."""
        return pack_id in self._pack_no

    # ------------------------------------------------------------------ adds
    def add(self, blob_id: bytes, pack_id: bytes, offset: int, length: int) -> None:
        """Record one blob's location (first location wins for duplicates)."""
        with self._lock:
            if blob_id in self._delta or self._find(blob_id) >= 0:
                return
            self._delta[blob_id] = (self.pack_number(pack_id), offset, length)
            if len(self._delta) >= min(MERGE_AT, max(MERGE_MIN, len(self._hi) // 8)):
                self._merge_delta()

    def add_segment(self, packs: list[bytes], entries: np.ndarray) -> None:
        """Bulk-add an index segment's entries (``ebas.repo.index.ENTRY_DTYPE``)."""
        if not len(entries):
            for p in packs:
                self.pack_number(p)
            return
        with self._lock:
            remap = np.array([self.pack_number(p) for p in packs], np.uint32)
            hi, lo = _split(entries["id"])
            self._append_sorted(hi, lo, remap[entries["pack"]], entries["offset"].astype(np.uint32),
                                entries["length"].astype(np.uint32))

    def _merge_delta(self) -> None:
        if not self._delta:
            return
        ids = np.array(list(self._delta.keys()), dtype="S32")
        vals = np.array(list(self._delta.values()), dtype=np.uint64).reshape(-1, 3)
        hi, lo = _split(ids)
        self._delta = {}
        self._append_sorted(hi, lo, vals[:, 0].astype(np.uint32), vals[:, 1].astype(np.uint32),
                            vals[:, 2].astype(np.uint32))

    def _append_sorted(self, hi, lo, pack, off, ln) -> None:
        """Merge new entries into the sorted arrays: sort only the new ones, then insert
        them (O(table + new) per merge, not a re-sort of the whole table). Existing
        entries win over new ones, earlier new ones over later ones."""
        order = np.lexsort((lo, hi))  # stable: earlier entries stay first among equals
        hi, lo = hi[order].astype(np.uint64), lo[order].astype(np.uint64)  # native byte order
        pack, off, ln = pack[order].astype(np.uint32), off[order].astype(np.uint32), ln[order].astype(np.uint32)
        keep = np.ones(len(hi), bool)
        if len(hi) > 1:
            keep[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        if len(self._hi):
            left = self._hi.searchsorted(hi, "left")
            right = self._hi.searchsorted(hi, "right")
            pos = left.copy()
            for j in np.flatnonzero(right > left):  # 64-bit prefix already in the table (rare)
                run = self._lo[left[j] : right[j]]
                if np.any(run == lo[j]):
                    keep[j] = False
                pos[j] = left[j] + int(np.count_nonzero(run < lo[j]))
            pos = pos[keep]
        hi, lo, pack, off, ln = hi[keep], lo[keep], pack[keep], off[keep], ln[keep]
        if not len(self._hi):
            self._hi, self._lo, self._pack, self._off, self._len = hi, lo, pack, off, ln
            return
        self._hi = np.insert(self._hi, pos, hi)
        self._lo = np.insert(self._lo, pos, lo)
        self._pack = np.insert(self._pack, pos, pack)
        self._off = np.insert(self._off, pos, off)
        self._len = np.insert(self._len, pos, ln)

    def compact(self) -> None:
        """Merge pending additions into the sorted arrays (steady-state form)."""
        with self._lock:
            self._merge_delta()

    def prefer(self, blob_id: bytes, pack_id: bytes, offset: int, length: int) -> None:
        """Make :meth:`lookup` answer this location for ``blob_id`` from now on, whatever
        copy was added first (a copy recorded as damaged is steered away from,
        ``ebas.repo.damage``). Adds the blob if it is not known yet."""
        with self._lock:
            self._preferred[blob_id] = (self.pack_number(pack_id), offset, length)
            if blob_id not in self._delta and self._find(blob_id) < 0:
                self._delta[blob_id] = self._preferred[blob_id]

    # --------------------------------------------------------------- lookups
    def lookup(self, blob_id: bytes) -> tuple[bytes, int, int] | None:
        """``(pack_id, offset, length)`` of a blob, or None."""
        with self._lock:  # a merge swaps the delta and the arrays: never look at half of it
            r = self._preferred.get(blob_id) if self._preferred else None
            if r is None:
                r = self._delta.get(blob_id)
            if r is None:
                i = self._find(blob_id)
                if i < 0:
                    return None
                st = self._state
                return self.packs[st[5][i]], st[6][i], st[7][i]
            return self.packs[r[0]], r[1], r[2]

    def _build_directory(self) -> tuple:
        """Bucket directory over the top bits of ``_hi`` (about 8 keys per bucket, 4 bytes
        per bucket: under 1 byte per blob) plus memoryviews of the arrays, so that one
        lookup is a few C-level steps instead of several numpy calls."""
        hi = self._hi
        n = len(hi)
        bits = min(28, max(4, (max(n, 1) // 8).bit_length()))
        shift = 64 - bits
        bounds = np.arange((1 << bits) + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            edges = bounds << np.uint64(shift)  # the last edge wraps to 0: replaced by n below
        dir_ = hi.searchsorted(edges[:-1], "left").astype(np.uint32)
        views = tuple(memoryview(np.ascontiguousarray(a)) for a in
                      (self._hi, self._lo, self._pack, self._off, self._len))
        self._state = (hi, memoryview(np.append(dir_, np.uint32(n))), shift, *views)
        return self._state

    def _find(self, blob_id: bytes) -> int:
        st = self._state
        if st[0] is not self._hi:
            st = self._build_directory()
        _arr, d, shift, vh, vl = st[:5]
        hi, lo = _KEYS(blob_id)
        b = hi >> shift
        end = d[b + 1]
        i = bisect_left(vh, hi, d[b], end)
        while i < end and vh[i] == hi:
            if vl[i] == lo:
                return i
            i += 1
        return -1

    def __contains__(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self._delta or self._find(blob_id) >= 0

    def contains_many(self, blob_ids: list[bytes]) -> np.ndarray:
        """Vectorised membership test for many ids at once (bool array)."""
        if not blob_ids:
            return np.zeros(0, bool)
        ids = np.array(blob_ids, dtype="S32")
        hi, lo = _split(ids)
        with self._lock:
            return self._contains_many_locked(blob_ids, hi, lo)

    def _contains_many_locked(self, blob_ids: list[bytes], hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        found = np.zeros(len(blob_ids), bool)
        if len(self._hi):
            q = np.argsort(hi)  # sorted queries walk the table in order: ~10x fewer cache misses
            hi, lo = hi[q], lo[q]
            left = self._hi.searchsorted(hi, "left")
            right = self._hi.searchsorted(hi, "right")
            single = (right - left) == 1
            idx = np.minimum(left, len(self._hi) - 1)
            hit = single & (self._lo[idx] == lo)
            for j in np.nonzero((right - left) > 1)[0]:
                hit[j] = bool(np.any(self._lo[left[j] : right[j]] == lo[j]))
            found[q] = hit
        if self._delta:
            for j, b in enumerate(blob_ids):
                if not found[j] and b in self._delta:
                    found[j] = True
        return found

    def __len__(self) -> int:
        return len(self._hi) + len(self._delta)

    def memory_bytes(self) -> int:
        """Bytes of RAM held by the table (arrays exactly, the pending dict estimated)."""
        arrays = sum(a.nbytes for a in (self._hi, self._lo, self._pack, self._off, self._len))
        arrays += self._state[1].nbytes if self._state[0] is self._hi else 0
        return arrays + len(self._delta) * 200 + len(self.packs) * 120

    def stored_bytes(self) -> int:
        """Sum of the stored lengths of all distinct blobs."""
        return int(self._len.sum(dtype=np.uint64)) + sum(v[2] for v in self._delta.values())

    def remove_packs(self, pack_ids: set[bytes]) -> None:
        """Forget every blob stored in the given packs (after they are deleted)."""
        with self._lock:
            self._merge_delta()
            nos = np.array([self._pack_no[p] for p in pack_ids if p in self._pack_no], np.uint32)
            gone = set(nos.tolist())
            self._preferred = {b: loc for b, loc in self._preferred.items() if loc[0] not in gone}
            if len(nos):
                keep = ~np.isin(self._pack, nos)
                self._hi, self._lo = self._hi[keep], self._lo[keep]
                self._pack, self._off, self._len = self._pack[keep], self._off[keep], self._len[keep]
