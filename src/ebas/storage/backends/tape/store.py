"""``TapeStore``: a repository on a (virtual) tape library.

URL: ``tape:///PATH[?option=value&...]`` (``tape://relative/path`` also works), where
PATH is a virtual library directory (see :mod:`.changer`). Options:

``volumes``, ``capacity``, ``slots``, ``barcode_prefix``
                  create the library on first use with this many blank cartridges of
                  this capacity (e.g. ``capacity=400GiB``) in ``slots`` slots
``catalog``       the media catalog database (default ``PATH/catalog.db``)
``disk_prefixes`` comma-separated name prefixes kept on disk beside the library, not on
                  tape, because they must stay deletable (default ``locks/``)
``fsync``         ``0`` skips fsync (tests and benchmarks only)

Objects are appended to the current cartridge as records; an object that does not fit
continues on the next blank cartridge (spanning). The media catalog records where
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
import os
import re
import tempfile
import threading
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from ebas.errors import ObjectNotFound, PermissionDenied, StoreFull, UsageError
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.backends._cloud import Options, as_bool, as_prefixes, as_size
from ebas.storage.backends.file import FileStore
from ebas.storage.backends.tape.catalog import MediaCatalog, Segment, VolumeState, fresh_volume
from ebas.storage.backends.tape.changer import VirtualChanger, VolumeMissing
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

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")
DELETE_REFUSED = ("tape is an archive tier; prune in place is not supported — export a fresh copy instead")
SPOOL_IN_MEMORY = 32 * 1024 * 1024

OPTIONS = {
    "volumes": (int, None), "capacity": (as_size, None), "slots": (int, None), "barcode_prefix": (str, "EB"),
    "catalog": (str, None), "disk_prefixes": (as_prefixes, ("locks/",)), "fsync": (as_bool, True),
    "clock": (lambda v: v, None), "entropy": (lambda v: v, None),
}


class TapeStore(Store):
    """A store on the virtual tape library at ``root`` (see the module docstring)."""

    def __init__(self, root: str, **options):
        opts = Options("tape", OPTIONS, {}, options)
        self.root = os.path.abspath(root)
        self.clock: Clock = opts["clock"] or SYSTEM_CLOCK
        self.entropy: Entropy = opts["entropy"] or SYSTEM_ENTROPY
        self.fsync = opts["fsync"]
        self.url = f"tape://{self.root}"
        if not os.path.exists(os.path.join(self.root, "library.json")):
            if not opts["volumes"] or not opts["capacity"]:
                raise UsageError(f"no tape library at {self.root}",
                                 hint="create one with tape://PATH?volumes=N&capacity=SIZE (and slots=M)")
            VirtualChanger.create(self.root, slots=opts["slots"] or opts["volumes"], volumes=opts["volumes"],
                                  capacity=opts["capacity"], barcode_prefix=opts["barcode_prefix"],
                                  created_ns=self.clock.now_ns())
        self.changer = VirtualChanger(self.root, fsync=self.fsync)
        self.catalog = MediaCatalog(opts["catalog"] or os.path.join(self.root, "catalog.db"))
        self.disk_prefixes = opts["disk_prefixes"]
        self.disk = FileStore(os.path.join(self.root, "disk"), fsync=self.fsync)
        self.staging = FileStore(os.path.join(self.root, "staging"), fsync=self.fsync)
        self.capabilities = Capabilities(
            atomic_rename=False, random_access=False, deletes=False, parallel_writes=1, cold_tier=True,
            max_part_size=5 * 1024**3,
            extra={"kind": "tape", "capacity": self.changer.capacity, "disk_prefixes": self.disk_prefixes})
        self._lock = threading.RLock()
        self._lock_file = os.path.join(self.root, ".drive.lock")

    @classmethod
    def from_url(cls, url: str, **options) -> "TapeStore":
        """Open ``tape:///path?options`` (the library is created if volumes/capacity are given)."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "tape":
            raise UsageError(f"not a tape:// URL: {url!r}")
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
                    if self.changer._drive is not None:
                        self.changer._drive.flush()
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
                return fresh_volume(barcode, seq)
        full = sum(1 for s in states.values() if s.full)
        raise StoreFull(f"the tape library at {self.root} has no writable volume left "
                        f"({full} full, {len(present)} cartridges in the library)",
                        hint="import blank cartridges into free slots (or export full ones and import blanks), "
                             "then run again; nothing partial was catalogued")

    def _write(self, name: str, size: int, source: BinaryIO) -> None:
        """Append ``size`` bytes from ``source`` as object ``name``, spanning volumes as needed."""
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
                    length = volume.segment_length(state.eod, name, size - offset)
                except StoreFull:
                    touched[state.barcode] = VolumeState(state.barcode, state.seq, state.eod, True)
                    continue
                rec = volume.write_record(state.eod, name, offset, size, length, source)
                records.append((state.barcode, rec))
                touched[state.barcode] = VolumeState(state.barcode, state.seq, rec.end, False)
                offset += length
                volume.flush()
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
        return _SpoolWriter(self, name)

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
        self.changer.reload()
        present = set(self.changer.barcodes())
        missing = sorted({s.barcode for s in segments if s.barcode not in present})
        if missing:
            raise VolumeMissing(missing, what)

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
            source = _ConcatReader([os.path.join(self.staging.root, p) for _, _, p in parts])
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


class _SpoolWriter(ObjectWriter):
    """Collects a stream in a spooled temporary file; ``commit`` writes it to tape."""

    def __init__(self, store: TapeStore, name: str):
        self._store, self._name = store, name
        spool_dir = os.path.join(store.root, "staging")
        os.makedirs(spool_dir, exist_ok=True)
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=spool_dir)
        self._size = 0
        self._status = "open"

    def write(self, data: bytes) -> None:
        if self._status != "open":
            raise UsageError(f"write to {self._name!r} after commit or abort")
        self._spool.write(data)
        self._size += len(data)

    def commit(self) -> None:
        if self._status == "committed":
            return
        if self._status != "open":
            raise UsageError(f"commit of {self._name!r} after abort")
        self._spool.seek(0)
        try:
            self._store._write(self._name, self._size, self._spool)
        except BaseException:
            self.abort()
            raise
        self._status = "committed"
        self._spool.close()

    def abort(self) -> None:
        if self._status == "open":
            self._status = "aborted"
            self._spool.close()


class _ConcatReader(io.RawIOBase):
    """Reads several files one after another (the staged parts of an upload)."""

    def __init__(self, paths: list[str]):
        self._paths = list(paths)
        self._current: BinaryIO | None = None

    def read(self, n: int = -1) -> bytes:
        while True:
            if self._current is None:
                if not self._paths:
                    return b""
                self._current = open(self._paths.pop(0), "rb")
            chunk = self._current.read(n)
            if chunk:
                return chunk
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()




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
