"""The media catalog: which object lives on which volume, at which position.

An SQLite database (WAL mode, safe for several processes) kept on disk beside the
library, not on tape, so listings and stats never move a cartridge::

    volumes(barcode, seq, eod, full)     seq = order in which volumes were first written
    objects(name, size, mtime_ns)        the current version of every object on tape
    segments(name, idx, barcode, position, length, obj_offset, crc)

An object becomes visible in one transaction after all its records are on tape and
flushed, so a write cut off by a crash or a full library leaves nothing listed; the
volumes' end-of-data moves only in that same transaction, so the orphaned bytes are
overwritten by the next write. Superseded versions stay on tape as dead space.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

from ebas.storage.backends.tape.records import LABEL_SIZE, Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (barcode TEXT PRIMARY KEY, seq INTEGER NOT NULL,
                                    eod INTEGER NOT NULL, full INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS objects (name TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS segments (name TEXT NOT NULL, idx INTEGER NOT NULL, barcode TEXT NOT NULL,
                                     position INTEGER NOT NULL, length INTEGER NOT NULL,
                                     obj_offset INTEGER NOT NULL, crc INTEGER NOT NULL,
                                     PRIMARY KEY (name, idx));
CREATE INDEX IF NOT EXISTS segments_by_volume ON segments (barcode, position);
"""


@dataclass(frozen=True)
class VolumeState:
    barcode: str
    seq: int
    eod: int
    full: bool


@dataclass(frozen=True)
class Segment:
    """One catalogued record of an object."""

    name: str
    idx: int
    barcode: str
    record: Record


class MediaCatalog:
    """The catalog database at ``path`` (thread-safe; one connection behind a lock)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def volumes(self) -> dict[str, VolumeState]:
        with self._lock:
            rows = self._db.execute("SELECT barcode, seq, eod, full FROM volumes").fetchall()
        return {r[0]: VolumeState(r[0], r[1], r[2], bool(r[3])) for r in rows}

    def volume(self, barcode: str) -> VolumeState | None:
        return self.volumes().get(barcode)

    def stat(self, name: str) -> tuple[int, int] | None:
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns FROM objects WHERE name = ?", (name,)).fetchone()
        return (row[0], row[1]) if row else None

    def list(self, prefix: str) -> list[tuple[str, int, int]]:
        with self._lock:
            return self._db.execute(
                "SELECT name, size, mtime_ns FROM objects WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix)).fetchall()

    def segments(self, name: str) -> list[Segment]:
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, barcode, position, length, obj_offset, crc, o.size FROM segments "
                "JOIN objects o USING (name) WHERE name = ? ORDER BY idx", (name,)).fetchall()
        return [Segment(name, r[0], r[1], Record(r[2], name, r[4], r[3], r[6], r[5])) for r in rows]

    def commit_object(self, name: str, size: int, mtime_ns: int, records: list[tuple[str, Record]],
                      volumes: dict[str, VolumeState]) -> None:
        """Publish ``name`` with its records and the volumes' new state, atomically."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for vol in volumes.values():
                    db.execute("INSERT INTO volumes (barcode, seq, eod, full) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (barcode) DO UPDATE SET eod = excluded.eod, full = excluded.full",
                               (vol.barcode, vol.seq, vol.eod, int(vol.full)))
                db.execute("DELETE FROM segments WHERE name = ?", (name,))
                db.executemany(
                    "INSERT INTO segments (name, idx, barcode, position, length, obj_offset, crc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(name, i, bc, r.position, r.length, r.obj_offset, r.crc) for i, (bc, r) in enumerate(records)])
                db.execute("INSERT INTO objects (name, size, mtime_ns) VALUES (?, ?, ?) ON CONFLICT (name) "
                           "DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns", (name, size, mtime_ns))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def next_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM volumes").fetchone()
        return row[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def fresh_volume(barcode: str, seq: int, data_start: int = LABEL_SIZE) -> VolumeState:
    """The state of a cartridge not written yet: its end of data is where records start."""
    return VolumeState(barcode, seq, data_start, False)
