"""Snapshot lifecycle through the API: forget (with the catalog update and an optional
prune), prune, holds and compliance retention, synthetic fulls, and export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Sequence

from ebas.api._catalog import unindex_snapshots
from ebas.api._results import ComplianceState, HoldChange, HoldList
from ebas.crypto.kdf import KdfParams
from ebas.errors import UsageError
from ebas.lifecycle.forget import ForgetResult
from ebas.lifecycle.forget import forget as _forget
from ebas.lifecycle.prune import PruneResult
from ebas.lifecycle.prune import prune as _prune
from ebas.lifecycle.retention import RetentionPolicy
from ebas.progress import Progress
from ebas.repo.repository import Repository

if TYPE_CHECKING:
    from ebas.lifecycle.synthetic import SynthResult
    from ebas.repo.holds import HoldRecord
    from ebas.transfer.export import ExportResult


@dataclass(frozen=True)
class PruneOptions:
    """How :func:`prune` runs (also after :func:`forget`): ``max_unused`` is the share of
    stored bytes allowed to stay unused (0.10 = 10%); ``grace`` (seconds) protects unindexed
    packs younger than that; ``max_wait`` / ``lock_wait`` are seconds to wait for running backups
    and for another prune."""

    max_unused: float = 0.10
    grace: float = 3600.0
    max_wait: float = 3600.0
    lock_wait: float = 0.0


def prune(repo: Repository, *, max_unused: float = 0.10, grace: float = 3600.0, max_wait: float = 3600.0,
          poll: float = 2.0, dry_run: bool = False, lock_wait: float = 0.0,
          progress: Progress | None = None) -> PruneResult:
    """Delete data no snapshot needs and repack mostly-unused packs, safely while backups
    run (see :mod:`ebas.lifecycle.prune`); ``dry_run`` only plans."""
    return _prune(repo, max_unused=max_unused, grace=grace, max_wait=max_wait, poll=poll, dry_run=dry_run,
                  lock_wait=lock_wait, progress=progress)


def forget(repo: Repository, policy: RetentionPolicy | None = None, *, snapshot_ids: Sequence[str] = (),
           dry_run: bool = False, allow_empty: bool = False, group_by: Sequence[str] = ("host", "paths"),
           host: str | Sequence[str] | None = None, tags: Sequence[str] | None = None, path: str | None = None,
           now_ns: int | None = None, tz: tzinfo = timezone.utc, then_prune: PruneOptions | None = None,
           update_catalog: bool = True, catalog: str | None = None, site: str | None = None,
           progress: Progress | None = None) -> ForgetResult:
    """Remove snapshots by retention ``policy`` (per ``group_by`` group, among those matching
    ``host``/``tags``/``path``) or the given ``snapshot_ids``; holds and compliance retention
    always keep theirs. Unless ``update_catalog`` is False the removed snapshots leave the
    catalog too (a failure is in ``result.catalog_error``, never raised). With
    ``then_prune`` a prune follows (``result.prune``, reporting to ``progress``) unless this is
    a ``dry_run``; it refuses before forgetting anything while a snapshot is unreadable."""
    if snapshot_ids and policy is not None and policy.empty:
        policy = None
    if then_prune is not None and not dry_run:  # refuse before removing anything, not halfway
        from ebas.lifecycle.readable import all_snapshots

        all_snapshots(repo, "forget --prune")
    res = _forget(repo, policy, snapshot_ids=list(snapshot_ids), dry_run=dry_run, allow_empty=allow_empty,
                  group_by=list(group_by), host=host, tags=list(tags) if tags else None, path=path, now_ns=now_ns,
                  tz=tz)
    if res.removed and update_catalog:
        res.catalog_error = unindex_snapshots(repo, res.removed, catalog=catalog, site=site)
    if then_prune is not None and not dry_run:
        res.prune = prune(repo, max_unused=then_prune.max_unused, grace=then_prune.grace,
                          max_wait=then_prune.max_wait, lock_wait=then_prune.lock_wait, progress=progress)
    return res


# ------------------------------------------------------------------ holds
def add_hold(repo: Repository, snapshot: str, reason: str, *, until: datetime | None = None) -> HoldChange:
    """Put a legal hold on ``snapshot`` (or with ``until``, an aware datetime, a compliance retention that
    can never be released or shortened); ``reason`` is required and kept."""
    from ebas.lifecycle.holding import add_hold as _add

    return HoldChange(added=_add(repo, snapshot, reason, until=until))


def release_hold(repo: Repository, snapshot: str, reason: str, *, hold_id: str | None = None) -> HoldChange:
    """Release the legal hold ``hold_id`` (default: every one) on ``snapshot``; compliance
    retention cannot be released."""
    from ebas.lifecycle.holding import release_hold as _release

    return HoldChange(released=_release(repo, snapshot, reason, hold_id=hold_id))


def list_holds(repo: Repository, *, include_inactive: bool = False) -> HoldList:
    """Every snapshot's protections (expired ones too with ``include_inactive``) and the
    repository's minimum retention."""
    from ebas.lifecycle.holding import list_holds as _list

    views, state = _list(repo, include_inactive=include_inactive)
    return HoldList(views=views, min_retention_ns=state.min_retention_ns, problems=list(state.problems))


def set_min_retention(repo: Repository, min_retention: float, reason: str = "") -> HoldRecord:
    """Raise the compliance minimum retention (seconds) of every snapshot (it is never lowered)."""
    from ebas.lifecycle.holding import set_min_retention as _set

    return _set(repo, min_retention, reason)


def compliance(repo: Repository, *, min_retention: float | None = None, reason: str = "") -> ComplianceState:
    """The compliance minimum retention, first raised to ``min_retention`` seconds if given."""
    from ebas.repo.holds import load_state

    if min_retention:
        set_min_retention(repo, min_retention, reason)
    st = load_state(repo)
    return ComplianceState(min_retention_ns=st.min_retention_ns, record=st.min_retention_record)


# ----------------------------------------------------- synthetic and export
def synthesize(repo: Repository, snapshot: str, *, consolidate: bool = False, tags: Sequence[str] = (),
               progress: Progress | None = None) -> SynthResult:
    """A new full snapshot made from ``snapshot`` without reading the source (it starts a
    new chain); ``consolidate`` also copies its blobs into fresh packs in restore order."""
    from ebas.lifecycle.synthetic import synthesize as _synth

    return _synth(repo, snapshot, consolidate=consolidate, tags=list(tags), progress=progress)


def export(repo: Repository, snapshot: str, to_url: str, password: bytes | str, *, new_key: bool = False,
           kdf: KdfParams | str | None = None, progress: Progress | None = None) -> ExportResult:
    """Copy ``snapshot`` into a self-contained repository at ``to_url`` (new, or an earlier
    export's) opened or created with ``password``; ``new_key`` re-encrypts under a fresh
    master key instead of sharing this one's."""
    from ebas.api._repo import _kdf
    from ebas.storage.registry import open_store
    from ebas.transfer.export import export_snapshot

    if not password:
        raise UsageError("refusing an empty password for the new repository")
    return export_snapshot(repo, snapshot, open_store(to_url), password, new_key=new_key,
                           kdf=_kdf(kdf, repo.entropy), progress=progress)
