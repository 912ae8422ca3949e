"""The data path: back up, restore, list, compare and dump snapshots."""

from __future__ import annotations

import os
import socket
from datetime import datetime, tzinfo
from typing import BinaryIO, Callable, Sequence

from ebas.api._catalog import index_snapshot
from ebas.api._results import ChainList, DiffResult, Listing, SnapshotList
from ebas.backup.archiver import Archiver, BackupOptions, BackupResult
from ebas.backup.browse import diff_snapshots, list_path
from ebas.backup.restorer import Restorer, RestoreResult
from ebas.errors import UsageError
from ebas.progress import Progress
from ebas.repo.repository import Repository
from ebas.repo.snapshots import Snapshot, filter_snapshots

LEVELS = ("full", "differential", "incremental", "auto")


def _local_tz() -> tzinfo | None:
    return datetime.now().astimezone().tzinfo


def snapshots(repo: Repository, *, host: str | Sequence[str] | None = None, tags: Sequence[str] | None = None,
              path: str | None = None) -> SnapshotList:
    """Snapshots of ``repo`` matching every filter (any of the ``host`` names, all of the
    ``tags``, the source ``path``), oldest first; ``.problems`` lists unreadable ones."""
    snaps = filter_snapshots(repo.snapshots(), host=host, tags=list(tags) if tags else None, path=path)
    return SnapshotList(snaps, repo.snapshot_problems)


def chains(repo: Repository, *, host: str | Sequence[str] | None = None, tags: Sequence[str] | None = None,
           path: str | None = None) -> ChainList:
    """The backup chains (a full and what was built on it) of the matching snapshots."""
    from ebas.lifecycle.chains import build_chains

    snaps = snapshots(repo, host=host, tags=tags, path=path)
    return ChainList(build_chains(list(snaps)), snapshots=len(snaps))


def find_snapshot(repo: Repository, ref: str, *, host: str | Sequence[str] | None = None,
                  tags: Sequence[str] | None = None, path: str | None = None) -> Snapshot:
    """Resolve ``"latest"`` or an id prefix among the snapshots matching the filters."""
    return repo.find_snapshot(ref, host=host, tags=list(tags) if tags else None, path=path)


def resolve_level(repo: Repository, *, paths: Sequence[str] = (), host: str = "", stdin_filename: str = "",
                  full_every: float | None = None, full_on: str | int | None = None, time_ns: int | None = None,
                  tz: tzinfo | None = None) -> tuple[str, str]:
    """``(level, why)`` for ``level="auto"``: a full when the last full of these sources is
    ``full_every`` seconds old or more, or on weekday ``full_on`` (``"sun"`` or 0-6 from
    Monday, once that day, in ``tz``: default local time), else incremental."""
    from ebas.lifecycle.chains import parse_weekday
    from ebas.lifecycle.chains import resolve_level as _resolve

    if not full_every and full_on is None:
        raise UsageError("--level auto needs --full-every DURATION and/or --full-on WEEKDAY")
    srcs = ["/" + stdin_filename.strip("/")] if stdin_filename else sorted({os.path.abspath(p) for p in paths})
    day = parse_weekday(full_on) if isinstance(full_on, str) else full_on
    return _resolve(repo.snapshots(), host or socket.gethostname(), srcs, now_ns=time_ns or repo.clock.now_ns(),
                    full_every=float(full_every or 0), full_on=day, tz=tz or _local_tz())


def backup(repo: Repository, paths: Sequence[str] = (), *, level: str = "incremental", tags: Sequence[str] = (),
           host: str = "", excludes: Sequence[str] = (), exclude_files: Sequence[str] = (),
           one_file_system: bool = False, stdin_filename: str = "", workers: int = 2, time_ns: int | None = None,
           full_every: float | None = None, full_on: str | int | None = None, update_catalog: bool = True,
           catalog: str | None = None, site: str | None = None, progress: Progress | None = None) -> BackupResult:
    """Back up ``paths`` (or, with ``stdin_filename``, standard input as that file) and commit a snapshot.

    ``level`` is ``full``, ``differential``, ``incremental`` or ``auto`` (with ``full_every``
    seconds and/or ``full_on`` weekday; the result's ``level_reason`` says why). Afterwards
    the new snapshot is indexed in the catalog (``catalog``: a path or ``postgresql://`` URL,
    default the repository's cache file) unless ``update_catalog`` is False; a catalog
    failure never fails the backup: it is in ``result.catalog_error``."""
    if level not in LEVELS:
        raise UsageError(f"invalid level {level!r}", hint="use full, differential, incremental or auto")
    if stdin_filename and paths:
        raise UsageError("give either paths or --stdin, not both")
    if not stdin_filename and not paths:
        raise UsageError("nothing to back up: give at least one path (or --stdin)")
    reason = ""
    if level == "auto":
        level, reason = resolve_level(repo, paths=paths, host=host, stdin_filename=stdin_filename,
                                      full_every=full_every, full_on=full_on, time_ns=time_ns)
    elif full_every or full_on is not None:
        raise UsageError("--full-every and --full-on go with --level auto")
    opts = BackupOptions(paths=list(paths), level=level, tags=list(tags), host=host, excludes=list(excludes),
                         exclude_files=list(exclude_files), one_file_system=one_file_system,
                         stdin_filename=stdin_filename, workers=workers, time_ns=time_ns)
    result = Archiver(repo, opts, progress=progress).run()
    result.level_reason = reason
    if update_catalog:
        result.catalog_error = index_snapshot(repo, result.snapshot, catalog=catalog, site=site)
    return result


def restore(repo: Repository, snapshot: str, target: str, *, includes: Sequence[str] | None = None,
            host: str | Sequence[str] | None = None, tags: Sequence[str] | None = None, path: str | None = None,
            restore_owner: bool | None = None, staging: str | None = None, workers: int = 2,
            notify: Callable[[str], None] | None = None, skip_damaged: bool = False,
            progress: Progress | None = None) -> RestoreResult:
    """Restore ``snapshot`` ("latest" or an id prefix, narrowed by ``host``/``tags``/``path``)
    into ``target``; ``includes`` restores only those paths of the snapshot.

    From a tape repository the repository is first recalled, in tape order, into a
    staging directory under ``staging`` (default: beside ``target``; removed afterwards);
    ``notify`` receives a line saying so before it starts. The result carries
    ``snapshot_id`` and, after a recall, ``recalled``. With ``skip_damaged`` damage does not
    stop the restore: what cannot be restored is skipped and listed in ``result.failed``
    (``{"path", "reason"}``). ``progress`` receives the phase ``"restore"`` (files and bytes)."""
    from ebas.transfer.recall import needs_recall, staged

    if notify is not None and needs_recall(repo):
        notify(f"recalling the repository from {repo.store.url} (each cartridge once, in order)...")
    with staged(repo, staging, near=target) as (source, recalled):
        snap = find_snapshot(source, snapshot, host=host, tags=tags, path=path)
        result = Restorer(source, snap, target, includes=list(includes or ()), restore_owner=restore_owner,
                          workers=workers, skip_damaged=skip_damaged, progress=progress).run()
    result.snapshot_id = snap.id
    result.recalled = recalled
    return result


def dump(repo: Repository, snapshot: str, path: str, out: BinaryIO, *, host: str | Sequence[str] | None = None,
         tags: Sequence[str] | None = None, source: str | None = None) -> str:
    """Write ``path`` of ``snapshot`` to ``out``: a file's bytes, a directory as a tar
    stream (``source`` narrows ``latest`` to snapshots of that source path). Returns the kind written."""
    from ebas.backup.dump import dump as _dump

    return _dump(repo, find_snapshot(repo, snapshot, host=host, tags=tags, path=source), path, out)


def ls(repo: Repository, snapshot: str, path: str = "/", *, recursive: bool = False,
       host: str | Sequence[str] | None = None, tags: Sequence[str] | None = None, source: str | None = None) -> Listing:
    """``(path, Node)`` pairs at ``path`` in ``snapshot`` (all levels below with ``recursive``)."""
    snap = find_snapshot(repo, snapshot, host=host, tags=tags, path=source)
    return Listing(list_path(repo, snap, path, recursive), snapshot=snap)


def diff(repo: Repository, a: str, b: str) -> DiffResult:
    """Changes from snapshot ``a`` to snapshot ``b`` (a list of ``Change`` with totals)."""
    sa, sb = repo.find_snapshot(a), repo.find_snapshot(b)
    return DiffResult(diff_snapshots(repo, sa, sb), sa, sb)
