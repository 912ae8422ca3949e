"""The SQLite journal of transfer jobs: what a job is, and every object and part done.

One database holds every job of a machine (``journal.sqlite`` in the journal directory,
see :func:`default_journal_dir`). Tables:

* ``jobs``: name (unique), source and destination URLs, options (JSON), state
  (``running``, ``done``, ``failed`` = finished with failed objects, ``cancelling``,
  ``cancelled``), counters and times, the pid of the process running it;
* ``objects``: one row per source object: name, size, source mtime, the BLAKE3 of the
  bytes sent, state (``pending``, ``done``, ``present`` = already at the destination,
  ``failed``), the pending upload id of a multipart send, and the error of a failure;
* ``parts``: one row per part stored at the destination: upload id, number, size and
  BLAKE3 of its bytes.

A part row is written only after the store acknowledged the part, an object row becomes
``done`` only after the object was published and verified: after a crash the journal
never claims more than the destination holds. WAL mode and a busy timeout let ``status``
and ``cancel`` read and write from another process while a job runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass

from ebas.errors import UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, src TEXT NOT NULL, dst TEXT NOT NULL,
    options TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    run_started REAL, run_bytes INTEGER NOT NULL DEFAULT 0, pid INTEGER,
    bytes_total INTEGER NOT NULL DEFAULT 0, bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0, error TEXT
);
CREATE TABLE IF NOT EXISTS objects (
    job INTEGER NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
    checksum TEXT, state TEXT NOT NULL, upload_id TEXT, error TEXT,
    PRIMARY KEY (job, name)
);
CREATE TABLE IF NOT EXISTS parts (
    job INTEGER NOT NULL, upload_id TEXT NOT NULL, number INTEGER NOT NULL,
    size INTEGER NOT NULL, checksum TEXT NOT NULL,
    PRIMARY KEY (job, upload_id, number)
);
"""

DB_NAME = "journal.sqlite"
FINAL_STATES = ("done", "present")


def default_journal_dir(env: dict | None = None) -> str:
    """``$EBAS_TRANSFER_DIR``, else ``$XDG_STATE_HOME/ebas/transfers`` (``~/.local/state/...``)."""
    env = os.environ if env is None else env
    if env.get("EBAS_TRANSFER_DIR"):
        return env["EBAS_TRANSFER_DIR"]
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "ebas", "transfers")


@dataclass(frozen=True)
class Job:
    """One row of ``jobs``."""

    id: int
    name: str
    src: str
    dst: str
    options: dict
    state: str
    created: float
    updated: float
    run_started: float | None
    run_bytes: int
    pid: int | None
    bytes_total: int
    bytes_done: int
    bytes_sent: int
    error: str | None


@dataclass(frozen=True)
class ObjectRow:
    """One row of ``objects``."""

    name: str
    size: int
    mtime: int
    checksum: str | None
    state: str
    upload_id: str | None
    error: str | None


class Journal:
    """The journal database at ``directory/journal.sqlite`` (created on first use).

    Thread-safe: one connection guarded by a lock, so every stream of a job can write."""

    def __init__(self, directory: str):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, DB_NAME)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _x(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ jobs
    def create_job(self, name: str, src: str, dst: str, options: dict, now: float) -> Job:
        """A new job ``name``; ``UsageError`` if the name is taken."""
        try:
            self._x("INSERT INTO jobs (name, src, dst, options, state, created, updated) VALUES (?,?,?,?,?,?,?)",
                    (name, src, dst, json.dumps(options, sort_keys=True), "new", now, now))
        except sqlite3.IntegrityError:
            raise UsageError(f"a transfer job named {name!r} exists already",
                             hint=f"resume it with 'ebas transfer resume {name}' or choose another --name") from None
        return self.job(name)

    def job(self, name: str) -> Job:
        """The job ``name``; ``UsageError`` naming the known jobs if there is none."""
        rows = self._x("SELECT * FROM jobs WHERE name = ?", (name,))
        if not rows:
            raise UsageError(f"no transfer job named {name!r} in {self.path}",
                             hint="'ebas transfer list' shows the jobs")
        return _job(rows[0])

    def find_job(self, name: str) -> Job | None:
        """The job ``name``, or None."""
        rows = self._x("SELECT * FROM jobs WHERE name = ?", (name,))
        return _job(rows[0]) if rows else None

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        return [_job(r) for r in self._x("SELECT * FROM jobs ORDER BY created, id")]

    def set_state(self, job: int, state: str, now: float, *, error: str | None = None) -> None:
        """Set a job's state (and its error text)."""
        self._x("UPDATE jobs SET state = ?, updated = ?, error = ? WHERE id = ?", (state, now, error, job))

    def request_cancel(self, name: str, now: float, *, running: bool) -> Job:
        """Mark ``name`` ``cancelling`` (a running engine stops at its next part and marks
        it ``cancelled``) or, when no process runs it, ``cancelled`` at once."""
        job = self.job(name)
        self.set_state(job.id, "cancelling" if running else "cancelled", now)
        return self.job(name)

    def state(self, job: int) -> str:
        """The job's state as stored now (another process may have changed it)."""
        return self._x("SELECT state FROM jobs WHERE id = ?", (job,))[0][0]

    def start_run(self, job: int, now: float, pid: int, bytes_total: int, bytes_done: int) -> None:
        """A run of the job begins (first run or a resume)."""
        self._x("UPDATE jobs SET state = 'running', updated = ?, run_started = ?, run_bytes = 0, pid = ?, "
                "bytes_total = ?, bytes_done = ?, error = NULL WHERE id = ?",
                (now, now, pid, bytes_total, bytes_done, job))

    def add_bytes(self, job: int, done: int, sent: int, now: float) -> None:
        """``done`` more bytes count as done, ``sent`` bytes went over the link."""
        self._x("UPDATE jobs SET bytes_done = bytes_done + ?, bytes_sent = bytes_sent + ?, "
                "run_bytes = run_bytes + ?, updated = ? WHERE id = ?", (done, sent, sent, now, job))

    # ------------------------------------------------------------------ objects
    def sync_objects(self, job: int, listing: list[tuple[str, int, int]]) -> None:
        """Record the source listing ``(name, size, mtime)``: new objects become pending; an
        object whose size or mtime changed since it was recorded is sent again."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                known = {n: (s, m) for n, s, m in db.execute("SELECT name, size, mtime FROM objects WHERE job = ?", (job,))}
                for name, size, mtime in listing:
                    if name not in known:
                        db.execute("INSERT INTO objects (job, name, size, mtime, state) VALUES (?,?,?,?,'pending')",
                                   (job, name, size, mtime))
                    elif known[name] != (size, mtime):
                        db.execute("UPDATE objects SET size = ?, mtime = ?, state = 'pending', checksum = NULL, "
                                   "upload_id = NULL, error = NULL WHERE job = ? AND name = ?", (size, mtime, job, name))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def objects(self, job: int) -> list[ObjectRow]:
        """Every object of the job, by name."""
        return [ObjectRow(*r) for r in self._x(
            "SELECT name, size, mtime, checksum, state, upload_id, error FROM objects WHERE job = ? ORDER BY name", (job,))]

    def object(self, job: int, name: str) -> ObjectRow:
        """One object of the job."""
        return ObjectRow(*self._x("SELECT name, size, mtime, checksum, state, upload_id, error FROM objects "
                                  "WHERE job = ? AND name = ?", (job, name))[0])

    def set_object(self, job: int, name: str, state: str, *, checksum: str | None = None,
                   error: str | None = None) -> None:
        """Set an object's state (``done``/``present`` with its checksum, ``failed`` with an error)."""
        self._x("UPDATE objects SET state = ?, checksum = ?, error = ?, upload_id = CASE WHEN ? IN ('done', 'present') "
                "THEN NULL ELSE upload_id END WHERE job = ? AND name = ?", (state, checksum, error, state, job, name))

    def set_upload(self, job: int, name: str, upload_id: str | None) -> None:
        """Remember (or forget, with None) the destination upload session of an object."""
        self._x("UPDATE objects SET upload_id = ? WHERE job = ? AND name = ?", (upload_id, job, name))

    # ------------------------------------------------------------------ parts
    def add_part(self, job: int, upload_id: str, number: int, size: int, checksum: str) -> None:
        """Part ``number`` of ``upload_id`` is stored at the destination."""
        self._x("INSERT OR REPLACE INTO parts (job, upload_id, number, size, checksum) VALUES (?,?,?,?,?)",
                (job, upload_id, number, size, checksum))

    def parts(self, job: int, upload_id: str) -> dict[int, tuple[int, str]]:
        """``{number: (size, checksum)}`` of the parts recorded for an upload."""
        return {n: (s, c) for n, s, c in self._x(
            "SELECT number, size, checksum FROM parts WHERE job = ? AND upload_id = ?", (job, upload_id))}

    def drop_parts(self, job: int, upload_id: str) -> None:
        """Forget the parts of an upload (completed or abandoned)."""
        self._x("DELETE FROM parts WHERE job = ? AND upload_id = ?", (job, upload_id))

    def counts(self, job: int) -> dict[str, int]:
        """Objects per state."""
        return dict(self._x("SELECT state, count(*) FROM objects WHERE job = ? GROUP BY state", (job,)))


def _job(row: tuple) -> Job:
    (id_, name, src, dst, options, state, created, updated, run_started, run_bytes, pid,
     bytes_total, bytes_done, bytes_sent, error) = row
    return Job(id_, name, src, dst, json.loads(options), state, created, updated, run_started, run_bytes, pid,
               bytes_total, bytes_done, bytes_sent, error)
