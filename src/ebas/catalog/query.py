"""Queries over file versions: find, history and point-in-time listing.

Every query builds one SQL statement over ``versions`` joined with the dictionaries;
snapshot-level conditions (``--tag``, ``--between``, ``--deleted``) become ``EXISTS``
over ``snapshots`` using the interval. Which snapshots hold a version is worked out
afterwards from the (small) snapshot table held in memory, so each hit carries snapshot
ids that ``ebas restore`` accepts.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ebas.catalog import tables as T
from ebas.catalog.db.base import Backend
from ebas.catalog.errors import QueryRejected
from ebas.catalog.patterns import name_match
from ebas.catalog.schema import OPEN, SYMLINK, TYPE_CODES, TYPE_NAMES, join_path, norm_path
from ebas.catalog.specs import parse_mode_filter
from ebas.errors import AmbiguousSnapshot, SnapshotNotFound, UsageError

SORTS = ("path", "name", "size", "mtime", "time")
_SELECT = ("SELECT d.path, n.name, v.source_id, v.first_pos, v.last_pos, v.type, v.size, v.mtime, v.ctime, v.mode, "
           'v.uid, v.gid, o."user", o.grp, v.digest, v.target FROM versions v JOIN dirs d ON d.id = v.dir_id '
           "JOIN names n ON n.id = v.name_id JOIN owners o ON o.id = v.owner_id")


@dataclass
class FindQuery:
    """What ``ebas find`` asks. Times are ns since the epoch; sizes are bytes (inclusive)."""

    pattern: str | None = None
    match: str = "auto"  # auto, substring, glob, exact, regex
    ignore_case: bool = False
    path: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    newer: int | None = None  # mtime >= newer
    older: int | None = None  # mtime < older
    owner: str | None = None  # user name or numeric uid
    mode: str | None = None  # see ebas.catalog.specs.parse_mode_filter
    types: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # a backup path of the source
    tags: list[str] = field(default_factory=list)
    between: tuple[int, int] | None = None  # snapshot time range, inclusive
    deleted: bool = False
    digest: bytes | list[bytes] | None = None  # one content digest, or any of several
    limit: int | None = None
    sort: str | None = None  # one of SORTS, '-' prefix for descending


@dataclass(slots=True)
class Hit:
    """One file version and the snapshots that hold it."""

    path: str
    name: str
    type: str
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    digest: str | None
    target: str | None
    host: str
    source: list[str]
    snapshot: str  # the latest snapshot holding it (within the query's snapshot filters)
    first_snapshot: str
    last_snapshot: str
    snapshot_count: int
    first_time_ns: int
    last_time_ns: int
    snapshots: list[str] | None = None  # every holder (history only)
    deleted_in: str | None = None  # --deleted: the snapshot where it was gone
    deleted_time_ns: int | None = None

    def to_json(self) -> dict:
        d = {f: getattr(self, f) for f in self.__slots__}
        if d["snapshots"] is None:
            d.pop("snapshots")
        if d["deleted_in"] is None:
            d.pop("deleted_in")
            d.pop("deleted_time_ns")
        return d


class SnapshotIndex:
    """The indexed snapshots in memory, by source and position."""

    def __init__(self, db: Backend):
        self.all = T.all_snapshots(db)
        self.by_source: dict[int, list[T.SnapRow]] = {}
        for s in self.all:
            self.by_source.setdefault(s.source_id, []).append(s)
        self.positions = {sid: [s.pos for s in lst] for sid, lst in self.by_source.items()}

    def holders(self, source_id: int, first: int, last: int) -> list[T.SnapRow]:
        lst, pos = self.by_source.get(source_id, []), self.positions.get(source_id, [])
        return lst[bisect.bisect_left(pos, first): bisect.bisect_right(pos, last)]

    def after(self, source_id: int, pos: int) -> T.SnapRow | None:
        lst, ps = self.by_source.get(source_id, []), self.positions.get(source_id, [])
        i = bisect.bisect_right(ps, pos)
        return lst[i] if i < len(lst) else None

    def resolve(self, ref: str) -> T.SnapRow:
        ref = ref.lower()
        if ref == "latest":
            if not self.all:
                raise SnapshotNotFound("the catalog holds no snapshot")
            return max(self.all, key=lambda s: (s.time_ns, s.snap_id))
        hits = [s for s in self.all if s.snap_id.startswith(ref)]
        if not hits:
            raise SnapshotNotFound(f"no indexed snapshot with id {ref!r}",
                                   hint="run 'ebas catalog sync' if it is new, or check the id with 'ebas snapshots'")
        if len(hits) > 1:
            raise AmbiguousSnapshot(f"snapshot id prefix {ref!r} matches {len(hits)} snapshots")
        return hits[0]


def _source_filter(db: Backend, hosts: list[str], paths: list[str]) -> list[int] | None:
    if not hosts and not paths:
        return None
    norm = [norm_path(p) for p in paths]
    return [s.id for s in T.sources(db) if (not hosts or s.host in hosts) and (not norm or set(norm) & set(s.paths))]


def _hit(row, snaps: SnapshotIndex, sources: dict[int, T.SourceRow], allowed: set[int] | None) -> Hit:
    (dpath, name, sid, first, last, vtype, size, mtime, ctime, mode, uid, gid, user, group, digest, target) = row
    holders = snaps.holders(sid, first, last)
    shown = holders if allowed is None else ([h for h in holders if h.id in allowed] or holders)
    src = sources.get(sid)
    return Hit(path=join_path(dpath, name), name=name, type=TYPE_NAMES.get(vtype, "?"), size=size, mtime_ns=mtime,
               ctime_ns=ctime, mode=mode, uid=uid, gid=gid, user=user, group=group,
               digest=bytes(digest).hex() if digest is not None else None, target=target,
               host=src.host if src else "", source=src.paths if src else [],
               snapshot=shown[-1].snap_id if shown else "", first_snapshot=holders[0].snap_id if holders else "",
               last_snapshot=holders[-1].snap_id if holders else "", snapshot_count=len(holders),
               first_time_ns=holders[0].time_ns if holders else 0, last_time_ns=holders[-1].time_ns if holders else 0)


def find(db: Backend, q: FindQuery) -> tuple[list[Hit], bool]:
    """``(hits, truncated)`` for a find query."""
    conds: list[str] = []
    params: list = []
    if q.pattern is not None:
        sub, sub_params = db.name_filter(name_match(q.pattern, q.match, q.ignore_case))
        conds.append(f"v.name_id IN ({sub})")
        params += sub_params
    elif q.match not in ("auto",):
        raise QueryRejected(f"--{q.match} needs a pattern")
    if q.path and norm_path(q.path) != "/":
        prefix = norm_path(q.path)
        conds.append("v.dir_id IN (SELECT id FROM dirs WHERE path = ? OR (path >= ? AND path < ?))")
        params += [prefix, prefix + "/", prefix + "0"]
    if q.min_size is not None or q.max_size is not None:
        conds.append("v.type = 0")
        if q.min_size is not None:
            conds.append("v.size >= ?")
            params.append(q.min_size)
        if q.max_size is not None:
            conds.append("v.size <= ?")
            params.append(q.max_size)
    if q.newer is not None:
        conds.append("v.mtime >= ?")
        params.append(q.newer)
    if q.older is not None:
        conds.append("v.mtime < ?")
        params.append(q.older)
    if q.owner:
        if q.owner.isdigit():
            conds.append("v.uid = ?")
            params.append(int(q.owner))
        else:
            conds.append('v.owner_id IN (SELECT id FROM owners WHERE "user" = ?)')
            params.append(q.owner)
    if q.mode:
        mask, want = parse_mode_filter(q.mode)
        conds.append(f"v.type <> {SYMLINK} AND (v.mode & ?) = ?")
        params += [mask, want]
    if q.types:
        codes = []
        for t in q.types:
            t = {"f": "file", "d": "dir", "l": "symlink"}.get(t, t)
            if t not in TYPE_CODES:
                raise UsageError(f"unknown type {t!r}", hint="use file, dir, symlink (or f, d, l)")
            codes.append(TYPE_CODES[t])
        conds.append(f"v.type IN ({','.join(str(c) for c in codes)})")
    if q.digest is not None:
        digests = [q.digest] if isinstance(q.digest, bytes) else list(q.digest)
        if not digests:
            return [], False
        in_sql, in_params = db.in_list("substr(v.digest, 1, 8)", [d[:8] for d in digests])
        conds.append(f"v.digest IS NOT NULL AND {in_sql}")  # the (8-byte prefix) digest index
        params += in_params
        in_sql, in_params = db.in_list("v.digest", digests)
        conds.append(in_sql)
        params += in_params
    src_ids = _source_filter(db, q.hosts, q.sources)
    if src_ids is not None:
        in_sql, in_params = db.in_list("v.source_id", src_ids)
        conds.append(in_sql)
        params += in_params
    snaps = SnapshotIndex(db)
    allowed: set[int] | None = None
    if q.tags or q.between:
        allowed = {s.id for s in snaps.all if set(q.tags) <= set(s.tags)
                   and (q.between is None or q.between[0] <= s.time_ns <= q.between[1])}
    next_pos = "(SELECT min(s2.pos) FROM snapshots s2 WHERE s2.source_id = v.source_id AND s2.pos > v.last_pos)"
    if q.deleted:
        conds.append(f"v.last_pos < {OPEN} AND NOT EXISTS (SELECT 1 FROM versions w WHERE w.dir_id = v.dir_id "
                     f"AND w.source_id = v.source_id AND w.name_id = v.name_id AND w.first_pos = {next_pos})")
    if allowed is not None:
        in_sql, in_params = db.in_list("s.id", sorted(allowed))
        where = f"s.pos = {next_pos}" if q.deleted else "s.pos >= v.first_pos AND s.pos <= v.last_pos"
        conds.append(f"EXISTS (SELECT 1 FROM snapshots s WHERE s.source_id = v.source_id AND {where} AND {in_sql})")
        params += in_params
    sql = _SELECT + (" WHERE " + " AND ".join(conds) if conds else "") + _order(q.sort)
    if q.limit is not None:
        sql += " LIMIT ?"
        params.append(q.limit + 1)
    rows = db.q(sql, params)
    truncated = q.limit is not None and len(rows) > q.limit
    rows = rows[: q.limit] if q.limit is not None else rows
    srcs = {s.id: s for s in T.sources(db)}
    hits = []
    for r in rows:
        h = _hit(r, snaps, srcs, allowed)
        if q.deleted:
            gone = snaps.after(r[2], r[4])
            if gone is not None:
                h.deleted_in, h.deleted_time_ns = gone.snap_id, gone.time_ns
        hits.append(h)
    return hits, truncated


def _order(sort: str | None) -> str:
    if not sort:
        return ""
    desc = sort.startswith("-")
    key = sort.lstrip("-+")
    if key not in SORTS:
        raise UsageError(f"unknown sort key {key!r}", hint="use one of " + ", ".join(SORTS) + " ('-' for descending)")
    d = " DESC" if desc else ""
    full = "CASE WHEN d.path = '/' THEN '/' || n.name ELSE d.path || '/' || n.name END"
    cols = {
        "path": [full],
        "name": ["n.name", "d.path"],
        "size": ["v.size", "d.path", "n.name"],
        "mtime": ["v.mtime", "d.path", "n.name"],
        "time": ["(SELECT s.time_ns FROM snapshots s WHERE s.source_id = v.source_id AND s.pos = v.first_pos)",
                 "d.path", "n.name"],
    }[key]
    return " ORDER BY " + ", ".join(c + d for c in cols) + f", v.source_id, v.first_pos{d}"


def _split_path(path: str) -> tuple[str, str]:
    p = norm_path(path)
    if p == "/":
        raise UsageError("the root directory has no history of its own", hint="give a file or directory path")
    parent, _, name = p.rpartition("/")
    return parent or "/", name


def history(db: Backend, path: str, hosts: list[str] | None = None, sources: list[str] | None = None) -> list[Hit]:
    """Every version of ``path``, oldest first per source, with the snapshots holding it."""
    parent, name = _split_path(path)
    conds = ["v.dir_id IN (SELECT id FROM dirs WHERE path = ?)", "v.name_id IN (SELECT id FROM names WHERE name = ?)"]
    params: list = [parent, name]
    src_ids = _source_filter(db, hosts or [], sources or [])
    if src_ids is not None:
        in_sql, in_params = db.in_list("v.source_id", src_ids)
        conds.append(in_sql)
        params += in_params
    rows = db.q(_SELECT + " WHERE " + " AND ".join(conds), params)
    snaps = SnapshotIndex(db)
    srcs = {s.id: s for s in T.sources(db)}
    hits = []
    for r in rows:
        h = _hit(r, snaps, srcs, None)
        h.snapshots = [s.snap_id for s in snaps.holders(r[2], r[3], r[4])]
        hits.append(h)
    hits.sort(key=lambda h: (h.host, h.source, h.first_time_ns))
    return hits


@dataclass(slots=True)
class ListEntry:
    """One entry of a directory listing (the snapshot is the listing's)."""

    path: str
    name: str
    type: str
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    digest: str | None
    target: str | None

    def to_json(self) -> dict:
        return {f: getattr(self, f) for f in self.__slots__}


def _entry(row) -> ListEntry:
    (dpath, name, _sid, _first, _last, vtype, size, mtime, ctime, mode, uid, gid, user, group, digest, target) = row
    return ListEntry(join_path(dpath, name), name, TYPE_NAMES.get(vtype, "?"), size, mtime, ctime, mode, uid, gid,
                     user, group, bytes(digest).hex() if digest is not None else None, target)


@dataclass
class Listing:
    """The entries of a directory in one snapshot."""

    snapshot: T.SnapRow
    path: str
    entries: list[ListEntry]

    def to_json(self) -> dict:
        return {"snapshot": self.snapshot.snap_id, "time_ns": self.snapshot.time_ns, "host": self.snapshot.host,
                "source": self.snapshot.paths, "path": self.path, "entries": [e.to_json() for e in self.entries]}


def listing(db: Backend, path: str, *, snapshot: str | None = None, at: int | None = None,
            hosts: list[str] | None = None, sources: list[str] | None = None, tags: list[str] | None = None,
            recursive: bool = False) -> list[Listing]:
    """What ``path`` held in ``snapshot`` (an id prefix or ``latest``), or at time ``at`` in
    each source (its latest snapshot not after ``at``)."""
    snaps = SnapshotIndex(db)
    p = norm_path(path)
    if snapshot is not None:
        chosen = [snaps.resolve(snapshot)]
    else:
        if at is None:
            raise UsageError("give a snapshot or a time")
        src_ids = _source_filter(db, hosts or [], sources or [])
        chosen = []
        for sid, lst in snaps.by_source.items():
            if src_ids is not None and sid not in src_ids:
                continue
            before = [s for s in lst if s.time_ns <= at and set(tags or ()) <= set(s.tags)]
            if before:
                chosen.append(before[-1])
    srcs = {s.id: s for s in T.sources(db)}
    out = []
    for snap in sorted(chosen, key=lambda s: (s.host, s.paths, s.time_ns)):
        entries = _entries_at(db, snaps, srcs, snap, p, recursive)
        if entries is not None:
            out.append(Listing(snap, p, entries))
    return out


def _entries_at(db: Backend, snaps: SnapshotIndex, srcs, snap: T.SnapRow, path: str,
                recursive: bool) -> list[ListEntry] | None:
    alive = "v.source_id = ? AND v.first_pos <= ? AND v.last_pos >= ?"
    base = [snap.source_id, snap.pos, snap.pos]
    is_dir = db.q("SELECT 1 FROM trees t JOIN dirs d ON d.id = t.dir_id WHERE d.path = ? AND t.source_id = ? "
                  "AND t.first_pos <= ? AND t.last_pos >= ?", [path] + base)
    if is_dir:
        if recursive:
            dsql = "v.dir_id IN (SELECT id FROM dirs WHERE path = ? OR (path >= ? AND path < ?))"
            dparams = [path, path.rstrip("/") + "/", path.rstrip("/") + "0"] if path != "/" else None
            if dparams is None:
                dsql, dparams = "1 = 1", []
            rows = db.q(_SELECT + f" WHERE {dsql} AND {alive} ORDER BY d.path, n.name", dparams + base)
        else:  # one directory: no joins per row but the name (owners come from a small dict)
            in_sql, in_params = db.in_list("v.dir_id", [r[0] for r in db.q("SELECT id FROM dirs WHERE path = ?",
                                                                            [path])])
            owners = {r[0]: (r[1], r[2]) for r in db.q('SELECT id, "user", grp FROM owners')}
            raw = db.q("SELECT n.name, v.source_id, v.first_pos, v.last_pos, v.type, v.size, v.mtime, v.ctime, "
                       "v.mode, v.uid, v.gid, v.owner_id, v.digest, v.target FROM versions v JOIN names n ON "
                       f"n.id = v.name_id WHERE {in_sql} AND {alive}", in_params + base)
            raw.sort(key=lambda r: r[0])
            prefix = path if path.endswith("/") else path + "/"
            none = ("", "")
            out = []
            for (name, _s, _f, _l, vtype, size, mtime, ctime, mode, uid, gid, oid, digest, target) in raw:
                user, group = owners.get(oid, none)
                out.append(ListEntry(prefix + name, name, TYPE_NAMES.get(vtype, "?"), size, mtime, ctime, mode, uid,
                                     gid, user, group, bytes(digest).hex() if digest is not None else None, target))
            return out
    elif path != "/":
        parent, name = path.rsplit("/", 1)
        rows = db.q(_SELECT + f" WHERE v.dir_id IN (SELECT id FROM dirs WHERE path = ?) AND "
                    f"v.name_id IN (SELECT id FROM names WHERE name = ?) AND {alive}", [parent or "/", name] + base)
        if not rows:
            return None
    else:
        return None
    return [_entry(r) for r in rows]
