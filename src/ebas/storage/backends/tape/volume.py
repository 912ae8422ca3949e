"""One cartridge of the virtual library: a file holding a label, then append-only records.

The layout is :mod:`.records` with a 512-byte label and records back to back (no
blocks). Writing at a position makes it the end of data, as on tape: bytes after it (a
write cut off by a crash, never catalogued) are overwritten.
"""

from __future__ import annotations

import os
import zlib
from typing import BinaryIO, Iterator

from ebas.errors import IntegrityError
from ebas.storage.backends.tape.device import Cartridge, fit
from ebas.storage.backends.tape.records import (
    HEADER,
    LABEL_MAGIC,
    LABEL_SIZE,
    MIN_SEGMENT,
    RECORD_MAGIC,
    TRAILER,
    Record,
    make_label,
    parse_label,
    record_header,
    record_overhead,
)

IO_CHUNK = 4 * 1024 * 1024

__all__ = ["IO_CHUNK", "LABEL_MAGIC", "LABEL_SIZE", "MIN_SEGMENT", "Record", "Volume", "record_overhead", "scan"]


class Volume(Cartridge):
    """An open virtual cartridge (the one in the drive)."""

    data_start = LABEL_SIZE

    def __init__(self, path: str, barcode: str, capacity: int, *, fsync: bool = True):
        self.path, self.barcode, self.capacity, self.fsync = path, barcode, capacity, fsync
        self._f: BinaryIO = open(path, "r+b")

    @classmethod
    def create_blank(cls, path: str, barcode: str, capacity: int, created_ns: int) -> None:
        """Write a new, labelled, empty cartridge file."""
        if capacity < LABEL_SIZE + MIN_SEGMENT:
            raise ValueError(f"capacity {capacity} is too small for a tape volume")
        label = make_label(LABEL_SIZE, barcode=barcode, capacity=capacity, created_ns=created_ns)
        with open(path, "xb") as f:
            f.write(label)

    parse_label = staticmethod(parse_label)

    def read_label(self) -> dict:
        self._f.seek(0)
        return parse_label(self._f.read(LABEL_SIZE))

    def room(self, eod: int) -> int:
        """Bytes left after end-of-data ``eod``."""
        return max(0, self.capacity - eod)

    def segment_length(self, eod: int, name: str, remaining: int) -> int:
        return fit(self.barcode, self.room(eod), name, remaining)

    def write_record(self, eod: int, name: str, obj_offset: int, obj_size: int, length: int,
                     source: BinaryIO) -> Record:
        self._f.seek(eod)
        self._f.write(record_header(name, obj_offset, length, obj_size))
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

    def end_of(self, rec: Record) -> int:
        return rec.end

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
        length = rec.length - start if length is None else length
        return check_crc(self.barcode, rec, start, self.read(rec.data_position + start, length))

    def close(self) -> None:
        self._f.close()


def check_crc(barcode: str, rec: Record, start: int, data: bytes) -> bytes:
    """``data`` (read at ``start`` in ``rec``); a whole segment must match its CRC."""
    if start == 0 and len(data) == rec.length and zlib.crc32(data) != rec.crc:
        raise IntegrityError(f"tape volume {barcode}: CRC error in {rec.name!r} at position "
                             f"{rec.position}", hint="read the object from another copy")
    return data


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
