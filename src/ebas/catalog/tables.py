"""Row-level access shared by ingest, queries and exchange: meta, sources, snapshots, and
the dictionaries of names, directories and owners.

:class:`Dictionary` lives for one write transaction: it caches ids it has seen and
hands out new ids itself (the writer holds the catalog's write lock, so ``max(id) + 1``
is free). A rolled-back transaction takes its new ids with it, so the cache is dropped
together with the transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ebas.catalog.db.base import Backend, chunks
from ebas.catalog.schema import join_path, source_key

ROOT_PATH = "/"


@dataclass
class SourceRow:
    """A backup source: one host and its sorted paths."""

    id: int
    host: str
    paths: list[str]


@dataclass
class SnapRow:
    """An indexed snapshot."""

    id: int  # row id inside the catalog
    snap_id: str
    source_id: int
    pos: int
    time_ns: int
    tags: list[str]
    level: str
    tree: str
    username: str
    mark: int
    host: str = ""
    paths: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON-able form."""
        from datetime import datetime, timezone

        return {"id": self.snap_id, "time": datetime.fromtimestamp(self.time_ns / 1e9, timezone.utc)
                .isoformat(timespec="seconds"), "time_ns": self.time_ns, "host": self.host, "paths": self.paths,
                "tags": self.tags, "level": self.level, "sites": self.sites}


SNAP_COLS = "s.id, s.snap_id, s.source_id, s.pos, s.time_ns, s.tags, s.level, s.tree, s.username, s.mark"


def _snap(row) -> SnapRow:
    return SnapRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8], row[9])


# ------------------------------------------------------------------ meta
def get_meta(db: Backend, key: str, default: str | None = None) -> str | None:
    """A value of the ``meta`` table."""
    v = db.one("SELECT value FROM meta WHERE key = ?", [key])
    return default if v is None else v


def set_meta(db: Backend, key: str, value: str) -> None:
    """Set a value of the ``meta`` table."""
    if db.x("UPDATE meta SET value = ? WHERE key = ?", [value, key]) == 0:
        db.x("INSERT INTO meta (key, value) VALUES (?, ?)", [key, value])


def next_mark(db: Backend) -> int:
    """Advance and return the change counter (export marks)."""
    mark = int(get_meta(db, "mark", "0") or 0) + 1
    set_meta(db, "mark", str(mark))
    return mark


# -------------------------------------------------------------- snapshots
def all_snapshots(db: Backend) -> list[SnapRow]:
    """Every indexed snapshot with its host, paths and sites, ordered by source and position."""
    rows = db.q(f"SELECT {SNAP_COLS}, src.host, src.paths FROM snapshots s JOIN sources src ON src.id = s.source_id "
                "ORDER BY s.source_id, s.pos")
    sites: dict[str, list[str]] = {}
    for sid, site in db.q("SELECT snap_id, site FROM snapshot_sites ORDER BY snap_id, site"):
        sites.setdefault(sid, []).append(site)
    out = []
    for r in rows:
        s = _snap(r)
        s.host, s.paths, s.sites = r[10], json.loads(r[11]), sites.get(s.snap_id, [])
        out.append(s)
    return out


def snapshot_by_id(db: Backend, snap_id: str) -> SnapRow | None:
    """The indexed snapshot with this full id."""
    rows = db.q(f"SELECT {SNAP_COLS} FROM snapshots s WHERE s.snap_id = ?", [snap_id])
    return _snap(rows[0]) if rows else None


def neighbours(db: Backend, source_id: int, time_ns: int, snap_id: str) -> tuple[SnapRow | None, SnapRow | None]:
    """The snapshots of a source just before and just after ``(time_ns, snap_id)``."""
    prev = db.q(f"SELECT {SNAP_COLS} FROM snapshots s WHERE s.source_id = ? AND (s.time_ns < ? OR "
                "(s.time_ns = ? AND s.snap_id < ?)) ORDER BY s.time_ns DESC, s.snap_id DESC LIMIT 1",
                [source_id, time_ns, time_ns, snap_id])
    nxt = db.q(f"SELECT {SNAP_COLS} FROM snapshots s WHERE s.source_id = ? AND (s.time_ns > ? OR "
               "(s.time_ns = ? AND s.snap_id > ?)) ORDER BY s.time_ns, s.snap_id LIMIT 1",
               [source_id, time_ns, time_ns, snap_id])
    return (_snap(prev[0]) if prev else None), (_snap(nxt[0]) if nxt else None)


def sites_of(db: Backend, snap_id: str) -> list[str]:
    """Sites known to hold a snapshot."""
    return [r[0] for r in db.q("SELECT site FROM snapshot_sites WHERE snap_id = ? ORDER BY site", [snap_id])]


def sources(db: Backend) -> list[SourceRow]:
    """Every source."""
    return [SourceRow(r[0], r[1], json.loads(r[2])) for r in db.q("SELECT id, host, paths FROM sources ORDER BY id")]


class Dictionary:
    """Get-or-create ids of names, directories, owners and sources within one write transaction."""

    def __init__(self, db: Backend):
        self.db = db
        self.names: dict[tuple[str, bytes | None], int] = {}
        self.dirs: dict[tuple[int, int], int] = {}
        self.dir_paths: dict[int, str] = {}
        self._owners: dict[tuple[str, str], int] | None = None
        self._next: dict[str, int] = {}

    def _new_id(self, table: str) -> int:
        if table not in self._next:
            self._next[table] = int(self.db.one(f"SELECT coalesce(max(id), 0) FROM {table}") or 0) + 1
        i = self._next[table]
        self._next[table] = i + 1
        return i

    # --------------------------------------------------------------- names
    def name_ids(self, keys) -> dict[tuple[str, bytes | None], int]:
        """Ids of ``(name, raw)`` keys, creating the missing ones."""
        want = [k for k in dict.fromkeys(keys) if k not in self.names]
        for part in chunks(want, self.db.batch):
            texts = list({k[0] for k in part})
            sql, params = self.db.in_list("name", texts)
            for i, name, raw in self.db.q(f"SELECT id, name, raw FROM names WHERE {sql}", params):
                self.names[(name, bytes(raw) if raw is not None else None)] = i
        new = [k for k in want if k not in self.names]
        rows = []
        for k in new:
            i = self._new_id("names")
            self.names[k] = i
            rows.append((i, k[0], k[1]))
        self.db.insert_rows("names", ("id", "name", "raw"), rows)
        self.db.names_added(rows)
        return {k: self.names[k] for k in keys}

    def remember_name(self, key: tuple[str, bytes | None], name_id: int) -> None:
        """Record an id learnt from a query."""
        self.names[key] = name_id

    # --------------------------------------------------------------- owners
    def owner_id(self, user: str, group: str) -> int:
        """Id of a (user name, group name) pair."""
        if self._owners is None:
            self._owners = {(u, g): i for i, u, g in self.db.q(f"SELECT id, {self._user_col()}, grp FROM owners")}
        key = (user, group)
        if key not in self._owners:
            i = self._new_id("owners")
            self.db.insert_rows("owners", ("id", self._user_col(), "grp"), [(i, user, group)])
            self._owners[key] = i
        return self._owners[key]

    def _user_col(self) -> str:
        return '"user"' if self.db.engine == "postgres" else "user"

    # ---------------------------------------------------------------- dirs
    def root(self) -> int:
        """Id of the root directory ``/``."""
        if (0, 0) not in self.dirs:
            i = self.db.one("SELECT id FROM dirs WHERE parent_id = 0 AND name_id = 0")
            if i is None:
                i = self._new_id("dirs")
                self.db.insert_rows("dirs", ("id", "parent_id", "name_id", "path"), [(i, 0, 0, ROOT_PATH)])
            self.dirs[(0, 0)] = i
            self.dir_paths[i] = ROOT_PATH
        return self.dirs[(0, 0)]

    def dir_ids(self, wanted: list[tuple[int, str, int, str]]) -> dict[tuple[int, int], int]:
        """Ids of child directories ``(parent id, parent path, name id, name)``, created if missing."""
        missing = [w for w in wanted if (w[0], w[2]) not in self.dirs]
        parents = list({w[0] for w in missing})
        for part in chunks(parents, self.db.batch):
            sql, params = self.db.in_list("parent_id", part)
            for pid, nid, did, path in self.db.q(f"SELECT parent_id, name_id, id, path FROM dirs WHERE {sql}", params):
                self.dirs[(pid, nid)] = did
                self.dir_paths[did] = path
        rows = []
        for pid, ppath, nid, name in missing:
            if (pid, nid) in self.dirs:
                continue
            i = self._new_id("dirs")
            path = join_path(ppath, name)
            self.dirs[(pid, nid)] = i
            self.dir_paths[i] = path
            rows.append((i, pid, nid, path))
        self.db.insert_rows("dirs", ("id", "parent_id", "name_id", "path"), rows)
        return {(w[0], w[2]): self.dirs[(w[0], w[2])] for w in wanted}

    # -------------------------------------------------------------- sources
    def source_id(self, host: str, paths: list[str]) -> int:
        """Id of the source ``host`` + ``paths``, created if missing."""
        key = source_key(host, paths)
        i = self.db.one("SELECT id FROM sources WHERE key = ?", [key])
        if i is None:
            i = self._new_id("sources")
            self.db.insert_rows("sources", ("id", "host", "paths", "key"), [(i, host, json.dumps(sorted(paths)), key)])
        return int(i)

    def snapshot_row_id(self) -> int:
        """A fresh row id for the snapshots table."""
        return self._new_id("snapshots")
