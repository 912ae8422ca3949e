"""Transfers between stores: named, journalled, throttled, resumable jobs (see
:mod:`ebas.transfer.jobs` and docs/transfer.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ebas.progress import Progress

if TYPE_CHECKING:
    from ebas.transfer.engine import TransferResult
    from ebas.transfer.jobs import JobStatus


def transfer(src_url: str, dst_url: str, *, name: str | None = None, streams: int = 4,
             part_size: int = 16 * 1024 * 1024, bwlimit: str | float | None = None, window: str | None = None,
             prefix: str = "", verify: str = "sent", adaptive: bool = False, progress: Progress | None = None,
             journal_dir: str | None = None) -> TransferResult:
    """Copy every object under ``prefix`` from store ``src_url`` to ``dst_url`` as the job
    ``name`` (default: derived from the two URLs and the prefix, so the same call continues
    it): ``streams`` parallel sends, objects above ``part_size`` bytes in resumable parts,
    every byte through a link limited by ``bwlimit`` (a rate of docs/units.md or a
    timetable) and, with ``window`` (``22:00-06:00``), only inside that daily window.
    ``verify`` is ``sent`` (checksums of what was sent, re-read from the source) or
    ``readback`` (read from the destination); ``adaptive`` backs off when the link's
    queueing delay rises. Nothing that completed is sent again after a crash."""
    from ebas.transfer.jobs import transfer as _transfer

    return _transfer(src_url, dst_url, name=name, streams=streams, part_size=part_size, bwlimit=bwlimit,
                     window=window, prefix=prefix, verify=verify, adaptive=adaptive, progress=progress,
                     journal_dir=journal_dir)


def transfer_resume(name: str, *, streams: int | None = None, bwlimit: str | float | None = None,
                    progress: Progress | None = None, journal_dir: str | None = None) -> TransferResult:
    """Continue transfer job ``name`` where it stopped (``streams``/``bwlimit`` may change)."""
    from ebas.transfer.jobs import resume

    return resume(name, streams=streams, bwlimit=bwlimit, progress=progress, journal_dir=journal_dir)


def transfer_status(name: str, *, journal_dir: str | None = None) -> JobStatus:
    """Where transfer job ``name`` stands, read from its journal (works from any process)."""
    from ebas.transfer.jobs import status

    return status(name, journal_dir=journal_dir)


def transfer_jobs(*, journal_dir: str | None = None) -> list[JobStatus]:
    """Every transfer job in the journal, oldest first."""
    from ebas.transfer.jobs import list_jobs

    return list_jobs(journal_dir=journal_dir)


def transfer_cancel(name: str, *, journal_dir: str | None = None) -> JobStatus:
    """Stop transfer job ``name`` and discard its unfinished uploads (complete objects stay)."""
    from ebas.transfer.jobs import cancel

    return cancel(name, journal_dir=journal_dir)
