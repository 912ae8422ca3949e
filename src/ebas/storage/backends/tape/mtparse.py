"""Parsers for what ``mt`` (mt-st) and ``mtx`` print. Pure functions, no I/O.

``mtx -f /dev/sg3 status`` (mtx 1.3)::

      Storage Changer /dev/sg3:1 Drives, 24 Slots ( 1 Import/Export )
    Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = EB0003L8
          Storage Element 1:Full :VolumeTag=EB0001L8
          Storage Element 2:Empty
          Storage Element 24 IMPORT/EXPORT:Full :VolumeTag=CLN001L1

Storage element numbers are the ones ``mtx load``/``unload``/``transfer`` take (from 1,
import/export elements included); drives count from 0. A tag may be missing (no
barcode label, or the library has not scanned it: ``mtx inventory``).

``mt -f /dev/nst0 status`` (mt-st)::

    SCSI 2 tape drive:
    File number=0, block number=0, partition=0.
    Tape block size 262144 bytes. Density code 0x5e (LTO-8).
    Soft error count since last status=0
    General status bits on (41010000):
     BOT ONLINE IM_REP_EN

``mt -f /dev/nst0 tell`` prints ``At block 1234.``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ebas.errors import StoreError

_ELEMENT = re.compile(
    r"^\s*(?P<kind>Data Transfer|Storage) Element (?P<num>\d+)(?P<ie> IMPORT/EXPORT)?\s*:\s*"
    r"(?P<state>Full|Empty)\s*(?P<rest>.*)$")
_LOADED_FROM = re.compile(r"\(Storage Element (\d+) Loaded\)")
_TAG = re.compile(r":\s*VolumeTag\s*=\s*([^:]*?)\s*(?::|$)")
_TELL = re.compile(r"At block (-?\d+)\.")
_POSITION = re.compile(r"File number\s*=\s*(-?\d+),\s*block number\s*=\s*(-?\d+)")
_BLOCK_SIZE = re.compile(r"Tape block size (\d+) bytes")
_DENSITY = re.compile(r"Density code (0x[0-9a-fA-F]+)(?: \(([^)]*)\))?")
_BITS = re.compile(r"General status bits on \(([0-9a-fA-F]+)\):\s*\n?(.*)", re.S)


class ParseError(StoreError):
    """A tool printed something ebas does not understand."""

    default_hint = "run the command by hand and check the tool's version (mt-st, mtx 1.3)"


@dataclass(frozen=True)
class Element:
    """A slot, an import/export element or a drive of a changer."""

    number: int
    full: bool
    barcode: str | None = None
    import_export: bool = False
    source: int | None = None  # drives: the storage element the cartridge came from


@dataclass
class ChangerStatus:
    """``mtx status``: drives (Data Transfer Elements) and storage elements."""

    drives: dict[int, Element] = field(default_factory=dict)
    slots: dict[int, Element] = field(default_factory=dict)

    def storage(self) -> dict[int, Element]:
        """Ordinary storage slots (not import/export)."""
        return {n: e for n, e in self.slots.items() if not e.import_export}

    def mailslots(self) -> dict[int, Element]:
        """Import/export elements (the mail slot an operator uses)."""
        return {n: e for n, e in self.slots.items() if e.import_export}

    def find(self, barcode: str) -> tuple[str, int] | None:
        """``("drive", n)``, ``("slot", n)`` or ``("mailslot", n)`` holding ``barcode``."""
        for n, e in self.drives.items():
            if e.barcode == barcode:
                return "drive", n
        for n, e in self.slots.items():
            if e.barcode == barcode:
                return ("mailslot" if e.import_export else "slot"), n
        return None

    def untagged(self) -> list[int]:
        """Full storage slots whose barcode the changer did not report."""
        return [n for n, e in self.storage().items() if e.full and not e.barcode]


def parse_mtx_status(text: str) -> ChangerStatus:
    """A :class:`ChangerStatus` from ``mtx status`` output."""
    status = ChangerStatus()
    for line in text.splitlines():
        m = _ELEMENT.match(line)
        if not m:
            continue
        num, full, rest = int(m["num"]), m["state"] == "Full", m["rest"]
        tag = _TAG.search(rest)
        barcode = tag.group(1).strip() or None if tag else None
        if m["kind"] == "Data Transfer":
            src = _LOADED_FROM.search(rest)
            status.drives[num] = Element(num, full, barcode, source=int(src.group(1)) if src else None)
        else:
            status.slots[num] = Element(num, full, barcode, import_export=bool(m["ie"]))
    if not status.drives and not status.slots:
        raise ParseError(f"no drives or storage elements in mtx status output: {text[:200]!r}")
    return status


def parse_tell(text: str) -> int:
    """The block number from ``mt tell`` (``At block 1234.``)."""
    m = _TELL.search(text)
    if not m:
        raise ParseError(f"unexpected output from mt tell: {text.strip()[:200]!r}")
    return int(m.group(1))


@dataclass(frozen=True)
class DriveStatus:
    """``mt status`` of a SCSI tape drive."""

    file_number: int
    block_number: int
    block_size: int | None  # 0: variable block mode
    density: str
    bits: frozenset[str]

    @property
    def online(self) -> bool:
        """A cartridge is loaded and ready."""
        return "ONLINE" in self.bits

    @property
    def write_protected(self) -> bool:
        return "WR_PROT" in self.bits

    @property
    def door_open(self) -> bool:
        """No cartridge in the drive (mt-st reports DR_OPEN)."""
        return "DR_OPEN" in self.bits


def parse_mt_status(text: str) -> DriveStatus:
    """A :class:`DriveStatus` from ``mt status`` output (mt-st)."""
    bits = _BITS.search(text)
    if not bits:
        raise ParseError(f"unexpected output from mt status: {text.strip()[:200]!r}")
    pos = _POSITION.search(text)
    size = _BLOCK_SIZE.search(text)
    density = _DENSITY.search(text)
    words = bits.group(2).split()
    return DriveStatus(file_number=int(pos.group(1)) if pos else -1,
                       block_number=int(pos.group(2)) if pos else -1,
                       block_size=int(size.group(1)) if size else None,
                       density=(density.group(2) or density.group(1)) if density else "",
                       bits=frozenset(w for w in words if w.isupper() or "_" in w))
