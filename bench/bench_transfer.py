"""Transfer engine through the WAN link emulator to a real S3 server (moto on 127.0.0.1).

Scenarios (issue 11), each a fresh job and a fresh key prefix, the source a memory store
of incompressible packs of ``--object-mib``:

* ``streams``: unthrottled goodput with 1, 4 and 8 streams, as a share of the link rate;
* ``bwlimit``: ``--bwlimit`` at 25 %, 50 % and 90 % of the link (4 streams): achieved
  rate against the limit and the largest 1-second burst on the link;
* ``loopback``: a 1 Gbit/s limit between two memory stores without the emulator
  (engine plus throttle only), with the CPU time the process used;
* ``cuts``: the link cut ``--cuts`` times during one transfer (4 streams): completes,
  every object's bytes compared, bytes re-sent beyond the payload;
* ``adaptive``: an adaptive sender (2 threads of 128 KiB puts) alone, then beside an
  unthrottled 4-thread bulk flow, then alone again, through a slower link
  (``--adaptive-rate-mbit``, where the link and not the emulators' CPU is the bottleneck):
  the rate each gets per phase.

    .venv/bin/python bench/bench_transfer.py                       # 256 MiB per run
    .venv/bin/python bench/bench_transfer.py --size-mib 1024 --only streams,bwlimit --json-out bench/out/transfer.json

"Goodput" is payload bytes over wall time of the whole job (listing, every request,
the source re-read for verification and the completes). The emulator terminates TCP on
both sides, so it models the bottleneck's rate, queue and delay (every request waits a
round trip for its answer) but not a real WAN's congestion window (slow start after a
cut, window-limited throughput at a high bandwidth-delay product).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "storage" / "backends"))

import backend_services as svc  # noqa: E402  (the tests' service starters, reused)

MiB = 1024 * 1024


class Sampler:
    """Samples the link's upstream byte count every 50 ms; the largest 1-second window."""

    def __init__(self, link):
        self.link, self.samples, self.stop = link, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self.link.sent["up"]))
            time.sleep(0.05)

    def max_1s(self) -> float:
        self.stop.set()
        self.thread.join()
        best, j = 0, 0
        s = self.samples
        for i in range(len(s)):
            while s[i][0] - s[j][0] > 1.0:
                j += 1
            if s[i][0] - s[j][0] >= 0.95:
                best = max(best, (s[i][1] - s[j][1]) / (s[i][0] - s[j][0]))
        return best


def source(size_mib: int, object_mib: int):
    from ebas.storage.backends.memory import MemoryStore

    src = MemoryStore()
    n = max(1, size_mib // object_mib)
    for i in range(n):
        src.put(f"data/{i:04d}.pack", os.urandom(object_mib * MiB))
    return src, n * object_mib * MiB


def run_job(src, dst, workdir: Path, tag: str, *, streams: int, part_size: int, link=None):
    from ebas.transfer.engine import TransferEngine
    from ebas.transfer.journal import Journal

    journal = Journal(str(workdir / f"j-{tag}"))
    job = journal.create_job(tag, "memory://bench", dst.url, {}, time.time())
    t0, c0 = time.monotonic(), time.process_time()
    res = TransferEngine(src, dst, journal, job, streams=streams, part_size=part_size).run()
    return res, time.monotonic() - t0, time.process_time() - c0


def s3_dst(port: int, bucket: str, prefix: str, *, link=None):
    from ebas.storage.backends.s3 import S3Store
    from ebas.storage.stack import build_stack

    store = S3Store.from_url(svc.s3_url(port, bucket, prefix), **svc.S3_KEYS, read_timeout=10, connect_timeout=3,
                             max_connections=32)
    return build_stack(store, link=link)


def check(src, moto_port, bucket, prefix) -> bool:
    direct = s3_dst(moto_port, bucket, prefix)
    ok = all(direct.get(o.name) == src.get(o.name) for o in src.list())
    for o in list(direct.list()):
        direct.delete(o.name)
    return ok


def adaptive(moto_port: int, bucket: str, rate: float) -> dict:
    """Adaptive sender vs a bulk flow through one bottleneck; rates per phase."""
    import math

    from ebas.storage.backends.s3 import S3Store
    from ebas.storage.wrappers.throttle import Link, ThrottledStore
    from ebas.testing.link import LinkEmulator
    from ebas.transfer.adaptive import AdaptiveController

    def s3(port, prefix):
        return S3Store.from_url(svc.s3_url(port, bucket, prefix), **svc.S3_KEYS, read_timeout=10)

    with LinkEmulator(moto_port, rate=rate, delay=0.02, queue=int(rate * 0.5)) as em:
        backend, rival = s3(em.port, svc.unique("ad")), s3(em.port, svc.unique("rv"))
        link = Link(math.inf)
        ours = ThrottledStore(backend, link)
        ctl = AdaptiveController(link, lambda: backend.exists("ebas-transfer-probe/none"), target=0.05,
                                 interval=0.1, start_rate=rate / 2, max_rate=2 * rate, min_rate=32 * 1024).start()
        sent, lock = {"ours": 0, "rival": 0}, threading.Lock()
        stop = {"ours": threading.Event(), "rival": threading.Event()}
        blob = os.urandom(128 * 1024)

        def pump(who, store):
            i = 0
            while not stop[who].is_set():
                store.put(f"o{threading.get_ident()}-{i % 4}", blob)
                with lock:
                    sent[who] += len(blob)
                i += 1

        def start(who, store, n):
            ts = [threading.Thread(target=pump, args=(who, store), daemon=True) for _ in range(n)]
            for t in ts:
                t.start()
            return ts

        def phase(seconds):
            before = dict(sent)
            time.sleep(seconds)
            return {k: round((sent[k] - before[k]) / seconds / rate, 3) for k in sent}

        mine = start("ours", ours, 2)
        time.sleep(2)
        alone = phase(5)
        rivals = start("rival", rival, 4)
        time.sleep(2)
        shared = phase(8)
        stop["rival"].set()
        for t in rivals:
            t.join()
        t0 = time.monotonic()
        while ctl.rate < 0.5 * rate and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        climb = time.monotonic() - t0
        again = phase(5)
        stop["ours"].set()
        for t in mine:
            t.join()
        ctl.stop()
    return {"scenario": "adaptive", "link_Bps": rate, "alone_share": alone["ours"],
            "shared_ours_share": shared["ours"], "shared_rival_share": shared["rival"],
            "climb_back_to_half_link_s": round(climb, 2), "alone_again_share": again["ours"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--object-mib", type=int, default=32)
    ap.add_argument("--part-mib", type=int, default=8)
    ap.add_argument("--rate-mbit", type=float, default=100.0)
    ap.add_argument("--rtt-ms", type=float, default=40.0)
    ap.add_argument("--cuts", type=int, default=10)
    ap.add_argument("--adaptive-rate-mbit", type=float, default=16.0)
    ap.add_argument("--only", default="streams,bwlimit,loopback,cuts,adaptive")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    only = set(args.only.split(","))

    from ebas.storage.backends.memory import MemoryStore
    from ebas.storage.stack import build_stack
    from ebas.storage.wrappers.throttle import Link
    from ebas.testing.link import LinkEmulator

    rate = args.rate_mbit * 1e6 / 8
    part = args.part_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="ebas-bench-transfer-"))
    moto = svc.start_moto(work)
    bucket = "bench"
    svc.s3_client(moto.port).create_bucket(Bucket=bucket)
    src, total = source(args.size_mib, args.object_mib)
    out = {"machine": platform.platform(), "python": platform.python_version(), "size_bytes": total,
           "link": {"rate_Bps": rate, "rtt_ms": args.rtt_ms}, "part_bytes": part, "runs": []}

    def emulator():
        return LinkEmulator(moto.port, rate=rate, delay=args.rtt_ms / 2000, queue=max(256 * 1024, int(rate * 0.02)))

    def log(row):
        out["runs"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    try:
        if "streams" in only:
            for streams in (1, 4, 8):
                with emulator() as em:
                    prefix = svc.unique("s")
                    res, wall, cpu = run_job(src, s3_dst(em.port, bucket, prefix), work, prefix, streams=streams,
                                             part_size=part)
                    log({"scenario": "streams", "streams": streams, "state": res.state, "wall_s": round(wall, 2),
                         "goodput_MBps": round(total / wall / 1e6, 2), "share_of_link": round(total / wall / rate, 3),
                         "link_up_bytes": em.sent["up"], "verified": check(src, moto.port, bucket, prefix)})
        if "bwlimit" in only:
            for share in (0.25, 0.5, 0.9):
                with emulator() as em:
                    prefix = svc.unique("b")
                    limit = rate * share
                    sampler = Sampler(em)
                    res, wall, cpu = run_job(src, s3_dst(em.port, bucket, prefix, link=Link(limit)), work, prefix,
                                             streams=4, part_size=part)
                    burst = sampler.max_1s()
                    achieved = total / wall
                    log({"scenario": "bwlimit", "share": share, "limit_Bps": limit, "state": res.state,
                         "wall_s": round(wall, 2), "achieved_Bps": round(achieved),
                         "achieved_over_limit": round(achieved / limit, 3),
                         "max_1s_burst_over_limit": round(burst / limit, 3),
                         "verified": check(src, moto.port, bucket, prefix)})
        if "loopback" in only:
            limit = 1e9 / 8
            dst = MemoryStore()
            res, wall, cpu = run_job(src, build_stack(dst, link=Link(limit)), work, "loop", streams=4,
                                     part_size=part)
            achieved = total / wall
            log({"scenario": "loopback-1Gbit", "state": res.state, "wall_s": round(wall, 2),
                 "achieved_Bps": round(achieved), "achieved_over_limit": round(achieved / limit, 3),
                 "cpu_s": round(cpu, 2), "cpu_share_of_one_core": round(cpu / wall, 2),
                 "verified": all(dst.get(o.name) == src.get(o.name) for o in src.list())})
        if "cuts" in only:
            with emulator() as em:
                prefix = svc.unique("c")
                every = total // (args.cuts + 1)
                stop = threading.Event()

                def cutter():
                    for k in range(1, args.cuts + 1):
                        while em.sent["up"] < k * every and not stop.is_set():
                            time.sleep(0.01)
                        if stop.is_set():
                            return
                        em.cut()

                t = threading.Thread(target=cutter, daemon=True)
                t.start()
                res, wall, cpu = run_job(src, s3_dst(em.port, bucket, prefix), work, prefix, streams=4,
                                         part_size=part)
                stop.set()
                t.join()
                resent = em.sent["up"] - total
                log({"scenario": "cuts", "cuts": em.cuts, "streams": 4, "state": res.state, "wall_s": round(wall, 2),
                     "resent_bytes": resent, "resent_parts": round(resent / part, 2),
                     "bound_parts": em.cuts * 4, "verified": check(src, moto.port, bucket, prefix)})
        if "adaptive" in only:
            log(adaptive(moto.port, bucket, args.adaptive_rate_mbit * 1e6 / 8))
    finally:
        moto.stop()
    text = json.dumps(out, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
