"""What :class:`~ebas.storage.backends.tape.store.TapeStore` needs from a tape library.

Two small interfaces, each with two implementations:

``Cartridge``   the cartridge in the drive: write a record at a position, read a
                segment back, flush. :class:`~.volume.Volume` (a file of a virtual
                library) and :class:`~.stdrive.StCartridge` (a real Linux ``st`` drive
                driven with ``mt``, fixed-size blocks).
``TapeLibrary`` slots with barcoded cartridges, one drive, a changer that moves them.
                :class:`~.changer.VirtualChanger` (a directory) and
                :class:`~.mtxlibrary.MtxLibrary` (a SCSI changer driven with ``mtx``).

Positions are byte offsets on the cartridge for both. On a real drive every record
starts on a block boundary, so a position is ``block number * block size``. Every
load is appended to ``mounts.log`` in the library directory (one JSON line:
``{"ns", "barcode", "pid"}``), so the mounts of any process can be audited (tape wear,
and the tests' "each volume once, in order").
"""

from __future__ import annotations

import abc
import json
import os
from dataclasses import dataclass, field
from typing import BinaryIO

from ebas.errors import StoreError, StoreFull
from ebas.runtime import SYSTEM_CLOCK, Clock
from ebas.storage.backends.tape.records import MIN_SEGMENT, Record, record_overhead


class VolumeMissing(StoreError):
    """A cartridge needed for a read is not in the library; an operator must load it."""

    default_hint = "import (load) the named cartridge into a free slot of the library, then retry"

    def __init__(self, barcodes: list[str], what: str, *, hint: str | None = None):
        listed = ", ".join(barcodes)
        super().__init__(f"{what} needs tape volume(s) {listed}, not in the library; "
                         f"load barcode(s) {listed}", hint=hint)
        self.barcodes = list(barcodes)


class EndOfTape(StoreFull):
    """The drive reported the end of the medium (early warning) during a write.

    The record being written is cut and never catalogued; the store marks the volume
    full and writes the whole segment again on the next volume.
    """

    default_hint = "nothing to do: ebas continues on the next blank cartridge"


@dataclass
class ChangerStats:
    """What the changer did in this process (for tests, logs and benchmarks)."""

    loads: list[str] = field(default_factory=list)

    @property
    def mounts(self) -> int:
        return len(self.loads)


def fit(barcode: str, room: int, name: str, remaining: int) -> int:
    """How many of ``remaining`` object bytes a record named ``name`` can hold in ``room``
    bytes; :class:`StoreFull` if not even ``MIN_SEGMENT`` bytes (or the whole rest, if
    smaller) fit, so the caller spans to the next volume."""
    room -= record_overhead(name)
    if room < 0 or (remaining and room < min(MIN_SEGMENT, remaining)):
        raise StoreFull(f"tape volume {barcode} is full")
    return min(room, remaining)


class Cartridge(abc.ABC):
    """The cartridge in the drive."""

    barcode: str
    data_start: int  # position of the first record (after the label)

    @abc.abstractmethod
    def segment_length(self, eod: int, name: str, remaining: int) -> int:
        """Object bytes the next record at ``eod`` can hold (``StoreFull`` if none)."""

    @abc.abstractmethod
    def write_record(self, eod: int, name: str, obj_offset: int, obj_size: int, length: int,
                     source: BinaryIO) -> Record:
        """Write one record at ``eod`` with ``length`` bytes read from ``source``;
        :class:`EndOfTape` if the medium ends first."""

    @abc.abstractmethod
    def end_of(self, rec: Record) -> int:
        """The end of data after ``rec`` (where the next record goes)."""

    @abc.abstractmethod
    def read_segment(self, rec: Record, start: int = 0, length: int | None = None) -> bytes:
        """Bytes of a segment; a whole-segment read is checked against its CRC."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Make the records written so far durable on the medium and release the device
        (another process may use the drive between two operations)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the medium (after a flush)."""


class TapeLibrary(abc.ABC):
    """Slots, barcodes, one drive and the changer that moves cartridges between them."""

    root: str
    data_start: int
    capacity: int | None  # nominal bytes per cartridge; None: write until the drive says end of tape

    def __init__(self, root: str, *, clock: Clock = SYSTEM_CLOCK):
        self.root = root
        self.clock = clock
        self.stats = ChangerStats()
        self._drive: Cartridge | None = None

    @abc.abstractmethod
    def reload(self, *, force: bool = False) -> None:
        """Re-read which cartridge is where (another process or an operator may have moved
        them); a library that is slow to ask may answer from a recent reading unless ``force``."""

    @abc.abstractmethod
    def barcodes(self) -> list[str]:
        """Cartridges usable inside the library (in slots or in the drive), in slot order."""

    @abc.abstractmethod
    def load(self, barcode: str) -> Cartridge:
        """The cartridge ``barcode`` in the drive (loading it if another one is there)."""

    @abc.abstractmethod
    def unload(self) -> None:
        """Return the drive's cartridge to its slot."""

    @abc.abstractmethod
    def export(self, barcode: str, dest: str) -> str:
        """Move ``barcode`` out of the library; return where it went."""

    @abc.abstractmethod
    def import_cartridge(self, source: str) -> int:
        """Put a cartridge into a free slot; return the slot."""

    def missing_hint(self, barcodes: list[str]) -> str | None:
        """A hint for :class:`VolumeMissing` (None: the default)."""
        return None

    def present(self, barcode: str) -> bool:
        """True if ``barcode`` can be loaded without an operator."""
        return barcode in self.barcodes()

    def loaded(self) -> Cartridge | None:
        """The cartridge in the drive, if this process loaded one."""
        return self._drive

    def flush(self) -> None:
        """Flush the cartridge in the drive, if any."""
        if self._drive is not None:
            self._drive.flush()

    def _mounted(self, barcode: str) -> None:
        """Record a load (in this process's stats and in the library's mount log)."""
        self.stats.loads.append(barcode)
        line = json.dumps({"ns": self.clock.now_ns(), "barcode": barcode, "pid": os.getpid()})
        with open(os.path.join(self.root, "mounts.log"), "a") as f:
            f.write(line + "\n")

    def close(self) -> None:
        """Unload the drive."""
        self.unload()


def read_mount_log(root: str) -> list[dict]:
    """Every load recorded in the library at ``root`` (oldest first)."""
    try:
        with open(os.path.join(root, "mounts.log")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
