"""``TransferEngine``: copy every object under a prefix from one store to another,
multi-stream, throttled, resumable and verified.

How an object travels:

* An object of at most ``part_size`` bytes is read whole and sent with one ``put``; a
  larger one goes through the destination's resumable upload session (``begin_upload``,
  ``upload_part`` per part, ``complete``), its parts sent in parallel. ``put`` and
  ``complete`` are atomic by the store contract, so the destination never shows a part
  of an object under its final name.
* At most ``streams`` sends are in flight at once (whole objects and parts alike), and
  the stores given are expected to carry the link's throttle (see
  :mod:`ebas.storage.wrappers.throttle`), so every byte sent pays into one bucket.
* Verification (``verify``): the BLAKE3 of every part's bytes is computed while sending
  and journalled. Before ``complete`` the source is read again, each part's BLAKE3
  compared with the one sent (a mismatch means the source changed during the transfer:
  the upload is discarded, the change reported and the object sent again) and the whole
  object's BLAKE3 computed. After publishing, the destination's size must match. With
  ``verify="readback"`` the destination object is also read back and its BLAKE3 must
  equal the source's. The default is ``"sent"``: a read-back doubles the traffic on the
  link being budgeted (and costs egress on clouds), while the two reads of the source
  are local in the usual direction (repository to remote site).
* Transient errors (``retryable``) that outlast the stores' own retries (a cut link)
  are retried here with :class:`ebas.flow.Backoff` and jitter, the object's stored parts
  kept; permanent ones fail that object only, named in the result and reported to
  ``progress.error``; the job finishes the rest.
* Resume: objects ``done`` in the journal are skipped; the parts of an in-flight upload
  that the destination still lists (``parts``) with the journalled size are reused, not
  sent again. Without a journal entry (the journal was deleted, or a crash fell between
  ``complete`` and the journal write) an object already at the destination with the
  source's size is read on both sides and kept if the BLAKE3 digests match.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from blake3 import blake3

from ebas.errors import EbasError, Interrupted, ObjectNotFound, UsageError
from ebas.flow.backoff import Backoff
from ebas.progress import NULL_PROGRESS, Progress
from ebas.runtime import SYSTEM_CLOCK, SYSTEM_ENTROPY, Clock, Entropy
from ebas.storage.base import MAX_PART_NUMBER, Store
from ebas.transfer.journal import FINAL_STATES, Job, Journal

MiB = 1 << 20
DEFAULT_PART_SIZE = 16 * MiB


class SourceChanged(EbasError):
    """The source object changed while it was being sent."""


class TransferCancelled(Interrupted):
    """The job was cancelled (``ebas transfer cancel``)."""


@dataclass
class TransferResult:
    """The outcome of one run of a job. ``bytes_sent`` counts every byte sent to the
    destination in this run, re-sent ones included; ``changed`` names source objects
    that changed during the run (they were sent again)."""

    job: str
    state: str
    objects_total: int = 0
    objects_sent: int = 0
    objects_present: int = 0
    objects_failed: int = 0
    bytes_total: int = 0
    bytes_sent: int = 0
    parts_reused: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every object is at the destination."""
        return self.state == "done"

    def to_json(self) -> dict:
        """The result as JSON."""
        return {"job": self.job, "state": self.state, "objects_total": self.objects_total,
                "objects_sent": self.objects_sent, "objects_present": self.objects_present,
                "objects_failed": self.objects_failed, "bytes_total": self.bytes_total,
                "bytes_sent": self.bytes_sent, "parts_reused": self.parts_reused,
                "failures": [{"object": n, "error": e} for n, e in sorted(self.failures.items())],
                "changed": sorted(self.changed)}


def part_size_for(size: int, part_size: int, min_part: int = 1, max_part: int = 5 * 1024**3) -> int:
    """The part size used for an object of ``size`` bytes: ``part_size`` raised to the
    store's minimum and so that no more than ``MAX_PART_NUMBER`` parts are needed."""
    ps = max(part_size, min_part, math.ceil(size / MAX_PART_NUMBER))
    if ps > max_part:
        raise UsageError(f"an object of {size} bytes needs parts larger than the destination allows ({max_part})")
    return ps


class TransferEngine:
    """Runs one job of ``journal`` from ``src`` to ``dst`` (see the module text).

    ``streams`` sends at most in flight; ``attempts`` tries per object for errors that
    are retryable; ``clock``/``entropy`` drive the backoff; ``progress`` receives a
    ``transfer`` phase with bytes and objects."""

    def __init__(self, src: Store, dst: Store, journal: Journal, job: Job, *, streams: int = 4,
                 part_size: int = DEFAULT_PART_SIZE, prefix: str = "", verify: str = "sent",
                 attempts: int = 5, backoff: Backoff | None = None, clock: Clock | None = None,
                 entropy: Entropy | None = None, progress: Progress | None = None):
        if streams < 1:
            raise UsageError(f"--streams must be at least 1, got {streams}")
        if part_size < 1:
            raise UsageError(f"--part-size must be positive, got {part_size}")
        if verify not in ("sent", "readback"):
            raise UsageError(f"verify must be 'sent' or 'readback', got {verify!r}")
        self.src, self.dst, self.journal, self.job = src, dst, journal, job
        self.streams, self.part_size, self.prefix, self.verify = streams, part_size, prefix, verify
        self.attempts = attempts
        self.backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.clock = clock or SYSTEM_CLOCK
        self.entropy = entropy or SYSTEM_ENTROPY
        self.progress = progress or NULL_PROGRESS
        self._slots = threading.BoundedSemaphore(streams)
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.result = TransferResult(job.name, "running")

    # ------------------------------------------------------------------ the job
    def cancel(self) -> None:
        """Stop at the next part; the journal keeps what was done."""
        self._cancel.set()

    def run(self) -> TransferResult:
        """Send every object not yet done; the result of this run."""
        jid = self.job.id
        listing = [(o.name, o.size, o.mtime_ns) for o in self.src.list(self.prefix)]
        self.journal.sync_objects(jid, listing)
        listed = {n for n, _, _ in listing}
        rows = [r for r in self.journal.objects(jid) if r.name in listed]
        todo = [r for r in rows if r.state not in FINAL_STATES]
        done_bytes = sum(r.size for r in rows if r.state in FINAL_STATES)
        res = self.result
        res.objects_total, res.bytes_total = len(rows), sum(r.size for r in rows)
        res.objects_present = sum(1 for r in rows if r.state in FINAL_STATES)
        self.journal.start_run(jid, self.clock.now(), os.getpid(), res.bytes_total, done_bytes)
        self.progress.start("transfer", items_total=len(rows), bytes_total=res.bytes_total)
        self.progress.advance(items=res.objects_present, bytes=done_bytes)
        state = "done"
        try:
            # twice as many object workers as streams: one object's listing check, second
            # source read and complete overlap with another's sends (sends hold a stream slot)
            _all(2 * self.streams, self._object, todo)
        except TransferCancelled:
            state = "cancelled"
        if state == "cancelled" or self.journal.state(jid) == "cancelling":
            state = "cancelled"
            self._abort_uploads()
        elif res.objects_failed:
            state = "failed"
        res.state = state
        self.journal.set_state(jid, state, self.clock.now(),
                               error=f"{res.objects_failed} object(s) failed" if res.objects_failed else None)
        self.progress.finish()
        return res

    def _abort_uploads(self) -> None:
        for row in self.journal.objects(self.job.id):
            if row.upload_id:
                try:
                    self.dst.abort(row.upload_id)
                except ObjectNotFound:
                    pass
                self.journal.drop_parts(self.job.id, row.upload_id)
                self.journal.set_upload(self.job.id, row.name, None)

    def _check_cancel(self) -> None:
        if self._cancel.is_set() or self.journal.state(self.job.id) == "cancelling":
            self._cancel.set()
            raise TransferCancelled(f"transfer job {self.job.name!r} was cancelled",
                                    hint=f"'ebas transfer resume {self.job.name}' continues it")

    # ------------------------------------------------------------------ one object
    def _object(self, row) -> None:
        """Send one object, retrying transient failures and source changes."""
        changes = 0
        attempt = 0
        while True:
            self._check_cancel()
            try:
                present = self._send(self.journal.object(self.job.id, row.name))
            except TransferCancelled:
                raise
            except SourceChanged as exc:
                changes += 1
                with self._lock:
                    if row.name not in self.result.changed:
                        self.result.changed.append(row.name)
                self.progress.error(f"{row.name}: {exc.message}; sending it again")
                if changes < 3:
                    continue
                self._fail(row.name, f"{exc.message} (3 times; giving up for this run)")
                return
            except Exception as exc:  # noqa: BLE001 - one object's failure must not stop the job
                attempt += 1
                if getattr(exc, "retryable", False) and attempt < self.attempts:
                    self.clock.sleep(self.backoff.delay(attempt, self.entropy))
                    continue
                self._fail(row.name, _describe(exc))
                return
            with self._lock:
                if present:
                    self.result.objects_present += 1
                else:
                    self.result.objects_sent += 1
            self.progress.advance(items=1, current=row.name)
            return

    def _fail(self, name: str, message: str) -> None:
        """Record a permanent failure; an unfinished upload of the object is discarded (its
        parts would hold space, e.g. on a full destination, until a later run)."""
        row = self.journal.object(self.job.id, name)
        if row.upload_id:
            try:
                self.dst.abort(row.upload_id)
            except Exception:  # noqa: BLE001 - gone already, or the destination is unreachable
                pass
            self.journal.drop_parts(self.job.id, row.upload_id)
            self.journal.set_upload(self.job.id, name, None)
        self.journal.set_object(self.job.id, name, "failed", error=message)
        with self._lock:
            self.result.objects_failed += 1
            self.result.failures[name] = message
        self.progress.error(f"{name}: {message}")

    def _send(self, row) -> bool:
        """Send ``row``'s object; True if it was found at the destination already."""
        name, size = row.name, row.size
        stored = None
        if row.upload_id:
            try:
                stored = {p.number: p.size for p in self.dst.parts(row.upload_id)}
            except ObjectNotFound:  # completed before a crash, expired or aborted: look at the destination
                self.journal.drop_parts(self.job.id, row.upload_id)
                self.journal.set_upload(self.job.id, name, None)
        if stored is None and self._present(name, size):
            self.journal.set_object(self.job.id, name, "present", checksum=self._source_digest(name, size))
            self._count(size, 0)
            return True
        ps = part_size_for(size, self.part_size, self.dst.capabilities.min_part_size,
                           self.dst.capabilities.max_part_size)
        if size <= ps:
            digest = self._send_small(name, size)
        else:
            digest = self._send_parts(name, size, ps, row.upload_id if stored is not None else None, stored or {})
        self._verify(name, size, digest)
        self.journal.set_object(self.job.id, name, "done", checksum=digest)
        return False

    def _present(self, name: str, size: int) -> bool:
        try:
            if self.dst.stat(name).size != size:
                return False
        except ObjectNotFound:
            return False
        return self._digest(self.dst, name, size) == self._source_digest(name, size)

    def _send_small(self, name: str, size: int) -> str:
        with self._slots:
            self._check_cancel()
            data = self.src.get(name)
            if len(data) != size:
                raise SourceChanged(f"source object is now {len(data)} bytes, was {size} when listed")
            digest = blake3(data).hexdigest()
            self.dst.put(name, data)
        self._count(size, size)
        return digest

    def _send_parts(self, name: str, size: int, ps: int, uid: str | None, stored: dict[int, int]) -> str:
        jid = self.job.id
        count = math.ceil(size / ps)
        if not uid:
            uid = self.dst.begin_upload(name)
            self.journal.set_upload(jid, name, uid)
        sent = self.journal.parts(jid, uid)
        todo = [i for i in range(1, count + 1)
                if not (i in sent and stored.get(i) == sent[i][0] == min(ps, size - (i - 1) * ps))]
        with self._lock:
            self.result.parts_reused += count - len(todo)
        reused = sum(min(ps, size - (i - 1) * ps) for i in range(1, count + 1)) - sum(min(ps, size - (i - 1) * ps) for i in todo)
        if reused:
            self._count(reused, 0)

        def send(i: int) -> None:
            lo = (i - 1) * ps
            n = min(ps, size - lo)
            with self._slots:  # read inside the slot: at most ``streams`` parts in memory
                self._check_cancel()
                data = self.src.get(name, lo, n)
                if len(data) != n:
                    raise SourceChanged(f"source object is shorter than the {size} bytes listed")
                self.dst.upload_part(uid, i, data)
            self.journal.add_part(jid, uid, i, n, blake3(data).hexdigest())
            self._count(n, n)

        _all(self.streams, send, todo)
        # the second read of the source: each part as sent, and the whole object's digest
        sent = self.journal.parts(jid, uid)
        whole = blake3()
        for i in range(1, count + 1):
            lo = (i - 1) * ps
            data = self.src.get(name, lo, min(ps, size - lo))
            if blake3(data).hexdigest() != sent[i][1]:
                self.dst.abort(uid)
                self.journal.drop_parts(jid, uid)
                self.journal.set_upload(jid, name, None)
                self._uncount(size, done_parts=sent)
                raise SourceChanged(f"source bytes of part {i} differ from the bytes sent (checksum mismatch)")
            whole.update(data)
        self.dst.complete(uid)
        self.journal.drop_parts(jid, uid)
        return whole.hexdigest()

    def _verify(self, name: str, size: int, digest: str) -> None:
        got = self.dst.stat(name).size
        if got != size:
            raise IntegrityMismatch(f"destination holds {got} bytes, {size} were sent")
        if self.verify == "readback" and self._digest(self.dst, name, size) != digest:
            raise IntegrityMismatch("destination bytes differ from the source (BLAKE3 mismatch on read-back)")

    def _source_digest(self, name: str, size: int) -> str:
        return self._digest(self.src, name, size)

    def _digest(self, store: Store, name: str, size: int) -> str:
        h = blake3()
        for lo in range(0, size, self.part_size):
            h.update(store.get(name, lo, min(self.part_size, size - lo)))
        return h.hexdigest()

    # ------------------------------------------------------------------ accounting
    def _count(self, done: int, sent: int) -> None:
        with self._lock:
            self.result.bytes_sent += sent
        self.journal.add_bytes(self.job.id, done, sent, self.clock.now())
        self.progress.advance(bytes=done)

    def _uncount(self, size: int, done_parts: dict) -> None:
        back = sum(s for s, _ in done_parts.values())
        self.journal.add_bytes(self.job.id, -back, 0, self.clock.now())
        self.progress.advance(bytes=-back)


class IntegrityMismatch(EbasError):
    """The destination does not hold what was sent (retried: the object is sent again)."""

    retryable = True


def _all(workers: int, fn, items: list) -> None:
    """``fn(item)`` for every item on up to ``workers`` threads; the first failure cancels
    what has not started and is raised once the running calls have ended."""
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="ebas-transfer")
    try:
        for fut in [pool.submit(fn, item) for item in items]:
            fut.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EbasError):
        return f"{type(exc).__name__}: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"
