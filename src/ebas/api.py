"""The public Python API of ebas (the CLI is a thin layer over these functions).

Typical use::

    from ebas import api
    repo = api.init_repository("/srv/backup", "secret")
    result = api.backup(repo, ["/home"], tags=["daily"])
    api.restore(repo, "latest", "/tmp/restore")

Everything raises subclasses of :class:`ebas.errors.EbasError`.
"""

from __future__ import annotations

from ebas.backup.archiver import Archiver, BackupOptions, BackupResult
from ebas.backup.browse import Change, diff_snapshots, list_path
from ebas.backup.restorer import Restorer, RestoreResult
from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.lifecycle.forget import ForgetResult
from ebas.lifecycle.forget import forget as _forget
from ebas.lifecycle.holding import add_hold, list_holds, release_hold, set_min_retention
from ebas.lifecycle.prune import PruneResult
from ebas.lifecycle.prune import prune as _prune
from ebas.lifecycle.retention import RetentionPolicy
from ebas.repo.config import DEFAULT_PACK_SIZE
from ebas.repo.repository import Repository
from ebas.repo.snapshots import Snapshot
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.registry import open_store
from ebas.storage.stack import build_stack
from ebas.transfer.recall import staged
from ebas.units import parse_duration

__all__ = [
    "BackupOptions", "BackupResult", "Change", "ChunkerParams", "ForgetResult", "KdfParams", "PruneResult",
    "Repository", "RestoreResult", "RetentionPolicy", "Snapshot", "add_hold", "backup", "catalog", "diff", "forget",
    "init_repository", "list_holds", "ls", "open_repository", "parse_duration", "prune", "release_hold",
    "repository_stats", "restore", "set_min_retention", "transfer",
]


def init_repository(url: str, password: bytes | str, *, chunker: ChunkerParams | None = None,
                    pack_size: int = DEFAULT_PACK_SIZE, compression: str = "zstd", kdf: KdfParams | None = None,
                    clock: Clock = SYSTEM_CLOCK, entropy: Entropy = SYSTEM_ENTROPY) -> Repository:
    """Create a repository at ``url`` (a path, ``file://``, ``memory://``, ...) and open it."""
    store = build_stack(open_store(url), clock=clock, entropy=entropy)
    return Repository.init(store, password, chunker=chunker, pack_size=pack_size,
                           compression=compression, kdf=kdf, clock=clock, entropy=entropy)


def open_repository(url: str, password: bytes | str, *, clock: Clock = SYSTEM_CLOCK,
                    entropy: Entropy = SYSTEM_ENTROPY) -> Repository:
    """Open the repository at ``url`` with ``password``."""
    return Repository.open(build_stack(open_store(url), clock=clock, entropy=entropy), password, clock=clock,
                           entropy=entropy)


def backup(repo: Repository, paths: list[str], **options) -> BackupResult:
    """Back up ``paths``; keyword options are those of :class:`BackupOptions`."""
    return Archiver(repo, BackupOptions(paths=list(paths), **options)).run()


def restore(repo: Repository, snapshot: str, target: str, *, includes: list[str] | None = None,
            host: str | None = None, tags: list[str] | None = None, path: str | None = None,
            restore_owner: bool | None = None, staging: str | None = None) -> RestoreResult:
    """Restore ``snapshot`` ("latest" or an id prefix) into ``target``.

    From a tape repository the repository is first recalled, in tape order, into a
    staging directory under ``staging`` (default: beside ``target``); see
    :mod:`ebas.transfer.recall`."""
    with staged(repo, staging, near=target) as (source, _):
        snap = source.find_snapshot(snapshot, host=host, tags=tags, path=path)
        return Restorer(source, snap, target, includes=includes, restore_owner=restore_owner).run()


def ls(repo: Repository, snapshot: str, path: str = "/", *, recursive: bool = False):
    """``(path, Node)`` pairs under ``path`` in a snapshot."""
    return list(list_path(repo, repo.find_snapshot(snapshot), path, recursive))


def diff(repo: Repository, a: str, b: str) -> list[Change]:
    """Changes from snapshot ``a`` to snapshot ``b``."""
    return diff_snapshots(repo, repo.find_snapshot(a), repo.find_snapshot(b))


def forget(repo: Repository, policy: RetentionPolicy | None = None, **options) -> ForgetResult:
    """Remove snapshots by retention ``policy`` or ``snapshot_ids=[...]`` (see
    :func:`ebas.lifecycle.forget.forget` for the options: dry_run, allow_empty, group_by, ...)."""
    return _forget(repo, policy, **options)


def prune(repo: Repository, **options) -> PruneResult:
    """Delete unreferenced data and repack mostly-unused packs (see :func:`ebas.lifecycle.prune.prune`:
    max_unused, grace, max_wait, dry_run, ...; durations in seconds)."""
    return _prune(repo, **options)


def repository_stats(repo: Repository, *, reclaimable: bool = False) -> dict:
    """Logical and stored sizes, reduction, blob and pack counts; with ``reclaimable`` also
    what a prune would free (walks every snapshot's trees: ``reclaimable_bytes``,
    ``unused_bytes``, ``live_bytes``, ``referenced_blobs``, packs to delete / repack)."""
    snaps = repo.snapshots()
    logical = sum(int(s.stats.get("bytes_logical", 0)) for s in snaps)
    stored = 0
    packs = 0
    pack_bytes = 0
    for info in repo.store.list(""):
        stored += info.size
        if info.name.startswith("data/"):
            packs += 1
            pack_bytes += info.size
    table = repo.index.table
    out = {
        "snapshots": len(snaps),
        "logical_bytes": logical,
        "stored_bytes": stored,
        "pack_bytes": pack_bytes,
        "reduction": round(1 - stored / logical, 6) if logical else 0.0,
        "blobs": len(table),
        "chunks": len(table),
        "packs": packs,
        "index_segments": len(repo.index.segments),
        "dedup_table_bytes": table.memory_bytes(),
        "dedup_bytes_per_blob": round(table.memory_bytes() / len(table), 2) if len(table) else 0.0,
    }
    if reclaimable:
        from ebas.errors import EbasError
        from ebas.lifecycle.pruneplan import make_plan

        try:
            plan = make_plan(repo).summary()
        except EbasError as exc:  # a damaged repository still gets its other figures
            out["reclaimable_error"] = exc.message
        else:
            out.update({k: plan[k] for k in ("reclaimable_bytes", "unused_bytes", "live_bytes", "referenced_blobs",
                                             "packs_delete", "packs_repack", "packs_pending_delete")})
    return out


def transfer(src_url: str, dst_url: str, *, name: str | None = None, streams: int = 4,
             part_size: int = 16 * 1024 * 1024, bwlimit: str | float | None = None, window: str | None = None,
             prefix: str = "", progress=None, journal_dir: str | None = None, **options):
    """Copy every object under ``prefix`` from store ``src_url`` to ``dst_url`` as a named,
    journalled, resumable job; a :class:`ebas.transfer.engine.TransferResult`. See
    :func:`ebas.transfer.jobs.transfer` for the options (``verify``, ``link``, ``clock`` ...)."""
    from ebas.transfer.jobs import transfer as _transfer

    return _transfer(src_url, dst_url, name=name, streams=streams, part_size=part_size, bwlimit=bwlimit,
                     window=window, prefix=prefix, progress=progress, journal_dir=journal_dir, **options)


def catalog(repo: Repository, location: str | None = None, *, site: str | None = None):
    """The :class:`ebas.catalog.Catalog` of ``repo``: SQLite in the repository's cache
    directory by default, or ``location`` (a file path or ``postgresql://...``). Answers
    report the snapshots of ``repo`` not indexed yet; ``cat.sync(repo)`` indexes them;
    queries take an :class:`ebas.catalog.FindQuery`. Close it (or use ``with``)."""
    from ebas.catalog import list_snapshot_ids, open_catalog  # imported on use: keeps start-up fast

    return open_catalog(location, repo_id=repo.config.repo_id, site=site,
                        snapshot_ids=lambda: list_snapshot_ids(repo.store))
