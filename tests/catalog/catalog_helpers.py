"""Helpers for the catalog suite: real repositories built from real files, and a brute-force oracle."""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass, field

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.backup.browse import walk
from ebas.catalog import open_catalog
from ebas.catalog.catalog import list_snapshot_ids
from ebas.catalog.query import SnapshotIndex
from ebas.catalog.schema import TYPE_CODES, content_digest, join_path
from ebas.crypto.kdf import KdfParams
from ebas.repo.repository import Repository
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage.backends.memory import MemoryStore

DAY = 86400 * 10**9
T0 = 1_700_000_000 * 10**9
_n = itertools.count()


# --------------------------------------------------------------- repositories
class RepoBuilder:
    """Writes real files and backs them up into an in-memory repository."""

    def __init__(self, root: str):
        self.root = root
        self.name = f"catalog-test-{next(_n)}"
        self.repo = Repository.init(MemoryStore.from_url(f"memory://{self.name}"), "pw",
                                    kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
        self.snaps = []

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel.lstrip("/"))

    def write(self, rel: str, data: bytes | str = b"", *, mtime: int | None = None, mode: int | None = None) -> str:
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            os.chmod(p, mode)
        if mtime is not None:
            os.utime(p, ns=(mtime, mtime))
        return p

    def remove(self, rel: str) -> None:
        p = self.path(rel)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.remove(p)

    def backup(self, sources: list[str], k: float, host: str = "alpha", tags=(), level: str = "incremental"):
        paths = [self.path(s) for s in sources]
        res = Archiver(self.repo, BackupOptions(paths=paths, host=host, tags=list(tags), level=level,
                                                time_ns=int(T0 + k * DAY))).run()
        self.snaps.append(res.snapshot)
        return res.snapshot

    def ids(self) -> set[str]:
        return list_snapshot_ids(self.repo.store)

    def close(self) -> None:
        MemoryStore.drop_namespace(self.name)




def open_for(builder: RepoBuilder, location: str, **kw):
    """A catalog of the builder's repository with freshness checks wired to its store."""
    return open_catalog(location, repo_id=builder.repo.config.repo_id,
                        snapshot_ids=lambda: list_snapshot_ids(builder.repo.store), **kw)


# -------------------------------------------------------------------- oracle
@dataclass
class Fact:
    """One run of equal versions of a path over consecutive snapshots of a source (brute force)."""

    host: str
    source: tuple
    path: str
    name: str
    type: int
    size: int
    mtime: int
    mode: int
    uid: int
    user: str
    digest: bytes | None
    holders: list = field(default_factory=list)  # snapshots, in order
    deleted_in: object = None

    def key(self) -> tuple:
        return (self.path, self.host, self.holders[0].id, self.holders[-1].id, len(self.holders))


def brute_force(repo) -> list[Fact]:
    """Every version run of every path, by walking every tree of every snapshot."""
    snaps = repo.snapshots(refresh=True)
    by_source: dict[tuple, list] = {}
    for s in snaps:
        by_source.setdefault((s.host, tuple(sorted(s.paths))), []).append(s)
    facts: list[Fact] = []
    for (host, paths), lst in by_source.items():
        lst.sort(key=lambda s: (s.time_ns, s.id))
        open_runs: dict[str, Fact] = {}
        prev_paths: set[str] = set()
        for s in lst:
            seen = {}
            for p, n in walk(repo, bytes.fromhex(s.tree)):
                t = TYPE_CODES[n.type]
                name = os.fsdecode(n.name)
                try:
                    name = n.name.decode("utf-8")
                except UnicodeDecodeError:
                    name = n.name.decode("utf-8", "backslashreplace")
                    p = join_path(p.rsplit("/", 1)[0] or "/", name)
                version = (t, n.size, n.mtime_ns, n.ctime_ns, n.mode, n.uid, n.gid, n.user, n.group,
                           content_digest(n.content) if t == 0 else None,
                           n.target.decode("utf-8", "backslashreplace") if n.target else None)
                seen[p] = (version, n, name)
            for p in prev_paths - set(seen):
                open_runs.pop(p).deleted_in = s
            for p, (version, n, name) in seen.items():
                run = open_runs.get(p)
                if run is not None and run._v == version:
                    run.holders.append(s)
                    continue
                f = Fact(host, paths, p, name, version[0], n.size, n.mtime_ns, n.mode, n.uid, n.user, version[9], [s])
                f._v = version
                facts.append(f)
                open_runs[p] = f
            prev_paths = set(seen)
    return facts


def hit_keys(hits) -> set[tuple]:
    return {(h.path, h.host, h.first_snapshot, h.last_snapshot, h.snapshot_count) for h in hits}


def fact_keys(facts) -> set[tuple]:
    return {f.key() for f in facts}


def canonical(cat) -> set[tuple]:
    """The catalog's content independent of positions and row ids: each version with its holders."""
    snaps = SnapshotIndex(cat.db)
    out = set()
    for r in cat.db.q('SELECT d.path, n.name, n.raw, v.source_id, v.first_pos, v.last_pos, v.type, v.size, v.mtime, '
                      'v.ctime, v.mode, v.uid, v.gid, o."user", o.grp, v.digest, v.target FROM versions v '
                      "JOIN dirs d ON d.id = v.dir_id JOIN names n ON n.id = v.name_id "
                      "JOIN owners o ON o.id = v.owner_id"):
        holders = tuple(s.snap_id for s in snaps.holders(r[3], r[4], r[5]))
        out.add(("v", r[0], r[1], bytes(r[2]) if r[2] is not None else None, *r[6:15],
                 bytes(r[15]) if r[15] is not None else None, r[16], holders))
    for r in cat.db.q("SELECT d.path, t.source_id, t.first_pos, t.last_pos, t.tree FROM trees t "
                      "JOIN dirs d ON d.id = t.dir_id"):
        out.add(("t", r[0], bytes(r[4]), tuple(s.snap_id for s in snaps.holders(r[1], r[2], r[3]))))
    return out


def row_count(cat, table: str = "versions") -> int:
    return int(cat.db.one(f"SELECT count(*) FROM {table}"))


# ------------------------------------------------------------ synthetic trees
class SyntheticTrees:
    """A tree source built from ``{"dir/sub/file": (size, mtime)}`` maps: tree ids are hashes
    of the listings (Merkle), so equal directories get equal ids as in a repository."""

    def __init__(self):
        self.trees: dict[bytes, list] = {}
        self.reads = 0

    def entries(self, tree_id: bytes):
        self.reads += 1
        return self.trees[tree_id]

    def build(self, files: dict[str, tuple]) -> bytes:
        root: dict = {}
        for path, meta in files.items():
            parts = path.strip("/").split("/")
            d = root
            for c in parts[:-1]:
                d = d.setdefault(c, {})
            d[parts[-1]] = meta
        return self._tree(root)

    def _tree(self, d: dict) -> bytes:
        import json

        import blake3

        from ebas.catalog.schema import DIR, FILE, Entry

        entries = []
        for name in sorted(d):
            v = d[name]
            if isinstance(v, dict):
                entries.append(Entry(name=name, type=DIR, mode=0o755, subtree=self._tree(v)))
            else:
                size, mtime = v[0], v[1]
                entries.append(Entry(name=name, type=FILE, size=size, mtime=mtime, ctime=mtime, mode=0o644,
                                     user="root", group="root",
                                     digest=blake3.blake3(f"{size}:{mtime}".encode()).digest()[:16]))
        tid = blake3.blake3(json.dumps([e.to_list() for e in entries]).encode()).digest()
        self.trees[tid] = entries
        return tid


def synth_info(i: int, root: bytes, host: str = "h", paths=("/",), day: float | None = None):
    from ebas.catalog import SnapshotInfo

    sid = f"{host}-{i:05d}".encode().hex().ljust(64, "0")
    return SnapshotInfo(sid, int(T0 + (i if day is None else day) * DAY), host, list(paths), root.hex())
