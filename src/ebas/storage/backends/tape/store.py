"""``TapeStore``: a repository on a tape library, virtual or real.

URL: ``tape:///PATH[?option=value&...]`` (``tape://relative/path`` also works). PATH is
a virtual library directory (see :mod:`.changer`), or, with ``drive`` and ``changer``,
the directory holding the media catalog and state of a real library (see
:mod:`.mtxlibrary`). Options:

``volumes``, ``capacity``, ``slots``, ``barcode_prefix``
                  create the virtual library on first use with this many blank
                  cartridges of this capacity (e.g. ``capacity=400GiB``) in ``slots``
                  slots. With a real library ``capacity`` is optional: without it a
                  cartridge is written until the drive reports the end of the medium
``drive``, ``changer``, ``drive_index``
                  a real library: the non-rewinding st device (``/dev/nst0``), the
                  changer's SCSI generic device (``/dev/sg3``), the changer's number
                  for that drive (default 0)
``block_size``    fixed block size on a real drive (default 256KiB)
``mt_cmd``, ``mtx_cmd``, ``load_timeout``
                  the programs to run (default ``mt-st`` or ``mt``, and ``mtx``) and
                  how long to wait for a loaded cartridge to come online (seconds)
``catalog``       the media catalog database (default ``PATH/catalog.db``)
``disk_prefixes`` comma-separated name prefixes kept on disk beside the library, not on
                  tape, because they must stay deletable (default ``locks/``)
``fsync``         ``0`` skips fsync (tests and benchmarks only)

Objects are appended to the current cartridge as records; an object that does not fit
continues on the next blank cartridge (spanning; the last ``SPAN_TAIL`` bytes of a split
object stay together, see :func:`keep_tail`), and a record cut by the end of the medium
is written again, whole, on the next cartridge. The media catalog records where
every segment is. Reads use the catalog, load the cartridge and seek (slow on real
tape); :meth:`TapeStore.read_in_order` and :func:`recall` read many objects mounting
each cartridge once, in the order they were written. Deletes are refused: tape is an
archive tier. Resumable uploads stage their parts on disk (``PATH/staging``) and go to
tape in one pass on ``complete``; streams are spooled to disk and written on ``commit``.
Only one process drives the library at a time (a lock file serialises operations).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import threading
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from ebas.errors import ObjectNotFound, PermissionDenied, StoreFull, UsageError
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.backends._cloud import Options, as_bool, as_prefixes, as_seconds, as_size
from ebas.storage.backends.file import FileStore
from ebas.storage.backends.tape.catalog import MediaCatalog, Segment, VolumeState, fresh_volume
from ebas.storage.backends.tape.changer import VirtualChanger
from ebas.storage.backends.tape.device import EndOfTape, TapeLibrary, VolumeMissing
from ebas.storage.backends.tape.records import MIN_SEGMENT
from ebas.storage.backends.tape.spool import ConcatReader, SpoolWriter
from ebas.storage.base import (
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PartInfo,
    PendingUpload,
    Store,
    check_name,
    check_part_number,
    range_bounds,
)
from ebas.storage.redact import redact_url

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
SPAN_TAIL = 256 * 1024  # a split object keeps at least this much of its end on its last cartridge
DELETE_REFUSED = ("tape is an archive tier; prune in place is not supported — export a fresh copy instead")

OPTIONS = {
    "volumes": (int, None), "capacity": (as_size, None), "slots": (int, None), "barcode_prefix": (str, "EB"),
    "catalog": (str, None), "disk_prefixes": (as_prefixes, ("locks/",)), "fsync": (as_bool, True),
    "drive": (str, None), "changer": (str, None), "drive_index": (int, None), "block_size": (as_size, None),
    "mt_cmd": (str, None), "mtx_cmd": (str, "mtx"), "load_timeout": (as_seconds, 600.0),
    "clock": (lambda v: v, None), "entropy": (lambda v: v, None),
}
REAL_OPTIONS = ("drive", "changer", "drive_index", "block_size", "mt_cmd", "mtx_cmd")


def keep_tail(length: int, rest: int, barcode: str) -> int:
    """``length`` for a segment of an object with ``rest`` bytes left, shortened so that a
    split object keeps its last ``SPAN_TAIL`` bytes together on the next cartridge.

    Readers look at the end of an object first (a pack's header is in its last bytes, read
    back right after it is written): a short last segment would send the changer back to
    the previous cartridge, and then forward again for the next write. ``StoreFull`` if
    what is left here is less than ``MIN_SEGMENT``: the whole rest goes to the next cartridge.
    """
    if length >= rest:
        return length
    length = min(length, rest - min(SPAN_TAIL, rest))
    if length < MIN_SEGMENT:
        raise StoreFull(f"tape volume {barcode}: too little room to split an object here")
    return length


class TapeStore(Store):
    """A store on the tape library at ``root`` (see the module docstring)."""

    def __init__(self, root: str, **options):
        opts = Options("tape", OPTIONS, {}, options)
        self.root = os.path.abspath(root)
        self.clock: Clock = opts["clock"] or SYSTEM_CLOCK
        self.entropy: Entropy = opts["entropy"] or SYSTEM_ENTROPY
        self.fsync = opts["fsync"]
        self.url = f"tape://{self.root}"
        self.changer: TapeLibrary = self._open_library(opts)
        self.catalog = MediaCatalog(opts["catalog"] or os.path.join(self.root, "catalog.db"))
        self.disk_prefixes = opts["disk_prefixes"]
        self.disk = FileStore(os.path.join(self.root, "disk"), fsync=self.fsync)
        self.staging = FileStore(os.path.join(self.root, "staging"), fsync=self.fsync)
        self.capabilities = Capabilities(
            atomic_rename=False, random_access=False, deletes=False, parallel_writes=1, cold_tier=True,
            max_part_size=5 * 1024**3,
            extra={"kind": "tape", "capacity": self.changer.capacity, "disk_prefixes": self.disk_prefixes,
                   "delete_refused": DELETE_REFUSED})
        self._lock = threading.RLock()
        self._lock_file = os.path.join(self.root, ".drive.lock")

    def _open_library(self, opts: Options) -> TapeLibrary:
        """The real library (``drive``/``changer``, or a catalog directory made for one), else the virtual one."""
        state = os.path.join(self.root, "library.json")
        real = any(opts[k] is not None for k in REAL_OPTIONS if k != "mtx_cmd")
        if not real and os.path.exists(state):
            with open(state) as f:
                real = json.load(f).get("kind") == "mtx"
        if real:
            from ebas.storage.backends.tape.mtxlibrary import MtxLibrary

            return MtxLibrary(self.root, drive=opts["drive"], changer=opts["changer"], drive_index=opts["drive_index"],
                              block_size=opts["block_size"], capacity=opts["capacity"], mt_cmd=opts["mt_cmd"],
                              mtx_cmd=opts["mtx_cmd"], load_timeout=opts["load_timeout"], clock=self.clock)
        if not os.path.exists(state):
            if not opts["volumes"] or not opts["capacity"]:
                raise UsageError(f"no tape library at {self.root}",
                                 hint="create one with tape://PATH?volumes=N&capacity=SIZE (and slots=M), or "
                                      "use a real one with tape://PATH?drive=/dev/nstN&changer=/dev/sgN")
            VirtualChanger.create(self.root, slots=opts["slots"] or opts["volumes"], volumes=opts["volumes"],
                                  capacity=opts["capacity"], barcode_prefix=opts["barcode_prefix"],
                                  created_ns=self.clock.now_ns())
        return VirtualChanger(self.root, fsync=self.fsync, clock=self.clock)

    @classmethod
    def from_url(cls, url: str, **options) -> "TapeStore":
        """Open ``tape:///path?options`` (the library is created if volumes/capacity are given)."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "tape":
            raise UsageError(f"not a tape:// URL: {redact_url(url)!r}")
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise UsageError("a tape URL needs a library directory: tape:///path/to/library")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(path, **{**query, **options})

    # ------------------------------------------------------------ the drive
    @contextlib.contextmanager
    def _drive(self):
        """Exclusive use of the library: in this process and across processes."""
        with self._lock, open(self._lock_file, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.changer
            finally:
                with contextlib.suppress(Exception):
                    self.changer.flush()
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _on_disk(self, name: str) -> bool:
        return bool(self.disk_prefixes) and name.startswith(self.disk_prefixes)

    # ------------------------------------------------------------ writing
    def _next_volume(self, states: dict[str, VolumeState]) -> VolumeState:
        """The volume to append to: the last one in use if not full, else a blank one."""
        in_use = sorted((s for s in states.values() if not s.full), key=lambda s: s.seq)
        present = self.changer.barcodes()
        for state in reversed(in_use):
            if state.barcode in present:
                return state
        seq = max((s.seq for s in states.values()), default=0) + 1
        for barcode in present:
            if barcode not in states:
                return fresh_volume(barcode, seq, self.changer.data_start)
        full = sum(1 for s in states.values() if s.full)
        raise StoreFull(f"the tape library at {self.root} has no writable volume left "
                        f"({full} full, {len(present)} cartridges in the library)",
                        hint="import blank cartridges into free slots (or export full ones and import blanks), "
                             "then run again; nothing partial was catalogued")

    def _write(self, name: str, size: int, source: BinaryIO) -> None:
        """Append ``size`` bytes from ``source`` as object ``name``, spanning volumes as needed.

        ``source`` is read once, except after an end of medium in the middle of a record:
        then it is sought back to the start of that segment (every source ebas passes
        here is seekable)."""
        with self._drive() as changer:
            changer.reload()
            states = self.catalog.volumes()
            touched: dict[str, VolumeState] = {}
            records = []
            offset = 0
            while offset < size or not records:
                state = self._next_volume({**states, **touched})
                volume = changer.load(state.barcode)
                try:
                    length = keep_tail(volume.segment_length(state.eod, name, size - offset), size - offset,
                                       volume.barcode)
                    rec = volume.write_record(state.eod, name, offset, size, length, source)
                    volume.flush()
                except StoreFull as exc:
                    touched[state.barcode] = VolumeState(state.barcode, state.seq, state.eod, True)
                    if isinstance(exc, EndOfTape):
                        source.seek(offset)  # the cut segment goes, whole, to the next volume
                    continue
                records.append((state.barcode, rec))
                touched[state.barcode] = VolumeState(state.barcode, state.seq, volume.end_of(rec), False)
                offset += length
            self.catalog.commit_object(name, size, self.clock.now_ns(), records, touched)

    def put(self, name: str, data: bytes) -> None:
        """Append the object to tape (or keep it on disk for ``disk_prefixes``)."""
        check_name(name)
        if self._on_disk(name):
            self.disk.put(name, data)
            return
        data = bytes(data)
        self._write(name, len(data), io.BytesIO(data))

    def open_write(self, name: str) -> ObjectWriter:
        """A stream spooled on disk and written to tape on ``commit``."""
        check_name(name)
        if self._on_disk(name):
            return self.disk.open_write(name)
        return SpoolWriter(self, name)

    # ------------------------------------------------------------ reading
    def _segments(self, name: str) -> list[Segment]:
        check_name(name)
        segments = self.catalog.segments(name)
        if not segments:
            raise ObjectNotFound(name, store=self.url)
        return segments

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Load the cartridge(s) holding the range and read it (slow: use read_in_order for many)."""
        if self._on_disk(name):
            return self.disk.get(name, start, length)
        segments = self._segments(name)
        lo, hi = range_bounds(name, segments[0].record.obj_size, start, length)
        self._require_present(segments, f"reading {name!r}")
        out = []
        with self._drive() as changer:
            for seg in segments:
                rec = seg.record
                a, b = max(lo, rec.obj_offset), min(hi, rec.obj_offset + rec.length)
                if a < b:
                    volume = changer.load(seg.barcode)
                    out.append(volume.read_segment(rec, a - rec.obj_offset, b - a))
        return b"".join(out)

    def _require_present(self, segments: Iterable[Segment], what: str) -> None:
        needed = {s.barcode for s in segments}
        self.changer.reload()
        if needed - set(self.changer.barcodes()):
            self.changer.reload(force=True)  # an operator may have just put it in
        missing = sorted(needed - set(self.changer.barcodes()))
        if missing:
            raise VolumeMissing(missing, what, hint=self.changer.missing_hint(missing))

    def read_in_order(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(name, data)`` for every name, loading each cartridge once, in write order.

        Checks first that every cartridge needed is in the library and raises
        :class:`VolumeMissing` naming all missing barcodes. Objects kept on disk come first.
        """
        wanted = []
        for name in dict.fromkeys(names):
            if self._on_disk(name):
                yield name, self.disk.get(name)
            else:
                wanted.append(name)
        segments = [seg for name in wanted for seg in self._segments(name)]
        self._require_present(segments, f"reading {len(wanted)} object(s)")
        order = {s.barcode: s.seq for s in self.catalog.volumes().values()}
        segments.sort(key=lambda s: (order.get(s.barcode, 0), s.barcode, s.record.position))
        pending: dict[str, tuple[bytearray, int]] = {}
        with self._drive() as changer:
            for seg in segments:
                volume = changer.load(seg.barcode)
                rec = seg.record
                buf, left = pending.get(seg.name) or (bytearray(rec.obj_size), rec.obj_size)
                buf[rec.obj_offset:rec.obj_offset + rec.length] = volume.read_segment(rec)
                left -= rec.length
                if left <= 0:
                    pending.pop(seg.name, None)
                    yield seg.name, bytes(buf)
                else:
                    pending[seg.name] = (buf, left)

    def get_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """Every object, in tape order, mounting each cartridge once (see :meth:`read_in_order`)."""
        return self.read_in_order(names)

    def stat(self, name: str) -> ObjectInfo:
        """Size and write time from the media catalog (no tape motion)."""
        if self._on_disk(name):
            return self.disk.stat(name)
        check_name(name)
        found = self.catalog.stat(name)
        if found is None:
            raise ObjectNotFound(name, store=self.url)
        return ObjectInfo(name, found[0], found[1])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects from the media catalog plus the on-disk prefixes."""
        if "\x00" in prefix:
            raise UsageError(f"invalid prefix {prefix!r}")
        found = [ObjectInfo(n, s, m) for n, s, m in self.catalog.list(prefix)]
        return iter(found + list(self.disk.list(prefix)))

    def where(self, name: str) -> list[tuple[str, int, int]]:
        """``(barcode, position, length)`` of each segment of ``name`` (the media catalog entry)."""
        return [(s.barcode, s.record.position, s.record.length) for s in self._segments(name)]

    def delete(self, name: str) -> None:
        """Refused for objects on tape; allowed for ``disk_prefixes`` (locks)."""
        if self._on_disk(name):
            self.disk.delete(name)
            return
        check_name(name)
        raise PermissionDenied(f"cannot delete {name!r} from {self.url}: {DELETE_REFUSED}",
                               hint="use 'ebas copy'/export to write a fresh, pruned copy to new cartridges")

    # ------------------------------------------------------------ resumable uploads (staged on disk)
    def _upload_target(self, upload_id) -> str:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            raise self._no_upload(upload_id)
        try:
            return self.staging.get(f"{upload_id}/target").decode()
        except ObjectNotFound:
            raise self._no_upload(upload_id) from None

    def _no_upload(self, upload_id) -> ObjectNotFound:
        return ObjectNotFound(f"upload {upload_id}", store=self.url,
                              hint="the upload was completed, aborted or never begun")

    def begin_upload(self, name: str) -> str:
        """Stage an upload on disk (``PATH/staging/<id>/``)."""
        check_name(name)
        upload_id = self.entropy.token_bytes(16).hex()
        self.staging.put(f"{upload_id}/target", name.encode())
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        """Stage a part on disk (atomic; a re-upload replaces it)."""
        check_part_number(number)
        self._upload_target(upload_id)
        self.staging.put(f"{upload_id}/{number:05d}", data)
        return PartInfo(number, len(data))

    def _staged_parts(self, upload_id: str) -> list[tuple[int, int, str]]:
        out = []
        for info in self.staging.list(f"{upload_id}/"):
            label = info.name.rpartition("/")[2]
            if label.isdigit():
                out.append((int(label), info.size, info.name))
        return sorted(out)

    def parts(self, upload_id: str) -> list[PartInfo]:
        self._upload_target(upload_id)
        return [PartInfo(n, size) for n, size, _ in self._staged_parts(upload_id)]

    def complete(self, upload_id: str) -> None:
        """Write the staged parts to tape as one object, then drop the staging."""
        name = self._upload_target(upload_id)
        parts = self._staged_parts(upload_id)
        if self._on_disk(name):
            self.disk.put(name, b"".join(self.staging.get(p) for _, _, p in parts))
        else:
            source = ConcatReader([os.path.join(self.staging.root, p) for _, _, p in parts])
            try:
                self._write(name, sum(size for _, size, _ in parts), source)
            finally:
                source.close()
        self._drop_upload(upload_id)

    def abort(self, upload_id: str) -> None:
        self._upload_target(upload_id)
        self._drop_upload(upload_id)

    def _drop_upload(self, upload_id: str) -> None:
        self.staging.delete(f"{upload_id}/target")
        for _, _, path in self._staged_parts(upload_id):
            with contextlib.suppress(ObjectNotFound):
                self.staging.delete(path)

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        found = []
        for info in self.staging.list():
            upload_id, _, label = info.name.partition("/")
            if label == "target":
                with contextlib.suppress(ObjectNotFound):
                    name = self.staging.get(info.name).decode()
                    if name.startswith(prefix):
                        found.append(PendingUpload(name, upload_id))
        return found

    # ------------------------------------------------------------ cartridges
    def export_volume(self, barcode: str, dest_dir: str) -> str:
        """Eject a cartridge out of the library (e.g. to an off-site vault directory)."""
        with self._drive() as changer:
            return changer.export(barcode, dest_dir)

    def import_volume(self, path: str) -> int:
        """Insert a cartridge file into a free slot; return the slot."""
        with self._drive() as changer:
            return changer.import_cartridge(path)

    def close(self) -> None:
        with self._lock:
            self.changer.close()


def recall(tape: TapeStore, dest: Store, names: Iterable[str] | None = None, prefix: str = "") -> dict:
    """Copy objects from tape to ``dest`` (a disk store), mounting each cartridge once, in order.

    ``names`` defaults to every object under ``prefix``. Returns what happened:
    ``{"objects", "bytes", "loads": [barcodes in load order]}``. Raises
    :class:`VolumeMissing` before reading anything if a needed cartridge is absent.
    """
    if names is None:
        names = [info.name for info in tape.list(prefix)]
    before = len(tape.changer.stats.loads)
    count = size = 0
    for name, data in tape.read_in_order(names):
        dest.put(name, data)
        count += 1
        size += len(data)
    return {"objects": count, "bytes": size, "loads": tape.changer.stats.loads[before:]}


__all__ = ["DELETE_REFUSED", "TapeStore", "VolumeMissing", "recall"]
