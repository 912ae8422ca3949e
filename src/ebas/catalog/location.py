"""Where a catalog lives, and opening, rebuilding and content digests of local files.

``--catalog`` takes a path (SQLite), ``sqlite:///abs/path``, or ``postgresql://...``.
Without it the catalog is ``$XDG_CACHE_HOME/ebas/<repository id>/catalog.sqlite``
(``~/.cache/...`` when ``XDG_CACHE_HOME`` is unset): derived data, in the cache.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterable

from ebas.catalog.catalog import Catalog, SyncResult
from ebas.catalog.db.base import Backend
from ebas.catalog.errors import CatalogError
from ebas.catalog.schema import content_digest
from ebas.errors import UsageError
from ebas.progress import Progress

PG_SCHEMES = ("postgresql://", "postgres://")


def default_catalog_path(repo_id: str, environ: dict | None = None) -> str:
    """The default SQLite catalog file of a repository."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    safe = re.sub(r"[^0-9A-Za-z_.-]", "_", repo_id) or "unknown"
    return os.path.join(base, "ebas", safe, "catalog.sqlite")


def is_postgres(location: str) -> bool:
    return location.startswith(PG_SCHEMES)


def _pg_schema(repo_id: str | None) -> str:
    rid = re.sub(r"[^0-9a-z_]", "", (repo_id or "").lower())[:24]
    return f"ebas_{rid}" if rid else "ebas"


def _sqlite_path(location: str) -> str:
    if location.startswith("sqlite://"):
        path = location[len("sqlite://"):]
        return path if path else ":memory:"
    return location


def open_backend(location: str, repo_id: str | None = None) -> Backend:
    """The engine for a location (no schema work)."""
    if is_postgres(location):
        from ebas.catalog.db.postgres import PostgresBackend

        return PostgresBackend(location, schema=_pg_schema(repo_id))
    if "://" in location and not location.startswith("sqlite://"):
        raise UsageError(f"unknown catalog location {location!r}",
                         hint="use a file path, sqlite:///path or postgresql://user@host/db")
    from ebas.catalog.db.sqlite import SqliteBackend

    return SqliteBackend(os.path.expanduser(_sqlite_path(location)))


def open_catalog(location: str | None = None, *, repo_id: str | None = None, site: str | None = None,
                 snapshot_ids: Callable[[], Iterable[str]] | None = None, **kwargs) -> Catalog:
    """Open (creating if needed) the catalog at ``location`` (default: the repository's cache file)."""
    if location is None:
        if not repo_id:
            raise UsageError("no catalog location and no repository id to derive one from")
        location = default_catalog_path(repo_id)
    db = open_backend(location, repo_id)
    try:
        return Catalog(db, repo_id=repo_id, site=site, snapshot_ids=snapshot_ids, **kwargs)
    except BaseException:
        db.close()
        raise


def rebuild_catalog(location: str | None, repo, *, site: str | None = None,
                    progress: Progress | None = None, **kwargs) -> tuple[Catalog, SyncResult]:
    """Recreate a catalog from ``repo`` (works on a damaged catalog). Keeps the site id and
    tombstones when they can still be read."""
    from ebas.catalog.catalog import list_snapshot_ids

    repo_id = repo.config.repo_id
    location = location or default_catalog_path(repo_id)
    keep_site, tombstones = site, []
    try:
        old = open_catalog(location, repo_id=repo_id)
        keep_site = keep_site or old.site
        tombstones = old.db.q("SELECT snap_id, site, time_ns FROM tombstones")
        old.close()
    except CatalogError:
        pass
    if is_postgres(location):
        db = open_backend(location, repo_id)
        db.drop_schema()
    else:
        path = os.path.expanduser(_sqlite_path(location))
        if path != ":memory:":
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(path + suffix)
                except FileNotFoundError:
                    pass
        db = open_backend(location, repo_id)
    cat = Catalog(db, repo_id=repo_id, site=keep_site, snapshot_ids=lambda: list_snapshot_ids(repo.store), **kwargs)
    if tombstones:
        with db.write():
            db.insert_rows("tombstones", ("snap_id", "site", "time_ns", "mark"),
                           [(a, b, c, 0) for a, b, c in tombstones])
    return cat, cat.sync(repo, progress)


def file_digest(repo, path: str) -> bytes:
    """The catalog content digest a local file would have in ``repo`` (same chunker, same id key).

    Sparse files are read whole here, while backups store only their data extents, so a
    sparse file's digest may differ from the one in the catalog.
    """
    params = repo.config.chunker
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            block = params.fixed_block_for(os.path.basename(path), size)
            ids = b"".join(repo.ids.blob_id(c) for c in repo.chunker().chunks(fh.read, block))
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror}") from exc
    digest = content_digest(ids)
    if digest is None:
        raise UsageError(f"{path!r} is empty; empty files have no content digest")
    return digest
