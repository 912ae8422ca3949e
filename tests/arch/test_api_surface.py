"""The public Python API is a decision, not an accident: this test pins ``ebas.api.__all__``
and the signature of every function in it (and of the option types callers build).

A failure here means the public API changed. If that is intended, update the literal
below in the same change (and the README / docs/architecture.md if a user would notice):
that diff is the visible record of the decision.
"""

from __future__ import annotations

import inspect

from ebas import api

TYPES = [
    'BackupOptions',
    'BackupResult',
    'CatalogAnswer',
    'ChainList',
    'Change',
    'ChunkerParams',
    'Clock',
    'ComplianceState',
    'DiffResult',
    'Entropy',
    'ForgetResult',
    'HoldChange',
    'HoldList',
    'InitResult',
    'KdfParams',
    'KeyChange',
    'KeyList',
    'Listing',
    'MigrateResult',
    'PruneOptions',
    'PruneResult',
    'Repository',
    'RepositoryStats',
    'RestoreResult',
    'RetentionPolicy',
    'SYSTEM_CLOCK',
    'SYSTEM_ENTROPY',
    'Snapshot',
    'SnapshotList',
    'UnlockResult',
]

FUNCTIONS = {
    'add_hold': "(repo: 'Repository', snapshot: 'str', reason: 'str', *, until: 'datetime | None' = None) -> 'HoldChange'",
    'add_key': "(repo: 'Repository', new_password: 'bytes | str', *, kdf: 'KdfParams | str | None' = None) -> 'KeyChange'",
    'backup': "(repo: 'Repository', paths: 'Sequence[str]' = (), *, level: 'str' = 'incremental', tags: 'Sequence[str]' = (), host: 'str' = '', excludes: 'Sequence[str]' = (), exclude_files: 'Sequence[str]' = (), one_file_system: 'bool' = False, stdin_filename: 'str' = '', workers: 'int' = 2, time_ns: 'int | None' = None, full_every: 'float | None' = None, full_on: 'str | int | None' = None, update_catalog: 'bool' = True, catalog: 'str | None' = None, site: 'str | None' = None, progress: 'Progress | None' = None) -> 'BackupResult'",
    'catalog': "(repo: 'Repository | None' = None, location: 'str | None' = None, *, url: 'str | None' = None, site: 'str | None' = None) -> 'Catalog'",
    'catalog_check': "(*, integrity: 'bool' = False, repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'CheckResult'",
    'catalog_export': "(out: 'IO[bytes] | str', *, since: 'int' = 0, repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'ExportStats'",
    'catalog_import': "(source: 'IO[bytes] | str', *, repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'ImportStats'",
    'catalog_ls': "(path: 'str' = '/', *, at: 'str | int | None' = None, snapshot: 'str | None' = None, recursive: 'bool' = False, hosts: 'Sequence[str]' = (), sources: 'Sequence[str]' = (), tags: 'Sequence[str]' = (), repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'LsResult'",
    'catalog_rebuild': "(repo: 'Repository', *, catalog: 'str | None' = None, site: 'str | None' = None, progress: 'Progress | None' = None) -> 'SyncResult'",
    'catalog_stats': "(*, repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'CatalogAnswer'",
    'catalog_sync': "(repo: 'Repository', *, catalog: 'str | None' = None, site: 'str | None' = None, progress: 'Progress | None' = None) -> 'SyncResult'",
    'catalog_vacuum': "(*, repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'CatalogAnswer'",
    'chains': "(repo: 'Repository', *, host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, path: 'str | None' = None) -> 'ChainList'",
    'change_password': "(repo: 'Repository', new_password: 'bytes | str', *, kdf: 'KdfParams | str | None' = None) -> 'KeyChange'",
    'check': "(repo: 'Repository', *, read_data: 'bool' = False, progress: 'Progress | None' = None) -> 'CheckReport'",
    'compliance': "(repo: 'Repository', *, min_retention: 'float | None' = None, reason: 'str' = '') -> 'ComplianceState'",
    'diff': "(repo: 'Repository', a: 'str', b: 'str') -> 'DiffResult'",
    'dump': "(repo: 'Repository', snapshot: 'str', path: 'str', out: 'BinaryIO', *, host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, source: 'str | None' = None) -> 'str'",
    'export': "(repo: 'Repository', snapshot: 'str', to_url: 'str', password: 'bytes | str', *, new_key: 'bool' = False, kdf: 'KdfParams | str | None' = None, progress: 'Progress | None' = None) -> 'ExportResult'",
    'extend_object_locks': "(repo: 'Repository', *, dry_run: 'bool' = False) -> 'LockExtendResult'",
    'find': "(pattern: 'str | None' = None, *, match: 'str' = 'auto', ignore_case: 'bool' = False, under: 'str | None' = None, size: 'str | None' = None, newer: 'str | int | None' = None, older: 'str | int | None' = None, owner: 'str | None' = None, mode: 'str | None' = None, types: 'Sequence[str]' = (), hosts: 'Sequence[str]' = (), sources: 'Sequence[str]' = (), tags: 'Sequence[str]' = (), between: 'tuple[str | int, str | int] | None' = None, deleted: 'bool' = False, same_content: 'str | None' = None, limit: 'int | None' = 1000, sort: 'str | None' = None, repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'FindResult'",
    'find_snapshot': "(repo: 'Repository', ref: 'str', *, host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, path: 'str | None' = None) -> 'Snapshot'",
    'forget': "(repo: 'Repository', policy: 'RetentionPolicy | None' = None, *, snapshot_ids: 'Sequence[str]' = (), dry_run: 'bool' = False, allow_empty: 'bool' = False, group_by: 'Sequence[str]' = ('host', 'paths'), host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, path: 'str | None' = None, now_ns: 'int | None' = None, tz: 'tzinfo' = datetime.timezone.utc, then_prune: 'PruneOptions | None' = None, update_catalog: 'bool' = True, catalog: 'str | None' = None, site: 'str | None' = None, progress: 'Progress | None' = None) -> 'ForgetResult'",
    'format_duration': "(seconds: 'float | timedelta') -> 'str'",
    'history': "(path: 'str', *, hosts: 'Sequence[str]' = (), sources: 'Sequence[str]' = (), repo: 'Repository | None' = None, url: 'str | None' = None, catalog: 'str | None' = None, site: 'str | None' = None) -> 'HistoryResult'",
    'init': "(url: 'str', password: 'bytes | str', *, chunker_min: 'int | None' = None, chunker_avg: 'int | None' = None, chunker_max: 'int | None' = None, pack_size: 'int' = 16777216, compression: 'str' = 'zstd', kdf: 'KdfParams | str | None' = 'argon2id', object_lock: 'str | None' = None, lock_days: 'int | None' = None) -> 'InitResult'",
    'init_repository': "(url: 'str', password: 'bytes | str', *, chunker: 'ChunkerParams | None' = None, pack_size: 'int' = 16777216, compression: 'str' = 'zstd', kdf: 'KdfParams | str | None' = None, clock: 'Clock | None' = None, entropy: 'Entropy | None' = None) -> 'Repository'",
    'list_holds': "(repo: 'Repository', *, include_inactive: 'bool' = False) -> 'HoldList'",
    'list_keys': "(repo: 'Repository') -> 'KeyList'",
    'ls': "(repo: 'Repository', snapshot: 'str', path: 'str' = '/', *, recursive: 'bool' = False, host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, source: 'str | None' = None) -> 'Listing'",
    'migrate_repository': "(repo: 'Repository') -> 'MigrateResult'",
    'open_repository': "(url: 'str', password: 'bytes | str', *, clock: 'Clock | None' = None, entropy: 'Entropy | None' = None) -> 'Repository'",
    'parse_duration': "(text: 'str') -> 'float'",
    'prune': "(repo: 'Repository', *, max_unused: 'float' = 0.1, grace: 'float' = 3600.0, max_wait: 'float' = 3600.0, poll: 'float' = 2.0, dry_run: 'bool' = False, lock_wait: 'float' = 0.0, progress: 'Progress | None' = None) -> 'PruneResult'",
    'redact_url': "(url: 'str') -> 'str'",
    'release_hold': "(repo: 'Repository', snapshot: 'str', reason: 'str', *, hold_id: 'str | None' = None) -> 'HoldChange'",
    'remove_key': "(repo: 'Repository', key_id: 'str') -> 'KeyChange'",
    'repair_index': "(repo: 'Repository') -> 'RepairReport'",
    'repository_stats': "(repo: 'Repository', *, reclaimable: 'bool' = False) -> 'RepositoryStats'",
    'resolve_level': "(repo: 'Repository', *, paths: 'Sequence[str]' = (), host: 'str' = '', stdin_filename: 'str' = '', full_every: 'float | None' = None, full_on: 'str | int | None' = None, time_ns: 'int | None' = None, tz: 'tzinfo | None' = None) -> 'tuple[str, str]'",
    'restore': "(repo: 'Repository', snapshot: 'str', target: 'str', *, includes: 'Sequence[str] | None' = None, host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, path: 'str | None' = None, restore_owner: 'bool | None' = None, staging: 'str | None' = None, workers: 'int' = 2, notify: 'Callable[[str], None] | None' = None, skip_damaged: 'bool' = False, progress: 'Progress | None' = None) -> 'RestoreResult'",
    'scrub_exception': "(exc: 'BaseException', urls: 'Iterable[str]') -> 'BaseException'",
    'set_min_retention': "(repo: 'Repository', min_retention: 'float', reason: 'str' = '') -> 'HoldRecord'",
    'snapshots': "(repo: 'Repository', *, host: 'str | Sequence[str] | None' = None, tags: 'Sequence[str] | None' = None, path: 'str | None' = None) -> 'SnapshotList'",
    'synthesize': "(repo: 'Repository', snapshot: 'str', *, consolidate: 'bool' = False, tags: 'Sequence[str]' = (), progress: 'Progress | None' = None) -> 'SynthResult'",
    'transfer': "(src_url: 'str', dst_url: 'str', *, name: 'str | None' = None, streams: 'int' = 4, part_size: 'int' = 16777216, bwlimit: 'str | float | None' = None, window: 'str | None' = None, prefix: 'str' = '', verify: 'str' = 'sent', adaptive: 'bool' = False, progress: 'Progress | None' = None, journal_dir: 'str | None' = None) -> 'TransferResult'",
    'transfer_cancel': "(name: 'str', *, journal_dir: 'str | None' = None) -> 'JobStatus'",
    'transfer_jobs': "(*, journal_dir: 'str | None' = None) -> 'list[JobStatus]'",
    'transfer_resume': "(name: 'str', *, streams: 'int | None' = None, bwlimit: 'str | float | None' = None, progress: 'Progress | None' = None, journal_dir: 'str | None' = None) -> 'TransferResult'",
    'transfer_status': "(name: 'str', *, journal_dir: 'str | None' = None) -> 'JobStatus'",
    'unlock': "(repo: 'Repository') -> 'UnlockResult'",
}

INPUT_TYPES = {
    'PruneOptions': "(max_unused: 'float' = 0.1, grace: 'float' = 3600.0, max_wait: 'float' = 3600.0, lock_wait: 'float' = 0.0) -> None",
    'RetentionPolicy': "(last: 'int' = 0, hourly: 'int' = 0, daily: 'int' = 0, weekly: 'int' = 0, monthly: 'int' = 0, yearly: 'int' = 0, within: 'float' = 0.0, tags: 'tuple[str, ...]' = ()) -> None",
}


def test_all_is_exactly_the_pinned_names():
    assert sorted(api.__all__) == sorted(TYPES + list(FUNCTIONS)), "ebas.api.__all__ changed: update this test"
    assert len(set(api.__all__)) == len(api.__all__)


def test_every_name_in_all_exists_and_functions_are_functions():
    for name in api.__all__:
        assert hasattr(api, name), name
    for name in FUNCTIONS:
        assert inspect.isfunction(getattr(api, name)), name


def test_function_signatures_are_pinned():
    changed = {name: str(inspect.signature(getattr(api, name))) for name in FUNCTIONS
               if str(inspect.signature(getattr(api, name))) != FUNCTIONS[name]}
    assert not changed, f"signatures changed (update FUNCTIONS if intended): {changed}"


def test_option_type_signatures_are_pinned():
    for name, sig in INPUT_TYPES.items():
        assert str(inspect.signature(getattr(api, name))) == sig, name


def test_every_public_function_says_what_it_promises():
    missing = [name for name in FUNCTIONS if not (getattr(api, name).__doc__ or "").strip()]
    assert not missing, f"public functions without a docstring: {missing}"


def test_results_of_cli_commands_print_as_json():
    """Every result type the API defines for a command has ``to_json``."""
    for name in ("CatalogAnswer", "ChainList", "ComplianceState", "DiffResult", "HoldChange", "HoldList", "InitResult",
                 "KeyChange", "KeyList", "Listing", "RepositoryStats", "SnapshotList", "UnlockResult", "BackupResult",
                 "RestoreResult", "ForgetResult", "PruneResult"):
        assert callable(getattr(getattr(api, name), "to_json", None)), name
