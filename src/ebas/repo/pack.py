"""Pack files: encoded blobs back to back, then an encrypted header, then a trailer.

Layout (all integers little-endian)::

    blob 0 | blob 1 | ... | blob n-1 | header | header_len:u32 | b"EBASPK01"

``header`` is ``AEAD(plain_header, aad=b"ebas-pack-header")`` and ``plain_header`` is
``version:u8 count:u32`` followed by ``count`` entries of 46 bytes:
``blob_id[32] kind:u8 codec:u8 offset:u32 length:u32 raw_length:u32``.

The pack id is the unkeyed BLAKE3 of the whole file, so anyone can prove a pack intact
without the key. The index can always be rebuilt from pack headers alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ebas.crypto.aead import OVERHEAD as HEADER_OVERHEAD
from ebas.errors import IntegrityError

MAGIC = b"EBASPK01"
HEADER_AAD = b"ebas-pack-header"
HEADER_VERSION = 1
TRAILER = struct.Struct("<I8s")
ENTRY = struct.Struct("<32sBBIII")
HEAD = struct.Struct("<BI")

QUARANTINE = "quarantine/"  # + a pack's name: where 'ebas repair index' moves a pack that is not intact

KIND_DATA = 0
KIND_TREE = 1
KIND_NAMES = {KIND_DATA: "data", KIND_TREE: "tree"}


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob lives inside a pack (slotted: a backup holds one per new blob until
    its pack is indexed)."""

    blob_id: bytes
    kind: int
    codec: int
    offset: int
    length: int
    raw_length: int


def pack_name(pack_id: bytes) -> str:
    """Store object name of a pack: ``data/<2 hex>/<64 hex>``."""
    h = pack_id.hex()
    return f"data/{h[:2]}/{h}"


def pack_id_from_name(name: str) -> bytes:
    """Inverse of :func:`pack_name`; raises ``IntegrityError`` on a foreign name."""
    try:
        tail = name.rsplit("/", 1)[-1]
        pid = bytes.fromhex(tail)
    except ValueError as exc:
        raise IntegrityError(f"{name!r} is not a pack name") from exc
    if len(pid) != 32 or pack_name(pid) != name:
        raise IntegrityError(f"{name!r} is not a pack name (packs live at data/<2 hex>/<64 hex>)")
    return pid


def header_length(count: int) -> int:
    """Bytes that :func:`encode_header` appends to a pack of ``count`` blobs."""
    return HEAD.size + count * ENTRY.size + HEADER_OVERHEAD + TRAILER.size


def encode_header(aead, entries: list[PackEntry]) -> bytes:
    """The encrypted header and trailer that close a pack."""
    plain = bytearray(HEAD.pack(HEADER_VERSION, len(entries)))
    for e in entries:
        plain += ENTRY.pack(e.blob_id, e.kind, e.codec, e.offset, e.length, e.raw_length)
    sealed = aead.seal(bytes(plain), HEADER_AAD)
    return sealed + TRAILER.pack(len(sealed), MAGIC)


def header_span(pack_size: int, tail: bytes) -> tuple[int, int]:
    """``(offset, length)`` of the sealed header, from the last bytes of a pack."""
    if pack_size < TRAILER.size or len(tail) < TRAILER.size:
        raise IntegrityError("pack too short to hold a header (truncated?)")
    hlen, magic = TRAILER.unpack(tail[-TRAILER.size :])
    if magic != MAGIC:
        raise IntegrityError("pack trailer magic missing: truncated or not an ebas pack")
    start = pack_size - TRAILER.size - hlen
    if hlen <= 0 or start < 0:
        raise IntegrityError("pack header length is out of range (truncated or corrupt pack)")
    return start, hlen


def decode_header(aead, sealed: bytes, header_offset: int) -> list[PackEntry]:
    """Entries of a sealed header; checks that blobs tile the pack up to the header."""
    plain = aead.open(sealed, HEADER_AAD)
    if len(plain) < HEAD.size:
        raise IntegrityError("pack header too short")
    version, count = HEAD.unpack_from(plain, 0)
    if version != HEADER_VERSION:
        raise IntegrityError(f"unknown pack header version {version}")
    if len(plain) != HEAD.size + count * ENTRY.size:
        raise IntegrityError("pack header size does not match its entry count")
    entries = []
    pos = 0
    for i in range(count):
        bid, kind, codec, off, length, raw = ENTRY.unpack_from(plain, HEAD.size + i * ENTRY.size)
        if off != pos or length <= 0:
            raise IntegrityError("pack header entries do not tile the pack")
        pos += length
        entries.append(PackEntry(bid, kind, codec, off, length, raw))
    if pos != header_offset:
        raise IntegrityError("pack header does not account for every byte of the pack")
    return entries


def read_pack_header(store, name: str, aead, size: int | None = None) -> list[PackEntry]:
    """Read and verify the header of pack ``name`` with two ranged reads at most."""
    if size is None:
        size = store.stat(name).size
    guess = min(size, 64 * 1024)
    tail = store.get(name, size - guess, guess)
    start, hlen = header_span(size, tail)
    if start >= size - guess:
        sealed = tail[start - (size - guess) : start - (size - guess) + hlen]
    else:
        sealed = store.get(name, start, hlen)
    return decode_header(aead, sealed, start)


def parse_pack(aead, data: bytes) -> list[PackEntry]:
    """Entries of a whole pack held in memory."""
    start, hlen = header_span(len(data), data[-TRAILER.size :])
    return decode_header(aead, data[start : start + hlen], start)
