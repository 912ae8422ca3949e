"""Tape: append-only volumes in a tape library, a changer, and a media catalog.

``tape:///path/to/library`` opens :class:`TapeStore`. The parts: :mod:`.records` (the
on-tape format), :mod:`.device` (the two interfaces the store drives: a cartridge in
the drive and a library), :mod:`.catalog` (which object is on which volume at which
position) and :mod:`.store`. Two implementations of the interfaces:

* a virtual library directory: :mod:`.changer` and :mod:`.volume` (one file per cartridge);
* a real library: :mod:`.mtxlibrary` (a SCSI changer through ``mtx``) and :mod:`.stdrive`
  (a Linux ``st`` drive through ``mt`` and fixed-size blocks), with :mod:`.tools` and
  :mod:`.mtparse` running the programs and reading what they print. This path is
  tested against fake ``mt``/``mtx`` programs only, never against hardware.
"""

from ebas.storage.backends.tape.changer import VirtualChanger
from ebas.storage.backends.tape.device import ChangerStats, EndOfTape, VolumeMissing, read_mount_log
from ebas.storage.backends.tape.store import DELETE_REFUSED, TapeStore, recall

__all__ = ["DELETE_REFUSED", "ChangerStats", "EndOfTape", "TapeStore", "VirtualChanger", "VolumeMissing",
           "read_mount_log", "recall"]
