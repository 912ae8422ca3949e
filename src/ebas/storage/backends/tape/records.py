"""The on-tape format ebas writes, the same for a virtual cartridge file and a real tape::

    label   b"EBASTAPE1\\n" + JSON {"barcode", "capacity", "created_ns"[, "block_size"]},
            zero-padded: 512 bytes on a virtual cartridge, one block on a real tape
    record  header (36 bytes) + object name (UTF-8) + segment bytes + CRC-32 (4 bytes)

    header  = magic b"EBASREC1", name length (u32), offset of this segment in the
              object (u64), segment length (u64), object size (u64)

The CRC trails the data, so a record is written in one forward pass (tape cannot seek
back to patch a header). On a real tape every record starts on a block boundary and
its last block is zero-padded, so a block number is a position. Records are
self-describing: the media catalog can be rebuilt by reading the volumes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from ebas.errors import IntegrityError

LABEL_SIZE = 512
LABEL_MAGIC = b"EBASTAPE1\n"
RECORD_MAGIC = b"EBASREC1"
HEADER = struct.Struct("<8sIQQQ")
TRAILER = struct.Struct("<I")
MIN_SEGMENT = 4096  # do not start a segment with less room than this: span to the next volume


@dataclass(frozen=True)
class Record:
    """Where one segment of an object sits on a volume."""

    position: int  # byte position of the record header on the volume
    name: str
    obj_offset: int
    length: int
    obj_size: int
    crc: int

    @property
    def data_position(self) -> int:
        return self.position + HEADER.size + len(self.name.encode())

    @property
    def end(self) -> int:
        """Position just after the record's trailer."""
        return self.data_position + self.length + TRAILER.size


def record_overhead(name: str) -> int:
    """Bytes a record adds to its segment: header, name and CRC."""
    return HEADER.size + len(name.encode()) + TRAILER.size


def record_header(name: str, obj_offset: int, length: int, obj_size: int) -> bytes:
    """Header and name of a record."""
    encoded = name.encode()
    return HEADER.pack(RECORD_MAGIC, len(encoded), obj_offset, length, obj_size) + encoded


def make_label(size: int, **fields) -> bytes:
    """A label of exactly ``size`` bytes carrying ``fields``."""
    label = LABEL_MAGIC + json.dumps(fields, sort_keys=True).encode()
    if len(label) > size:
        raise ValueError(f"label for {fields.get('barcode')} does not fit in {size} bytes")
    return label.ljust(size, b"\0")


def parse_label(raw: bytes) -> dict:
    """The label fields of a cartridge from its first bytes."""
    if not raw.startswith(LABEL_MAGIC):
        raise IntegrityError("not an ebas tape volume (no label)")
    return json.loads(raw[len(LABEL_MAGIC):].split(b"\0", 1)[0])
