"""Index segments: which blob lives in which pack, at which offset.

Plain layout (little-endian)::

    b"EBIX" version:u8 n_supersedes:u32 n_packs:u32 n_entries:u32
    supersedes: n_supersedes x 32-byte index ids this segment replaces (compaction)
    packs:      n_packs x 32-byte pack ids
    entries:    n_entries x 52 bytes:
                blob_id[32] pack_no:u32 kind:u8 codec:u8 pad:u16 offset:u32 length:u32 raw_length:u32

Stored as ``AEAD(zstd(plain), aad=b"ebas-index")`` under ``index/<hex BLAKE3 of the stored
bytes>``, so a damaged segment is detected both by its name (without the key) and by
its authentication tag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import blake3
import numpy as np
import zstandard

from ebas.errors import IndexDamaged, IntegrityError

MAGIC = b"EBIX"
VERSION = 1
AAD = b"ebas-index"
HEAD = struct.Struct("<4sBIII")
ENTRY_DTYPE = np.dtype(
    [
        ("id", "S32"),
        ("pack", "<u4"),
        ("kind", "u1"),
        ("codec", "u1"),
        ("pad", "<u2"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
    ]
)
assert ENTRY_DTYPE.itemsize == 52


def entries_array(entries: list) -> np.ndarray:
    """The index entries of one pack's ``PackEntry`` list (pack number 0): 52 bytes a blob."""
    arr = np.zeros(len(entries), ENTRY_DTYPE)
    for i, e in enumerate(entries):
        arr[i] = (e.blob_id, 0, e.kind, e.codec, 0, e.offset, e.length, e.raw_length)
    return arr


@dataclass
class IndexSegment:
    """One index segment: packs and the blobs they hold, as parallel arrays."""

    packs: list[bytes] = field(default_factory=list)
    entries: np.ndarray = field(default_factory=lambda: np.zeros(0, ENTRY_DTYPE))
    supersedes: list[bytes] = field(default_factory=list)

    @classmethod
    def from_packs(cls, packs: dict[bytes, list | np.ndarray], supersedes: list[bytes] | None = None) -> "IndexSegment":
        """Build a segment from ``{pack_id: [PackEntry, ...]}`` (or :func:`entries_array`
        arrays in place of the lists)."""
        pack_ids = list(packs)
        parts = []
        for pno, pid in enumerate(pack_ids):
            part = packs[pid]
            part = part.copy() if isinstance(part, np.ndarray) else entries_array(part)
            part["pack"] = pno
            parts.append(part)
        arr = np.concatenate(parts) if parts else np.zeros(0, ENTRY_DTYPE)
        return cls(pack_ids, arr, list(supersedes or []))

    def encode(self, aead) -> bytes:
        """Stored bytes of this segment."""
        plain = bytearray(HEAD.pack(MAGIC, VERSION, len(self.supersedes), len(self.packs), len(self.entries)))
        for s in self.supersedes:
            plain += s
        for p in self.packs:
            plain += p
        plain += self.entries.tobytes()
        return aead.seal(zstandard.ZstdCompressor(level=3).compress(bytes(plain)), AAD)

    @classmethod
    def decode(cls, aead, stored: bytes, name: str = "") -> "IndexSegment":
        """Parse stored bytes; raises ``IndexDamaged`` naming the segment on any defect."""
        label = name or "index segment"
        try:
            plain = zstandard.ZstdDecompressor().decompress(aead.open(stored, AAD), max_output_size=1 << 32)
            magic, version, ns, npk, ne = HEAD.unpack_from(plain, 0)
            if magic != MAGIC or version != VERSION:
                raise IntegrityError("bad magic or version")
            pos = HEAD.size
            expect = pos + 32 * (ns + npk) + ENTRY_DTYPE.itemsize * ne
            if len(plain) != expect:
                raise IntegrityError("size does not match counts")
            sup = [bytes(plain[pos + 32 * i : pos + 32 * i + 32]) for i in range(ns)]
            pos += 32 * ns
            packs = [bytes(plain[pos + 32 * i : pos + 32 * i + 32]) for i in range(npk)]
            pos += 32 * npk
            entries = np.frombuffer(plain, ENTRY_DTYPE, count=ne, offset=pos).copy()
            if ne and int(entries["pack"].max()) >= npk:
                raise IntegrityError("entry points to a pack not in the segment")
        except (IntegrityError, zstandard.ZstdError, struct.error, ValueError) as exc:
            raise IndexDamaged(f"{label} is damaged: {exc}") from exc
        return cls(packs, entries, sup)

    def pack_entries(self) -> dict[bytes, np.ndarray]:
        """Entries grouped by pack id."""
        out: dict[bytes, np.ndarray] = {}
        for pno, pid in enumerate(self.packs):
            out[pid] = self.entries[self.entries["pack"] == pno]
        return out


def segment_name(stored: bytes) -> str:
    """Store name for stored segment bytes: ``index/<hex BLAKE3>``."""
    return "index/" + blake3.blake3(stored).hexdigest()


def check_segment_name(name: str, stored: bytes) -> None:
    """Raise ``IndexDamaged`` if the stored bytes do not hash to the segment's name."""
    if segment_name(stored) != name:
        raise IndexDamaged(f"{name} is damaged: its contents do not match its name (corrupt or truncated)")
