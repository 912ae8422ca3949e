"""Verify the bytes of one whole pack: its name, its header, its index entries, its blobs.

Used by ``check_repository(read_data=True)``, one pack at a time. Works on a buffer
already read (so the caller controls I/O and memory) and never raises for damage: the
verdict lists what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ebas.crypto.ids import pack_id as hash_pack
from ebas.errors import IntegrityError
from ebas.repo.pack import parse_pack
from ebas.repo.tree import ID_LEN

Entry = tuple[bytes, int, int, int, int, int]  # blob id, kind, codec, offset, length, raw length


@dataclass
class PackVerdict:
    """What :func:`verify_pack_bytes` found in one pack (all empty / True when intact)."""

    hash_ok: bool = True
    header_error: str = ""  # why the header could not be read, if it could not
    index_not_in_header: int = 0  # index entries the header does not list
    header_not_in_index: int = 0  # header entries the index does not list
    bad_blobs: list[bytes] = field(default_factory=list)  # ids of blobs that fail to verify

    @property
    def intact(self) -> bool:
        """True if nothing is wrong with the pack or its index entries."""
        return (self.hash_ok and not self.header_error and not self.bad_blobs
                and not self.index_not_in_header and not self.header_not_in_index)


def index_entries(entries: np.ndarray) -> set[Entry]:
    """Index rows (``ebas.repo.index.ENTRY_DTYPE``) as entry tuples."""
    ids = entries["id"].tobytes()  # not bytes(row["id"]): numpy drops trailing NUL bytes
    cols = zip(*(entries[c].tolist() for c in ("kind", "codec", "offset", "length", "raw")))
    return {(ids[i * ID_LEN : (i + 1) * ID_LEN], *row) for i, row in enumerate(cols)}


def verify_pack_bytes(repo, pack_id: bytes, data, listed: set[Entry] | None = None) -> PackVerdict:
    """Check a whole pack held in ``data`` against its id and (if given) its index entries.

    Every blob named by the header or by ``listed`` is decrypted, decompressed and
    hashed (``repo.codec.decode``) at the location given; its plaintext length must match
    the header's (else the index's) raw length. A damaged header does not stop the
    blobs from being checked through the index entries.
    """
    verdict = PackVerdict(hash_ok=hash_pack(data) == pack_id)
    view = memoryview(data)
    header: set[Entry] | None = None
    try:
        header = {(e.blob_id, e.kind, e.codec, e.offset, e.length, e.raw_length) for e in parse_pack(repo.aead, view)}
    except IntegrityError as exc:
        verdict.header_error = exc.message
    listed = listed or set()
    if header is not None and listed:
        verdict.index_not_in_header = len(listed - header)
        verdict.header_not_in_index = len(header - listed)
    blobs = {(e[0], e[3], e[4]): e[5] for e in listed}
    blobs.update({(e[0], e[3], e[4]): e[5] for e in header or ()})  # the header's raw length wins
    for (bid, off, length), raw in sorted(blobs.items(), key=lambda item: item[0][1]):
        try:
            if len(repo.codec.decode(bid, view[off : off + length])) != raw:
                raise IntegrityError("wrong plaintext length")
        except IntegrityError:
            if bid not in verdict.bad_blobs:
                verdict.bad_blobs.append(bid)
    return verdict
