"""Repository-wide operations: create, open, measure, check, repair, unlock, keys and
write-once retention upkeep."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ebas.api._results import InitResult, KeyChange, KeyList, RepositoryStats, UnlockResult
from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.errors import EbasError, UsageError
from ebas.progress import Progress
from ebas.repo.config import DEFAULT_PACK_SIZE
from ebas.repo.migrate import MigrateResult
from ebas.repo.repository import Repository
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.registry import open_store
from ebas.storage.stack import build_stack

if TYPE_CHECKING:
    from ebas.lifecycle.objectlock import LockExtendResult
    from ebas.verify.problems import CheckReport
    from ebas.verify.repair import RepairReport


def _kdf(kdf: KdfParams | str | None, entropy: Entropy) -> KdfParams | None:
    """``kdf`` as parameters: an algorithm name means production parameters for it."""
    if isinstance(kdf, str):
        return KdfParams.new(entropy, kdf)
    return kdf


def init_repository(url: str, password: bytes | str, *, chunker: ChunkerParams | None = None,
                    pack_size: int = DEFAULT_PACK_SIZE, compression: str = "zstd", kdf: KdfParams | str | None = None,
                    clock: Clock | None = None, entropy: Entropy | None = None) -> Repository:
    """Create a repository at ``url`` (a path, ``file://``, ``memory://``, ``s3://`` ...) and open it.

    ``kdf`` is key-derivation parameters or an algorithm name (``"argon2id"``, ``"scrypt"``)
    for production parameters; an empty password is refused."""
    if not password:
        raise UsageError("refusing an empty password")
    clock, entropy = clock or SYSTEM_CLOCK, entropy or SYSTEM_ENTROPY
    store = build_stack(open_store(url), clock=clock, entropy=entropy)
    return Repository.init(store, password, chunker=chunker, pack_size=pack_size,
                           compression=compression, kdf=_kdf(kdf, entropy), clock=clock, entropy=entropy)


def init(url: str, password: bytes | str, *, chunker_min: int | None = None, chunker_avg: int | None = None,
         chunker_max: int | None = None, pack_size: int = DEFAULT_PACK_SIZE, compression: str = "zstd",
         kdf: KdfParams | str | None = "argon2id", object_lock: str | None = None,
         lock_days: int | None = None) -> InitResult:
    """``ebas init``: create a repository with chunk sizes in bytes (unset: the defaults),
    ``pack_size`` in bytes and, on S3, Object Lock retention (``object_lock`` mode
    ``governance`` or ``compliance`` for ``lock_days`` days; both or neither)."""
    url = _with_object_lock(url, object_lock, lock_days)
    params = ChunkerParams()
    sizes = {k: v for k, v in (("min_size", chunker_min), ("avg_size", chunker_avg), ("max_size", chunker_max)) if v}
    if sizes:
        params = replace(params, **sizes)
    repo = init_repository(url, password, chunker=params, pack_size=pack_size, compression=compression, kdf=kdf)
    try:
        from ebas.storage.redact import redact_url

        return InitResult(repository=redact_url(url), id=repo.config.repo_id, key_id=repo.key_id,
                          chunker=repo.config.chunker.to_dict(), pack_size=repo.config.pack_size)
    finally:
        repo.close()


def _with_object_lock(url: str, mode: str | None, days: int | None) -> str:
    """``url`` with the S3 store options ``object_lock=MODE&lock_days=N`` added."""
    if mode is None and days is None:
        return url
    if mode is None or days is None:
        raise UsageError("--object-lock and --lock-days go together")
    if not url.lower().startswith("s3://"):
        raise UsageError("--object-lock needs an s3:// repository (a bucket created with Object Lock enabled)")
    return f"{url}{'&' if '?' in url else '?'}object_lock={mode}&lock_days={days}"


def open_repository(url: str, password: bytes | str, *, clock: Clock | None = None,
                    entropy: Entropy | None = None) -> Repository:
    """Open the repository at ``url`` with ``password``. ``repo.key_warnings`` lists what a
    front end should show about the key (weak parameters and the like). ``clock`` and
    ``entropy`` default to the system's (tests inject fakes)."""
    clock, entropy = clock or SYSTEM_CLOCK, entropy or SYSTEM_ENTROPY
    return Repository.open(build_stack(open_store(url), clock=clock, entropy=entropy), password, clock=clock,
                           entropy=entropy)


def repository_stats(repo: Repository, *, reclaimable: bool = False) -> RepositoryStats:
    """Logical and stored sizes, reduction, blob and pack counts; with ``reclaimable`` also
    what a prune would free (walks every snapshot's trees: ``reclaimable_bytes``,
    ``unused_bytes``, ``live_bytes``, ``referenced_blobs``, packs to delete / repack).
    A damaged repository still gets its other figures (``reclaimable_error`` says why)."""
    snaps = repo.snapshots()
    logical = sum(int(s.stats.get("bytes_logical", 0)) for s in snaps)
    stored = packs = pack_bytes = 0
    for info in repo.store.list(""):
        stored += info.size
        if info.name.startswith("data/"):
            packs += 1
            pack_bytes += info.size
    table = repo.index.table
    out = RepositoryStats(
        snapshots=len(snaps), logical_bytes=logical, stored_bytes=stored, pack_bytes=pack_bytes,
        reduction=round(1 - stored / logical, 6) if logical else 0.0, blobs=len(table), chunks=len(table),
        packs=packs, index_segments=len(repo.index.segments), dedup_table_bytes=table.memory_bytes(),
        dedup_bytes_per_blob=round(table.memory_bytes() / len(table), 2) if len(table) else 0.0)
    if reclaimable:
        from ebas.lifecycle.pruneplan import make_plan

        try:
            plan = make_plan(repo).summary()
        except EbasError as exc:
            out.reclaimable_error = exc.message
        else:
            out.reclaimable = {k: plan[k] for k in ("reclaimable_bytes", "unused_bytes", "live_bytes", "referenced_blobs",
                                                    "packs_delete", "packs_repack", "packs_pending_delete")}
    return out


def check(repo: Repository, *, read_data: bool = False, progress: Progress | None = None) -> CheckReport:
    """Verify the repository's structure (and with ``read_data`` every blob): a
    :class:`ebas.verify.check.CheckReport` whose ``ok`` is False when damage was found."""
    from ebas.verify.check import check_repository

    return check_repository(repo, read_data=read_data, progress=progress)


def repair_index(repo: Repository) -> RepairReport:
    """Rebuild the index from the pack headers (exclusive lock): a ``RepairReport``."""
    from ebas.verify.repair import rebuild_index

    return rebuild_index(repo)


def unlock(repo: Repository) -> UnlockResult:
    """Remove stale locks (whose holder stopped beating); a live lock is never removed."""
    mgr = repo.locks(heartbeat=None)
    removed = mgr.remove_stale()
    live = list(mgr.list())
    return UnlockResult(removed=removed, live=live, now_ns=repo.clock.now_ns(),
                        live_lines=[mgr.describe(lk) for lk in live])


def extend_object_locks(repo: Repository, *, dry_run: bool = False) -> LockExtendResult:
    """Keep every pack under write-once retention as long as the newest snapshot that
    needs it (run after backups); ``dry_run`` only reports packs retained too briefly."""
    from ebas.lifecycle.objectlock import extend_locks

    return extend_locks(repo, dry_run=dry_run)


# ------------------------------------------------------------------- keys
def list_keys(repo: Repository) -> KeyList:
    """The key files of ``repo`` (damaged ones with a ``problem``)."""
    from ebas.repo.keys import list_keys as _list

    return KeyList(keys=_list(repo.store), current=repo.key_id)


def add_key(repo: Repository, new_password: bytes | str, *, kdf: KdfParams | str | None = None) -> KeyChange:
    """Add a key file opening the same master key with ``new_password``."""
    from ebas.repo.keys import add_key as _add
    from ebas.repo.repository import _whoami

    if not new_password:
        raise UsageError("refusing an empty password")
    host, user = _whoami()
    kid = _add(repo.store, repo.master, new_password, entropy=repo.entropy, clock=repo.clock, hostname=host,
               username=user, kdf=_kdf(kdf, repo.entropy))
    return KeyChange(added=kid)


def remove_key(repo: Repository, key_id: str) -> KeyChange:
    """Remove key file ``key_id`` (a prefix); never the one in use, never the last intact one."""
    from ebas.repo.keys import remove_key as _remove

    return KeyChange(removed=_remove(repo.store, key_id, current_key_id=repo.key_id))


def change_password(repo: Repository, new_password: bytes | str, *, kdf: KdfParams | str | None = None) -> KeyChange:
    """Replace the key file in use by one for ``new_password`` (``old`` -> ``new``)."""
    from ebas.repo.keys import change_password as _change
    from ebas.repo.repository import _whoami

    if not new_password:
        raise UsageError("refusing an empty password")
    host, user = _whoami()
    kid = _change(repo.store, repo.master, repo.key_id, new_password, entropy=repo.entropy, clock=repo.clock,
                  hostname=host, username=user, kdf=_kdf(kdf, repo.entropy))
    return KeyChange(old=repo.key_id, new=kid)


def migrate_repository(repo: Repository) -> MigrateResult:
    """Authenticate a legacy (format version 1) repository config with the master key.

    Idempotent; every setting is kept (an old repository keeps its unkeyed chunker). See
    :func:`ebas.repo.migrate.migrate_config`."""
    from ebas.repo.migrate import migrate_config

    return migrate_config(repo)
