"""One tape cartridge (volume): a label, then append-only records up to a fixed capacity.

A virtual cartridge is one file. Its layout mirrors what ebas writes to a real tape::

    label   512 bytes: b"EBASTAPE1\\n" + JSON {"barcode", "capacity", "created_ns"}, zero-padded
    record  header (36 bytes) + object name (UTF-8) + segment bytes + CRC-32 (4 bytes)

    header  = magic b"EBASREC1", name length (u32), offset of this segment in the
              object (u64), segment length (u64), object size (u64)

The CRC trails the data, so a record is written in one forward pass (tape cannot seek
back to patch a header).

Records are self-describing, so the media catalog can be rebuilt by reading the volumes
(:func:`scan`). Writing at a position makes it the end of data, as on tape: bytes after
it (a write cut off by a crash, never catalogued) are overwritten.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ebas.errors import IntegrityError, StoreFull

LABEL_SIZE = 512
LABEL_MAGIC = b"EBASTAPE1\n"
RECORD_MAGIC = b"EBASREC1"
HEADER = struct.Struct("<8sIQQQ")
TRAILER = struct.Struct("<I")
MIN_SEGMENT = 4096  # do not start a segment with less room than this: span to the next volume
IO_CHUNK = 4 * 1024 * 1024


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
        """Position just after the record (the new end of data)."""
        return self.data_position + self.length + TRAILER.size


def record_overhead(name: str) -> int:
    return HEADER.size + len(name.encode()) + TRAILER.size


class Volume:
    """An open virtual cartridge (the one in the drive)."""

    def __init__(self, path: str, barcode: str, capacity: int, *, fsync: bool = True):
        self.path, self.barcode, self.capacity, self.fsync = path, barcode, capacity, fsync
        self._f: BinaryIO = open(path, "r+b")

    @classmethod
    def create_blank(cls, path: str, barcode: str, capacity: int, created_ns: int) -> None:
        """Write a new, labelled, empty cartridge file."""
        label = LABEL_MAGIC + json.dumps({"barcode": barcode, "capacity": capacity,
                                          "created_ns": created_ns}).encode()
        if len(label) > LABEL_SIZE or capacity < LABEL_SIZE + MIN_SEGMENT:
            raise ValueError(f"bad label or capacity for {barcode}")
        with open(path, "xb") as f:
            f.write(label.ljust(LABEL_SIZE, b"\0"))

    @staticmethod
    def parse_label(raw: bytes) -> dict:
        """The label fields of a cartridge from its first 512 bytes."""
        if not raw.startswith(LABEL_MAGIC):
            raise IntegrityError("not an ebas tape volume (no label)")
        return json.loads(raw[len(LABEL_MAGIC):LABEL_SIZE].rstrip(b"\0"))

    def read_label(self) -> dict:
        self._f.seek(0)
        return self.parse_label(self._f.read(LABEL_SIZE))

    def room(self, eod: int) -> int:
        """Bytes left after end-of-data ``eod``."""
        return max(0, self.capacity - eod)

    def segment_length(self, eod: int, name: str, remaining: int) -> int:
        """How many of ``remaining`` object bytes the next record at ``eod`` can hold.

        Raises :class:`StoreFull` if not even ``MIN_SEGMENT`` bytes (or the whole rest,
        if smaller) fit: the caller spans to the next volume.
        """
        room = self.room(eod) - record_overhead(name)
        if room < 0 or (remaining and room < min(MIN_SEGMENT, remaining)):
            raise StoreFull(f"tape volume {self.barcode} is full")
        return min(room, remaining)

    def write_record(self, eod: int, name: str, obj_offset: int, obj_size: int, length: int,
                     source: BinaryIO) -> Record:
        """Write one record at ``eod`` with ``length`` bytes read from ``source``."""
        encoded = name.encode()
        self._f.seek(eod)
        self._f.write(HEADER.pack(RECORD_MAGIC, len(encoded), obj_offset, length, obj_size) + encoded)
        crc = 0
        left = length
        while left:
            chunk = source.read(min(IO_CHUNK, left))
            if not chunk:
                raise IntegrityError(f"source of {name!r} ended {left} bytes early while writing to tape")
            crc = zlib.crc32(chunk, crc)
            self._f.write(chunk)
            left -= len(chunk)
        self._f.write(TRAILER.pack(crc))
        self._f.truncate()  # writing makes this the end of data, as on tape
        return Record(eod, name, obj_offset, length, obj_size, crc)

    def flush(self) -> None:
        """Write buffered records to the medium (a filemark, in tape terms)."""
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())

    def read(self, position: int, length: int) -> bytes:
        """``length`` bytes at ``position`` (a locate, then a read)."""
        self._f.seek(position)
        data = self._f.read(length)
        if len(data) != length:
            raise IntegrityError(f"tape volume {self.barcode}: short read at {position} "
                                 f"({len(data)} of {length} bytes)")
        return data

    def read_segment(self, rec: Record, start: int = 0, length: int | None = None) -> bytes:
        """Bytes of a segment; a whole-segment read is checked against its CRC."""
        length = rec.length - start if length is None else length
        data = self.read(rec.data_position + start, length)
        if start == 0 and length == rec.length and zlib.crc32(data) != rec.crc:
            raise IntegrityError(f"tape volume {self.barcode}: CRC error in {rec.name!r} at position "
                                 f"{rec.position}", hint="read the object from another copy")
        return data

    def close(self) -> None:
        self._f.close()


def scan(path: str) -> Iterator[Record]:
    """Every complete record on a cartridge file, in order (for rebuilding the catalog)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = LABEL_SIZE
        while pos + HEADER.size <= size:
            f.seek(pos)
            magic, name_len, obj_offset, length, obj_size = HEADER.unpack(f.read(HEADER.size))
            end = pos + HEADER.size + name_len + length + TRAILER.size
            if magic != RECORD_MAGIC or end > size:
                return
            name = f.read(name_len).decode()
            f.seek(end - TRAILER.size)
            (crc,) = TRAILER.unpack(f.read(TRAILER.size))
            yield Record(pos, name, obj_offset, length, obj_size, crc)
            pos = end
