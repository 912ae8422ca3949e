"""Running ``mt`` (mt-st) and ``mtx``: one method per command, errors an admin can act on.

Every command is run without a shell, with a timeout, and logged at debug level. A
missing program raises :class:`TapeToolMissing`; a non-zero exit raises
:class:`TapeCommandFailed` naming the command line, the device, what the tool said and
what to try.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from ebas.errors import StoreError
from ebas.storage.backends.tape.mtparse import ChangerStatus, DriveStatus, parse_mt_status, parse_mtx_status, parse_tell

log = logging.getLogger("ebas.storage.tape")

PACKAGES = {"mt": "mt-st", "mtx": "mtx"}
HINTS = {
    "mt": ("check that a cartridge is loaded and the drive is ready ('mt -f DEVICE status'), that "
           "DEVICE is the non-rewinding st device (/dev/nstN) and that this mt is mt-st's "
           "(GNU cpio's mt has no seek/tell; pass mt_cmd=mt-st)"),
    "mtx": ("check the changer with 'mtx -f DEVICE status' (is DEVICE the changer's sg device, is a "
            "cartridge stuck in the drive, is the mail slot open?); 'mtx -f DEVICE inventory' rescans barcodes"),
}


class TapeToolMissing(StoreError):
    """``mt`` or ``mtx`` is not installed (or not where the URL says)."""


class TapeCommandFailed(StoreError):
    """``mt`` or ``mtx`` exited with an error."""

    def __init__(self, message: str, *, argv: list[str], output: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.argv = argv
        self.output = output


def default_mt() -> str:
    """``mt-st`` if installed under that name (Debian), else ``mt``."""
    return "mt-st" if shutil.which("mt-st") else "mt"


class Tool:
    """One of the two programs, bound to a device."""

    role = ""

    def __init__(self, cmd: str, device: str, *, timeout: float = 900.0):
        self.cmd, self.device, self.timeout = cmd, device, timeout

    def run(self, *args: str) -> str:
        """Run ``CMD -f DEVICE ARGS...`` and return its standard output."""
        argv = [self.cmd, "-f", self.device, *args]
        log.debug("tape: %s", " ".join(argv))
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            pkg = PACKAGES[self.role]
            raise TapeToolMissing(
                f"cannot drive {self.device}: the {self.role} program {self.cmd!r} is not installed or not on PATH",
                hint=f"install the {pkg} package (e.g. 'apt-get install {pkg}'), or give its path with "
                     f"{self.role}_cmd=/path/to/{self.role} in the tape:// URL") from None
        except subprocess.TimeoutExpired:
            raise TapeCommandFailed(f"'{' '.join(argv)}' did not finish within {self.timeout:.0f}s",
                                    argv=argv, output="", hint=HINTS[self.role]) from None
        if res.returncode != 0:
            said = (res.stderr.strip() or res.stdout.strip() or "no message").splitlines()[-1]
            raise TapeCommandFailed(f"'{' '.join(argv)}' failed on {self.device} (exit {res.returncode}): {said}",
                                    argv=argv, output=res.stderr + res.stdout, hint=HINTS[self.role])
        return res.stdout


class Mt(Tool):
    """The tape drive, through mt-st's ``mt``."""

    role = "mt"

    def status(self) -> DriveStatus:
        return parse_mt_status(self.run("status"))

    def tell(self) -> int:
        """The current logical block number."""
        return parse_tell(self.run("tell"))

    def seek(self, block: int) -> None:
        """Locate to logical block ``block``."""
        self.run("seek", str(block))

    def setblk(self, size: int) -> None:
        """Fixed-block mode with ``size``-byte blocks."""
        self.run("setblk", str(size))

    def rewind(self) -> None:
        self.run("rewind")

    def offline(self) -> None:
        """Rewind and eject (needed by most libraries before ``mtx unload``)."""
        self.run("offline")


class Mtx(Tool):
    """The medium changer, through ``mtx``."""

    role = "mtx"

    def status(self) -> ChangerStatus:
        return parse_mtx_status(self.run("status"))

    def load(self, slot: int, drive: int) -> None:
        self.run("load", str(slot), str(drive))

    def unload(self, slot: int, drive: int) -> None:
        self.run("unload", str(slot), str(drive))

    def transfer(self, source: int, dest: int) -> None:
        self.run("transfer", str(source), str(dest))

    def inventory(self) -> None:
        """Make the library rescan its slots and barcodes."""
        self.run("inventory")
