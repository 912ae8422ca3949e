"""A virtual tape library: slots holding barcoded cartridges, one drive, a changer.

The library is a directory (the way mhvtl stands in for hardware)::

    library.json          {"capacity": bytes per cartridge, "slots": N,
                           "inventory": {"1": "EB0001L8", "2": null, ...},
                           "drive": null | {"barcode": ..., "slot": n}}
    cartridges/<BARCODE>.vol   the cartridges that are inside the library
    mounts.log            one JSON line per load (see :mod:`.device`)

``load(barcode)`` moves a cartridge from its slot into the drive (unloading the one
there), as ``mtx load`` would; ``export(barcode, dest)`` ejects a cartridge out of
the library (to a vault), ``import_cartridge(path)`` puts one into a free slot.
State changes are written atomically (temporary file + rename). Callers serialise
access with the library lock (see :class:`ebas.storage.backends.tape.store.TapeStore`).
"""

from __future__ import annotations

import json
import os
import shutil

from ebas.errors import StoreFull, UsageError
from ebas.runtime import SYSTEM_CLOCK, Clock
from ebas.storage.backends.tape.device import ChangerStats, TapeLibrary, VolumeMissing
from ebas.storage.backends.tape.records import LABEL_SIZE
from ebas.storage.backends.tape.volume import Volume

__all__ = ["ChangerStats", "VirtualChanger", "VolumeMissing"]


class VirtualChanger(TapeLibrary):
    """The changer and single drive of a virtual library directory."""

    data_start = LABEL_SIZE

    def __init__(self, root: str, *, fsync: bool = True, clock: Clock = SYSTEM_CLOCK):
        super().__init__(root, clock=clock)
        self.fsync = fsync
        self.state_path = os.path.join(root, "library.json")
        self.cart_dir = os.path.join(root, "cartridges")
        self._drive: Volume | None = None
        self.state = self._read()

    # -- creation
    @staticmethod
    def create(root: str, *, slots: int, volumes: int, capacity: int, barcode_prefix: str = "EB",
               created_ns: int = 0) -> None:
        """Make a new library with ``volumes`` blank labelled cartridges in the first slots."""
        if volumes > slots:
            raise UsageError(f"{volumes} cartridges do not fit in {slots} slots")
        os.makedirs(os.path.join(root, "cartridges"), exist_ok=True)
        inventory = {}
        for slot in range(1, slots + 1):
            barcode = f"{barcode_prefix}{slot:04d}L8" if slot <= volumes else None
            if barcode:
                Volume.create_blank(os.path.join(root, "cartridges", f"{barcode}.vol"), barcode, capacity,
                                    created_ns)
            inventory[str(slot)] = barcode
        _write_json(os.path.join(root, "library.json"),
                    {"capacity": capacity, "slots": slots, "inventory": inventory, "drive": None}, fsync=True)

    def _read(self) -> dict:
        try:
            with open(self.state_path, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            raise UsageError(f"no tape library at {self.root} (library.json is missing)",
                             hint="create one by opening tape://PATH?volumes=N&capacity=SIZE&slots=M") from None

    def reload(self, *, force: bool = False) -> None:
        """Re-read the library state (another process may have moved cartridges)."""
        self.state = self._read()

    def _save(self) -> None:
        _write_json(self.state_path, self.state, fsync=self.fsync)

    # -- queries
    @property
    def capacity(self) -> int:
        return int(self.state["capacity"])

    def inventory(self) -> dict[int, str | None]:
        """Slot number -> barcode (None for an empty slot); the drive's cartridge keeps its slot."""
        return {int(k): v for k, v in self.state["inventory"].items()}

    def barcodes(self) -> list[str]:
        """Cartridges inside the library, in slot order."""
        return [b for _, b in sorted(self.inventory().items()) if b]

    def present(self, barcode: str) -> bool:
        return super().present(barcode) and os.path.exists(self._cart(barcode))

    def _cart(self, barcode: str) -> str:
        return os.path.join(self.cart_dir, f"{barcode}.vol")

    # -- movement
    def load(self, barcode: str) -> Volume:
        """The cartridge ``barcode`` in the drive (loading it if another one is there)."""
        if self._drive is not None and self._drive.barcode == barcode:
            return self._drive
        self.reload()
        if not self.present(barcode):
            raise VolumeMissing([barcode], "this operation")
        self.unload()
        in_drive = (self.state.get("drive") or {}).get("barcode") == barcode  # left there by an earlier process
        self._drive = Volume(self._cart(barcode), barcode, self.capacity, fsync=self.fsync)
        if not in_drive:
            slot = next(s for s, b in self.inventory().items() if b == barcode)
            self.state["drive"] = {"barcode": barcode, "slot": slot}
            self._save()
            self._mounted(barcode)
        return self._drive

    def unload(self) -> None:
        """Return the drive's cartridge to its slot."""
        if self._drive is not None:
            self._drive.flush()
            self._drive.close()
            self._drive = None
            self.state["drive"] = None
            self._save()

    def export(self, barcode: str, dest_dir: str) -> str:
        """Eject ``barcode`` out of the library into ``dest_dir``; return its new path."""
        if self._drive is not None and self._drive.barcode == barcode:
            self.unload()
        self.reload()
        if not self.present(barcode):
            raise VolumeMissing([barcode], "export")
        os.makedirs(dest_dir, exist_ok=True)
        dest = os.path.join(dest_dir, f"{barcode}.vol")
        shutil.move(self._cart(barcode), dest)
        for slot, b in self.inventory().items():
            if b == barcode:
                self.state["inventory"][str(slot)] = None
        self._save()
        return dest

    def import_cartridge(self, path: str) -> int:
        """Put the cartridge file ``path`` into the first free slot; return the slot."""
        self.reload()
        with open(path, "rb") as f:
            label = Volume.parse_label(f.read(LABEL_SIZE))
        barcode = label["barcode"]
        if barcode in self.barcodes():
            raise UsageError(f"cartridge {barcode} is already in the library")
        free = [s for s, b in sorted(self.inventory().items()) if b is None]
        if not free:
            raise StoreFull(f"no free slot in the tape library at {self.root} to import {barcode}")
        shutil.move(path, self._cart(barcode))
        self.state["inventory"][str(free[0])] = barcode
        self._save()
        return free[0]


def _write_json(path: str, doc: dict, *, fsync: bool) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
