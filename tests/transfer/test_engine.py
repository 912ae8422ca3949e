"""TransferEngine: byte-exact copies, resume without re-sending, faults, source changes."""

from __future__ import annotations

import shutil

import pytest
from transfer_helpers import KiB, content, fill

from ebas.errors import PermissionDenied, TransientStoreError
from ebas.progress import Tracker
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.wrappers.base import StoreWrapper
from ebas.storage.wrappers.faulty import FaultyStore
from ebas.storage.wrappers.retry import RetryingStore
from ebas.transfer.engine import TransferEngine
from ebas.transfer.journal import Journal

OBJECTS = {"packs/a": 10 * KiB, "packs/b": 200 * KiB, "packs/c": 333 * KiB + 5, "index/i": 1, "empty": 0}
PART = 64 * KiB


class Crash(BaseException):
    """Stands for a kill: not an Exception, so nothing in the engine catches it."""


def engine(src, dst, tmp_path, clock, entropy, *, name="job", progress=None, **kw):
    journal = Journal(str(tmp_path / "journal"))
    job = journal.find_job(name) or journal.create_job(name, "memory://src", "memory://dst", {}, clock.now())
    kw.setdefault("part_size", PART)
    return TransferEngine(src, dst, journal, job, clock=clock, entropy=entropy, progress=progress, **kw)


def test_copies_every_object_byte_exact(tmp_path, clock, entropy):
    src, dst = MemoryStore(), MemoryStore()
    want = fill(src, OBJECTS)
    tracker = Tracker(clock=clock)
    res = engine(src, dst, tmp_path, clock, entropy, progress=tracker, streams=3).run()
    assert content(dst) == want
    assert (res.state, res.objects_sent, res.objects_failed, res.failures) == ("done", 5, 0, {})
    assert res.bytes_sent == sum(OBJECTS.values()) == res.bytes_total
    st = tracker.status()
    assert (st.bytes_done, st.bytes_total, st.items_done, st.items_total, st.finished) == (
        res.bytes_total, res.bytes_total, 5, 5, True)
    assert dst.uploads() == []


def test_second_run_sends_nothing(tmp_path, clock, entropy):
    src, dst = MemoryStore(), MemoryStore()
    fill(src, OBJECTS)
    engine(src, dst, tmp_path, clock, entropy).run()
    again = engine(src, dst, tmp_path, clock, entropy).run()
    assert (again.state, again.bytes_sent, again.objects_sent, again.objects_present) == ("done", 0, 0, 5)


class KillAfterParts(StoreWrapper):
    """Kills the process when the ``n``-th part is sent: that and every later write raises Crash."""

    def __init__(self, inner, n):
        super().__init__(inner)
        self.n, self.sent = n, 0

    def upload_part(self, upload_id, number, data):
        self.sent += 1
        if self.sent >= self.n:
            raise Crash()
        return self.inner.upload_part(upload_id, number, data)

    def put(self, name, data):
        if self.sent >= self.n:
            raise Crash()
        self.inner.put(name, data)

    def complete(self, upload_id):
        if self.sent >= self.n:
            raise Crash()
        self.inner.complete(upload_id)


def test_resume_after_a_kill_resends_no_completed_part(tmp_path, clock, entropy, names):
    src, ns = MemoryStore(), names()
    want = fill(src, {"big": 1000 * KiB, "small": 3 * KiB})
    with pytest.raises(Crash):
        engine(src, KillAfterParts(MemoryStore(ns), 9), tmp_path, clock, entropy, streams=1).run()
    assert "big" not in content(MemoryStore(ns))  # never a partial object under its final name
    res = engine(src, MemoryStore(ns), tmp_path, clock, entropy, streams=1).run()
    assert content(MemoryStore(ns)) == want
    assert res.state == "done" and res.parts_reused == 8
    # 16 parts of 62.5 KiB: 8 were stored before the kill and are not sent again
    assert res.bytes_sent == 1000 * KiB - 8 * PART + (3 * KiB if res.objects_sent == 2 else 0)
    assert MemoryStore(ns).uploads() == []


def test_transient_errors_are_retried_and_the_copy_completes(tmp_path, clock, entropy):
    src, faulty = MemoryStore(), FaultyStore(MemoryStore(), clock=clock)
    want = fill(src, OBJECTS)
    faulty.faults.flaky("upload_part", every=2)
    faulty.faults.flaky("put", every=2)
    dst = RetryingStore(faulty, clock, entropy, attempts=2)
    res = engine(src, dst, tmp_path, clock, entropy, streams=2).run()
    assert res.state == "done" and content(faulty.inner) == want
    assert faulty.calls["upload_part"] > 10


def test_a_link_down_longer_than_store_retries_is_retried_by_the_engine(tmp_path, clock, entropy):
    src, faulty = MemoryStore(), FaultyStore(MemoryStore(), clock=clock)
    want = fill(src, {"big": 500 * KiB})
    faulty.faults.fail("upload_part", nth=3, times=4)  # four failures in a row
    dst = RetryingStore(faulty, clock, entropy, attempts=2)
    res = engine(src, dst, tmp_path, clock, entropy, streams=1).run()
    assert res.state == "done" and content(faulty.inner) == want
    assert res.parts_reused >= 2  # parts stored before the outage were kept


def test_a_permanent_error_fails_that_object_only(tmp_path, clock, entropy):
    src, faulty = MemoryStore(), FaultyStore(MemoryStore(), clock=clock)
    want = fill(src, OBJECTS)
    faulty.faults.fail("put", exc=PermissionDenied, times=None, prefix="index/")
    tracker = Tracker(clock=clock)
    res = engine(src, faulty, tmp_path, clock, entropy, progress=tracker).run()
    assert res.state == "failed" and res.objects_failed == 1
    assert list(res.failures) == ["index/i"] and "PermissionDenied" in res.failures["index/i"]
    assert content(faulty.inner) == {k: v for k, v in want.items() if k != "index/i"}
    assert any(e.startswith("index/i: ") for e in tracker.errors)


class ChangeSourceDuring(StoreWrapper):
    """Replaces ``name`` in the source right after its first ranged read."""

    def __init__(self, inner, name, new):
        super().__init__(inner)
        self.name, self.new, self.done = name, new, False

    def get(self, name, start=0, length=None):
        data = self.inner.get(name, start, length)
        if name == self.name and not self.done:
            self.done = True
            self.inner.put(name, self.new)
        return data


def test_source_changing_mid_transfer_is_detected_reported_and_resent(tmp_path, clock, entropy):
    base = MemoryStore()
    fill(base, {"big": 300 * KiB})
    new = bytes(reversed(base.get("big")))  # same size, other bytes
    tracker = Tracker(clock=clock)
    dst = MemoryStore()
    res = engine(ChangeSourceDuring(base, "big", new), dst, tmp_path, clock, entropy, streams=1,
                 progress=tracker).run()
    assert res.state == "done" and res.changed == ["big"]
    assert dst.get("big") == new
    assert any("big" in e and "checksum" in e for e in tracker.errors)


def test_journal_deleted_restarts_safely(tmp_path, clock, entropy, names):
    src, ns = MemoryStore(), names()
    want = fill(src, {"a": 100 * KiB, "b": 5 * KiB, "c": 7 * KiB, "d": 300 * KiB})
    engine(src, MemoryStore(ns), tmp_path, clock, entropy).run()
    dst = MemoryStore(ns)
    dst.put("c", b"\x00" * (7 * KiB))  # a wrong object of the right size must not be trusted
    dst.delete("d")
    shutil.rmtree(tmp_path / "journal")
    res = engine(src, MemoryStore(ns), tmp_path, clock, entropy, streams=2).run()
    assert content(MemoryStore(ns)) == want
    assert (res.state, res.objects_present, res.objects_sent) == ("done", 2, 2)
    assert res.bytes_sent == 307 * KiB


def test_journal_deleted_after_a_kill_restarts_safely(tmp_path, clock, entropy, names):
    src, ns = MemoryStore(), names()
    want = fill(src, {"a": 100 * KiB, "b": 5 * KiB, "c": 7 * KiB, "d": 300 * KiB})
    with pytest.raises(Crash):
        engine(src, KillAfterParts(MemoryStore(ns), 5), tmp_path, clock, entropy, streams=1).run()
    shutil.rmtree(tmp_path / "journal")
    res = engine(src, MemoryStore(ns), tmp_path, clock, entropy, streams=2).run()
    assert res.state == "done" and content(MemoryStore(ns)) == want


class WatchFinalNames(StoreWrapper):
    """Checks at every part that no object is listed under its final name early."""

    def __init__(self, inner):
        super().__init__(inner)
        self.bad = []

    def upload_part(self, upload_id, number, data):
        pending = {u.name for u in self.inner.uploads() if u.upload_id == upload_id}
        self.bad += [o.name for o in self.inner.list() if o.name in pending]
        return self.inner.upload_part(upload_id, number, data)


def test_destination_never_lists_a_partial_object(tmp_path, clock, entropy):
    src = MemoryStore()
    fill(src, {"x": 400 * KiB, "y": 250 * KiB})
    dst = WatchFinalNames(MemoryStore())
    engine(src, dst, tmp_path, clock, entropy, streams=2).run()
    assert dst.bad == []


def test_readback_verification_catches_corruption_and_resends(tmp_path, clock, entropy):
    src, faulty = MemoryStore(), FaultyStore(MemoryStore(), clock=clock)
    want = fill(src, {"o": 20 * KiB})

    class CorruptOnce(StoreWrapper):
        hits = 0

        def put(self, name, data):
            CorruptOnce.hits += 1
            if CorruptOnce.hits == 1:
                data = b"\xff" + data[1:]
            self.inner.put(name, data)

    res = engine(src, CorruptOnce(faulty), tmp_path, clock, entropy, verify="readback").run()
    assert res.state == "done" and content(faulty.inner) == want and CorruptOnce.hits == 2


def test_cancel_from_the_journal_stops_and_discards_uploads(tmp_path, clock, entropy):
    src = MemoryStore()
    fill(src, {"big": 800 * KiB})
    dst = MemoryStore()
    other = Journal(str(tmp_path / "journal"))  # as another process would

    class CancelAt(StoreWrapper):
        n = 0

        def upload_part(self, upload_id, number, data):
            CancelAt.n += 1
            if CancelAt.n == 3:
                other.request_cancel("job", clock.now(), running=True)
            return self.inner.upload_part(upload_id, number, data)

    res = engine(src, CancelAt(dst), tmp_path, clock, entropy, streams=1).run()
    assert res.state == "cancelled" and other.job("job").state == "cancelled"
    assert dst.uploads() == [] and list(dst.list()) == []
    assert CancelAt.n == 3


def test_transient_errors_that_never_stop_fail_the_object_with_its_name(tmp_path, clock, entropy):
    src, faulty = MemoryStore(), FaultyStore(MemoryStore(), clock=clock)
    fill(src, {"a": 1 * KiB, "b": 2 * KiB})
    faulty.faults.fail("put", exc=TransientStoreError, times=None, prefix="b")
    res = engine(src, faulty, tmp_path, clock, entropy, attempts=3).run()
    assert res.objects_failed == 1 and "b" in res.failures and faulty.calls["put"] >= 4


def test_destination_full_fails_the_objects_that_do_not_fit_and_names_them(tmp_path, clock, entropy):
    src, faulty = MemoryStore(), FaultyStore(MemoryStore(), clock=clock)
    want = fill(src, {"a": 10 * KiB, "b": 200 * KiB, "c": 20 * KiB})
    faulty.faults.disk_full_after(40 * KiB)
    res = engine(src, faulty, tmp_path, clock, entropy, streams=1).run()
    assert res.state == "failed" and "b" in res.failures and "StoreFull" in res.failures["b"]
    got = content(faulty.inner)
    assert all(got[n] == want[n] for n in got)  # whatever is there is whole
    assert "b" not in got and faulty.inner.uploads() == []  # its parts were discarded, freeing the space
