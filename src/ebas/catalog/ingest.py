"""Ingest and forget snapshots: keep the validity intervals right at a cost that follows change.

Ingesting snapshot X of source S compares X with P, the indexed snapshot of S just before
it, *through the catalog*: the ``trees`` table records which tree id each directory of S
had over which positions, so a directory whose tree id in X equals its tree id in P is
skipped with everything under it (Merkle: equal id, equal subtree). Only X's changed
trees are read from the tree source; P's entries come from the catalog. When X lands
between P and N (a late arrival), rows that spanned X are split, rows that ended at P
and continue in X are extended, and rows that start at N and equal X's are moved back.
Everything happens in one transaction: an interrupted ingest leaves nothing behind.

Every listing is judged as restore, dump and check judge it (:mod:`ebas.repo.treecheck`):
an entry with an unsafe name (empty, ``.``, ``..``, ``/``, NUL), sharing its name with
another entry, or (trees read from a repository) that restore could not write, is not
indexed, and a tree whose entries are out of order is not indexed at all; each is listed
in ``IngestStats.skipped`` (path and reason) instead of stopping the ingest.

Forgetting X undoes exactly that: rows that start at X move to N or vanish, rows that
end at X end at P, rows split by X are merged again, so the table is the same as if X
had never been ingested (this is what makes exchange order-independent).
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from typing import Protocol

from ebas.catalog import tables as T
from ebas.catalog.db.base import Backend, chunks
from ebas.catalog.schema import DIR, GAP, OPEN, TYPE_NAMES, Entry, entry_from_node
from ebas.repo.tree import decode_tree
from ebas.repo.treecheck import TreeFault, entry_path, faulted_names, names_faults, node_fault

V_COLS = ("dir_id", "source_id", "name_id", "first_pos", "last_pos", "type", "size", "mtime", "ctime", "mode",
          "uid", "gid", "owner_id", "digest", "target")
V_KEY = ("dir_id", "source_id", "name_id", "first_pos")
T_COLS = ("source_id", "dir_id", "first_pos", "last_pos", "tree")
T_KEY = ("source_id", "dir_id", "first_pos")
FLUSH_ROWS = 50_000


class TreeSource(Protocol):
    """Where the entries of a tree come from (the repository, an export file, a generator)."""

    def entries(self, tree_id: bytes) -> list[Entry]: ...


class RepoTrees:
    """Trees read from a repository; ``reads`` counts the tree blobs loaded."""

    def __init__(self, repo):
        self.repo = repo
        self.reads = 0
        self.faults: dict[bytes, list[TreeFault]] = {}  # tree id -> entries restore refuses for more than their name

    def _entries(self, tree_id: bytes, nodes: list) -> list[Entry]:
        faults = [TreeFault(n.name, why) for n in nodes if (why := node_fault(n)) is not None]
        if faults:
            self.faults[tree_id] = faults
        return [entry_from_node(n) for n in nodes]

    def entries(self, tree_id: bytes) -> list[Entry]:
        self.reads += 1
        return self._entries(tree_id, self.repo.load_tree(tree_id))

    def entries_many(self, tree_ids: list[bytes]) -> list[list[Entry]]:
        """Several trees with batched reads (one request per run of nearby tree blobs)."""
        out = []
        for k in range(0, len(tree_ids), 256):
            part = tree_ids[k : k + 256]
            self.reads += len(part)
            out += [self._entries(t, decode_tree(b)) for t, b in zip(part, self.repo.get_blobs(part))]
        return out


@dataclass
class SnapshotInfo:
    """What the catalog records about a snapshot (from a manifest or an export record)."""

    snap_id: str
    time_ns: int
    host: str
    paths: list[str]
    tree: str
    tags: list[str] = field(default_factory=list)
    level: str = "full"
    username: str = ""

    @classmethod
    def from_snapshot(cls, s) -> "SnapshotInfo":
        """From an :class:`ebas.repo.snapshots.Snapshot`."""
        return cls(s.id, s.time_ns, s.host, sorted(s.paths), s.tree, sorted(s.tags), s.level, s.username)

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict) -> "SnapshotInfo":
        return cls(str(d["snap_id"]), int(d["time_ns"]), str(d["host"]), [str(p) for p in d["paths"]],
                   str(d["tree"]), [str(t) for t in d.get("tags", [])], str(d.get("level", "full")),
                   str(d.get("username", "")))


@dataclass
class IngestStats:
    """What one ingest did."""

    snapshot: str
    added: bool = False
    trees_read: int = 0
    dirs_changed: int = 0
    rows_inserted: int = 0
    rows_closed: int = 0
    position: int = 0
    middle: bool = False
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # "path: reason" of entries/trees not indexed

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _raw_name(e: Entry) -> bytes:
    return e.raw if e.raw is not None else e.name.encode("utf-8", "surrogatepass")


def valid_entries(listing: list[Entry], dir_path: str, skipped: list[str],
                  more: list[TreeFault] | None = None) -> list[Entry]:
    """The entries of one directory listing the catalog may index; the others (an unsafe or
    duplicate name, a fault in ``more``; every entry when the listing is out of order) are
    appended to ``skipped`` as ``"path: reason"``."""
    names = [_raw_name(e) for e in listing]
    faults = names_faults(names, [TYPE_NAMES.get(e.type, "?") for e in listing]) + (more or [])
    if not faults:
        return listing
    for f in faults:
        where = dir_path if f.name is None else entry_path(dir_path, f.name)
        skipped.append(f"{where}: {'directory' if f.name is None else 'entry'} {f.reason}; not indexed")
    bad = faulted_names(faults)
    if bad is None:
        return []
    return [e for e, n in zip(listing, names) if n not in bad]


class _Row:
    """A fetched interval row (versions or trees) with its mutable interval."""

    __slots__ = ("key", "version", "first", "last", "values", "name_id", "key_values")

    def __init__(self, key, version, first, last, values, name_id=0):
        self.key, self.version, self.first, self.last = key, version, first, last
        self.values, self.name_id = values, name_id
        self.key_values: tuple = ()


class _Ops:
    """Pending changes to one interval table, applied in bulk."""

    def __init__(self, db: Backend, table: str, cols, key):
        self.db, self.table, self.cols, self.key = db, table, cols, key
        self.inserts: list[tuple] = []
        self.set_last: list[tuple] = []
        self.set_first: list[tuple] = []
        self.count_inserted = 0
        self.count_closed = 0

    def __len__(self) -> int:
        return len(self.inserts) + len(self.set_last) + len(self.set_first)

    def flush(self) -> None:
        self.db.update_rows(self.table, "last_pos", self.key, self.set_last)
        self.db.update_rows(self.table, "first_pos", self.key, self.set_first)
        nkey = len(self.key)
        self.inserts.sort(key=lambda r: r[:nkey])  # primary-key order: B-tree appends, not random inserts
        self.db.insert_rows(self.table, self.cols, self.inserts)
        self.db.after_bulk(len(self.inserts) + len(self.set_last) + len(self.set_first))
        self.count_inserted += len(self.inserts)
        self.inserts, self.set_last, self.set_first = [], [], []


class Ingestor:
    """Adds snapshots to and removes snapshots from one catalog database."""

    def __init__(self, db: Backend, gap: int = GAP):
        self.db = db
        self.gap = gap

    # ================================================================ ingest
    def ingest(self, info: SnapshotInfo, trees: TreeSource, site: str) -> IngestStats:
        """Index one snapshot (no-op if already indexed; then only ``site`` is recorded)."""
        started = time.perf_counter()
        stats = IngestStats(info.snap_id)
        collecting = gc.isenabled()
        gc.disable()  # millions of short-lived tuples, no cycles: the cyclic collector would only cost time
        try:
            self._ingest(info, trees, site, stats)
        finally:
            if collecting:
                gc.enable()
        stats.seconds = round(time.perf_counter() - started, 6)
        return stats

    def _ingest(self, info: SnapshotInfo, trees: TreeSource, site: str, stats: IngestStats) -> None:
        db = self.db
        with db.write():
            if T.snapshot_by_id(db, info.snap_id) is not None:
                self.add_site(info.snap_id, site)
                return
            d = T.Dictionary(db)
            s = d.source_id(info.host, info.paths)
            prev, nxt = T.neighbours(db, s, info.time_ns, info.snap_id)
            x = self._position(s, prev, nxt)
            if x is None:
                self._renumber(s)
                prev, nxt = T.neighbours(db, s, info.time_ns, info.snap_id)
                x = self._position(s, prev, nxt)
            assert x is not None
            mark = T.next_mark(db)
            db.insert_rows("snapshots", ("id", "snap_id", "source_id", "pos", "time_ns", "tags", "level", "tree",
                                         "username", "mark"),
                           [(d.snapshot_row_id(), info.snap_id, s, x, info.time_ns, json.dumps(sorted(info.tags)),
                             info.level, info.tree, info.username, mark)])
            db.insert_rows("snapshot_sites", ("snap_id", "site", "mark"), [(info.snap_id, site, mark)])
            walk = _Walk(db, d, trees, s, x, prev.pos if prev else None, nxt.pos if nxt else None)
            walk.run(bytes.fromhex(info.tree), bytes.fromhex(prev.tree) if prev else None)
            stats.added = True
            stats.position = x
            stats.middle = nxt is not None
            stats.dirs_changed = walk.dirs_changed
            stats.trees_read = walk.trees_read
            stats.rows_inserted = walk.v.count_inserted
            stats.rows_closed = walk.v.count_closed
            stats.skipped = walk.skipped

    def add_site(self, snap_id: str, site: str) -> bool:
        """Record that ``site`` holds the snapshot (inside a write transaction); False if known."""
        if self.db.one("SELECT 1 FROM snapshot_sites WHERE snap_id = ? AND site = ?", [snap_id, site]):
            return False
        mark = T.next_mark(self.db)
        self.db.insert_rows("snapshot_sites", ("snap_id", "site", "mark"), [(snap_id, site, mark)])
        return True

    def _position(self, s: int, prev: T.SnapRow | None, nxt: T.SnapRow | None) -> int | None:
        if nxt is None:
            x = (prev.pos if prev else 0) + self.gap
            return x if x < OPEN else None
        lo = prev.pos if prev else 0
        if nxt.pos - lo < 2:
            return None
        return (lo + nxt.pos) // 2

    def _renumber(self, s: int) -> None:
        """Spread a source's positions ``gap`` apart again (rare: after many late arrivals)."""
        db = self.db
        olds = [r[0] for r in db.q("SELECT pos FROM snapshots WHERE source_id = ? ORDER BY pos", [s])]
        if len(olds) * self.gap >= OPEN - self.gap:
            raise OverflowError("too many snapshots in one source for the position space")
        db.x("CREATE TEMP TABLE IF NOT EXISTS ebas_posmap (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
        db.x("DELETE FROM ebas_posmap")
        db.insert_rows("ebas_posmap", ("old", "new"), [(o, (i + 1) * self.gap) for i, o in enumerate(olds)])
        for table, col in (("snapshots", "pos"), ("versions", "first_pos"), ("trees", "first_pos")):
            db.x(f"UPDATE {table} SET {col} = -(SELECT new FROM ebas_posmap WHERE old = {table}.{col}) "
                 "WHERE source_id = ?", [s])
            db.x(f"UPDATE {table} SET {col} = -{col} WHERE source_id = ? AND {col} < 0", [s])
        for table in ("versions", "trees"):
            db.x(f"UPDATE {table} SET last_pos = (SELECT new FROM ebas_posmap WHERE old = {table}.last_pos) "
                 "WHERE source_id = ? AND last_pos <> ?", [s, OPEN])
        db.x("DELETE FROM ebas_posmap")

    # ================================================================ forget
    def forget(self, snap_id: str) -> bool:
        """Remove a snapshot and its intervals; False if it was not indexed."""
        with self.db.write():
            return self.remove(snap_id)

    def remove(self, snap_id: str) -> bool:
        """:meth:`forget` inside the caller's write transaction."""
        db = self.db
        snap = T.snapshot_by_id(db, snap_id)
        if snap is None:
            return False
        self._forget_rows(snap)
        db.x("DELETE FROM snapshots WHERE id = ?", [snap.id])
        db.x("DELETE FROM snapshot_sites WHERE snap_id = ?", [snap_id])
        T.next_mark(db)
        return True

    def _forget_rows(self, snap: T.SnapRow) -> None:
        db = self.db
        s, x = snap.source_id, snap.pos
        p = db.one("SELECT max(pos) FROM snapshots WHERE source_id = ? AND pos < ?", [s, x])
        n = db.one("SELECT min(pos) FROM snapshots WHERE source_id = ? AND pos > ?", [s, x])
        probe_first = [x] + ([n] if n is not None else [])
        probe_last = [x] + ([p] if p is not None else [])
        fl_sql = (f"(first_pos IN ({','.join('?' * len(probe_first))}) OR "
                  f"last_pos IN ({','.join('?' * len(probe_last))}))")
        trows = db.q(f"SELECT {','.join(T_COLS)} FROM trees WHERE source_id = ? AND {fl_sql}",
                     [s] + probe_first + probe_last)
        dirs = sorted({r[1] for r in trows if r[2] == x or r[3] == x or (n is None and r[3] == p)})
        t_rows = [_Row(r[1], bytes(r[4]), r[2], r[3], r) for r in trows]
        self._fix_intervals("trees", T_COLS, T_KEY, t_rows, x, p, n)
        v_rows = []
        for part in chunks(dirs, db.batch):
            in_sql, params = db.in_list("dir_id", part)
            for r in db.q(f"SELECT {','.join(V_COLS)} FROM versions WHERE source_id = ? AND {in_sql} AND {fl_sql}",
                          [s] + params + probe_first + probe_last):
                v_rows.append(_Row((r[0], r[2]), _vversion(r), r[3], r[4], r))
        self._fix_intervals("versions", V_COLS, V_KEY, v_rows, x, p, n)

    def _fix_intervals(self, table, cols, key_cols, rows: list[_Row], x, p, n) -> None:
        """Rewrite the rows around position ``x`` as if ``x`` had never existed."""
        first_i, last_i = cols.index("first_pos"), cols.index("last_pos")
        key_idx = [cols.index(c) for c in key_cols]
        groups: dict = {}
        for r in rows:
            groups.setdefault(r.key, []).append(r)
        deletes, inserts = [], []
        for group in groups.values():
            final = []
            for r in group:
                f, last = r.first, r.last
                if f == x:
                    if n is not None and last >= n:
                        f = n
                    else:
                        final.append((r, None, None))
                        continue
                if last == x:
                    last = p
                if n is None and p is not None and last == p:
                    last = OPEN
                final.append((r, f, last))
            if p is not None and n is not None:
                ends = {id(r): i for i, (r, f, last) in enumerate(final) if last == p}
                starts = [i for i, (r, f, last) in enumerate(final) if f == n]
                for j in starts:
                    rb, fb, lb = final[j]
                    for i in ends.values():
                        ra, fa, la = final[i]
                        if ra.version == rb.version and la == p:
                            final[i] = (ra, fa, lb)
                            final[j] = (rb, None, None)
                            break
            for r, f, last in final:
                if (f, last) == (r.first, r.last):
                    continue
                deletes.append(tuple(r.values[i] for i in key_idx))
                if f is not None:
                    vals = list(r.values)
                    vals[first_i], vals[last_i] = f, last
                    inserts.append(tuple(vals))
        self.db.delete_rows(table, key_cols, deletes)
        self.db.insert_rows(table, cols, inserts)


def _vversion(r) -> tuple:
    """The version part of a versions row (everything but the key and the interval)."""
    return (r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], bytes(r[13]) if r[13] is not None else None, r[14])


class _Walk:
    """One ingest's breadth-first walk over the directories that changed."""

    def __init__(self, db: Backend, d: T.Dictionary, trees: TreeSource, s: int, x: int, p: int | None,
                 n: int | None):
        self.db, self.d, self.trees, self.s, self.x, self.p, self.n = db, d, trees, s, x, p, n
        self.v = _Ops(db, "versions", V_COLS, V_KEY)
        self.t = _Ops(db, "trees", T_COLS, T_KEY)
        self.visited: set[int] = set()
        self.dirs_changed = 0
        self.trees_read = 0
        self.new_last = x if n is not None else OPEN
        self.skipped: list[str] = []

    # ------------------------------------------------------------ interval rules
    def _differ(self, ops: _Ops, r: _Row) -> None:
        """``r`` was alive at P and X differs from it."""
        p, n = self.p, self.n
        if n is None:
            if r.last != p:
                ops.set_last.append((p,) + r.key_values)
                ops.count_closed += 1
        elif r.last >= n:
            ops.set_last.append((p,) + r.key_values)
            vals = list(r.values)
            vals[ops.cols.index("first_pos")] = n
            ops.inserts.append(tuple(vals))
            ops.count_closed += 1

    def _same(self, ops: _Ops, r: _Row) -> None:
        """``r`` was alive at P and X has the same version."""
        if r.last == self.p:
            ops.set_last.append((self.new_last,) + r.key_values)

    def _new(self, ops: _Ops, values: list, m: _Row | None, version) -> None:
        """X has a version at this key that P does not have; ``m`` is N's row starting at N."""
        if m is not None and m.version == version:
            ops.set_first.append((self.x,) + m.key_values)
            return
        first_i = ops.cols.index("first_pos")
        values[first_i] = self.x
        values[first_i + 1] = self.new_last
        ops.inserts.append(tuple(values))

    # -------------------------------------------------------------------- walk
    def run(self, x_root: bytes, p_root: bytes | None) -> None:
        root = self.d.root()
        e_dirs: set[int] = set()
        if self.p is not None and self.n is not None:
            e_dirs = {r[0] for r in self.db.q("SELECT dir_id FROM trees WHERE source_id = ? AND last_pos = ?",
                                              [self.s, self.p])}
        level = [(root, T.ROOT_PATH, x_root, p_root)] if x_root != p_root else []
        while level:
            level = self._level(level)
            if len(self.v) + len(self.t) > FLUSH_ROWS:
                self.v.flush()
                self.t.flush()
        self.v.flush()
        self.t.flush()
        rest = sorted(e_dirs - self.visited)
        for part in chunks(rest, self.db.batch):
            in_sql, params = self.db.in_list("dir_id", part)
            for table in ("versions", "trees"):
                self.db.x(f"UPDATE {table} SET last_pos = ? WHERE source_id = ? AND {in_sql} AND last_pos = ?",
                          [self.x, self.s] + params + [self.p])

    def _fetch_versions(self, dir_ids: list[int], cond: str, params: list) -> dict[int, dict]:
        out: dict[int, dict] = {}
        cols = ",".join("v." + c for c in V_COLS)
        for part in chunks(dir_ids, self.db.batch):
            in_sql, in_params = self.db.in_list("v.dir_id", part)
            for r in self.db.q(f"SELECT {cols}, n.name, n.raw FROM versions v JOIN names n ON n.id = v.name_id "
                               f"WHERE v.source_id = ? AND {in_sql} AND {cond}", [self.s] + in_params + params):
                key = (r[15], bytes(r[16]) if r[16] is not None else None)
                row = _Row(key, _vversion(r), r[3], r[4], r[:15], r[2])
                row.key_values = (r[0], r[1], r[2], r[3])
                out.setdefault(r[0], {})[key] = row
                self.d.remember_name(key, r[2])
        return out

    def _fetch_trees(self, dir_ids: list[int], cond: str, params: list) -> dict[int, _Row]:
        out = {}
        for part in chunks(dir_ids, self.db.batch):
            in_sql, in_params = self.db.in_list("dir_id", part)
            for r in self.db.q(f"SELECT {','.join(T_COLS)} FROM trees WHERE source_id = ? AND {in_sql} AND {cond}",
                               [self.s] + in_params + params):
                row = _Row(r[1], bytes(r[4]), r[2], r[3], r)
                row.key_values = (r[0], r[1], r[2])
                out[r[1]] = row
        return out

    def _p_children(self, dir_ids: list[int]) -> dict[tuple[int, int], tuple[int, bytes]]:
        """P's subdirectories of these directories: ``{(parent, name id): (dir id, tree id)}``."""
        out = {}
        for part in chunks(dir_ids, self.db.batch):
            in_sql, params = self.db.in_list("d.parent_id", part)
            for pid, nid, did, path, tree in self.db.q(
                    # CROSS JOIN: SQLite then loops over these directories first (by the parent index)
                    # instead of over every tree of the source: cost per level, not per catalog
                    f"SELECT d.parent_id, d.name_id, d.id, d.path, t.tree FROM dirs d CROSS JOIN trees t "
                    f"WHERE t.dir_id = d.id AND {in_sql} AND t.source_id = ? AND t.first_pos <= ? AND t.last_pos >= ?",
                    params + [self.s, self.p, self.p]):
                out[(pid, nid)] = (did, bytes(tree))
                self.d.dirs[(pid, nid)] = did
                self.d.dir_paths[did] = path
        return out

    def _level(self, level: list[tuple[int, str, bytes, bytes | None]]) -> list:
        p, n = self.p, self.n
        dir_ids = [lv[0] for lv in level]
        self.visited.update(dir_ids)
        self.dirs_changed += len(level)
        listings = {did: [] for did, _path, _xt, _pt in level}
        todo = [(did, xt) for did, _path, xt, _pt in level if xt]
        many = getattr(self.trees, "entries_many", None)  # a whole level in a few reads
        if many is not None and len(todo) > 1:
            listings.update(zip((d for d, _ in todo), many([t for _, t in todo])))
        else:
            for did, xt in todo:
                listings[did] = self.trees.entries(xt)
        self.trees_read += len(todo)
        more = getattr(self.trees, "faults", {})  # what a tree source found beyond names (RepoTrees)
        for did, path, xt, _pt in level:
            listings[did] = valid_entries(listings[did], path, self.skipped, more.pop(xt, None) if xt else None)
        in_p = [lv[0] for lv in level if lv[3] is not None]
        p_rows = self._fetch_versions(in_p, "v.first_pos <= ? AND v.last_pos >= ?", [p, p]) if in_p else {}
        n_rows = self._fetch_versions(dir_ids, "v.first_pos = ?", [n]) if n is not None else {}
        p_trees = self._fetch_trees(in_p, "first_pos <= ? AND last_pos >= ?", [p, p]) if in_p else {}
        n_trees = self._fetch_trees(dir_ids, "first_pos = ?", [n]) if n is not None else {}
        p_kids = self._p_children(in_p) if in_p else {}
        # names of entries not seen in P or N
        names = self.d.names
        unknown = [(e.name, e.raw) for did in dir_ids for e in listings[did] if (e.name, e.raw) not in names]
        if unknown:
            self.d.name_ids(unknown)
        kids_by_parent: dict[int, dict[int, tuple[int, bytes]]] = {}
        for (pid, nid), kid in p_kids.items():
            kids_by_parent.setdefault(pid, {})[nid] = kid
        owners: dict[tuple[str, str], int] = {}
        s, x, new_last = self.s, self.x, self.new_last
        inserts = self.v.inserts
        nxt_level = []
        want_dirs: list[tuple[int, str, int, str]] = []
        removed: list[int] = []
        for did, path, xt, pt in level:
            # the directory's own tree row
            tp = p_trees.get(did)
            if tp is not None:
                self._differ(self.t, tp)
            self._new(self.t, [s, did, 0, 0, xt], n_trees.get(did), xt)
            prow = p_rows.get(did)
            nrow = n_rows.get(did)
            kids = kids_by_parent.get(did, {})
            x_dirs = set()
            for e in listings[did]:
                key = (e.name, e.raw)
                nid = names[key]
                okey = (e.user, e.group)
                oid = owners.get(okey)
                if oid is None:
                    oid = owners[okey] = self.d.owner_id(e.user, e.group)
                version = (e.type, e.size, e.mtime, e.ctime, e.mode, e.uid, e.gid, oid, e.digest, e.target)
                r = prow.pop(key, None) if prow else None
                if r is not None and r.version == version:
                    self._same(self.v, r)
                elif r is None and not nrow:
                    inserts.append((did, s, nid, x, new_last, *version))
                else:
                    if r is not None:
                        self._differ(self.v, r)
                    self._new(self.v, [did, s, nid, 0, 0, *version], nrow.get(key) if nrow else None, version)
                if e.type == DIR:
                    x_dirs.add(nid)
                    kid = kids.get(nid)
                    sub = e.subtree or b""
                    if kid is not None and kid[1] == sub:
                        continue  # unchanged subtree: nothing below needs reading
                    want_dirs.append((did, path, nid, e.name))
                    nxt_level.append((did, path, nid, sub, kid[1] if kid else None))
            if prow:
                for r in prow.values():
                    self._differ(self.v, r)
            # P's subdirectories that X no longer has as directories
            for nid, (kid_id, _tree) in kids.items():
                if nid not in x_dirs:
                    removed.append(kid_id)
        if removed:
            self._remove(removed)
        ids = self.d.dir_ids(want_dirs) if want_dirs else {}
        out = []
        for did, path, nid, sub, pt in nxt_level:
            cid = ids[(did, nid)]
            out.append((cid, self.d.dir_paths[cid], sub, pt))
        return out

    def _remove(self, dir_ids: list[int]) -> None:
        """Directories present in P and gone from X: everything under them differs."""
        p = self.p
        while dir_ids:
            self.visited.update(dir_ids)
            for rows in self._fetch_versions(dir_ids, "v.first_pos <= ? AND v.last_pos >= ?", [p, p]).values():
                for r in rows.values():
                    self._differ(self.v, r)
            for r in self._fetch_trees(dir_ids, "first_pos <= ? AND last_pos >= ?", [p, p]).values():
                self._differ(self.t, r)
            dir_ids = [did for did, _tree in self._p_children(dir_ids).values()]
