"""``FaultyStore``: a store wrapper that misbehaves on command, for tests.

Faults are programmed on ``store.faults`` (a :class:`Faults`)::

    store = FaultyStore(FileStore(tmp), clock=FakeClock())
    store.faults.fail("put", nth=3)                    # the 3rd put raises TransientStoreError
    store.faults.fail("get", exc=PermissionDenied, times=None, prefix="keys/")
    store.faults.fail("delete", after=True)            # deletes, then reports a failure
    store.faults.flaky("*", every=3)                   # every 3rd call of every op fails
    store.faults.cut_write_after(1000, prefix="data/") # next bigger write dies after 1000 B
    store.faults.corrupt_reads("data/", offset=10)     # byte 10 of data/* objects is flipped
    store.faults.delay("get", 2.5)                     # each get sleeps 2.5 s on the clock
    store.faults.disk_full_after(10 * 2**20)           # StoreFull once 10 MiB were written
    store.calls["put"]                                 # how many puts were attempted

``op`` is an ``fnmatch`` pattern over operation names: the ``Store`` methods (``put``,
``open_write``, ``get``, ``stat``, ``list``, ``delete``, ``begin_upload``,
``upload_part``, ``parts``, ``complete``, ``abort``, ``uploads``) and the stream
methods ``write`` and ``commit``. ``prefix`` restricts a rule to object names starting
with it (for ``list``/``uploads`` the listing prefix; for upload steps the target of
an upload begun through this wrapper). Counting for ``nth`` starts when a rule is added.
An injected failure before an operation leaves the inner store untouched; a cut or a
full disk aborts the inner write, so nothing partial is published.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Callable, Iterator, TypeVar

from ebas.errors import StoreFull, TransientStoreError
from ebas.runtime import SYSTEM_CLOCK, Clock
from ebas.storage.base import ObjectInfo, ObjectWriter, PartInfo, PendingUpload, Store
from ebas.storage.wrappers.base import StoreWrapper

T = TypeVar("T")
ExcSpec = type[BaseException] | BaseException | None


@dataclass
class FailRule:
    """Fail calls ``nth`` .. ``nth + times - 1`` (or every ``every``-th) matching call."""

    op: str
    nth: int = 1
    times: int | None = 1
    every: int | None = None
    exc: ExcSpec = None
    prefix: str | None = None
    after: bool = False
    seen: int = 0
    fired: int = 0

    def hit(self) -> bool:
        self.seen += 1
        if self.every:
            fire = self.seen % self.every == 0
        else:
            fire = self.seen >= self.nth and (self.times is None or self.seen < self.nth + self.times)
        self.fired += fire
        return fire


@dataclass
class CutRule:
    """Break the next ``times`` writes bigger than ``nbytes`` after ``nbytes`` bytes."""

    nbytes: int
    prefix: str = ""
    times: int | None = 1
    exc: ExcSpec = None
    fired: int = 0


@dataclass
class CorruptRule:
    """XOR byte ``offset`` of matching objects with ``mask`` in what ``get`` returns."""

    prefix: str = ""
    offset: int = 0
    mask: int = 0x01
    times: int | None = None
    fired: int = 0


@dataclass
class DelayRule:
    """Sleep ``seconds`` on the clock before each matching call."""

    op: str
    seconds: float
    prefix: str | None = None


def _matches(prefix: str | None, name: str) -> bool:
    return prefix is None or name.startswith(prefix)


def make_exception(spec: ExcSpec, message: str) -> BaseException:
    """An exception from a rule's ``exc``: None (TransientStoreError), a class, or an instance."""
    if spec is None:
        return TransientStoreError(message)
    if isinstance(spec, BaseException):
        return spec
    return spec(message)


class Faults:
    """The programmable faults and call counters of one ``FaultyStore`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.bytes_written = 0
        self.full_after: int | None = None
        self.fail_rules: list[FailRule] = []
        self.cut_rules: list[CutRule] = []
        self.corrupt_rules: list[CorruptRule] = []
        self.delay_rules: list[DelayRule] = []

    # -- programming
    def fail(self, op: str, nth: int = 1, *, times: int | None = 1, exc: ExcSpec = None,
             prefix: str | None = None, after: bool = False) -> FailRule:
        """Make the ``nth`` matching call (and ``times - 1`` more; None = all later) raise ``exc``.

        ``after=True`` runs the operation first and raises afterwards (a lost reply).
        """
        return self._add(self.fail_rules, FailRule(op, nth, times, None, exc, prefix, after))

    def flaky(self, op: str, every: int, *, exc: ExcSpec = None, prefix: str | None = None) -> FailRule:
        """Make every ``every``-th matching call raise ``exc`` (TransientStoreError)."""
        return self._add(self.fail_rules, FailRule(op, every=every, exc=exc, prefix=prefix))

    def cut_write_after(self, nbytes: int, *, prefix: str = "", times: int | None = 1,
                        exc: ExcSpec = None) -> CutRule:
        """Cut the next ``times`` writes (put, stream, part) bigger than ``nbytes`` after ``nbytes``."""
        return self._add(self.cut_rules, CutRule(nbytes, prefix, times, exc))

    def corrupt_reads(self, prefix: str = "", *, offset: int = 0, mask: int = 0x01,
                      times: int | None = None) -> CorruptRule:
        """Flip bits ``mask`` of byte ``offset`` (from the object's start) in ``get`` results."""
        return self._add(self.corrupt_rules, CorruptRule(prefix, offset, mask, times))

    def delay(self, op: str, seconds: float, *, prefix: str | None = None) -> DelayRule:
        """Sleep ``seconds`` (through the store's clock) before each matching call."""
        return self._add(self.delay_rules, DelayRule(op, seconds, prefix))

    def disk_full_after(self, nbytes: int | None) -> None:
        """Raise ``StoreFull`` for a write that would take the total written past ``nbytes``."""
        with self._lock:
            self.full_after = nbytes

    def clear(self) -> None:
        """Remove every rule and the disk-full limit (counters are kept)."""
        with self._lock:
            for rules in (self.fail_rules, self.cut_rules, self.corrupt_rules, self.delay_rules):
                rules.clear()
            self.full_after = None

    def _add(self, rules: list, rule):
        with self._lock:
            rules.append(rule)
        return rule

    # -- evaluation (used by FaultyStore and its writers)
    def before(self, op: str, name: str, clock: Clock) -> list[FailRule]:
        """Count the call, sleep for delays, raise a 'before' fault; return 'after' faults."""
        with self._lock:
            self.calls[op] += 1
            delays = [d.seconds for d in self.delay_rules
                      if fnmatchcase(op, d.op) and _matches(d.prefix, name)]
            fired = [r for r in self.fail_rules
                     if fnmatchcase(op, r.op) and _matches(r.prefix, name) and r.hit()]
        for seconds in delays:
            clock.sleep(seconds)
        now = [r for r in fired if not r.after]
        if now:
            raise self.exception(now[0], op, name)
        return fired

    def exception(self, rule: FailRule | CutRule, op: str, name: str) -> BaseException:
        """The exception a fired rule raises."""
        what = f"cut after {rule.nbytes} bytes" if isinstance(rule, CutRule) else "failure"
        return make_exception(rule.exc, f"injected {what}: {op} {name!r}")

    def claim_cut(self, name: str, size: int) -> CutRule | None:
        """The cut rule that breaks a write reaching ``size`` bytes of ``name``, if any."""
        with self._lock:
            for rule in self.cut_rules:
                if (size > rule.nbytes and name.startswith(rule.prefix)
                        and (rule.times is None or rule.fired < rule.times)):
                    rule.fired += 1
                    return rule
        return None

    def reserve(self, nbytes: int, name: str) -> None:
        """Count ``nbytes`` as written, or raise ``StoreFull`` past the disk-full limit."""
        with self._lock:
            if (self.full_after is not None and nbytes
                    and self.bytes_written + nbytes > self.full_after):
                raise StoreFull(f"injected disk full writing {name!r} "
                                f"({self.bytes_written} of {self.full_after} bytes used)")
            self.bytes_written += nbytes

    def release(self, nbytes: int) -> None:
        """Give back bytes of a write that was not published."""
        with self._lock:
            self.bytes_written -= nbytes

    def corrupt(self, name: str, start: int, data: bytes) -> bytes:
        """``data`` (read at ``start`` of ``name``) with the matching corruptions applied."""
        with self._lock:
            hits = [r for r in self.corrupt_rules
                    if name.startswith(r.prefix) and start <= r.offset < start + len(data)
                    and (r.times is None or r.fired < r.times)]
            for rule in hits:
                rule.fired += 1
        if not hits:
            return data
        buf = bytearray(data)
        for rule in hits:
            buf[rule.offset - start] ^= rule.mask
        return bytes(buf)


class FaultyWriter(ObjectWriter):
    """A stream through ``FaultyStore``: counts, cuts and fills like ``put`` does."""

    def __init__(self, store: "FaultyStore", name: str, inner: ObjectWriter):
        self._store, self._name, self._inner = store, name, inner
        self._written = 0
        self._reserved = 0
        self._done = False

    def write(self, data: bytes) -> None:
        faults = self._store.faults
        self._guard(lambda: faults.before("write", self._name, self._store.clock))
        cut = faults.claim_cut(self._name, self._written + len(data))
        if cut is not None:
            self._guard(lambda: self._inner.write(data[:max(0, cut.nbytes - self._written)]))
            self.abort()
            raise faults.exception(cut, "write", self._name)
        self._guard(lambda: faults.reserve(len(data), self._name))
        self._reserved += len(data)
        self._guard(lambda: self._inner.write(data))
        self._written += len(data)

    def commit(self) -> None:
        after = self._guard(lambda: self._store.faults.before("commit", self._name, self._store.clock))
        self._inner.commit()
        self._done = True
        if after:
            raise self._store.faults.exception(after[0], "commit", self._name)

    def abort(self) -> None:
        self._inner.abort()
        if not self._done:
            self._done = True
            self._store.faults.release(self._reserved)

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except BaseException:
            self.abort()
            raise


class FaultyStore(StoreWrapper):
    """A store that injects the faults programmed on ``self.faults`` (see module docstring)."""

    def __init__(self, inner: Store, clock: Clock | None = None):
        super().__init__(inner)
        self.clock = clock or SYSTEM_CLOCK
        self.faults = Faults()
        self._targets: dict[str, str] = {}

    @property
    def calls(self) -> Counter[str]:
        """Calls attempted per operation name (including ones that failed)."""
        return self.faults.calls

    def _run(self, op: str, name: str, fn: Callable[[], T]) -> T:
        after = self.faults.before(op, name, self.clock)
        result = fn()
        if after:
            raise self.faults.exception(after[0], op, name)
        return result

    def _write(self, op: str, name: str, data: bytes, fn: Callable[[], T],
               partial: Callable[[bytes], None] | None) -> T:
        after = self.faults.before(op, name, self.clock)
        cut = self.faults.claim_cut(name, len(data))
        if cut is not None:
            if partial is not None:
                partial(data[:cut.nbytes])
            raise self.faults.exception(cut, op, name)
        self.faults.reserve(len(data), name)
        try:
            result = fn()
        except BaseException:
            self.faults.release(len(data))
            raise
        if after:
            raise self.faults.exception(after[0], op, name)
        return result

    def _send_partial(self, name: str, data: bytes) -> None:
        writer = self.inner.open_write(name)
        try:
            writer.write(data)
        finally:
            writer.abort()

    def put(self, name: str, data: bytes) -> None:
        self._write("put", name, data, lambda: self.inner.put(name, data),
                    lambda head: self._send_partial(name, head))

    def open_write(self, name: str) -> ObjectWriter:
        after = self.faults.before("open_write", name, self.clock)
        writer = self.inner.open_write(name)
        if after:  # the stream was opened, then the reply was lost
            writer.abort()
            raise self.faults.exception(after[0], "open_write", name)
        return FaultyWriter(self, name, writer)

    def get(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        data = self._run("get", name, lambda: self.inner.get(name, start, length))
        return self.faults.corrupt(name, start, data)

    def get_many(self, names):
        """One faulty ``get`` per object (the base behaviour), so every fault applies."""
        return Store.get_many(self, names)

    def stat(self, name: str) -> ObjectInfo:
        return self._run("stat", name, lambda: self.inner.stat(name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._run("list", prefix, lambda: self.inner.list(prefix))

    def delete(self, name: str) -> None:
        self._run("delete", name, lambda: self.inner.delete(name))

    def begin_upload(self, name: str) -> str:
        upload_id = self._run("begin_upload", name, lambda: self.inner.begin_upload(name))
        self._targets[upload_id] = name
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes) -> PartInfo:
        name = self._targets.get(upload_id, "")
        return self._write("upload_part", name, data,
                           lambda: self.inner.upload_part(upload_id, number, data), None)

    def parts(self, upload_id: str) -> list[PartInfo]:
        return self._run("parts", self._targets.get(upload_id, ""), lambda: self.inner.parts(upload_id))

    def complete(self, upload_id: str) -> None:
        self._run("complete", self._targets.get(upload_id, ""), lambda: self.inner.complete(upload_id))

    def abort(self, upload_id: str) -> None:
        self._run("abort", self._targets.get(upload_id, ""), lambda: self.inner.abort(upload_id))

    def uploads(self, prefix: str = "") -> list[PendingUpload]:
        return self._run("uploads", prefix, lambda: self.inner.uploads(prefix))
