"""What the catalog stores: entries, version tuples, type codes, positions, DDL.

The catalog holds *file versions as validity intervals* over the snapshot sequence of
each source (a source is a host plus its sorted backup paths). A row
``(dir, source, name, first_pos, last_pos, metadata...)`` says: this path had this
metadata in every snapshot of the source whose position ``pos`` lies in
``[first_pos, last_pos]``. ``last_pos == OPEN`` means "still present in the source's
latest indexed snapshot". Positions are integers with gaps (``GAP`` apart) so a
snapshot that arrives late can be placed between two others. See docs/catalog.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import blake3

SCHEMA_VERSION = 1
OPEN = 2**31 - 1  # last_pos of a version still present in the latest snapshot
GAP = 1024  # distance between positions of consecutive snapshots of a source
DIGEST_LEN = 16  # bytes of BLAKE3(concatenated chunk ids) kept per file version

TYPE_CODES = {"file": 0, "dir": 1, "symlink": 2, "chardev": 3, "blockdev": 4, "fifo": 5, "socket": 6}
TYPE_NAMES = {v: k for k, v in TYPE_CODES.items()}
FILE, DIR, SYMLINK = 0, 1, 2


def text_name(raw: bytes) -> tuple[str, bytes | None]:
    """``(text, raw)``: the UTF-8 text of a name, and the raw bytes only if not valid UTF-8.

    Undecodable bytes are shown as ``\\xNN`` in the text (searchable, printable); the raw
    bytes are kept so the exact name survives export and import.
    """
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw


def content_digest(content: bytes) -> bytes | None:
    """BLAKE3 of a node's concatenated chunk ids, first ``DIGEST_LEN`` bytes (None if empty)."""
    if not content:
        return None
    return blake3.blake3(content).digest()[:DIGEST_LEN]


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry as the catalog sees it (a projection of a tree node)."""

    name: str
    type: int
    size: int = 0
    mtime: int = 0
    ctime: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    digest: bytes | None = None
    target: str | None = None
    subtree: bytes | None = None  # tree id of a directory (not part of the version)
    raw: bytes | None = None  # the raw name when it is not valid UTF-8

    @property
    def key(self) -> tuple[str, bytes | None]:
        """Identity of the entry inside its directory."""
        return self.name, self.raw

    def to_list(self) -> list:
        """Compact JSON-able form (export files)."""
        return [self.name, self.type, self.size, self.mtime, self.ctime, self.mode, self.uid, self.gid,
                self.user, self.group, self.digest.hex() if self.digest else None, self.target,
                self.subtree.hex() if self.subtree else None, self.raw.hex() if self.raw is not None else None]

    @classmethod
    def from_list(cls, v: list) -> "Entry":
        """Inverse of :meth:`to_list`."""
        return cls(name=str(v[0]), type=int(v[1]), size=int(v[2]), mtime=int(v[3]), ctime=int(v[4]),
                   mode=int(v[5]), uid=int(v[6]), gid=int(v[7]), user=str(v[8]), group=str(v[9]),
                   digest=bytes.fromhex(v[10]) if v[10] else None, target=v[11],
                   subtree=bytes.fromhex(v[12]) if v[12] else None,
                   raw=bytes.fromhex(v[13]) if v[13] is not None else None)


def entry_from_node(node) -> Entry:
    """Project an :class:`ebas.repo.tree.Node` onto an :class:`Entry`."""
    name, raw = text_name(node.name)
    code = TYPE_CODES[node.type]
    return Entry(name=name, type=code, size=node.size, mtime=node.mtime_ns, ctime=node.ctime_ns,
                 mode=node.mode, uid=node.uid, gid=node.gid, user=node.user, group=node.group,
                 digest=content_digest(node.content) if code == FILE else None,
                 target=node.target.decode("utf-8", "backslashreplace") if node.target else None,
                 subtree=(node.subtree or None) if code == DIR else None, raw=raw)


def join_path(dir_path: str, name: str) -> str:
    """``/a/b`` + ``c`` -> ``/a/b/c``."""
    return dir_path + name if dir_path.endswith("/") else dir_path + "/" + name


def norm_path(path: str) -> str:
    """An absolute, normalised catalog path (``/`` for the root)."""
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        parts = [p for p in os.path.normpath("/" + "/".join(parts)).split("/") if p]
    return "/" + "/".join(parts)


def source_key(host: str, paths: list[str]) -> str:
    """The identity of a source: host plus sorted paths."""
    return host + "\x1f" + "\x1e".join(sorted(paths))


# Column order of a version row as the engines return and accept it.
VERSION_COLUMNS = ("dir_id", "source_id", "name_id", "first_pos", "last_pos", "type", "size", "mtime", "ctime",
                   "mode", "uid", "gid", "owner_id", "digest", "target")
TREE_COLUMNS = ("source_id", "dir_id", "first_pos", "last_pos", "tree")

SQLITE_DDL = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS sources (id INTEGER PRIMARY KEY, host TEXT NOT NULL, paths TEXT NOT NULL,"
    " key TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS snapshots (id INTEGER PRIMARY KEY, snap_id TEXT NOT NULL UNIQUE,"
    " source_id INTEGER NOT NULL, pos INTEGER NOT NULL, time_ns INTEGER NOT NULL, tags TEXT NOT NULL,"
    " level TEXT NOT NULL, tree TEXT NOT NULL, username TEXT NOT NULL, mark INTEGER NOT NULL,"
    " UNIQUE (source_id, pos))",
    "CREATE TABLE IF NOT EXISTS snapshot_sites (snap_id TEXT NOT NULL, site TEXT NOT NULL, mark INTEGER NOT NULL,"
    " PRIMARY KEY (snap_id, site)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS tombstones (snap_id TEXT NOT NULL, site TEXT NOT NULL, time_ns INTEGER NOT NULL,"
    " mark INTEGER NOT NULL, PRIMARY KEY (snap_id, site)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL, raw BLOB)",
    "CREATE UNIQUE INDEX IF NOT EXISTS names_name ON names (name, coalesce(raw, x''))",
    "CREATE TABLE IF NOT EXISTS dirs (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, name_id INTEGER NOT NULL,"
    " path TEXT NOT NULL, UNIQUE (parent_id, name_id))",
    "CREATE INDEX IF NOT EXISTS dirs_path ON dirs (path)",
    "CREATE TABLE IF NOT EXISTS owners (id INTEGER PRIMARY KEY, user TEXT NOT NULL, grp TEXT NOT NULL,"
    " UNIQUE (user, grp))",
    "CREATE TABLE IF NOT EXISTS versions (dir_id INTEGER NOT NULL, source_id INTEGER NOT NULL,"
    " name_id INTEGER NOT NULL, first_pos INTEGER NOT NULL, last_pos INTEGER NOT NULL, type INTEGER NOT NULL,"
    " size INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, mode INTEGER NOT NULL,"
    " uid INTEGER NOT NULL, gid INTEGER NOT NULL, owner_id INTEGER NOT NULL, digest BLOB, target TEXT,"
    " PRIMARY KEY (dir_id, source_id, name_id, first_pos)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS versions_name ON versions (name_id, dir_id)",
    "CREATE INDEX IF NOT EXISTS versions_digest ON versions (substr(digest, 1, 8)) WHERE digest IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS trees (source_id INTEGER NOT NULL, dir_id INTEGER NOT NULL,"
    " first_pos INTEGER NOT NULL, last_pos INTEGER NOT NULL, tree BLOB NOT NULL,"
    " PRIMARY KEY (source_id, dir_id, first_pos)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS trees_first ON trees (source_id, first_pos)",
    "CREATE INDEX IF NOT EXISTS trees_last ON trees (source_id, last_pos)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS names_fts USING fts5(name, content='names', content_rowid='id',"
    " tokenize='trigram', detail='none', columnsize=0)",
]  # names_fts is fed by the engine after each batch of new names (a per-row trigger is ~10x slower)

POSTGRES_DDL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public",
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sources (id int4 PRIMARY KEY, host text NOT NULL, paths text NOT NULL,"
    " key text NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS snapshots (id int4 PRIMARY KEY, snap_id text NOT NULL UNIQUE,"
    " source_id int4 NOT NULL, pos int4 NOT NULL, time_ns int8 NOT NULL, tags text NOT NULL,"
    " level text NOT NULL, tree text NOT NULL, username text NOT NULL, mark int8 NOT NULL,"
    " UNIQUE (source_id, pos))",
    "CREATE TABLE IF NOT EXISTS snapshot_sites (snap_id text NOT NULL, site text NOT NULL, mark int8 NOT NULL,"
    " PRIMARY KEY (snap_id, site))",
    "CREATE TABLE IF NOT EXISTS tombstones (snap_id text NOT NULL, site text NOT NULL, time_ns int8 NOT NULL,"
    " mark int8 NOT NULL, PRIMARY KEY (snap_id, site))",
    'CREATE TABLE IF NOT EXISTS names (id int4 PRIMARY KEY, name text COLLATE "C" NOT NULL, raw bytea)',
    "CREATE UNIQUE INDEX IF NOT EXISTS names_name ON names (name, coalesce(raw, ''::bytea))",
    "CREATE INDEX IF NOT EXISTS names_trgm ON names USING gin (name public.gin_trgm_ops)",
    "CREATE TABLE IF NOT EXISTS dirs (id int4 PRIMARY KEY, parent_id int4 NOT NULL, name_id int4 NOT NULL,"
    ' path text COLLATE "C" NOT NULL, UNIQUE (parent_id, name_id))',
    "CREATE INDEX IF NOT EXISTS dirs_path ON dirs (path)",
    'CREATE TABLE IF NOT EXISTS owners (id int4 PRIMARY KEY, "user" text NOT NULL, grp text NOT NULL,'
    ' UNIQUE ("user", grp))',
    "CREATE TABLE IF NOT EXISTS versions (size int8 NOT NULL, mtime int8 NOT NULL, ctime int8 NOT NULL,"
    " dir_id int4 NOT NULL, source_id int4 NOT NULL, name_id int4 NOT NULL, first_pos int4 NOT NULL,"
    " last_pos int4 NOT NULL, mode int4 NOT NULL, uid int4 NOT NULL, gid int4 NOT NULL, owner_id int4 NOT NULL,"
    " type int2 NOT NULL, digest bytea, target text,"
    " PRIMARY KEY (dir_id, source_id, name_id, first_pos))",
    "CREATE INDEX IF NOT EXISTS versions_name ON versions (name_id, dir_id)",
    "CREATE INDEX IF NOT EXISTS versions_digest ON versions (substr(digest, 1, 8)) WHERE digest IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS trees (source_id int4 NOT NULL, dir_id int4 NOT NULL, first_pos int4 NOT NULL,"
    " last_pos int4 NOT NULL, tree bytea NOT NULL, PRIMARY KEY (source_id, dir_id, first_pos))",
    "CREATE INDEX IF NOT EXISTS trees_first ON trees (source_id, first_pos)",
    "CREATE INDEX IF NOT EXISTS trees_last ON trees (source_id, last_pos)",
]

TABLES = ("meta", "sources", "snapshots", "snapshot_sites", "tombstones", "names", "dirs", "owners", "versions",
          "trees")
