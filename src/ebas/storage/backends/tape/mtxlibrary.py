"""A real tape library: a SCSI medium changer driven with ``mtx`` and one ``st`` drive.

``tape:///var/lib/ebas/tapecat?drive=/dev/nst0&changer=/dev/sg3`` opens it. The
directory holds the media catalog and ``library.json`` (``{"kind": "mtx", "drive",
"changer", "drive_index", "block_size"}``, so the directory alone reopens it and a
block-size change is caught). Which cartridge is where comes from ``mtx status`` (read
again before every write and every batch of reads); full slots without a barcode make
it run ``mtx inventory`` once.

Loading a cartridge: ``mt offline`` and ``mtx unload SLOT DRIVE`` for the one in the
drive (to the slot it came from), ``mtx load SLOT DRIVE``, then ``mt status`` until the
drive is ONLINE, ``mt setblk`` if the drive is not in fixed-block mode with our block
size, and the label is read (:class:`~.stdrive.StCartridge`). A cartridge found already
in the drive (left by an earlier process) is used without a move. Cartridges in an
import/export element (the mail slot) are not used; ``import_cartridge`` moves them
into a free slot, ``export`` moves one out to the mail slot.
"""

from __future__ import annotations

import json
import os

from ebas.errors import StoreError, StoreFull, UsageError
from ebas.runtime import SYSTEM_CLOCK, Clock
from ebas.storage.backends.tape.device import TapeLibrary, VolumeMissing
from ebas.storage.backends.tape.mtparse import ChangerStatus, Element
from ebas.storage.backends.tape.stdrive import BLOCK_SIZE, StCartridge
from ebas.storage.backends.tape.tools import Mt, Mtx, TapeCommandFailed, default_mt

POLL_SECONDS = 2.0
STATUS_TTL = 30.0


class MtxLibrary(TapeLibrary):
    """The changer ``changer`` (an sg device) with the drive ``drive`` (a /dev/nstN) in it."""

    def __init__(self, root: str, *, drive: str | None = None, changer: str | None = None, drive_index: int = 0,
                 block_size: int | None = None, capacity: int | None = None, mt_cmd: str | None = None,
                 mtx_cmd: str = "mtx", load_timeout: float = 600.0, clock: Clock = SYSTEM_CLOCK):
        super().__init__(root, clock=clock)
        conf = self._configure(drive, changer, drive_index, block_size)
        self.drive, self.changer = conf["drive"], conf["changer"]
        self.drive_index, self.block_size = conf["drive_index"], conf["block_size"]
        self.data_start = self.block_size
        self.capacity = capacity
        self.load_timeout = load_timeout
        self.mt = Mt(mt_cmd or default_mt(), self.drive)
        self.mtx = Mtx(mtx_cmd, self.changer)
        self.status: ChangerStatus | None = None
        self._status_at = 0.0
        self._home: int | None = None  # the slot the cartridge in our drive came from
        self._inventoried = False

    def _configure(self, drive, changer, drive_index, block_size) -> dict:
        path = os.path.join(self.root, "library.json")
        try:
            with open(path) as f:
                saved = json.load(f)
        except FileNotFoundError:
            saved = None
        if saved is not None and saved.get("kind") != "mtx":
            raise UsageError(f"{self.root} holds a virtual tape library, not the catalog of a real one",
                             hint="use another directory for the real library's catalog")
        given = {"drive": drive, "changer": changer, "drive_index": drive_index, "block_size": block_size}
        conf = {"kind": "mtx", "drive_index": 0, "block_size": BLOCK_SIZE, **(saved or {})}
        conf.update({k: v for k, v in given.items() if v is not None})
        if not conf.get("drive") or not conf.get("changer"):
            raise UsageError(f"no tape library at {self.root}",
                             hint="a real library needs tape://PATH?drive=/dev/nstN&changer=/dev/sgN")
        if saved and saved.get("block_size") != conf["block_size"]:
            raise UsageError(f"the cartridges of {self.root} are written with {saved['block_size']}-byte blocks, "
                             f"not {conf['block_size']}",
                             hint=f"use block_size={saved['block_size']} (or leave it out)")
        if conf != saved:
            os.makedirs(self.root, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(conf, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        return conf

    # ------------------------------------------------------------ inventory
    def reload(self, *, force: bool = False) -> None:
        """Read ``mtx status`` again, unless it was read less than ``STATUS_TTL`` seconds
        ago and nothing moved since (a large library takes seconds to answer; an export
        writes many objects)."""
        if not force and self.status is not None and self.clock.monotonic() - self._status_at < STATUS_TTL:
            return
        self.status = self.mtx.status()
        self._status_at = self.clock.monotonic()
        if self.status.untagged() and not self._inventoried:
            self._inventoried = True
            self.mtx.inventory()
            self.status = self.mtx.status()

    def _status(self) -> ChangerStatus:
        if self.status is None:
            self.reload()
        return self.status

    def _our_drive(self) -> Element:
        status = self._status()
        if self.drive_index not in status.drives:
            raise UsageError(f"the changer {self.changer} has no drive {self.drive_index} "
                             f"(it has {sorted(status.drives)})", hint="set drive_index= in the tape:// URL")
        return status.drives[self.drive_index]

    def barcodes(self) -> list[str]:
        status = self._status()
        by_slot = {n: e.barcode for n, e in status.storage().items() if e.barcode}
        for e in status.drives.values():
            if e.barcode:
                by_slot[e.source if e.source is not None else 10**9 + e.number] = e.barcode
        return [b for _, b in sorted(by_slot.items())]

    def missing_hint(self, barcodes: list[str]) -> str | None:
        status = self._status()
        notes = []
        for barcode in barcodes:
            where = status.find(barcode)
            if where and where[0] == "mailslot":
                notes.append(f"{barcode} is in import/export element {where[1]}: move it into a free slot "
                             f"('mtx -f {self.changer} transfer {where[1]} SLOT')")
        return "; ".join(notes) or (f"put the cartridge(s) into the mail slot and move them into free slots "
                                    f"('mtx -f {self.changer} transfer IE SLOT'), then retry")

    # ------------------------------------------------------------ movement
    def load(self, barcode: str) -> StCartridge:
        if self._drive is not None and self._drive.barcode == barcode:
            return self._drive
        ours = self._our_drive()
        where = self._status().find(barcode)  # as of the store's last reload (or our last move)
        if where == ("drive", self.drive_index):
            self._drive, self._home = None, ours.source
        elif where is not None and where[0] == "drive":
            raise StoreError(f"cartridge {barcode} is in drive {where[1]} of {self.changer}, not in drive "
                             f"{self.drive_index} that ebas uses", hint="unload it from that drive, then retry")
        elif where is None or where[0] != "slot":
            raise VolumeMissing([barcode], "this operation", hint=self.missing_hint([barcode]))
        else:
            if self._drive is not None:
                self.unload()
            else:
                self._empty_drive()
            self.mtx.load(where[1], self.drive_index)
            self._home = where[1]
            self._mounted(barcode)
        self.status = None
        cart = self._ready(barcode)
        self._drive = cart
        return cart

    def _empty_drive(self) -> None:
        """Put back a cartridge someone else left in our drive."""
        el = self._our_drive()
        if el.full:
            free = [n for n, e in self._status().storage().items() if not e.full]
            home = el.source if el.source is not None else (free[0] if free else None)
            if home is None:
                raise StoreFull(f"no free slot to put back the cartridge in drive {self.drive_index} of {self.changer}")
            self.mt.offline()
            self.mtx.unload(home, self.drive_index)

    def _ready(self, barcode: str) -> StCartridge:
        """Wait until the drive is online, set fixed blocks, read the label."""
        deadline = self.clock.monotonic() + self.load_timeout
        while True:
            try:
                st = self.mt.status()
            except TapeCommandFailed:  # some drives refuse status while the cartridge threads
                st = None
            if st is not None and st.online:
                break
            if self.clock.monotonic() >= deadline:
                raise StoreError(f"the drive {self.drive} did not become ready within {self.load_timeout:.0f}s "
                                 f"after loading {barcode}", hint="check the drive ('mt -f DEVICE status') and the "
                                                                  "library's console")
            self.clock.sleep(POLL_SECONDS)
        if st.block_size != self.block_size:
            self.mt.setblk(self.block_size)
        cart = StCartridge(self.drive, self.mt, barcode, block_size=self.block_size, capacity=self.capacity,
                           write_protected=st.write_protected, created_ns=self.clock.now_ns())
        cart.check_label()
        return cart

    def unload(self) -> None:
        if self._drive is None:
            return
        cart, self._drive = self._drive, None
        cart.close()
        self.mt.offline()
        self.mtx.unload(self._home, self.drive_index)
        self.status = None

    def export(self, barcode: str, dest: str = "") -> str:
        """Move ``barcode`` to a free import/export element; return ``"import/export element N"``."""
        if self._drive is not None and self._drive.barcode == barcode:
            self.unload()
        self.reload(force=True)
        status = self._status()
        where = status.find(barcode)
        if where is None or where[0] != "slot":
            raise VolumeMissing([barcode], "export", hint=self.missing_hint([barcode]))
        free = [n for n, e in status.mailslots().items() if not e.full]
        if not free:
            raise StoreFull(f"no free import/export element in {self.changer} to export {barcode}",
                            hint="empty the mail slot, then retry")
        self.mtx.transfer(where[1], free[0])
        self.status = None
        return f"import/export element {free[0]}"

    def import_cartridge(self, source: str) -> int:
        """Move the cartridge in import/export element ``source`` (a number) to a free slot."""
        self.reload(force=True)
        status = self._status()
        mail = status.mailslots()
        if not str(source).isdigit() or int(source) not in mail or not mail[int(source)].full:
            raise UsageError(f"{source!r} is not a full import/export element of {self.changer}",
                             hint=f"full ones: {[n for n, e in mail.items() if e.full]}")
        free = [n for n, e in status.storage().items() if not e.full]
        if not free:
            raise StoreFull(f"no free slot in {self.changer} to import from element {source}")
        self.mtx.transfer(int(source), free[0])
        self.status = None
        return free[0]
