"""The catalog through the API: opening it, keeping it current after backup and forget,
and every query and maintenance command.

Every function takes where the catalog is (``catalog``: a SQLite path, ``sqlite:///``
or ``postgresql://`` URL; default a file in the repository's cache directory) and which
repository it indexes: an open ``repo``, or only its ``url`` (queries need no password:
the store is listed to tell which snapshots the catalog has not indexed yet). With
neither, answers cannot be checked for freshness (``freshness.checked`` is False).
"""

from __future__ import annotations

import os
import re
from typing import IO, TYPE_CHECKING, Iterable, Sequence

from ebas.api._results import CatalogAnswer
from ebas.errors import UsageError
from ebas.progress import Progress
from ebas.repo.repository import Repository

if TYPE_CHECKING:
    from ebas.catalog import Catalog, CheckResult, FindResult, HistoryResult, LsResult, SyncResult
    from ebas.catalog.exchange import ExportStats, ImportStats


def catalog(repo: Repository | None = None, location: str | None = None, *, url: str | None = None,
            site: str | None = None) -> Catalog:
    """The :class:`ebas.catalog.Catalog` of ``repo`` (or of the repository at ``url``):
    SQLite in the repository's cache directory by default, or ``location`` (a file path or
    ``postgresql://...``). Answers report the snapshots of the repository not indexed yet;
    ``cat.sync(repo)`` indexes them; queries take an :class:`ebas.catalog.FindQuery`.
    Close it (or use ``with``)."""
    from ebas.catalog import list_snapshot_ids, open_catalog  # imported on use: keeps start-up fast

    if repo is not None:
        store, repo_id = repo.store, repo.config.repo_id
    elif url:
        from ebas.storage.registry import open_store

        store = open_store(url)
        repo_id = Repository.read_config(store).repo_id
    else:
        if location is None:
            raise UsageError("no repository given", hint="use --repo URL or set EBAS_REPOSITORY")
        return open_catalog(location, site=site)  # no repository: answers say freshness is unknown
    return open_catalog(location, repo_id=repo_id, site=site, snapshot_ids=lambda: list_snapshot_ids(store))


def _failure(exc: BaseException) -> str:
    return exc.render() if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"


def index_snapshot(repo: Repository, snapshot, *, catalog: str | None = None, site: str | None = None) -> str | None:
    """Index one new snapshot; never raises (the backup is committed, the catalog is derived
    data): returns what went wrong, or None. ``catalog sync`` catches up later."""
    try:
        with _open(repo, catalog, site) as cat:
            cat.ingest_snapshot(repo, snapshot)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return _failure(exc)
    return None


def unindex_snapshots(repo: Repository, snapshot_ids: Iterable[str], *, catalog: str | None = None,
                      site: str | None = None) -> str | None:
    """Drop removed snapshots from the catalog; never raises (returns what went wrong, or None)."""
    ids = list(snapshot_ids)
    if not ids:
        return None
    try:
        with _open(repo, catalog, site) as cat:
            for sid in ids:
                cat.forget(sid)
    except Exception as exc:  # noqa: BLE001 - the forget is done; the catalog is derived data
        return _failure(exc)
    return None


def _open(repo, location, site, url=None):
    return catalog(repo, location, url=url, site=site)


def _time(value: str | int | None) -> int | None:
    """A catalog time: ns since the epoch, or a spec (ISO date, ``7d`` ago, ``@epoch``)."""
    if value is None or isinstance(value, int):
        return value
    from ebas.units import epoch_ns, parse_time

    return epoch_ns(parse_time(value))


_DIGEST = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")


def find(pattern: str | None = None, *, match: str = "auto", ignore_case: bool = False, under: str | None = None,
         size: str | None = None, newer: str | int | None = None, older: str | int | None = None,
         owner: str | None = None, mode: str | None = None, types: Sequence[str] = (), hosts: Sequence[str] = (),
         sources: Sequence[str] = (), tags: Sequence[str] = (), between: tuple[str | int, str | int] | None = None,
         deleted: bool = False, same_content: str | None = None, limit: int | None = 1000, sort: str | None = None,
         repo: Repository | None = None, url: str | None = None, catalog: str | None = None,
         site: str | None = None) -> FindResult:
    """File versions in every indexed snapshot (a ``FindResult``: ``hits``, ``truncated``, ``freshness``).

    ``match``: auto (glob if ``pattern`` has * ? [, else substring), substring, glob,
    exact or regex. ``under`` keeps entries below that directory; ``size`` is a spec
    (``>100M``, ``1M..2G``); times are ns or specs (ISO date, ``7d`` ago, ``@epoch``);
    ``same_content`` is a content digest (hex), a local file (needs the open ``repo``:
    digests are keyed) or a path in the catalog."""
    from ebas.catalog import FindQuery
    from ebas.catalog.specs import parse_size_filter

    if match != "auto" and pattern is None:
        raise UsageError(f"--{match} needs a PATTERN")
    q = FindQuery(pattern=pattern, match=match, ignore_case=ignore_case, path=under, owner=owner, mode=mode,
                  types=list(types), hosts=list(hosts), sources=list(sources), tags=list(tags), deleted=deleted,
                  limit=limit or None, sort=sort)
    if size:
        q.min_size, q.max_size = parse_size_filter(size)
    q.newer, q.older = _time(newer), _time(older)
    if between:
        q.between = (_time(between[0]), _time(between[1]))
    if same_content:
        if _DIGEST.fullmatch(same_content):
            q.digest = bytes.fromhex(same_content)[:16]
        elif os.path.isfile(same_content):
            if repo is None:
                raise UsageError(f"--same-content {same_content!r}: a local file needs the open repository "
                                 "(content digests are keyed with its key)")
            from ebas.catalog import file_digest

            q.digest = file_digest(repo, same_content)
    with _open(repo, catalog, site, url) as cat:
        if same_content and q.digest is None:
            digests = [bytes.fromhex(h.digest) for h in cat.history(same_content).versions if h.digest]
            if not digests:
                raise UsageError(f"{same_content!r} is neither a local file, a digest, nor a file in the catalog")
            q.digest = digests
        return cat.find(q)


def history(path: str, *, hosts: Sequence[str] = (), sources: Sequence[str] = (), repo: Repository | None = None,
            url: str | None = None, catalog: str | None = None, site: str | None = None) -> HistoryResult:
    """Every version of ``path`` with the snapshots that hold it (a ``HistoryResult``)."""
    with _open(repo, catalog, site, url) as cat:
        return cat.history(path, hosts=list(hosts), sources=list(sources))


def catalog_ls(path: str = "/", *, at: str | int | None = None, snapshot: str | None = None, recursive: bool = False,
               hosts: Sequence[str] = (), sources: Sequence[str] = (), tags: Sequence[str] = (),
               repo: Repository | None = None, url: str | None = None, catalog: str | None = None,
               site: str | None = None) -> LsResult:
    """A directory as it was in ``snapshot``, or in each source's snapshot at time ``at``
    (ns or a spec), from the catalog alone (an ``LsResult`` with one listing per snapshot)."""
    if (at is None) == (snapshot is None):
        raise UsageError("give exactly one of a time (--at) or a snapshot")
    with _open(repo, catalog, site, url) as cat:
        if snapshot is not None:
            return cat.ls(path, snapshot=snapshot, recursive=recursive)
        return cat.ls(path, at=_time(at), hosts=list(hosts), sources=list(sources) or None, tags=list(tags),
                      recursive=recursive)


def catalog_sync(repo: Repository, *, catalog: str | None = None, site: str | None = None,
                 progress: Progress | None = None) -> SyncResult:
    """Index the snapshots the catalog lacks and drop the ones the repository no longer has (a ``SyncResult``)."""
    with _open(repo, catalog, site) as cat:
        return cat.sync(repo, progress=progress)


def catalog_rebuild(repo: Repository, *, catalog: str | None = None, site: str | None = None,
                    progress: Progress | None = None) -> SyncResult:
    """Recreate the catalog from the repository, also when it is damaged (a ``SyncResult``)."""
    from ebas.catalog import rebuild_catalog

    cat, res = rebuild_catalog(catalog, repo, site=site, progress=progress)
    cat.close()
    return res


def catalog_check(*, integrity: bool = False, repo: Repository | None = None, url: str | None = None,
                  catalog: str | None = None, site: str | None = None) -> CheckResult:
    """Snapshots missing from or extra in the catalog, and with ``integrity`` the
    database's own consistency check (a ``CheckResult`` whose ``ok`` says all is well)."""
    with _open(repo, catalog, site, url) as cat:
        return cat.check(integrity=integrity)


def catalog_stats(*, repo: Repository | None = None, url: str | None = None, catalog: str | None = None,
                  site: str | None = None) -> CatalogAnswer:
    """Counts and size of the catalog."""
    with _open(repo, catalog, site, url) as cat:
        return CatalogAnswer(cat.stats())


def catalog_vacuum(*, repo: Repository | None = None, url: str | None = None, catalog: str | None = None,
                   site: str | None = None) -> CatalogAnswer:
    """Drop unused dictionary entries and compact the database (``size_before``, ``size_after``)."""
    with _open(repo, catalog, site, url) as cat:
        return CatalogAnswer(cat.vacuum())


def catalog_export(out: IO[bytes] | str, *, since: int = 0, repo: Repository | None = None, url: str | None = None,
                   catalog: str | None = None, site: str | None = None) -> ExportStats:
    """Export catalog entries changed after mark ``since``, snapshot by snapshot with
    tombstones, to a binary stream or a file path (written atomically); an ``ExportStats``
    whose ``mark`` is the ``since`` of the next export."""
    with _open(repo, catalog, site, url) as cat:
        if not isinstance(out, str):
            return cat.export(out, since=since)
        from ebas.repo.privatefs import open_private

        tmp = out + ".partial"
        with open_private(tmp) as fh:  # every path in plain text: owner only
            st = cat.export(fh, since=since)
        os.replace(tmp, out)
        return st


def catalog_import(source: IO[bytes] | str, *, repo: Repository | None = None, url: str | None = None,
                   catalog: str | None = None, site: str | None = None) -> ImportStats:
    """Import an export (a binary stream or a file path) from another site; importing
    twice changes nothing (an ``ImportStats``)."""
    with _open(repo, catalog, site, url) as cat:
        if not isinstance(source, str):
            return cat.import_(source)
        try:
            fh = open(source, "rb")
        except OSError as exc:
            raise UsageError(f"cannot read {source!r}: {exc.strerror}") from exc
        with fh:
            return cat.import_(fh)
