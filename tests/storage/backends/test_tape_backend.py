"""Tape backend against a virtual tape library directory: conformance and tape behaviour."""

from __future__ import annotations

import io
import os

import pytest

from ebas.errors import IntegrityError, PermissionDenied, StoreFull, UsageError
from ebas.storage.backends.tape import DELETE_REFUSED, TapeStore, VolumeMissing, recall
from ebas.storage.backends.tape.volume import scan
from ebas.storage.testing.conformance import StoreConformance, payload

MiB = 1024 * 1024


class TestTapeConformance(StoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path):
        url = f"tape://{tmp_path}/lib?volumes=4&slots=6&capacity=64MiB&fsync=0"
        return lambda: TapeStore.from_url(url)


# ---------------------------------------------------------------------------- tape behaviour

from ebas.storage.backends.file import FileStore  # noqa: E402

KiB = 1024


def library(tmp_path, volumes=2, capacity="1MiB", slots=None):
    url = f"tape://{tmp_path}/vtl?volumes={volumes}&capacity={capacity}&slots={slots or volumes + 2}&fsync=0"
    return TapeStore.from_url(url)


def test_capabilities_are_honest(tmp_path):
    caps = library(tmp_path).capabilities
    assert (caps.random_access, caps.deletes, caps.cold_tier, caps.parallel_writes) == (False, False, True, 1)


def test_no_library_without_creation_options(tmp_path):
    with pytest.raises(UsageError) as info:
        TapeStore.from_url(f"tape://{tmp_path}/nothing")
    assert "volumes=N&capacity=SIZE" in info.value.hint


def test_spanning_to_the_next_volume_and_full_library(tmp_path):
    tape = library(tmp_path, volumes=2, capacity="1MiB")
    a, b, c = payload(700 * KiB, 1), payload(700 * KiB, 2), payload(700 * KiB, 3)
    tape.put("data/a", a)
    tape.put("data/b", b)  # does not fit in what is left of EB0001L8: spans onto EB0002L8
    spots = tape.where("data/b")
    assert [bc for bc, _, _ in spots] == ["EB0001L8", "EB0002L8"]
    assert sum(length for _, _, length in spots) == len(b)
    with pytest.raises(StoreFull) as info:
        tape.put("data/c", c)
    assert "no writable volume" in info.value.message and "import blank cartridges" in info.value.hint
    assert [i.name for i in tape.list()] == ["data/a", "data/b"]  # nothing partial catalogued
    assert tape.get("data/a") == a and tape.get("data/b") == b
    assert tape.get("data/b", 300 * KiB, 200 * KiB) == b[300 * KiB:500 * KiB]  # a range across the span
    # a blank cartridge imported into a free slot makes room again
    blank_dir = tmp_path / "blank"
    other = library(blank_dir, volumes=1, capacity="1MiB")
    other.close()
    os.rename(blank_dir / "vtl" / "cartridges" / "EB0001L8.vol", tmp_path / "EB0001L8.vol")
    with pytest.raises(UsageError):  # same barcode as one inside: refused
        tape.import_volume(str(tmp_path / "EB0001L8.vol"))


def test_full_tape_then_blank_cartridge(tmp_path):
    tape = library(tmp_path, volumes=1, capacity="1MiB")
    tape.put("data/a", payload(900 * KiB, 1))
    with pytest.raises(StoreFull):
        tape.put("data/b", payload(300 * KiB, 2))
    assert tape.changer.barcodes() == ["EB0001L8"]
    eod = tape.catalog.volume("EB0001L8").eod
    assert os.path.getsize(tmp_path / "vtl" / "cartridges" / "EB0001L8.vol") >= eod  # only the cut write is after eod


def test_missing_volume_names_the_barcode_to_load(tmp_path):
    tape = library(tmp_path, volumes=3, capacity="1MiB")
    objs = {f"data/{i}": payload(300 * KiB, i) for i in range(7)}  # fills EB0001L8, EB0002L8, part of EB0003L8
    for name, data in objs.items():
        tape.put(name, data)
    vault = tmp_path / "vault"
    tape.export_volume("EB0002L8", str(vault))
    on_two = [n for n in objs if any(bc == "EB0002L8" for bc, _, _ in tape.where(n))]
    assert on_two
    with pytest.raises(VolumeMissing) as info:
        tape.get(on_two[0])
    assert "load barcode(s) EB0002L8" in info.value.message and info.value.barcodes == ["EB0002L8"]
    with pytest.raises(VolumeMissing):
        list(tape.read_in_order(objs))  # checked before anything is read
    tape.export_volume("EB0003L8", str(vault))
    with pytest.raises(VolumeMissing) as info:
        recall(tape, FileStore(tmp_path / "disk", fsync=False))
    assert info.value.barcodes == ["EB0002L8", "EB0003L8"]  # every missing barcode at once
    tape.import_volume(str(vault / "EB0002L8.vol"))
    tape.import_volume(str(vault / "EB0003L8.vol"))
    assert tape.get(on_two[0]) == objs[on_two[0]]


def test_restore_mounts_each_volume_once_in_order(tmp_path):
    tape = library(tmp_path, volumes=3, capacity="1MiB")
    objs = {f"data/{i:02d}": payload(200 * KiB + i, i) for i in range(12)}
    for name, data in objs.items():
        tape.put(name, data)
    tape.put("locks/x", b"lock")  # kept on disk, deletable
    tape.changer.stats.loads.clear()
    tape.changer.unload()
    disk = FileStore(tmp_path / "restore", fsync=False)
    names = sorted(objs, reverse=True) + ["locks/x"]  # asked in the worst order
    result = recall(tape, disk, names)
    assert result["loads"] == ["EB0001L8", "EB0002L8", "EB0003L8"]  # each cartridge once, in order
    assert result["objects"] == 13
    assert {n: disk.get(n) for n in objs} == objs and disk.get("locks/x") == b"lock"


def test_delete_is_refused_except_for_disk_prefixes(tmp_path):
    tape = library(tmp_path)
    tape.put("data/a", b"x")
    with pytest.raises(PermissionDenied) as info:
        tape.delete("data/a")
    assert DELETE_REFUSED in info.value.message
    assert "tape is an archive tier; prune in place is not supported" in info.value.message
    tape.put("locks/l1", b"lock")
    assert [i.name for i in tape.list("locks/")] == ["locks/l1"]
    tape.delete("locks/l1")
    assert not tape.exists("locks/l1")


def test_catalog_and_cartridges_persist_and_records_describe_themselves(tmp_path):
    tape = library(tmp_path, capacity="4MiB")
    tape.put("config", b"cfg")
    with tape.open_write("data/stream") as w:
        for i in range(5):
            w.write(payload(100 * KiB, i))
    tape.close()
    again = library(tmp_path, capacity="4MiB")
    assert again.get("config") == b"cfg" and again.stat("data/stream").size == 500 * KiB
    (barcode, position, _), = again.where("config")
    records = list(scan(str(tmp_path / "vtl" / "cartridges" / f"{barcode}.vol")))
    assert [r.name for r in records] == ["config", "data/stream"] and records[0].position == position


def test_corruption_on_tape_is_detected(tmp_path):
    tape = library(tmp_path)
    tape.put("data/a", payload(10_000))
    (barcode, position, _), = tape.where("data/a")
    path = tmp_path / "vtl" / "cartridges" / f"{barcode}.vol"
    with open(path, "r+b") as f:
        f.seek(position + 100)
        byte = f.read(1)
        f.seek(position + 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    tape.changer.unload()
    with pytest.raises(IntegrityError):
        tape.get("data/a")


def test_interrupted_write_is_overwritten_by_the_next(tmp_path):
    tape = library(tmp_path, capacity="4MiB")
    tape.put("data/a", b"a" * 1000)
    eod = tape.catalog.volume("EB0001L8").eod

    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise OSError("source died")

    with pytest.raises(OSError):
        tape._write("data/b", 5000, Broken())
    assert not tape.exists("data/b") and tape.catalog.volume("EB0001L8").eod == eod
    tape.put("data/c", b"c" * 10)
    assert tape.where("data/c")[0][1] == eod  # written where the cut record began
    assert tape.get("data/a") == b"a" * 1000 and tape.get("data/c") == b"c" * 10
