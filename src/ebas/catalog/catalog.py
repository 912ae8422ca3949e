"""``Catalog``: one interface over both engines — ingest, sync, queries, exchange, upkeep.

Freshness is part of every answer: a catalog opened with a ``snapshot_ids`` callable
(the names under ``snapshots/`` in the store; no password needed) compares what the
repository has with what is indexed, and each result lists the snapshots that are not
indexed yet (``not_indexed``) and those indexed but gone from the repository
(``forgotten``). Without it, ``checked`` is False and the CLI says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable

from ebas.catalog import exchange, query
from ebas.catalog import tables as T
from ebas.catalog.db.base import Backend
from ebas.catalog.errors import CatalogCorrupt, CatalogMismatch
from ebas.catalog.ingest import Ingestor, IngestStats, RepoTrees, SnapshotInfo, TreeSource
from ebas.catalog.schema import OPEN, SCHEMA_VERSION
from ebas.progress import NULL_PROGRESS, Progress
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy

DEFAULT_TIMEOUT = 30.0


@dataclass
class Freshness:
    """How the catalog compares with the repository at query time."""

    checked: bool = False
    not_indexed: list[str] = field(default_factory=list)  # in the repository, not in the catalog
    forgotten: list[str] = field(default_factory=list)  # in the catalog (this site), gone from the repository

    def to_json(self) -> dict:
        return {"checked": self.checked, "not_indexed": self.not_indexed, "forgotten": self.forgotten}


@dataclass
class FindResult:
    hits: list[query.Hit]
    truncated: bool
    freshness: Freshness

    def to_json(self) -> dict:
        return {"results": [h.to_json() for h in self.hits], "truncated": self.truncated, **self.freshness.to_json()}


@dataclass
class HistoryResult:
    path: str
    versions: list[query.Hit]
    freshness: Freshness

    def to_json(self) -> dict:
        return {"path": self.path, "versions": [h.to_json() for h in self.versions], **self.freshness.to_json()}


@dataclass
class LsResult:
    path: str
    listings: list[query.Listing]
    freshness: Freshness

    def to_json(self) -> dict:
        return {"path": self.path, "listings": [x.to_json() for x in self.listings], **self.freshness.to_json()}


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    sites_added: int = 0
    unreadable: list[str] = field(default_factory=list)
    trees_read: int = 0
    rows_inserted: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # "snapshot path: reason" of entries not indexed

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CheckResult:
    indexed: int
    in_repository: int
    missing: list[str]
    extra: list[str]
    foreign: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.problems)

    def to_json(self) -> dict:
        return {"ok": self.ok, **self.__dict__}


def list_snapshot_ids(store) -> set[str]:
    """Ids of the snapshot objects in a store (no key needed)."""
    return {info.name[len("snapshots/"):] for info in store.list("snapshots/")}


class Catalog:
    """A catalog database. Open with :func:`ebas.catalog.open_catalog`."""

    def __init__(self, db: Backend, *, repo_id: str | None = None, site: str | None = None,
                 snapshot_ids: Callable[[], Iterable[str]] | None = None, timeout: float | None = DEFAULT_TIMEOUT,
                 clock: Clock = SYSTEM_CLOCK, entropy: Entropy = SYSTEM_ENTROPY):
        self.db = db
        self.ingestor = Ingestor(db)
        self.snapshot_ids = snapshot_ids
        self.timeout = timeout
        self.clock = clock
        self.entropy = entropy
        self.repo_id = repo_id
        self.site = ""
        self._init_meta(repo_id, site)

    # ------------------------------------------------------------------ meta
    def _init_meta(self, repo_id: str | None, site: str | None) -> None:
        db = self.db
        if not db.has_schema():
            with db.write():
                db.create_schema()
                T.set_meta(db, "schema_version", str(SCHEMA_VERSION))
                T.set_meta(db, "repo_id", repo_id or "")
                T.set_meta(db, "site", site or "site-" + self.entropy.token_bytes(6).hex())
                T.set_meta(db, "created_ns", str(self.clock.now_ns()))
                T.set_meta(db, "mark", "0")
        version = T.get_meta(db, "schema_version")
        if version is None or not version.isdigit():
            raise CatalogCorrupt(f"{db.location} is not an ebas catalog (no schema version)")
        if int(version) > SCHEMA_VERSION:
            raise CatalogMismatch(f"the catalog {db.location} has schema version {version}; this ebas knows "
                                  f"{SCHEMA_VERSION}", hint="upgrade ebas, or rebuild the catalog")
        stored = T.get_meta(db, "repo_id") or ""
        if repo_id and stored and stored != repo_id:
            raise CatalogMismatch(f"the catalog {db.location} indexes repository {stored}, not {repo_id}")
        if repo_id and not stored:
            with db.write():
                T.set_meta(db, "repo_id", repo_id)
        self.repo_id = repo_id or stored or None
        self.site = T.get_meta(db, "site") or ""
        if site and site != self.site:
            self.rename_site(site)

    def rename_site(self, site: str) -> None:
        """Call this catalog's site ``site`` from now on (its records move with it)."""
        with self.db.write():
            old = T.get_meta(self.db, "site") or ""
            for table in ("snapshot_sites", "tombstones"):
                self.db.x(f"UPDATE {table} SET site = ? WHERE site = ?", [site, old])
            T.set_meta(self.db, "site", site)
        self.site = site

    @property
    def engine(self) -> str:
        return self.db.engine

    @property
    def location(self) -> str:
        return self.db.location

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------- ingestion
    def ingest(self, info: SnapshotInfo, trees: TreeSource) -> IngestStats:
        """Index one snapshot whose trees come from ``trees`` (atomic)."""
        return self.ingestor.ingest(info, trees, self.site)

    def ingest_snapshot(self, repo, snap) -> IngestStats:
        """Index one snapshot of ``repo`` (an :class:`ebas.repo.snapshots.Snapshot`)."""
        trees = RepoTrees(repo)
        stats = self.ingest(SnapshotInfo.from_snapshot(snap), trees)
        stats.trees_read = trees.reads
        return stats

    def sync(self, repo, progress: Progress | None = None) -> SyncResult:
        """Index every snapshot of ``repo`` the catalog lacks; drop the ones it no longer has.

        ``progress`` receives the phase ``"catalog sync"``: items are the snapshots to
        index (total known at the start), ``current`` the snapshot being indexed."""
        progress = progress or NULL_PROGRESS
        started = time.perf_counter()
        res = SyncResult()
        listed = list_snapshot_ids(repo.store)
        snaps = repo.snapshots(refresh=True)
        res.unreadable = list(repo.snapshot_problems)
        indexed = {s.snap_id: s for s in T.all_snapshots(self.db)}
        trees = RepoTrees(repo)
        progress.start("catalog sync", items_total=sum(1 for s in snaps if s.id not in indexed))
        for s in sorted(snaps, key=lambda s: (s.host, sorted(s.paths), s.time_ns, s.id)):
            row = indexed.get(s.id)
            if row is not None:
                if self.site not in row.sites:
                    with self.db.write():
                        res.sites_added += int(self.ingestor.add_site(s.id, self.site))
                continue
            progress.advance(current=f"{s.id[:8]} ({s.host} {' '.join(s.paths)})")
            st = self.ingest(SnapshotInfo.from_snapshot(s), trees)
            res.skipped += [f"{s.id[:8]} {x}" for x in st.skipped]
            if st.added:
                res.added.append(s.id)
                res.rows_inserted += st.rows_inserted
            progress.advance(items=1)
        for sid, row in indexed.items():
            if self.site in row.sites and sid not in listed:
                _, removed = self.apply_tombstone(sid, self.site, self.clock.now_ns())
                if removed:
                    res.removed.append(sid)
        res.trees_read = trees.reads
        res.seconds = round(time.perf_counter() - started, 3)
        return res

    def apply_tombstone(self, snap_id: str, site: str, time_ns: int) -> tuple[bool, bool]:
        """Record that ``site`` no longer has the snapshot; ``(tombstone new, snapshot removed)``."""
        db = self.db
        with db.write():
            added = not db.one("SELECT 1 FROM tombstones WHERE snap_id = ? AND site = ?", [snap_id, site])
            if added:
                db.insert_rows("tombstones", ("snap_id", "site", "time_ns", "mark"),
                               [(snap_id, site, time_ns, T.next_mark(db))])
            removed = False
            if db.x("DELETE FROM snapshot_sites WHERE snap_id = ? AND site = ?", [snap_id, site]):
                T.next_mark(db)
                if not db.one("SELECT 1 FROM snapshot_sites WHERE snap_id = ?", [snap_id]):
                    removed = self.ingestor.remove(snap_id)
        return added, removed

    def forget(self, snap_id: str) -> bool:
        """Drop a snapshot forgotten at this site (tombstone); True if it left the catalog."""
        return self.apply_tombstone(snap_id, self.site, self.clock.now_ns())[1]

    # ------------------------------------------------------------ freshness
    def freshness(self, snapshot_ids: Iterable[str] | None = None) -> Freshness:
        """Compare the indexed snapshots with the repository's."""
        if snapshot_ids is None:
            if self.snapshot_ids is None:
                return Freshness(checked=False)
            snapshot_ids = self.snapshot_ids()
        listed = set(snapshot_ids)
        rows = self.db.q("SELECT s.snap_id, ss.site FROM snapshots s LEFT JOIN snapshot_sites ss "
                         "ON ss.snap_id = s.snap_id")
        indexed = {r[0] for r in rows}
        local = {r[0] for r in rows if r[1] == self.site}
        return Freshness(True, sorted(listed - indexed), sorted(local - listed))

    def check(self, *, integrity: bool = False, snapshot_ids: Iterable[str] | None = None) -> CheckResult:
        """Snapshots missing from or extra in the catalog, and (``integrity``) engine-level damage."""
        ids = set(snapshot_ids if snapshot_ids is not None else (self.snapshot_ids() if self.snapshot_ids else ()))
        snaps = T.all_snapshots(self.db)
        have = {s.snap_id for s in snaps}
        extra = sorted(s.snap_id for s in snaps if self.site in s.sites and s.snap_id not in ids)
        foreign = sorted(s.snap_id for s in snaps if self.site not in s.sites and s.snap_id not in ids)
        problems = self.db.integrity() if integrity else []
        bad = self.db.q(f"SELECT count(*) FROM versions WHERE last_pos < first_pos OR last_pos > {OPEN}")[0][0]
        if bad:
            problems.append(f"{bad} file versions have an invalid interval")
        return CheckResult(len(have), len(ids), sorted(ids - have), extra, foreign, problems)

    # --------------------------------------------------------------- queries
    def _timed(self):
        self.db.set_deadline(self.timeout)

    def find(self, q: query.FindQuery) -> FindResult:
        """File versions matching ``q`` (see :class:`ebas.catalog.query.FindQuery`)."""
        fresh = self.freshness()
        self._timed()
        try:
            hits, truncated = query.find(self.db, q)
        finally:
            self.db.set_deadline(None)
        return FindResult(hits, truncated, fresh)

    def history(self, path: str, *, hosts: list[str] | None = None, sources: list[str] | None = None) -> HistoryResult:
        """Every version of ``path`` and the snapshots holding each."""
        fresh = self.freshness()
        self._timed()
        try:
            return HistoryResult(path, query.history(self.db, path, hosts, sources), fresh)
        finally:
            self.db.set_deadline(None)

    def ls(self, path: str = "/", *, snapshot: str | None = None, at: int | None = None,
           hosts: list[str] | None = None, sources: list[str] | None = None, tags: list[str] | None = None,
           recursive: bool = False) -> LsResult:
        """A directory as it was in ``snapshot`` or at time ``at`` (ns), from the catalog alone."""
        fresh = self.freshness()
        self._timed()
        try:
            return LsResult(path, query.listing(self.db, path, snapshot=snapshot, at=at, hosts=hosts, sources=sources,
                                                tags=tags, recursive=recursive), fresh)
        finally:
            self.db.set_deadline(None)

    def snapshots(self) -> list[T.SnapRow]:
        """The indexed snapshots."""
        return T.all_snapshots(self.db)

    # -------------------------------------------------------------- exchange
    def export(self, out: IO[bytes], *, since: int = 0) -> exchange.ExportStats:
        """Write the records changed after mark ``since`` (0: everything) to ``out``."""
        return exchange.export(self.db, out, repo_id=self.repo_id or "", site=self.site, since=since)

    def import_(self, stream: IO[bytes]) -> exchange.ImportStats:
        """Apply an export file (idempotent, order-independent)."""
        return exchange.import_file(self, stream)

    @property
    def mark(self) -> int:
        """The change counter: pass it to the next ``export(since=...)``."""
        return int(T.get_meta(self.db, "mark", "0") or 0)

    # ----------------------------------------------------------- maintenance
    def stats(self) -> dict:
        """Counts, size and bytes per file version."""
        db = self.db
        count = {t: int(db.one(f"SELECT count(*) FROM {t}") or 0)
                 for t in ("sources", "snapshots", "versions", "trees", "names", "dirs", "owners", "tombstones")}
        open_rows = int(db.one(f"SELECT count(*) FROM versions WHERE last_pos = {OPEN}") or 0)
        size = db.size_bytes()
        return {"engine": db.engine, "location": db.location, "site": self.site, "repo_id": self.repo_id,
                "mark": self.mark, **count, "versions_open": open_rows, "size_bytes": size,
                "bytes_per_version": round(size / count["versions"], 1) if count["versions"] else None}

    def vacuum(self) -> dict:
        """Drop unused dictionary entries, then compact and re-analyse the database."""
        db = self.db
        with db.write():
            dirs = db.x("DELETE FROM dirs WHERE id NOT IN (SELECT dir_id FROM trees) AND NOT (parent_id = 0 AND "
                        "name_id = 0)")
            names = db.x("DELETE FROM names WHERE id NOT IN (SELECT name_id FROM versions) AND id NOT IN "
                         "(SELECT name_id FROM dirs)")
            if names:
                db.names_removed()
            owners = db.x("DELETE FROM owners WHERE id NOT IN (SELECT owner_id FROM versions)")
            sources = db.x("DELETE FROM sources WHERE id NOT IN (SELECT source_id FROM snapshots)")
        before = db.size_bytes()
        db.vacuum()
        return {"dirs_removed": dirs, "names_removed": names, "owners_removed": owners,
                "sources_removed": sources, "size_before": before, "size_after": db.size_bytes()}
