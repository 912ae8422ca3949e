"""The catalog: every file version of every snapshot, found in milliseconds.

Layer 2 (imports only :mod:`ebas.repo` and below). One interface, two engines: SQLite
(embedded default, a file in the repository's cache directory) and PostgreSQL
(``postgresql://...``). File versions are stored as validity intervals over each
source's snapshot sequence, so a file unchanged across 300 snapshots is one row.
See docs/catalog.md for the schema and the sync protocol.

    from ebas.catalog import open_catalog, FindQuery
    cat = open_catalog(repo_id=repo.config.repo_id, snapshot_ids=lambda: list_snapshot_ids(repo.store))
    cat.sync(repo)
    result = cat.find(FindQuery("report", newer=...))
    result.freshness.not_indexed   # snapshots the answer could not see
"""

from ebas.catalog.catalog import (
    Catalog,
    CheckResult,
    FindResult,
    Freshness,
    HistoryResult,
    LsResult,
    SyncResult,
    list_snapshot_ids,
)
from ebas.catalog.errors import (
    CatalogCorrupt,
    CatalogError,
    CatalogMismatch,
    CatalogUnavailable,
    QueryRejected,
    QueryTimeout,
)
from ebas.catalog.ingest import IngestStats, RepoTrees, SnapshotInfo, TreeSource
from ebas.catalog.location import default_catalog_path, file_digest, is_postgres, open_catalog, rebuild_catalog
from ebas.catalog.query import FindQuery, Hit, Listing
from ebas.catalog.schema import Entry

__all__ = [
    "Catalog", "CatalogCorrupt", "CatalogError", "CatalogMismatch", "CatalogUnavailable", "CheckResult", "Entry",
    "FindQuery", "FindResult", "Freshness", "Hit", "HistoryResult", "IngestStats", "Listing", "LsResult",
    "QueryRejected", "QueryTimeout", "RepoTrees", "SnapshotInfo", "SyncResult", "TreeSource", "default_catalog_path",
    "file_digest", "is_postgres", "list_snapshot_ids", "open_catalog", "rebuild_catalog",
]
