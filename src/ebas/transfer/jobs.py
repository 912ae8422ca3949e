"""Transfer jobs by name: start, resume, list, status and cancel (what the API and CLI call).

A job is named (``--name``, or ``t-`` and a digest of source, destination and prefix, so
running the same command again continues the same job) and kept in the journal
(:mod:`ebas.transfer.journal`). Its bandwidth budget is a
:class:`~ebas.storage.wrappers.throttle.Link` on the destination side: ``bwlimit`` (a
rate or a timetable) and ``window`` (``22:00-06:00``: send only inside it, paused
outside) become one timetable. Pass ``link`` to share one budget between jobs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import tzinfo

from blake3 import blake3

from ebas.errors import UsageError
from ebas.flow.timetable import Timetable
from ebas.progress import Progress
from ebas.repo.locks import pid_alive
from ebas.runtime import SYSTEM_CLOCK, Clock, Entropy
from ebas.storage.registry import open_store
from ebas.storage.stack import build_stack
from ebas.storage.wrappers.throttle import Link
from ebas.transfer.adaptive import AdaptiveController
from ebas.transfer.engine import DEFAULT_PART_SIZE, TransferEngine, TransferResult
from ebas.transfer.journal import Job, Journal, default_journal_dir
from ebas.units import parse_rate


def link_spec(bwlimit: str | float | None, window: str | None) -> str | float | None:
    """The timetable text (or rate) for ``bwlimit`` and an off-peak ``window``.

    ``window="22:00-06:00"`` alone is ``* 22:00-06:00 unlimited; else off``; with a plain
    rate it is ``* 22:00-06:00 RATE; else off``. A window together with a timetable is
    refused: write the window into the timetable."""
    if not window:
        return bwlimit
    window = window.strip()
    if bwlimit is None:
        rate = "unlimited"
    elif isinstance(bwlimit, (int, float)):
        rate = f"{bwlimit}B/s" if not math.isinf(bwlimit) else "unlimited"
    else:
        try:
            parse_rate(bwlimit)
        except UsageError:
            raise UsageError(f"--window {window} cannot be combined with the timetable {bwlimit!r}",
                             hint=f"add the window to the timetable instead, e.g. '* {window} RATE; else off'") from None
        rate = bwlimit
    spec = f"* {window} {rate}; else off"
    Timetable.parse(spec)  # a bad window is refused here, naming it
    return spec


def default_name(src: str, dst: str, prefix: str) -> str:
    """The name of a job nobody named: the same for the same source, destination and prefix."""
    return "t-" + blake3(f"{src}\0{dst}\0{prefix}".encode()).hexdigest()[:10]


def transfer(src_url: str, dst_url: str, *, name: str | None = None, streams: int = 4,
             part_size: int = DEFAULT_PART_SIZE, bwlimit: str | float | None = None, window: str | None = None,
             prefix: str = "", verify: str = "sent", progress: Progress | None = None,
             journal_dir: str | None = None, link: Link | None = None, clock: Clock | None = None,
             entropy: Entropy | None = None, tz: tzinfo | None = None, adaptive: bool = False) -> TransferResult:
    """Copy every object under ``prefix`` from ``src_url`` to ``dst_url`` as job ``name``.

    A job of that name with the same source, destination and prefix is continued (its
    completed objects and parts are not sent again); with others it is refused.
    ``adaptive`` lets :mod:`ebas.transfer.adaptive` set the rate from measured queueing
    delay, never above a plain-rate ``bwlimit`` (not combined with timetables or windows)."""
    clock = clock or SYSTEM_CLOCK
    spec = link_spec(bwlimit, window)
    if adaptive and spec is not None and not isinstance(spec, (int, float)):
        try:
            parse_rate(str(spec))
        except UsageError:
            raise UsageError("--adaptive works with a plain --bwlimit rate (its ceiling), not with a timetable or --window",
                             hint="drop --adaptive, or give --bwlimit as one rate such as 50MiB/s") from None
    if link is None and spec is not None:
        link = Link.parse(spec, clock=clock, tz=tz)
    name = name or default_name(src_url, dst_url, prefix)
    options = {"streams": streams, "part_size": part_size, "bwlimit": bwlimit, "window": window,
               "prefix": prefix, "verify": verify, "adaptive": adaptive}
    journal = Journal(journal_dir or default_journal_dir())
    try:
        job = journal.find_job(name)
        if job is None:
            job = journal.create_job(name, src_url, dst_url, options, clock.now())
        elif (job.src, job.dst, job.options.get("prefix", "")) != (src_url, dst_url, prefix):
            raise UsageError(f"transfer job {name!r} copies {job.src} to {job.dst}, not {src_url} to {dst_url}",
                             hint="choose another --name, or 'ebas transfer resume' the existing job")
        _refuse_running(journal, job)
        return _run(journal, job, link=link, progress=progress, clock=clock, entropy=entropy, adaptive=adaptive,
                    **_engine_opts(options))
    finally:
        journal.close()


def resume(name: str, *, journal_dir: str | None = None, progress: Progress | None = None,
           streams: int | None = None, bwlimit: str | float | None = None, link: Link | None = None,
           clock: Clock | None = None, entropy: Entropy | None = None, tz: tzinfo | None = None) -> TransferResult:
    """Continue job ``name`` with its recorded options (``streams``/``bwlimit`` may be changed)."""
    clock = clock or SYSTEM_CLOCK
    journal = Journal(journal_dir or default_journal_dir())
    try:
        job = journal.job(name)
        _refuse_running(journal, job)
        options = dict(job.options)
        if streams is not None:
            options["streams"] = streams
        if bwlimit is not None:
            options["bwlimit"] = bwlimit
        spec = link_spec(options.get("bwlimit"), options.get("window"))
        if link is None and spec is not None:
            link = Link.parse(spec, clock=clock, tz=tz)
        return _run(journal, job, link=link, progress=progress, clock=clock, entropy=entropy,
                    adaptive=bool(options.get("adaptive")), **_engine_opts(options))
    finally:
        journal.close()


def _engine_opts(options: dict) -> dict:
    return {k: options[k] for k in ("streams", "part_size", "prefix", "verify") if k in options}


def _refuse_running(journal: Journal, job: Job) -> None:
    if job.state in ("running", "cancelling") and job.pid and job.pid != os.getpid() and pid_alive(job.pid):
        raise UsageError(f"transfer job {job.name!r} is running (process {job.pid})",
                         hint=f"'ebas transfer status {job.name}' shows it; 'ebas transfer cancel {job.name}' stops it")


def _run(journal: Journal, job: Job, *, link: Link | None, progress, clock, entropy, adaptive: bool = False,
         **opts) -> TransferResult:
    if adaptive and link is None:
        link = Link(math.inf, clock=clock)
    src = build_stack(open_store(job.src), clock=clock, entropy=entropy)
    dst = build_stack(open_store(job.dst), clock=clock, entropy=entropy, link=link)
    controller = None
    if adaptive:
        controller = AdaptiveController(link, _prober(dst), max_rate=link.rate, clock=clock).start()
    try:
        engine = TransferEngine(src, dst, journal, job, clock=clock, entropy=entropy, progress=progress, **opts)
        return engine.run()
    finally:
        if controller is not None:
            controller.stop()
        src.close()
        dst.close()


def _prober(store):
    """A round-trip probe: ``stat`` of a name that is never written, on the bare backend
    (no retry wrapper, whose back-off would read as queueing)."""
    while hasattr(store, "inner"):
        store = store.inner

    def probe() -> None:
        store.exists("ebas-transfer-probe/none")

    return probe


@dataclass(frozen=True)
class JobStatus:
    """A job as ``list`` and ``status`` show it, read from the journal (any process).

    ``state`` is ``interrupted`` for a job recorded as running whose process is gone.
    ``rate_bps`` is the average of the current (or last) run; ``eta_s`` None if unknown."""

    name: str
    state: str
    src: str
    dst: str
    objects: dict[str, int]
    bytes_total: int
    bytes_done: int
    bytes_sent: int
    rate_bps: float
    eta_s: float | None
    pid: int | None
    error: str | None
    failures: dict[str, str]

    def to_json(self) -> dict:
        """The status as JSON."""
        return {"name": self.name, "state": self.state, "src": self.src, "dst": self.dst, "objects": self.objects,
                "bytes_total": self.bytes_total, "bytes_done": self.bytes_done, "bytes_sent": self.bytes_sent,
                "rate_bps": round(self.rate_bps, 1), "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
                "pid": self.pid, "error": self.error,
                "failures": [{"object": n, "error": e} for n, e in sorted(self.failures.items())]}



def _status(journal: Journal, job: Job, clock: Clock) -> JobStatus:
    state = job.state
    if state in ("running", "cancelling") and job.pid and not pid_alive(job.pid):
        state = "interrupted"
    rate = 0.0
    if job.run_started is not None:
        end = clock.now() if state == "running" else job.updated
        if end > job.run_started:
            rate = job.run_bytes / (end - job.run_started)
    left = max(0, job.bytes_total - job.bytes_done)
    eta = 0.0 if left == 0 else (left / rate if rate > 0 and state == "running" else None)
    failures = {o.name: o.error or "" for o in journal.objects(job.id) if o.state == "failed"}
    return JobStatus(job.name, state, job.src, job.dst, journal.counts(job.id), job.bytes_total, job.bytes_done,
                     job.bytes_sent, rate, eta, job.pid, job.error, failures)


def status(name: str, *, journal_dir: str | None = None, clock: Clock | None = None) -> JobStatus:
    """Where job ``name`` stands, as recorded in the journal."""
    journal = Journal(journal_dir or default_journal_dir())
    try:
        return _status(journal, journal.job(name), clock or SYSTEM_CLOCK)
    finally:
        journal.close()


def list_jobs(*, journal_dir: str | None = None, clock: Clock | None = None) -> list[JobStatus]:
    """Every job in the journal, oldest first."""
    journal = Journal(journal_dir or default_journal_dir())
    try:
        return [_status(journal, j, clock or SYSTEM_CLOCK) for j in journal.jobs()]
    finally:
        journal.close()


def cancel(name: str, *, journal_dir: str | None = None, clock: Clock | None = None) -> JobStatus:
    """Cancel job ``name``: a running job stops at its next part and discards its pending
    uploads; a stopped one has its pending uploads discarded now. Objects already
    complete stay at the destination."""
    clock = clock or SYSTEM_CLOCK
    journal = Journal(journal_dir or default_journal_dir())
    try:
        job = journal.job(name)
        running = bool(job.state in ("running", "cancelling") and job.pid and pid_alive(job.pid) and job.pid != os.getpid())
        job = journal.request_cancel(name, clock.now(), running=running)
        if not running:
            dst = open_store(job.dst)
            try:
                for row in journal.objects(job.id):
                    if row.upload_id:
                        try:
                            dst.abort(row.upload_id)
                        except Exception:  # noqa: BLE001 - already gone or unreachable: nothing left to hold
                            pass
                        journal.drop_parts(job.id, row.upload_id)
                        journal.set_upload(job.id, row.name, None)
            finally:
                dst.close()
        return _status(journal, journal.job(name), clock)
    finally:
        journal.close()
