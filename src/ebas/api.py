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
from ebas.repo.config import DEFAULT_PACK_SIZE
from ebas.repo.repository import Repository
from ebas.repo.snapshots import Snapshot
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.registry import open_store

__all__ = [
    "BackupOptions", "BackupResult", "Change", "ChunkerParams", "KdfParams", "Repository", "RestoreResult",
    "Snapshot", "backup", "diff", "init_repository", "ls", "open_repository", "repository_stats", "restore",
]


def init_repository(url: str, password: bytes | str, *, chunker: ChunkerParams | None = None,
                    pack_size: int = DEFAULT_PACK_SIZE, compression: str = "zstd", kdf: KdfParams | None = None,
                    clock: Clock = SYSTEM_CLOCK, entropy: Entropy = SYSTEM_ENTROPY) -> Repository:
    """Create a repository at ``url`` (a path, ``file://``, ``memory://``, ...) and open it."""
    return Repository.init(open_store(url), password, chunker=chunker, pack_size=pack_size,
                           compression=compression, kdf=kdf, clock=clock, entropy=entropy)


def open_repository(url: str, password: bytes | str, *, clock: Clock = SYSTEM_CLOCK,
                    entropy: Entropy = SYSTEM_ENTROPY) -> Repository:
    """Open the repository at ``url`` with ``password``."""
    return Repository.open(open_store(url), password, clock=clock, entropy=entropy)


def backup(repo: Repository, paths: list[str], **options) -> BackupResult:
    """Back up ``paths``; keyword options are those of :class:`BackupOptions`."""
    return Archiver(repo, BackupOptions(paths=list(paths), **options)).run()


def restore(repo: Repository, snapshot: str, target: str, *, includes: list[str] | None = None,
            host: str | None = None, tags: list[str] | None = None, path: str | None = None,
            restore_owner: bool | None = None) -> RestoreResult:
    """Restore ``snapshot`` ("latest" or an id prefix) into ``target``."""
    snap = repo.find_snapshot(snapshot, host=host, tags=tags, path=path)
    return Restorer(repo, snap, target, includes=includes, restore_owner=restore_owner).run()


def ls(repo: Repository, snapshot: str, path: str = "/", *, recursive: bool = False):
    """``(path, Node)`` pairs under ``path`` in a snapshot."""
    return list(list_path(repo, repo.find_snapshot(snapshot), path, recursive))


def diff(repo: Repository, a: str, b: str) -> list[Change]:
    """Changes from snapshot ``a`` to snapshot ``b``."""
    return diff_snapshots(repo, repo.find_snapshot(a), repo.find_snapshot(b))


def repository_stats(repo: Repository) -> dict:
    """Logical and stored sizes, reduction, blob and pack counts."""
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
    return {
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
