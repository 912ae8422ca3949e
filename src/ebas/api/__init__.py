"""The public Python API of ebas: everything the command line does, as functions with
typed keyword arguments. The CLI is a thin front end over these functions (it only
parses arguments, reads passwords and prints); a scheduler or any program can do the same.

Typical use::

    from ebas import api
    repo = api.init_repository("/srv/backup", "secret")
    result = api.backup(repo, ["/home"], tags=["daily"])      # also indexes it in the catalog
    api.restore(repo, "latest", "/tmp/restore")
    api.forget(repo, api.RetentionPolicy(daily=7, weekly=4), then_prune=api.PruneOptions())
    hits = api.find("report", repo=repo, newer="7d").hits

Results have ``to_json()``: the dict ``ebas ... --json`` prints. Everything raises
subclasses of :class:`ebas.errors.EbasError` (each with an exit code and a hint).
The names in ``__all__`` and their signatures are pinned by tests/arch/test_api_surface.py.
"""

from __future__ import annotations

from ebas.api._catalog import (
    catalog,
    catalog_check,
    catalog_export,
    catalog_import,
    catalog_ls,
    catalog_rebuild,
    catalog_stats,
    catalog_sync,
    catalog_vacuum,
    find,
    history,
)
from ebas.api._data import backup, chains, diff, dump, find_snapshot, ls, resolve_level, restore, snapshots
from ebas.api._lifecycle import (
    PruneOptions,
    add_hold,
    compliance,
    export,
    forget,
    list_holds,
    prune,
    release_hold,
    set_min_retention,
    synthesize,
)
from ebas.api._repo import (
    add_key,
    change_password,
    check,
    extend_object_locks,
    init,
    init_repository,
    list_keys,
    migrate_repository,
    open_repository,
    remove_key,
    repair_index,
    repository_stats,
    unlock,
)
from ebas.api._results import (
    CatalogAnswer,
    ChainList,
    ComplianceState,
    DiffResult,
    HoldChange,
    HoldList,
    InitResult,
    KeyChange,
    KeyList,
    Listing,
    RepositoryStats,
    SnapshotList,
    UnlockResult,
)
from ebas.api._transfer import transfer, transfer_cancel, transfer_jobs, transfer_resume, transfer_status
from ebas.backup.archiver import BackupOptions, BackupResult
from ebas.backup.browse import Change
from ebas.backup.restorer import RestoreResult
from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.lifecycle.forget import ForgetResult
from ebas.lifecycle.prune import PruneResult
from ebas.lifecycle.retention import RetentionPolicy
from ebas.repo.migrate import MigrateResult
from ebas.repo.repository import Repository
from ebas.repo.snapshots import Snapshot
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.redact import redact_url, scrub_exception
from ebas.units import format_duration, parse_duration

__all__ = [
    # types
    "BackupOptions", "BackupResult", "CatalogAnswer", "ChainList", "Change", "ChunkerParams", "Clock",
    "ComplianceState", "DiffResult", "Entropy", "ForgetResult", "HoldChange", "HoldList", "InitResult", "KdfParams",
    "KeyChange", "KeyList", "Listing", "MigrateResult", "PruneOptions", "PruneResult", "Repository", "RepositoryStats",
    "RestoreResult", "RetentionPolicy", "SYSTEM_CLOCK", "SYSTEM_ENTROPY", "Snapshot", "SnapshotList", "UnlockResult",
    # repository
    "init", "init_repository", "open_repository", "repository_stats", "check", "repair_index", "unlock",
    "extend_object_locks", "list_keys", "add_key", "remove_key", "change_password", "migrate_repository",
    # data path
    "backup", "restore", "dump", "ls", "diff", "snapshots", "chains", "find_snapshot", "resolve_level",
    # lifecycle
    "forget", "prune", "add_hold", "release_hold", "list_holds", "set_min_retention", "compliance", "synthesize",
    "export",
    # catalog
    "catalog", "find", "history", "catalog_ls", "catalog_sync", "catalog_rebuild", "catalog_check", "catalog_stats",
    "catalog_vacuum", "catalog_export", "catalog_import",
    # parsing and formatting of flag values
    # transfer
    "transfer", "transfer_resume", "transfer_status", "transfer_jobs", "transfer_cancel",
    "format_duration", "parse_duration", "redact_url", "scrub_exception",
]
