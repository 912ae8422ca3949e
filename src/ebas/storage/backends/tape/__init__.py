"""Tape: append-only volumes in a (virtual) tape library, a changer, and a media catalog.

``tape:///path/to/library`` opens :class:`TapeStore`. The parts: :mod:`.volume` (one
cartridge: label and records), :mod:`.changer` (slots, barcodes, the drive),
:mod:`.catalog` (which object is on which volume at which position) and :mod:`.store`.
Only the virtual library is implemented; driving a real changer (``mtx``) and drive
(``/dev/nst*``) would replace :class:`VirtualChanger` and :class:`Volume`.
"""

from ebas.storage.backends.tape.changer import VirtualChanger, VolumeMissing
from ebas.storage.backends.tape.store import DELETE_REFUSED, TapeStore, recall

__all__ = ["DELETE_REFUSED", "TapeStore", "VirtualChanger", "VolumeMissing", "recall"]
