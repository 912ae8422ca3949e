"""Fake ``mt`` (mt-st) and ``mtx`` programs: the real-drive tape path without hardware.

Only what cannot run here is faked: the SCSI changer and the st drive. The two fakes
are small Python scripts written into a temporary directory; ebas runs them as it
would run the real programs (``mt_cmd=`` / ``mtx_cmd=`` in the URL). They share one
JSON state file (slots and barcodes, the drive, the tape position, the block size)
and append every command line to a log. The "drive" is a path that the fake ``mtx
load`` makes a symlink to the cartridge's file (``carts/<BARCODE>.img``, created
empty, i.e. blank, on first load); ebas opens that path and reads and writes whole
blocks on it, positioning with ``lseek`` because a regular file, unlike an st device,
keeps no tape position across opens.

Their output copies the real programs' formats (mtx 1.3 ``status``, mt-st ``status``
and ``tell``), and they fail like them: loading into a full drive, unloading a drive
that is not offline ("Drive needs offline before move"), a command on an empty drive.
``fail`` makes a given command exit 1 with a given message.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPT = r'''
import fcntl, json, os, sys

ROLE, STATE, LOG = {role!r}, {state!r}, {log!r}


def out(text):
    sys.stdout.write(text + "\n")


def die(msg, code=1):
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def mtx(st, args):
    drive = st["drive"]
    cmd = args[0] if args else ""
    nums = [int(a) for a in args[1:] if a.isdigit()]
    if cmd == "status":
        ie = st["ie"]
        out(f"  Storage Changer {{st['changer']}}:1 Drives, {{len(st['slots'])}} Slots ( {{len(ie)}} Import/Export )")
        if drive:
            out(f"Data Transfer Element 0:Full (Storage Element {{drive['source']}} Loaded):VolumeTag = {{drive['barcode']}}")
        else:
            out("Data Transfer Element 0:Empty")
        for n in sorted(st["slots"], key=int):
            bc = st["slots"][n]
            kind = " IMPORT/EXPORT" if int(n) in ie else ""
            tag = "" if bc is None or st["hide_tags"] else f":VolumeTag={{bc}}"
            out(f"      Storage Element {{n}}{{kind}}:{{'Full ' if bc else 'Empty'}}{{tag}}")
    elif cmd == "inventory":
        st["hide_tags"] = False
    elif cmd == "load":
        slot = str(nums[0])
        if drive:
            die(f"Drive 0 Full (Storage Element {{drive['source']}} loaded)")
        if st["slots"].get(slot) is None:
            die(f"source Element Address {{slot}} is Empty")
        bc = st["slots"][slot]
        st["slots"][slot] = None
        st["drive"] = {{"barcode": bc, "source": int(slot)}}
        cart = os.path.join(st["carts"], bc + ".img")
        if not os.path.exists(cart):
            open(cart, "wb").close()
        if os.path.lexists(st["device"]):
            os.unlink(st["device"])
        os.symlink(cart, st["device"])
        st["position"], st["online"], st["polls_left"] = 0, False, st["load_polls"]
        with open(LOG, "a") as f:
            f.write(json.dumps(["#loaded", bc]) + "\n")
        out(f"Loading media from Storage Element {{slot}} into drive 0...done")
    elif cmd == "unload":
        slot = str(nums[0]) if nums else str(drive["source"] if drive else 0)
        if not drive:
            die("Data Transfer Element 0 is Empty")
        if st["online"]:
            die("Drive needs offline before move")
        if st["slots"].get(slot) is not None:
            die(f"Storage Element {{slot}} is Already Full")
        st["slots"][slot] = drive["barcode"]
        st["drive"] = None
        os.unlink(st["device"])
        out(f"Unloading drive 0 into Storage Element {{slot}}...done")
    elif cmd == "transfer":
        a, b = str(nums[0]), str(nums[1])
        if st["slots"].get(a) is None:
            die(f"source Element Address {{a}} is Empty")
        if st["slots"].get(b) is not None:
            die(f"destination Element Address {{b}} is Already Full")
        st["slots"][b], st["slots"][a] = st["slots"][a], None
    else:
        die(f"mtx: unknown command {{cmd}}")


def mt(st, args):
    cmd = args[0] if args else ""
    drive = st["drive"]
    if cmd == "status":
        out("SCSI 2 tape drive:")
        if not drive:
            out("File number=-1, block number=-1, partition=0.")
            out("Tape block size 0 bytes. Density code 0x0 (default).")
            out("Soft error count since last status=0")
            out("General status bits on (50000):")
            out(" DR_OPEN IM_REP_EN")
            return
        if st["polls_left"] > 0:
            st["polls_left"] -= 1
            out("File number=-1, block number=-1, partition=0.")
            out("Tape block size 0 bytes. Density code 0x0 (default).")
            out("Soft error count since last status=0")
            out("General status bits on (10000):")
            out(" IM_REP_EN")
            return
        st["online"] = True
        bits = ["BOT"] if st["position"] == 0 else []
        bits += ["ONLINE"] + (["WR_PROT"] if drive["barcode"] in st["wrprot"] else []) + ["IM_REP_EN"]
        out(f"File number=0, block number={{st['position']}}, partition=0.")
        out(f"Tape block size {{st['blocksize']}} bytes. Density code 0x5e (LTO-8).")
        out("Soft error count since last status=0")
        out("General status bits on (41010000):")
        out(" " + " ".join(bits))
        return
    if not drive:
        die(f"{{st['device']}}: No medium found", 2)
    if cmd == "tell":
        out(f"At block {{st['position']}}.")
    elif cmd == "seek":
        if not st["seek_broken"]:
            st["position"] = int(args[1])
    elif cmd == "rewind":
        st["position"] = 0
    elif cmd == "setblk":
        st["blocksize"] = int(args[1])
    elif cmd == "offline":
        st["position"], st["online"] = 0, False
    else:
        die(f"mt: invalid argument {{cmd!r}}")


def main():
    argv = sys.argv[1:]
    with open(STATE + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(STATE) as f:
            st = json.load(f)
        with open(LOG, "a") as f:
            f.write(json.dumps([ROLE] + argv) + "\n")
        if len(argv) < 3 or argv[0] != "-f":
            die(f"usage: {{ROLE}} -f DEVICE COMMAND")
        device, args = argv[1], argv[2:]
        expected = st["changer"] if ROLE == "mtx" else st["device"]
        if device != expected:
            die(f"{{device}}: No such file or directory")
        key = " ".join([ROLE] + args)
        for pattern, message in st["fail"].items():
            if key.startswith(pattern):
                die(message)
        (mtx if ROLE == "mtx" else mt)(st, args)
        with open(STATE + ".tmp", "w") as f:
            json.dump(st, f)
        os.replace(STATE + ".tmp", STATE)


main()
'''


@dataclass
class FakeLibrary:
    """A fake changer and drive under ``root``; ``url()`` opens ebas on it."""

    root: Path

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def device(self) -> str:
        return str(self.root / "nst0")

    @property
    def changer(self) -> str:
        return str(self.root / "sg3")

    def url(self, catalog_dir: Path | str, **options) -> str:
        opts = {"drive": self.device, "changer": self.changer, "mt_cmd": str(self.root / "bin" / "mt"),
                "mtx_cmd": str(self.root / "bin" / "mtx"), "fsync": "0", **options}
        return f"tape://{catalog_dir}?" + "&".join(f"{k}={v}" for k, v in opts.items())

    def state(self) -> dict:
        return json.loads(self.state_path.read_text())

    def update(self, **changes) -> None:
        st = self.state()
        st.update(changes)
        self.state_path.write_text(json.dumps(st))

    def fail(self, command: str, message: str) -> None:
        """Make every command line starting with ``command`` (e.g. ``"mtx load"``) fail."""
        st = self.state()
        st["fail"][command] = message
        self.state_path.write_text(json.dumps(st))

    def _log(self) -> list[list[str]]:
        log = self.root / "commands.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def commands(self) -> list[list[str]]:
        """Every command run so far: ``[program, "-f", device, args...]``."""
        return [e for e in self._log() if not e[0].startswith("#")]

    def loads(self) -> list[str]:
        """Barcodes moved into the drive by ``mtx load``, in order."""
        return [e[1] for e in self._log() if e[0] == "#loaded"]

    def clear_log(self) -> None:
        (self.root / "commands.log").unlink(missing_ok=True)

    def cartridge(self, barcode: str) -> Path:
        return self.root / "carts" / f"{barcode}.img"


def install(root: Path, slots: dict[int, str | None], *, mailslots: dict[int, str | None] | None = None,
            hide_tags: bool = False, load_polls: int = 0) -> FakeLibrary:
    """Write the fakes under ``root`` with cartridges in ``slots`` (slot -> barcode)."""
    (root / "bin").mkdir(parents=True)
    (root / "carts").mkdir()
    lib = FakeLibrary(root)
    all_slots = {str(n): b for n, b in {**slots, **(mailslots or {})}.items()}
    state = {"slots": all_slots, "ie": sorted(mailslots or {}), "drive": None, "device": lib.device,
             "changer": lib.changer, "carts": str(root / "carts"), "position": 0, "blocksize": 0,
             "online": False, "fail": {}, "wrprot": [], "hide_tags": hide_tags, "load_polls": load_polls,
             "polls_left": 0, "seek_broken": False}
    lib.state_path.write_text(json.dumps(state))
    for role in ("mt", "mtx"):
        path = root / "bin" / role
        body = SCRIPT.format(role=role, state=str(lib.state_path), log=str(root / "commands.log"))
        path.write_text(f"#!{sys.executable} -S\n{body}")
        os.chmod(path, 0o755)
    return lib
