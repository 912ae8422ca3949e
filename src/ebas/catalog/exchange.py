"""Export and import of catalog entries between sites, snapshot by snapshot.

An export file is zstd-compressed JSON lines::

    {"format": "ebas-catalog-export", "version": 1, "repo_id": ..., "site": ..., "since": M, "mark": K}
    {"t": "tree", "id": "<hex>", "e": [[entry], ...]}          each distinct tree once per file
    {"t": "snapshot", "snapshot": {...}, "sites": ["a", ...]}    after all of its trees
    {"t": "tombstone", "snap_id": ..., "site": ..., "time_ns": ...}
    {"t": "end", "snapshots": N, "tombstones": T, "trees": R}

A snapshot's entries travel as its directory trees, keyed by the repository's tree ids,
so the importer ingests them exactly as it would from the repository (only the trees
that differ from its own previous snapshot of that source are walked). The state being
exchanged is a set of (snapshot, site) pairs minus tombstoned pairs: importing a file
twice changes nothing, and files can be imported in any order with the same result.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from typing import IO, Iterator

import zstandard

from ebas.catalog import tables as T
from ebas.catalog.db.base import Backend, chunks
from ebas.catalog.errors import CatalogError
from ebas.catalog.ingest import SnapshotInfo
from ebas.catalog.schema import DIR, TYPE_NAMES, Entry
from ebas.errors import UsageError
from ebas.repo.fields import INT64_MAX, INT64_MIN, Fields

FORMAT = "ebas-catalog-export"
VERSION = 1


@dataclass
class ExportStats:
    snapshots: int = 0
    tombstones: int = 0
    trees: int = 0
    entries: int = 0
    mark: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ImportStats:
    snapshots_added: int = 0
    sites_added: int = 0
    tombstones_added: int = 0
    snapshots_removed: int = 0
    skipped_tombstoned: int = 0
    unchanged: int = 0
    trees_read: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


# ================================================================== export
def _tree_entries(db: Backend, s: int, x: int, dir_ids: list[int]) -> tuple[dict[int, list[Entry]], dict[int, list]]:
    """Entries alive at position ``x`` in these directories, and their subdirectories ``[(dir id, tree)]``."""
    entries: dict[int, list[Entry]] = {d: [] for d in dir_ids}
    kids: dict[int, list] = {d: [] for d in dir_ids}
    sub: dict[tuple[int, int], tuple[int, bytes]] = {}
    for part in chunks(dir_ids, db.batch):
        in_sql, params = db.in_list("d.parent_id", part)
        for pid, nid, did, tree in db.q(
                # CROSS JOIN: SQLite loops over these directories first, not over every tree of the source
                f"SELECT d.parent_id, d.name_id, d.id, t.tree FROM dirs d CROSS JOIN trees t "
                f"WHERE t.dir_id = d.id AND {in_sql} AND t.source_id = ? AND t.first_pos <= ? AND t.last_pos >= ?",
                params + [s, x, x]):
            sub[(pid, nid)] = (did, bytes(tree))
        in_sql, params = db.in_list("v.dir_id", part)
        for r in db.q('SELECT v.dir_id, v.name_id, n.name, n.raw, v.type, v.size, v.mtime, v.ctime, v.mode, v.uid, '
                      'v.gid, o."user", o.grp, v.digest, v.target FROM versions v JOIN names n ON n.id = v.name_id '
                      f"JOIN owners o ON o.id = v.owner_id WHERE {in_sql} AND v.source_id = ? AND v.first_pos <= ? "
                      "AND v.last_pos >= ? ORDER BY v.dir_id, n.name", params + [s, x, x]):
            kid = sub.get((r[0], r[1])) if r[4] == DIR else None
            entries[r[0]].append(Entry(name=r[2], type=r[4], size=r[5], mtime=r[6], ctime=r[7], mode=r[8], uid=r[9],
                                       gid=r[10], user=r[11], group=r[12],
                                       digest=bytes(r[13]) if r[13] is not None else None, target=r[14],
                                       subtree=kid[1] if kid else None,
                                       raw=bytes(r[3]) if r[3] is not None else None))
            if kid:
                kids[r[0]].append(kid)
    return entries, kids


def export(db: Backend, out: IO[bytes], *, repo_id: str, site: str, since: int = 0) -> ExportStats:
    """Write every snapshot record and tombstone changed after mark ``since``."""
    st = ExportStats()
    mark = int(T.get_meta(db, "mark", "0") or 0)
    st.mark = mark
    cctx = zstandard.ZstdCompressor(level=6)
    with cctx.stream_writer(out, closefd=False) as zw:
        def put(obj) -> None:
            zw.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")

        put({"format": FORMAT, "version": VERSION, "repo_id": repo_id, "site": site, "since": since, "mark": mark})
        changed = {r[0] for r in db.q("SELECT snap_id FROM snapshot_sites WHERE mark > ?", [since])}
        emitted: set[bytes] = set()
        snaps = [s for s in T.all_snapshots(db) if s.snap_id in changed]
        root = db.one("SELECT id FROM dirs WHERE parent_id = 0 AND name_id = 0")
        for snap in sorted(snaps, key=lambda s: (s.source_id, s.pos)):
            level = [(root, bytes.fromhex(snap.tree))]
            while level:
                need = []
                for did, tree in level:
                    if tree not in emitted:
                        emitted.add(tree)
                        need.append((did, tree))
                if not need:
                    break
                entries, kids = _tree_entries(db, snap.source_id, snap.pos, [d for d, _ in need])
                level = []
                for did, tree in need:
                    put({"t": "tree", "id": tree.hex(), "e": [e.to_list() for e in entries[did]]})
                    st.trees += 1
                    st.entries += len(entries[did])
                    level += kids[did]
            info = SnapshotInfo(snap.snap_id, snap.time_ns, snap.host, snap.paths, snap.tree, snap.tags, snap.level,
                                snap.username)
            put({"t": "snapshot", "snapshot": info.to_json(), "sites": snap.sites})
            st.snapshots += 1
        for sid, tsite, tns in db.q("SELECT snap_id, site, time_ns FROM tombstones WHERE mark > ? "
                                    "ORDER BY snap_id, site", [since]):
            put({"t": "tombstone", "snap_id": sid, "site": tsite, "time_ns": tns})
            st.tombstones += 1
        put({"t": "end", "snapshots": st.snapshots, "tombstones": st.tombstones, "trees": st.trees})
    return st


# ================================================================== import
class FileTrees:
    """Trees of an export file, spooled to a temporary SQLite file (bounded memory)."""

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="ebas-import-", suffix=".sqlite")
        os.close(fd)
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("CREATE TABLE t (id BLOB PRIMARY KEY, e BLOB NOT NULL)")
        self.reads = 0
        self._z = zstandard.ZstdCompressor(level=1)
        self._d = zstandard.ZstdDecompressor()

    def add(self, tree_id: bytes, entries_json: list) -> None:
        data = self._z.compress(json.dumps(entries_json, separators=(",", ":")).encode())
        self.conn.execute("INSERT OR IGNORE INTO t (id, e) VALUES (?, ?)", (tree_id, data))

    def entries(self, tree_id: bytes) -> list[Entry]:
        self.reads += 1
        row = self.conn.execute("SELECT e FROM t WHERE id = ?", (tree_id,)).fetchone()
        if row is None:
            raise CatalogError(f"the export file lacks tree {tree_id.hex()[:16]}; it is damaged or incomplete",
                               hint="export again from the other site")
        return [Entry.from_list(v) for v in json.loads(self._d.decompress(row[0]))]

    def close(self) -> None:
        self.conn.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def read_records(stream: IO[bytes]) -> Iterator[dict]:
    """Decoded records of an export file (the header first)."""
    try:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(stream, closefd=False), encoding="utf-8")
        for line in reader:
            if line.strip():
                yield json.loads(line)
    except (zstandard.ZstdError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UsageError(f"not a readable ebas catalog export: {exc}") from None


def import_file(catalog, stream: IO[bytes]) -> ImportStats:
    """Apply an export file to ``catalog`` (an :class:`ebas.catalog.Catalog`)."""
    st = ImportStats()
    records = read_records(stream)
    header = next(records, None)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UsageError("not an ebas catalog export (no header)")
    hf = Fields(header, KIND, "line 1")
    if hf.int("version", 0) > VERSION:
        raise UsageError(f"catalog export version {header.get('version')} is newer than this ebas understands")
    repo_id = hf.str("repo_id", "", max_len=256)
    if catalog.repo_id and repo_id and repo_id != catalog.repo_id:
        raise UsageError(f"the export is from repository {repo_id}, this catalog indexes {catalog.repo_id}")
    trees = FileTrees()
    complete = False
    try:
        for line, rec in enumerate(records, start=2):
            f = Fields(rec, KIND, f"line {line}")
            kind = f.str("t", "", max_len=64)
            if kind == "tree":
                trees.add(bytes.fromhex(f.hex_id("id")), [_entry_list(f, v) for v in f.list("e")])
            elif kind == "snapshot":
                info = _snapshot_info(Fields(f.obj("snapshot"), KIND, f.name))
                _import_snapshot(catalog, info, f.str_list("sites", [], max_len=4096), trees, st)
            elif kind == "tombstone":
                added, removed = catalog.apply_tombstone(f.str("snap_id", max_len=4096), f.str("site", max_len=4096),
                                                         f.int("time_ns"))
                st.tombstones_added += int(added)
                st.snapshots_removed += int(removed)
            elif kind == "end":
                complete = True
        st.trees_read = trees.reads
    finally:
        trees.close()
    if not complete:
        raise CatalogError("the export file is truncated (no end record); what it held completely was imported",
                           hint="import the complete file again (importing is idempotent)")
    return st


KIND = "catalog export record"
_ENTRY_TYPES = ((str,), (int,), (int,), (int,), (int,), (int,), (int,), (int,), (str,), (str,),
                (str, type(None)), (str, type(None)), (str, type(None)), (str, type(None)))


def _snapshot_info(f: Fields) -> SnapshotInfo:
    """A snapshot record's fields, type- and range-checked."""
    return SnapshotInfo(f.str("snap_id", max_len=4096), f.int("time_ns", lo=0), f.str("host", max_len=4096),
                        f.str_list("paths"), f.hex_id("tree"), f.str_list("tags", [], max_len=4096),
                        f.str("level", "full", choices=("full", "differential", "incremental")),
                        f.str("username", "", max_len=4096))


def _entry_list(f: Fields, v: object) -> list:
    """One exported entry (see :meth:`Entry.to_list`), checked so that ``Entry.from_list``
    and the database accept it."""
    if type(v) is not list or len(v) != len(_ENTRY_TYPES):
        raise f.bad("e", f"must hold entries of {len(_ENTRY_TYPES)} values")
    for i, (x, kinds) in enumerate(zip(v, _ENTRY_TYPES)):
        if type(x) not in kinds:
            raise f.bad("e", f"has an entry whose value {i} has the wrong type")
        if type(x) is int and not INT64_MIN <= x <= INT64_MAX:
            raise f.bad("e", f"has an entry whose value {i} is out of range")
    if v[1] not in TYPE_NAMES:
        raise f.bad("e", f"has an entry of unknown type {v[1]}")
    try:
        for i in (10, 12, 13):
            if v[i] is not None:
                bytes.fromhex(v[i])
    except ValueError:
        raise f.bad("e", "has an entry with a value that is not hex") from None
    return v


def _import_snapshot(catalog, info: SnapshotInfo, sites: list[str], trees: FileTrees, st: ImportStats) -> None:
    db = catalog.db
    dead = {r[0] for r in db.q("SELECT site FROM tombstones WHERE snap_id = ?", [info.snap_id])}
    live = [s for s in sites if s not in dead]
    if not live:
        st.skipped_tombstoned += 1
        return
    have = set(T.sites_of(db, info.snap_id))
    changed = False
    if T.snapshot_by_id(db, info.snap_id) is None:
        stats = catalog.ingestor.ingest(info, trees, live[0])
        st.snapshots_added += int(stats.added)
        changed = stats.added
        have.add(live[0])
    for s in live:
        if s not in have:
            with db.write():
                if catalog.ingestor.add_site(info.snap_id, s):
                    st.sites_added += 1
                    changed = True
    if not changed:
        st.unchanged += 1
