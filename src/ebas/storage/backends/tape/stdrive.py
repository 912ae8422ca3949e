"""A cartridge in a real Linux SCSI tape drive (``st``), written in fixed-size blocks.

The data path is the same on a real drive and on the stand-in the tests use: position
with ``mt seek N`` (a SCSI LOCATE; ``mt rewind`` for block 0), open the
non-rewinding device (``/dev/nstN``), then ``os.read``/``os.write`` whole blocks. The
on-tape layout is :mod:`.records`: block 0 holds the label, every record starts on a
block boundary and its last block is zero-padded, so ``position = block * block_size``.

* Before a write the position is checked with ``mt tell``: writing at a wrong block would
  destroy data (on tape, a write makes its end the end of data).
* ``flush`` closes the device: after a write the ``st`` driver then writes a filemark,
  which makes the drive put its buffer on the medium. Only then is an object catalogued.
  The next record is written over that filemark.
* ``ENOSPC`` (or ``EIO``, or a short write) while writing means the end of the medium
  (early warning): :class:`~.device.EndOfTape`; the store continues on the next volume.
* Only one process may have an ``st`` device open, so the device is closed before every
  ``mt`` command.

Capability check, not a test flag: a character device (the real ``st`` drive) keeps the
tape position across ``open`` and ends data where a write stops. A regular file standing
in for a cartridge (the tests' fake drive, swapped in by a fake ``mtx``) does neither, so
for it (``not S_ISCHR``) the driver ``lseek``\\ s to the block it asked ``mt`` for and
truncates the file after writing.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from typing import BinaryIO

from ebas.errors import IntegrityError, PermissionDenied, StoreError
from ebas.storage.backends.tape.device import Cartridge, EndOfTape, fit
from ebas.storage.backends.tape.records import (
    LABEL_MAGIC,
    TRAILER,
    Record,
    make_label,
    parse_label,
    record_header,
)
from ebas.storage.backends.tape.tools import Mt
from ebas.storage.backends.tape.volume import IO_CHUNK, check_crc

BLOCK_SIZE = 256 * 1024
END_OF_MEDIUM = (errno.ENOSPC, errno.EIO)
# The device calls. A test replaces ``device_write`` to produce the drive's early-warning
# ENOSPC, which a regular file cannot.
device_read = os.read
device_write = os.write


class StCartridge(Cartridge):
    """The cartridge ``barcode`` in the ``st`` drive ``device`` (see the module docstring)."""

    def __init__(self, device: str, mt: Mt, barcode: str, *, block_size: int = BLOCK_SIZE,
                 capacity: int | None = None, write_protected: bool = False, created_ns: int = 0):
        self.device, self.mt, self.barcode = device, mt, barcode
        self.block_size, self.capacity = block_size, capacity
        self.data_start = block_size
        self.write_protected = write_protected
        self.created_ns = created_ns
        self.label: dict | None = None
        self.foreign = False  # holds data that is not ebas's: never overwritten
        self._fd: int | None = None
        self._block: int | None = None  # where the open descriptor is (None: unknown)
        self._rw = False
        self._written = False
        self._stand_in = False

    # ------------------------------------------------------------ positioning
    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._written and self._stand_in and self._block is not None:
                os.ftruncate(fd, self._block * self.block_size)  # the end of a write is the end of data
            os.close(fd)  # st: a filemark after a write, which flushes the drive's buffer
        except OSError as exc:
            raise StoreError(f"tape volume {self.barcode} in {self.device}: closing after a write failed: "
                             f"{exc.strerror}", hint="the last object was not catalogued; run again") from exc
        finally:
            self._block, self._written = None, False

    def _at(self, block: int, *, write: bool = False) -> int:
        """A descriptor positioned at ``block`` (opened for writing if ``write``)."""
        if self._fd is not None and self._block == block and (self._rw or not write):
            return self._fd
        self._close()
        if block == 0:
            self.mt.rewind()
        else:
            self.mt.seek(block)
        if write:
            where = self.mt.tell()
            if where != block:
                raise StoreError(f"tape volume {self.barcode} in {self.device}: asked to locate block {block}, "
                                 f"the drive reports block {where}; refusing to write",
                                 hint="check the drive ('mt -f DEVICE status'); clean it if it keeps happening")
        try:
            fd = os.open(self.device, os.O_RDWR if write else os.O_RDONLY)
        except OSError as exc:
            if write and exc.errno in (errno.EACCES, errno.EROFS):
                raise self._protected() from exc
            raise StoreError(f"cannot open tape drive {self.device} ({self.barcode}): {exc.strerror}",
                             hint="is another program using the drive? only one process can open an st device")
        self._stand_in = not stat.S_ISCHR(os.fstat(fd).st_mode)
        if self._stand_in:
            os.lseek(fd, block * self.block_size, os.SEEK_SET)
        self._fd, self._block, self._rw = fd, block, write
        return fd

    def _protected(self) -> PermissionDenied:
        return PermissionDenied(f"tape volume {self.barcode} in {self.device} is write-protected",
                                hint="slide the cartridge's write-protect tab back, or remove it from the library")

    # ------------------------------------------------------------ label
    def check_label(self) -> None:
        """Read block 0: an ebas label for this barcode, a blank cartridge, or foreign data."""
        fd = self._at(0)
        try:
            raw = device_read(fd, self.block_size)
        except OSError as exc:
            if exc.errno not in END_OF_MEDIUM:  # a blank tape answers the first read with EIO (blank check)
                raise StoreError(f"cannot read the label of {self.barcode} in {self.device}: {exc.strerror}") from exc
            raw = b""
        self._close()
        if not raw:
            return
        if not raw.startswith(LABEL_MAGIC):
            self.foreign = True
            return
        label = parse_label(raw)
        if label.get("barcode") != self.barcode:
            raise IntegrityError(f"the cartridge with barcode {self.barcode} is labelled {label.get('barcode')!r} "
                                 "on tape", hint="the barcode sticker and the tape disagree; check the cartridge")
        if label.get("block_size") != self.block_size:
            raise StoreError(f"tape volume {self.barcode} was written with {label.get('block_size')}-byte blocks, "
                             f"not {self.block_size}",
                             hint=f"open the library with block_size={label.get('block_size')}")
        self.label = label

    def _write_label(self) -> None:
        if self.foreign:
            raise StoreError(f"cartridge {self.barcode} in {self.device} holds data that is not an ebas tape volume; "
                             "refusing to overwrite it",
                             hint="remove it from the library, or erase it ('mt -f DEVICE erase') if it may be reused")
        fd = self._at(0, write=True)
        label = make_label(self.block_size, barcode=self.barcode, block_size=self.block_size,
                           capacity=self.capacity, created_ns=self.created_ns)
        self._write_block(fd, label)
        self.label = parse_label(label)

    # ------------------------------------------------------------ writing
    def segment_length(self, eod: int, name: str, remaining: int) -> int:
        room = (1 << 62) if self.capacity is None else max(0, self.capacity - eod)
        return fit(self.barcode, room - room % self.block_size, name, remaining)

    def write_record(self, eod: int, name: str, obj_offset: int, obj_size: int, length: int,
                     source: BinaryIO) -> Record:
        if self.write_protected:
            raise self._protected()
        if eod % self.block_size:
            raise IntegrityError(f"tape volume {self.barcode}: end of data {eod} is not on a block boundary")
        if self.label is None:
            if eod != self.data_start:
                raise IntegrityError(f"tape volume {self.barcode} is blank, but the media catalog lists data on it "
                                     f"up to byte {eod}", hint="the cartridge was erased or replaced; see 'where'")
            self._write_label()
        fd = self._at(eod // self.block_size, write=True)
        buf = bytearray(record_header(name, obj_offset, length, obj_size))
        crc, left = 0, length
        while left:
            chunk = source.read(min(IO_CHUNK, left))
            if not chunk:
                raise IntegrityError(f"source of {name!r} ended {left} bytes early while writing to tape")
            crc = zlib.crc32(chunk, crc)
            buf += chunk
            left -= len(chunk)
            self._emit(fd, buf)
        buf += TRAILER.pack(crc)
        buf += bytes(-len(buf) % self.block_size)
        self._emit(fd, buf)
        return Record(eod, name, obj_offset, length, obj_size, crc)

    def _emit(self, fd: int, buf: bytearray) -> None:
        """Write the whole blocks at the front of ``buf`` and drop them from it."""
        whole = len(buf) - len(buf) % self.block_size
        view = memoryview(buf)
        try:
            for off in range(0, whole, self.block_size):
                self._write_block(fd, view[off:off + self.block_size])
        finally:
            view.release()
        del buf[:whole]

    def _write_block(self, fd: int, block) -> None:
        self._written = True
        try:
            n = device_write(fd, block)
        except OSError as exc:
            if exc.errno in END_OF_MEDIUM:
                raise self._end(exc.strerror) from exc
            raise StoreError(f"write error on tape volume {self.barcode} in {self.device} at block "
                             f"{self._block}: {exc.strerror}") from exc
        if n != self.block_size:
            raise self._end(f"short write ({n} of {self.block_size} bytes)")
        self._block += 1

    def _end(self, why: str) -> EndOfTape:
        err = EndOfTape(f"tape volume {self.barcode} in {self.device}: end of medium at block {self._block} ({why})")
        try:
            self._close()
        except StoreError:
            pass  # the cut record is never catalogued
        return err

    def end_of(self, rec: Record) -> int:
        return -(-rec.end // self.block_size) * self.block_size

    def flush(self) -> None:
        self._close()  # after a write: a filemark (the buffer reaches the medium); always: the device is free

    # ------------------------------------------------------------ reading
    def read_segment(self, rec: Record, start: int = 0, length: int | None = None) -> bytes:
        length = rec.length - start if length is None else length
        block, skip = divmod(rec.data_position + start, self.block_size)
        count = -(-(skip + length) // self.block_size)
        data = self._read_blocks(block, count)[skip:skip + length]
        return check_crc(self.barcode, rec, start, data)

    def _read_blocks(self, block: int, count: int) -> bytes:
        fd = self._at(block)
        out = bytearray()
        for i in range(count):
            try:
                chunk = device_read(fd, self.block_size)
            except OSError as exc:
                self._close()
                raise IntegrityError(f"read error on tape volume {self.barcode} in {self.device} at block "
                                     f"{block + i}: {exc.strerror}",
                                     hint="clean the drive and retry, or read the object from another copy") from exc
            if len(chunk) != self.block_size:
                self._close()
                raise IntegrityError(f"tape volume {self.barcode}: short read at block {block + i} "
                                     f"({len(chunk)} of {self.block_size} bytes)")
            out += chunk
            self._block += 1
        return bytes(out)

    def close(self) -> None:
        self._close()
