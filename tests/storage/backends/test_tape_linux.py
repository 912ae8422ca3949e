"""The real-library tape path (``mtx`` changer, Linux ``st`` drive) against fake mt/mtx.

No tape hardware here: ``tape_fakes`` writes fake ``mt`` and ``mtx`` programs that keep
their state in a JSON file and log every command; the "drive" is a symlink the fake
``mtx load`` points at a regular file per cartridge. ebas runs the same code as on a
real library; the data path writes and reads whole blocks on that file. What this
cannot show: real drive timing, SCSI sense handling, filemark and early-warning
behaviour of a real drive (the early warning is simulated by replacing the device write).
"""

from __future__ import annotations

import errno
import json
import os

import pytest
from tape_fakes import install

from ebas.errors import IntegrityError, PermissionDenied, StoreError, UsageError
from ebas.runtime import FakeClock
from ebas.storage.backends.file import FileStore
from ebas.storage.backends.tape import TapeStore, VolumeMissing, read_mount_log, recall, stdrive
from ebas.storage.backends.tape.mtparse import ParseError, parse_mt_status, parse_mtx_status, parse_tell
from ebas.storage.backends.tape.records import HEADER, RECORD_MAGIC, parse_label
from ebas.storage.backends.tape.tools import TapeCommandFailed, TapeToolMissing
from ebas.storage.testing.conformance import StoreConformance, payload

KiB = 1024
BS = 64 * KiB
BARCODES = ["EB0001L8", "EB0002L8", "EB0003L8"]


@pytest.fixture
def fake(tmp_path):
    return install(tmp_path / "hw", {1: BARCODES[0], 2: BARCODES[1], 3: BARCODES[2], 4: None}, mailslots={5: None})


def open_tape(fake, tmp_path, **options):
    return TapeStore.from_url(fake.url(tmp_path / "cat", block_size="64KiB", **options))


def args(fake):
    """The commands run, without program path and device: ``["mtx load 1 0", "mt tell", ...]``."""
    return [" ".join([c[0], *c[3:]]) for c in fake.commands()]


class TestRealLibraryConformance(StoreConformance):
    """The Store contract on the real-library code path (fake mt/mtx, 256 KiB blocks)."""

    @pytest.fixture
    def make_store(self, tmp_path):
        fake = install(tmp_path / "hw", {1: BARCODES[0], 2: BARCODES[1], 3: None})
        url = fake.url(tmp_path / "cat", block_size="256KiB", capacity="64MiB")
        return lambda: TapeStore.from_url(url)

    @pytest.mark.skip(reason="the library serialises writers; run on the virtual library (each fake mt/mtx "
                             "command is a process, which makes these take ~10 s here)")
    def test_concurrent_writers_distinct_objects(self):
        pass

    @pytest.mark.skip(reason="as above")
    def test_concurrent_writers_same_object_never_torn(self):
        pass


# ---------------------------------------------------------------------------- parsing real output
MTX_STATUS = """\
  Storage Changer /dev/sg3:2 Drives, 6 Slots ( 1 Import/Export )
Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = EB0003L8                        
Data Transfer Element 1:Empty
      Storage Element 1:Full :VolumeTag=EB0001L8                        
      Storage Element 2:Full 
      Storage Element 3:Empty
      Storage Element 4:Full :VolumeTag=EB0004L8:AlternateVolumeTag=XYZ
      Storage Element 5:Empty
      Storage Element 6 IMPORT/EXPORT:Full :VolumeTag=CLN001L1
"""


def test_parse_mtx_status():
    st = parse_mtx_status(MTX_STATUS)
    assert st.drives[0].full and st.drives[0].barcode == "EB0003L8" and st.drives[0].source == 3
    assert not st.drives[1].full and st.drives[1].barcode is None
    assert {n: e.barcode for n, e in st.storage().items()} == {1: "EB0001L8", 2: None, 3: None, 4: "EB0004L8",
                                                               5: None}
    assert st.storage()[2].full and st.untagged() == [2]
    assert list(st.mailslots()) == [6] and st.mailslots()[6].barcode == "CLN001L1"
    assert st.find("EB0003L8") == ("drive", 0) and st.find("EB0001L8") == ("slot", 1)
    assert st.find("CLN001L1") == ("mailslot", 6) and st.find("NOPE") is None
    unknown = parse_mtx_status("Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = A1\n")
    assert unknown.drives[0].source is None and unknown.drives[0].barcode == "A1"
    with pytest.raises(ParseError):
        parse_mtx_status("mtx: cannot open SCSI device '/dev/sg3'\n")


def test_parse_mt_status_and_tell():
    online = parse_mt_status("SCSI 2 tape drive:\nFile number=0, block number=0, partition=0.\n"
                             "Tape block size 0 bytes. Density code 0x19 (DLT 10GB).\n"
                             "Soft error count since last status=0\nGeneral status bits on (45010000):\n"
                             " BOT WR_PROT ONLINE IM_REP_EN\n")
    assert online.online and online.write_protected and not online.door_open
    assert (online.file_number, online.block_number, online.block_size, online.density) == (0, 0, 0, "DLT 10GB")
    empty = parse_mt_status("SCSI 2 tape drive:\nFile number=-1, block number=-1, partition=0.\n"
                            "Tape block size 262144 bytes. Density code 0x0 (default).\n"
                            "Soft error count since last status=0\nGeneral status bits on (50000):\n"
                            " DR_OPEN IM_REP_EN\n")
    assert empty.door_open and not empty.online and empty.block_size == 262144 and empty.block_number == -1
    assert parse_tell("At block 1234.\n") == 1234
    for bad in (lambda: parse_tell("mt: /dev/nst0: Input/output error"), lambda: parse_mt_status("garbage")):
        with pytest.raises(ParseError):
            bad()


# ---------------------------------------------------------------------------- data path
def test_objects_round_trip_in_fixed_blocks(fake, tmp_path):
    tape = open_tape(fake, tmp_path)
    small, big = b"config bytes", payload(300 * KiB + 5, 1)
    tape.put("config", small)
    with tape.open_write("data/stream") as w:
        w.write(big[:100_000])
        w.write(big[100_000:])
    uid = tape.begin_upload("data/upload")
    tape.upload_part(uid, 2, b"tail")
    tape.upload_part(uid, 1, big[:70_000])
    tape.complete(uid)
    assert tape.get("config") == small and tape.get("data/stream") == big
    assert tape.get("data/upload") == big[:70_000] + b"tail"
    assert tape.get("data/stream", 65_530, 70_000) == big[65_530:135_530]  # a range across block boundaries
    # the layout on the cartridge: label in block 0, every record on a block boundary, whole blocks only
    image = fake.cartridge(BARCODES[0]).read_bytes()
    label = parse_label(image[:BS])
    assert label["barcode"] == BARCODES[0] and label["block_size"] == BS and len(image) % BS == 0
    spots = [tape.where(n)[0] for n in ("config", "data/stream", "data/upload")]
    assert [pos for _, pos, _ in spots] == [BS, 2 * BS, 7 * BS]  # 300 KiB + header -> 5 blocks
    for _, pos, _ in spots:
        assert HEADER.unpack(image[pos:pos + HEADER.size])[0] == RECORD_MAGIC
    sent = args(fake)
    assert sent[:5] == ["mtx status", "mtx load 1 0", "mt status", f"mt setblk {BS}", "mt rewind"]
    write_at = sent.index(f"mt seek {2 * BS // BS}")
    assert sent[write_at + 1] == "mt tell"  # the position is checked before every write
    assert fake.loads() == [BARCODES[0]]


def test_spanning_to_the_next_cartridge_by_capacity(fake, tmp_path):
    tape = open_tape(fake, tmp_path, capacity="1MiB")
    a, b = payload(600 * KiB, 1), payload(700 * KiB, 2)
    tape.put("data/a", a)
    tape.put("data/b", b)  # the rest of EB0001L8, then EB0002L8
    assert [bc for bc, _, _ in tape.where("data/b")] == BARCODES[:2]
    assert tape.get("data/a") == a and tape.get("data/b") == b
    assert tape.get("data/b", 300 * KiB, 200 * KiB) == b[300 * KiB:500 * KiB]
    assert fake.cartridge(BARCODES[0]).stat().st_size <= 1024 * KiB
    assert fake.loads() == [BARCODES[0], BARCODES[1], BARCODES[0], BARCODES[1], BARCODES[0], BARCODES[1]]


def early_warning(monkeypatch, limits: dict[str, tuple[int, str]]):
    """Make writes to a cartridge fail past ``limit`` blocks, as a drive does at early warning:
    ``"enospc"`` raises ENOSPC, ``"short"`` returns a short count."""
    real = stdrive.device_write

    def write(fd, data):
        cart = os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).removesuffix(".img")
        if cart in limits and os.lseek(fd, 0, os.SEEK_CUR) >= limits[cart][0] * BS:
            if limits[cart][1] == "short":
                return real(fd, bytes(data)[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(stdrive, "device_write", write)


def test_end_of_medium_in_a_record_spans_to_the_next_cartridge(fake, tmp_path, monkeypatch):
    tape = open_tape(fake, tmp_path)  # no nominal capacity: write until the drive says the medium ends
    early_warning(monkeypatch, {BARCODES[0]: (10, "enospc"), BARCODES[1]: (12, "short")})
    first, second, third = payload(200 * KiB, 1), payload(600 * KiB, 2), payload(900 * KiB, 3)
    tape.put("data/first", first)  # blocks 1-4 of EB0001L8
    uid = tape.begin_upload("data/second")
    tape.upload_part(uid, 1, second[:300 * KiB])
    tape.upload_part(uid, 2, second[300 * KiB:])
    tape.complete(uid)  # cut at block 10 of EB0001L8: written again, whole, on EB0002L8
    with tape.open_write("data/third") as w:
        w.write(third)  # cut by a short write at block 12 of EB0002L8: goes to EB0003L8
    assert [bc for bc, _, _ in tape.where("data/second")] == [BARCODES[1]]
    assert [bc for bc, _, _ in tape.where("data/third")] == [BARCODES[2]]
    vols = tape.catalog.volumes()
    assert vols[BARCODES[0]].full and vols[BARCODES[0]].eod == 5 * BS  # the cut record is not catalogued
    assert vols[BARCODES[1]].full and not vols[BARCODES[2]].full
    assert tape.get("data/first") == first and tape.get("data/second") == second and tape.get("data/third") == third


def test_recall_loads_each_needed_cartridge_once_in_order(fake, tmp_path):
    tape = open_tape(fake, tmp_path, capacity="1MiB")
    objs = {f"data/{i:02d}": payload(400 * KiB + i, i) for i in range(6)}  # three cartridges, two spans
    for name, data in objs.items():
        tape.put(name, data)
    assert {bc for n in objs for bc, _, _ in tape.where(n)} == set(BARCODES)
    spans = [[bc for bc, _, _ in tape.where(n)] for n in objs if len(tape.where(n)) > 1]
    assert spans == [BARCODES[:2], BARCODES[1:]]
    assert all(length >= 256 * KiB for n in objs for _, _, length in tape.where(n)[1:])  # tails kept together
    fake.clear_log()
    mounts_before = len(read_mount_log(str(tmp_path / "cat")))
    disk = FileStore(tmp_path / "restore", fsync=False)
    result = recall(tape, disk, sorted(objs, reverse=True))  # asked in the worst order
    assert result["loads"] == BARCODES and fake.loads() == BARCODES
    assert {n: disk.get(n) for n in objs} == objs
    moves = [a for a in args(fake) if a.startswith(("mtx load", "mtx unload", "mt offline"))]
    assert moves == ["mt offline", "mtx unload 3 0", "mtx load 1 0", "mt offline", "mtx unload 1 0",
                     "mtx load 2 0", "mt offline", "mtx unload 2 0", "mtx load 3 0"]
    assert [m["barcode"] for m in read_mount_log(str(tmp_path / "cat"))[mounts_before:]] == BARCODES


# ---------------------------------------------------------------------------- operators and failures
def test_missing_cartridge_names_the_barcode_and_the_mail_slot(fake, tmp_path):
    tape = open_tape(fake, tmp_path, capacity="1MiB")
    tape.put("data/a", payload(900 * KiB, 1))
    tape.put("data/b", payload(300 * KiB, 2))  # EB0002L8
    assert tape.export_volume(BARCODES[1], "") == "import/export element 5"
    with pytest.raises(VolumeMissing) as info:
        tape.get("data/b")
    assert info.value.barcodes == [BARCODES[1]] and "load barcode(s) EB0002L8" in info.value.message
    assert "import/export element 5" in info.value.hint and "transfer 5 SLOT" in info.value.hint
    with pytest.raises(UsageError):
        tape.import_volume("4")  # not a mail slot
    assert tape.import_volume("5") == 2
    assert tape.get("data/b") == payload(300 * KiB, 2)
    tape.changer.unload()
    st = fake.state()  # an operator takes the cartridge away altogether
    st["slots"]["2"] = None
    fake.state_path.write_text(json.dumps(st))
    with pytest.raises(VolumeMissing) as info:
        tape.get("data/b")
    assert "mail slot" in info.value.hint


def test_failing_command_says_what_failed_where_and_what_to_do(fake, tmp_path):
    tape = open_tape(fake, tmp_path)
    fake.fail("mtx load", "MOVE MEDIUM from Element Address 4097 to 256 Failed")
    with pytest.raises(TapeCommandFailed) as info:
        tape.put("data/a", b"x")
    err = info.value
    assert f"'{fake.root}/bin/mtx -f {fake.changer} load 1 0' failed on {fake.changer}" in err.message
    assert "MOVE MEDIUM from Element Address 4097 to 256 Failed" in err.message and "mtx -f DEVICE status" in err.hint
    assert not list(tape.list())  # nothing catalogued
    fake.update(fail={})
    fake.update(seek_broken=True)
    tape.put("data/a", b"x")  # block 1 right after the label: no seek needed
    with pytest.raises(StoreError) as info:
        tape.put("data/b", b"y")
    assert "the drive reports block 0; refusing to write" in info.value.message
    assert [i.name for i in tape.list()] == ["data/a"]


def test_missing_programs_are_named_with_the_package(fake, tmp_path):
    tape = open_tape(fake, tmp_path, mtx_cmd=str(tmp_path / "nowhere" / "mtx"))
    with pytest.raises(TapeToolMissing) as info:
        tape.put("data/a", b"x")
    assert "the mtx program" in info.value.message and fake.changer in info.value.message
    assert "install the mtx package" in info.value.hint
    tape = open_tape(fake, tmp_path, mt_cmd="ebas-no-such-mt")
    with pytest.raises(TapeToolMissing) as info:
        tape.put("data/a", b"x")
    assert fake.device in info.value.message and "mt-st" in info.value.hint


def test_catalog_directory_remembers_the_library(fake, tmp_path):
    tape = open_tape(fake, tmp_path)
    tape.put("data/a", b"abc")
    again = TapeStore.from_url(f"tape://{tmp_path}/cat?mt_cmd={fake.root}/bin/mt&mtx_cmd={fake.root}/bin/mtx")
    assert again.changer.drive == fake.device and again.changer.block_size == BS
    assert again.get("data/a") == b"abc" and [i.name for i in again.list()] == ["data/a"]
    with pytest.raises(UsageError) as info:
        TapeStore.from_url(fake.url(tmp_path / "cat", block_size="128KiB"))
    assert "block_size=65536" in info.value.hint
    with pytest.raises(UsageError):
        TapeStore.from_url(f"tape://{tmp_path}/other?drive=/dev/nst0")  # no changer
    TapeStore.from_url(f"tape://{tmp_path}/virtual?volumes=1&capacity=1MiB")
    with pytest.raises(UsageError) as info:
        TapeStore.from_url(fake.url(tmp_path / "virtual"))
    assert "virtual tape library" in info.value.message
    with pytest.raises(UsageError):
        open_tape(fake, tmp_path, drive_index=3).put("data/b", b"x")  # the changer has drive 0 only


def test_labels_protect_foreign_and_mismatched_cartridges(fake, tmp_path):
    fake.cartridge(BARCODES[0]).write_bytes(b"tar archive from someone else".ljust(BS, b"\0"))
    tape = open_tape(fake, tmp_path)
    with pytest.raises(StoreError) as info:
        tape.put("data/a", b"x")
    assert "not an ebas tape volume; refusing to overwrite" in info.value.message
    assert fake.cartridge(BARCODES[0]).read_bytes().startswith(b"tar archive")
    other = tmp_path / "other"
    other_fake = install(other / "hw", {1: BARCODES[1]})
    open_tape(other_fake, other).put("data/z", b"z")  # a real EB0002L8 label ...
    fake.cartridge(BARCODES[2]).write_bytes(other_fake.cartridge(BARCODES[1]).read_bytes())  # ... on EB0003L8
    tape.changer.unload()
    with pytest.raises(IntegrityError) as info:
        tape.changer.load(BARCODES[2])
    assert "labelled 'EB0002L8'" in info.value.message
    wrong_size = tmp_path / "wrong"
    small = install(wrong_size / "hw", {1: BARCODES[1]})
    TapeStore.from_url(small.url(wrong_size / "cat", block_size="32KiB")).put("data/z", b"z")
    fake.cartridge(BARCODES[1]).write_bytes(small.cartridge(BARCODES[1]).read_bytes())
    with pytest.raises(StoreError) as info:
        tape.changer.load(BARCODES[1])
    assert "32768-byte blocks" in info.value.message and "block_size=32768" in info.value.hint


def test_write_protected_cartridge_is_refused(fake, tmp_path):
    fake.update(wrprot=[BARCODES[0]])
    tape = open_tape(fake, tmp_path)
    with pytest.raises(PermissionDenied) as info:
        tape.put("data/a", b"x")
    assert "EB0001L8" in info.value.message and "write-protect" in info.value.hint


def test_cartridge_left_in_the_drive_is_used_and_a_foreign_one_put_back(fake, tmp_path):
    tape = open_tape(fake, tmp_path)
    tape.put("data/a", b"first")
    fake.clear_log()
    second_process = open_tape(fake, tmp_path)
    assert second_process.get("data/a") == b"first" and fake.loads() == []  # no move needed
    # another program leaves EB0003L8 in the drive
    second_process.changer._drive.close()
    st = fake.state()
    st["slots"]["1"], st["slots"]["3"] = BARCODES[0], None
    st["drive"] = {"barcode": BARCODES[2], "source": 3}
    fake.state_path.write_text(json.dumps(st))
    os.unlink(fake.device)
    os.symlink(fake.cartridge(BARCODES[2]), fake.device)
    third_process = open_tape(fake, tmp_path)
    assert third_process.get("data/a") == b"first"
    assert [a for a in args(fake) if a.startswith(("mtx load", "mtx unload"))] == ["mtx unload 3 0", "mtx load 1 0"]
    third_process.close()
    assert fake.state()["drive"] is None and fake.state()["slots"]["1"] == BARCODES[0]


def test_unscanned_barcodes_trigger_one_inventory(tmp_path):
    fake = install(tmp_path / "hw", {1: BARCODES[0], 2: None}, hide_tags=True)
    tape = open_tape(fake, tmp_path)
    tape.put("data/a", b"x")
    assert args(fake).count("mtx inventory") == 1 and tape.where("data/a")[0][0] == BARCODES[0]


def test_waits_for_the_drive_to_come_online(tmp_path):
    fake = install(tmp_path / "hw", {1: BARCODES[0]}, load_polls=3)
    clock = FakeClock()
    start = clock.monotonic()
    tape = TapeStore(str(tmp_path / "cat"), drive=fake.device, changer=fake.changer, block_size=BS,
                     mt_cmd=str(fake.root / "bin" / "mt"), mtx_cmd=str(fake.root / "bin" / "mtx"), clock=clock)
    tape.put("data/a", b"x")
    assert args(fake).count("mt status") == 4 and clock.monotonic() - start == pytest.approx(6.0)
    slow = install(tmp_path / "hw2", {1: BARCODES[0]}, load_polls=1000)
    tape = TapeStore(str(tmp_path / "cat2"), drive=slow.device, changer=slow.changer, block_size=BS,
                     mt_cmd=str(slow.root / "bin" / "mt"), mtx_cmd=str(slow.root / "bin" / "mtx"), clock=clock,
                     load_timeout=5)
    with pytest.raises(StoreError) as info:
        tape.put("data/a", b"x")
    assert "did not become ready within 5s after loading EB0001L8" in info.value.message


def test_read_errors_are_integrity_errors(fake, tmp_path, monkeypatch):
    tape = open_tape(fake, tmp_path)
    tape.put("data/a", payload(200 * KiB, 1))
    tape.put("data/b", b"b")
    with open(fake.cartridge(BARCODES[0]), "r+b") as f:
        f.truncate(4 * BS)  # data/a ends in block 4: cut it
    with pytest.raises(IntegrityError) as info:
        tape.get("data/a")
    assert "short read at block 4" in info.value.message

    def broken(fd, n):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(stdrive, "device_read", broken)
    with pytest.raises(IntegrityError) as info:
        tape.get("data/b")
    assert "read error on tape volume EB0001L8" in info.value.message and "another copy" in info.value.hint
