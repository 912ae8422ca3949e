"""The embedded engine: one SQLite file (WAL mode, 8 KiB pages, mmap).

Name search goes through an FTS5 ``trigram`` index over the dictionary of names (not
over file versions): the trigrams of the pattern's literal parts select candidate names,
then the exact test (substring, ``GLOB``, equality, or a guarded Python ``re``) runs on
those candidates only. Queries run under a deadline enforced by a progress handler.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterable, Iterator, Sequence

from ebas.catalog.db.base import Backend, NameMatch
from ebas.catalog.errors import CatalogCorrupt, CatalogUnavailable, QueryTimeout
from ebas.catalog.patterns import glob_to_sqlite, trigrams
from ebas.catalog.schema import SQLITE_DDL
from ebas.repo.privatefs import create_private_file

PAGE_SIZE = 8192
MMAP_BYTES = 256 << 20
CACHE_KIB = 64 << 10
BUSY_MS = 60_000
MAX_VARIABLES = 30_000  # SQLite allows 32766 parameters per statement


@lru_cache(maxsize=64)
def _compiled(pattern: str, flags: int) -> re.Pattern:
    return re.compile(pattern, flags)


class SqliteBackend(Backend):
    """A catalog in one SQLite file (``:memory:`` works for tests)."""

    engine = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self.location = path
        self._deadline: float | None = None
        self._limit: float | None = None
        self._timed_out = False
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            try:  # every path in plain text: a new catalog is 0600 in 0700 directories (whatever the umask);
                create_private_file(path)  # SQLite gives its -wal and -shm files the database file's mode
            except OSError as exc:
                raise CatalogUnavailable(f"cannot create the catalog in {parent}: {exc.strerror}") from exc
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_MS / 1000)
            self._setup()
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc

    def _setup(self) -> None:
        c = self.conn
        fresh = self.path == ":memory:" or c.execute("PRAGMA page_count").fetchone()[0] == 0
        if fresh:
            c.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")
        c.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        c.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        c.execute("PRAGMA temp_store = MEMORY")
        c.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        c.execute("PRAGMA foreign_keys = OFF")
        c.create_function("ebas_lower", 1, _lower, deterministic=True)
        c.create_function("ebas_regexp", 3, self._regexp, deterministic=True)
        c.set_progress_handler(self._progress, 20_000)

    # ---------------------------------------------------------------- errors
    def _translate(self, exc: sqlite3.Error) -> Exception:
        msg = str(exc)
        timed_out, self._timed_out = self._timed_out, False
        if timed_out or ("interrupted" in msg and self._limit is not None):
            return QueryTimeout(f"catalog query exceeded its time limit of {self._limit:g} s")
        if isinstance(exc, sqlite3.DatabaseError) and any(s in msg for s in (
                "not a database", "malformed", "corrupt", "disk image", "no such table", "no such column")):
            return CatalogCorrupt(f"the catalog {self.location} is damaged: {msg}")
        if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in msg or "readonly" in msg
                                                          or "locked" in msg):
            return CatalogUnavailable(f"cannot use the catalog {self.location}: {msg}")
        return CatalogUnavailable(f"catalog {self.location}: {msg}")

    def _progress(self) -> int:
        return 1 if self._deadline is not None and time.monotonic() > self._deadline else 0

    def _regexp(self, pattern: str, flags: int, value) -> bool:
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._timed_out = True
            raise sqlite3.OperationalError("interrupted")
        return value is not None and _compiled(pattern, flags).search(value) is not None

    def set_deadline(self, seconds: float | None) -> None:
        self._limit = seconds
        self._deadline = None if seconds is None else time.monotonic() + seconds

    # ----------------------------------------------------------------- basics
    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def q(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def x(self, sql: str, params: Sequence = ()) -> int:
        try:
            return self.conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def xmany(self, sql: str, rows: Iterable[Sequence]) -> None:
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    @contextmanager
    def write(self) -> Iterator[None]:
        self.set_deadline(None)
        self.x("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self.x("COMMIT")

    def names_added(self, rows: list[Sequence]) -> None:
        self.xmany("INSERT INTO names_fts (rowid, name) VALUES (?, ?)", [(r[0], r[1]) for r in rows])

    def names_removed(self) -> None:
        self.x("INSERT INTO names_fts (names_fts) VALUES ('rebuild')")

    def in_list(self, column: str, values: Sequence) -> tuple[str, list]:
        if len(values) <= MAX_VARIABLES or not all(isinstance(v, (int, str)) for v in values):
            return f"{column} IN ({','.join('?' * len(values)) or 'NULL'})", list(values)
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]

    # ----------------------------------------------------------------- schema
    def has_schema(self) -> bool:
        return bool(self.q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"))

    def create_schema(self) -> None:
        for stmt in SQLITE_DDL:
            self.x(stmt)

    def drop_schema(self) -> None:
        rows = self.q("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger') "
                      "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'names_fts_%'")  # triggers: older catalogs
        for kind, name in rows:
            if kind == "trigger":
                self.x(f'DROP TRIGGER IF EXISTS "{name}"')
        for kind, name in rows:
            if kind == "table":
                self.x(f'DROP TABLE IF EXISTS "{name}"')

    # ----------------------------------------------------------------- search
    def name_filter(self, match: NameMatch) -> tuple[str, list]:
        conds: list[str] = []
        params: list = []
        grams = trigrams(match.literals) if match.mode != "regex" else []
        if match.mode == "exact" and not match.ignore_case:
            return "SELECT id FROM names WHERE name = ?", [match.pattern]
        if grams:
            conds.append("id IN (SELECT rowid FROM names_fts WHERE names_fts MATCH ?)")
            params.append(" ".join('"' + g.replace('"', '""') + '"' for g in grams))
        col = "ebas_lower(name)" if match.ignore_case else "name"
        pat = _lower(match.pattern) if match.ignore_case else match.pattern
        if match.mode == "substring":
            conds.append(f"instr({col}, ?) > 0")
            params.append(pat)
        elif match.mode == "exact":
            conds.append(f"{col} = ?")
            params.append(pat)
        elif match.mode == "glob":
            conds.append(f"{col} GLOB ?")
            params.append(glob_to_sqlite(pat))
        else:
            conds.append("ebas_regexp(?, ?, name)")
            params += [match.pattern, re.IGNORECASE if match.ignore_case else 0]
        return "SELECT id FROM names WHERE " + " AND ".join(conds), params

    # ------------------------------------------------------------ maintenance
    def size_bytes(self) -> int:
        if self.path == ":memory:":
            return int(self.one("PRAGMA page_count") or 0) * int(self.one("PRAGMA page_size") or 0)
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

    def vacuum(self) -> None:
        self.set_deadline(None)
        self.x("INSERT INTO names_fts (names_fts) VALUES ('optimize')")
        self.x("VACUUM")
        self.x("PRAGMA optimize")
        self.x("PRAGMA wal_checkpoint(TRUNCATE)")

    def analyze(self) -> None:
        """Refresh the planner's statistics."""
        self.x("ANALYZE")

    def integrity(self) -> list[str]:
        self.set_deadline(None)
        rows = [r[0] for r in self.q("PRAGMA quick_check")]
        return [] if rows == ["ok"] else rows


def _lower(value):
    return value.lower() if isinstance(value, str) else value
