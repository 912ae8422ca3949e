"""A transfer to a real S3 server (moto) through the WAN link emulator, with the link cut
in the middle of parts: the copy completes byte-exact and re-sends at most about one
part per stream per cut."""

from __future__ import annotations

import math
import os
import threading
import time

import backend_services as svc
import pytest
from backend_services import S3_KEYS, s3_url, unique

from ebas.storage.backends.memory import MemoryStore
from ebas.storage.stack import build_stack
from ebas.testing.link import LinkEmulator
from ebas.transfer.engine import TransferEngine
from ebas.transfer.journal import Journal

svc.require_module("boto3")
from ebas.storage.backends.s3 import S3Store  # noqa: E402

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part


def open_s3(port, bucket, prefix, **options):
    return S3Store.from_url(s3_url(port, bucket, prefix), **S3_KEYS, **options)


def cutter(link: LinkEmulator, every: int, cuts: int, stop: threading.Event) -> threading.Thread:
    """Cut the link each time another ``every`` bytes crossed it upstream, ``cuts`` times."""

    def run():
        for k in range(1, cuts + 1):
            while link.sent["up"] < k * every and not stop.is_set():
                time.sleep(0.005)
            if stop.is_set():
                return
            link.cut()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("streams", [1, 2])
def test_s3_transfer_through_a_cut_link_is_byte_exact(moto, s3_bucket, tmp_path, streams):
    src = MemoryStore()
    want = {"packs/a": os.urandom(12 * MiB), "packs/b": os.urandom(11 * MiB), "index/i": os.urandom(300 * 1024),
            "config": b"c" * 100}
    for name, data in want.items():
        src.put(name, data)
    total = sum(len(v) for v in want.values())
    prefix = unique("xfer")
    cuts = 3
    with LinkEmulator(moto.port, rate=40 * MiB, delay=0.002, queue=512 * 1024) as link:
        dst = build_stack(open_s3(link.port, s3_bucket, prefix, read_timeout=5, connect_timeout=2))
        journal = Journal(str(tmp_path / "j"))
        job = journal.create_job("s3", "memory://", dst.url, {}, time.time())
        stop = threading.Event()
        t = cutter(link, every=7 * MiB, cuts=cuts, stop=stop)
        try:
            res = TransferEngine(src, dst, journal, job, streams=streams, part_size=PART).run()
        finally:
            stop.set()
            t.join()
        sent_up = link.sent["up"]
        assert link.cuts == cuts
    assert res.state == "done", res.failures
    direct = open_s3(moto.port, s3_bucket, prefix)
    assert {o.name: direct.get(o.name) for o in direct.list()} == want
    assert direct.uploads() == []
    resent = sent_up - total
    print(f"streams={streams} cuts={cuts} resent={resent / MiB:.2f} MiB")
    # HTTP headers are a few KiB; what remains is what the cuts cost
    assert resent <= cuts * streams * PART + 1 * MiB, resent / MiB


def test_adaptive_yields_to_a_competing_flow_and_climbs_back(moto, s3_bucket):
    """Through one 2 MiB/s bottleneck (slow enough that the link, not the emulators, is
    the bottleneck on a busy CI machine): an adaptive sender alone, then beside an unthrottled
    bulk flow, then alone again. It leaves most of the link to the competitor and takes
    the link back when the competitor stops."""
    from ebas.storage.wrappers.throttle import Link, ThrottledStore
    from ebas.transfer.adaptive import AdaptiveController

    rate = 2 * MiB
    with LinkEmulator(moto.port, rate=rate, delay=0.005, queue=int(rate * 0.5)) as em:
        backend = open_s3(em.port, s3_bucket, unique("adapt"), read_timeout=10)
        rival = open_s3(em.port, s3_bucket, unique("rival"), read_timeout=10)
        link = Link(math.inf)
        ours = ThrottledStore(backend, link)
        ctl = AdaptiveController(link, lambda: backend.exists("ebas-transfer-probe/none"), target=0.05,
                                 interval=0.1, start_rate=rate / 2, max_rate=2 * rate, min_rate=64 * 1024).start()
        sent = {"ours": 0, "rival": 0}
        stop = {"ours": threading.Event(), "rival": threading.Event()}
        blob = os.urandom(MiB // 8)

        lock = threading.Lock()

        def pump(who, store):
            i = 0
            while not stop[who].is_set():
                store.put(f"o{threading.get_ident()}-{i % 4}", blob)
                with lock:
                    sent[who] += len(blob)
                i += 1

        def phase(seconds):
            before = dict(sent)
            time.sleep(seconds)
            return {k: (sent[k] - before[k]) / seconds for k in sent}

        def start(who, store, n):
            ts = [threading.Thread(target=pump, args=(who, store), daemon=True) for _ in range(n)]
            for t in ts:
                t.start()
            return ts

        mine = start("ours", ours, 2)
        alone = phase(3.0)
        rivals = start("rival", rival, 4)  # a bulk flow that can fill the link by itself
        time.sleep(1.0)  # let the controller see the queue
        shared = phase(3.0)
        stop["rival"].set()
        for t in rivals:
            t.join()
        time.sleep(1.5)  # climbing back
        again = phase(2.0)
        stop["ours"].set()
        for t in mine:
            t.join()
        ctl.stop()
    print(f"adaptive alone {alone['ours'] / MiB:.2f} MiB/s; shared ours {shared['ours'] / MiB:.2f} "
          f"rival {shared['rival'] / MiB:.2f}; alone again {again['ours'] / MiB:.2f}")
    assert shared["rival"] >= 2 * shared["ours"]  # the competitor keeps most of the link
    assert again["ours"] >= 2 * shared["ours"]  # and the link is taken back when it is idle
    assert alone["ours"] >= 0.4 * rate
