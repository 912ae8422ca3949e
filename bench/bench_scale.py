"""Scale: the dedup table at 1M / 10M chunks, and 1..128 concurrent backup streams.

    .venv/bin/python bench/bench_scale.py table   [--chunks 1000000,10000000] [--segment 100000]
    .venv/bin/python bench/bench_scale.py plan    [--chunks 10000000]   (prune's plan over the index: time, peak RSS)
    .venv/bin/python bench/bench_scale.py streams [--streams 1,8,32,128] [--processes 16] [--mib 4]
    .venv/bin/python bench/bench_scale.py all     [--json-out FILE]

``table`` builds a repository whose index holds N chunks (synthetic: random 32-byte ids
in 16-chunk packs, ``--segment`` entries per index segment, written through
``IndexSegment.encode`` and the store exactly as a backup writes them; no pack data),
then, in a fresh child process per measurement so RSS is not polluted (three times: without
the local dedup-table cache, building it, and mapping it): the time to open
the repository and load the dedup table, the RSS the table adds and the peak RSS, the
table's own memory, and lookups per second for hits and misses, one id at a time
(``id in table``: what ``put_blob`` does) and in batches of 100,000 (``contains_many``:
what the archiver does for unchanged files).

``streams`` commits a shared 8 MiB file first, then runs N backups at the same time into
one repository (threads in one process, and ``--processes`` separate processes running
N / processes threads each); each stream backs up the shared file (deduplicated against
the committed data) plus ``--mib`` MiB of its own. It reports wall time, aggregate
logical and new-data throughput, that the shared data was stored once, and that every
snapshot restores exactly (content hashes). Prints a table on stderr and JSON on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ebas.chunking.params import ChunkerParams  # noqa: E402
from ebas.crypto.kdf import KdfParams  # noqa: E402
from ebas.repo.index import ENTRY_DTYPE, IndexSegment, segment_name  # noqa: E402
from ebas.repo.repository import Repository  # noqa: E402
from ebas.runtime import SYSTEM_ENTROPY  # noqa: E402
from ebas.storage.backends.file import FileStore  # noqa: E402

PW = "bench-password"
SAMPLE = 200_000  # hit ids kept for the lookup test


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ dedup table
def build_index(path: Path, chunks: int, per_segment: int, seed: int = 1) -> dict:
    """A repository whose index names ``chunks`` synthetic chunks; returns build facts."""
    store = FileStore(path, fsync=False)
    repo = Repository.init(store, PW, kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY),
                           chunker=ChunkerParams(min_size=256 << 10, avg_size=1 << 20, max_size=4 << 20))
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    sample = []
    done = 0
    while done < chunks:
        n = min(per_segment, chunks - done)
        e = np.zeros(n, ENTRY_DTYPE)
        e["id"] = np.frombuffer(rng.bytes(32 * n), "S32")
        e["pack"] = np.arange(n) // 16
        e["kind"] = 0
        e["offset"] = (np.arange(n) % 16) * (1 << 20)
        e["length"] = 1 << 20
        e["raw"] = 1 << 20
        packs = [rng.bytes(32) for _ in range((n + 15) // 16)]
        stored = IndexSegment(packs, e).encode(repo.aead)
        store.put(segment_name(stored), stored)
        if len(sample) * 32 < SAMPLE * 32:
            raw = e["id"].tobytes()
            take = min(n, SAMPLE - len(sample))
            step = max(1, n // take)
            sample += [raw[32 * i : 32 * i + 32] for i in range(0, n, step)][:take]
        done += n
    (path / "bench-sample.bin").write_bytes(b"".join(sample))
    return {"chunks": chunks, "segments": (chunks + per_segment - 1) // per_segment,
            "build_s": round(time.perf_counter() - started, 2),
            "index_bytes": sum(i.size for i in store.list("index/"))}


def measure_table(path: Path) -> dict:
    """Run in a child: open, load the table, look up. Returns the figures."""
    base_rss = rss_mib()
    t0 = time.perf_counter()
    repo = Repository.open(FileStore(path, fsync=False), PW)
    table = repo.index.table
    open_s = time.perf_counter() - t0
    after_rss = rss_mib()
    raw = (path / "bench-sample.bin").read_bytes()
    hits = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    misses = [os.urandom(32) for _ in range(len(hits))]
    out = {"open_s": round(open_s, 2), "from_cache": repo.index.cached, "table_entries": len(table),
           "table_mib": round(table.memory_bytes() / 2**20, 1),
           "bytes_per_chunk": round(table.memory_bytes() / max(1, len(table)), 1),
           "rss_before_mib": round(base_rss, 1), "rss_after_open_mib": round(after_rss, 1),
           "rss_added_mib": round(after_rss - base_rss, 1)}
    for name, ids in (("hit", hits), ("miss", misses)):
        n = min(len(ids), 100_000)
        t0 = time.perf_counter()
        found = sum(1 for b in ids[:n] if b in table)
        dt = time.perf_counter() - t0
        out[f"single_{name}_per_s"] = int(n / dt)
        assert found == (n if name == "hit" else 0), (name, found)
        t0 = time.perf_counter()
        res = table.contains_many(ids)
        dt = time.perf_counter() - t0
        assert bool(res.all()) if name == "hit" else not bool(res.any())
        out[f"batch_{name}_per_s"] = int(len(ids) / dt)
    out["peak_rss_mib"] = round(peak_mib(), 1)
    return out


def measure_plan(path: Path) -> dict:
    """Run in a child: prune's plan (index side) over the synthetic index; time and peak RSS."""
    from ebas.lifecycle.pruneplan import make_plan

    base = rss_mib()
    repo = Repository.open(FileStore(path, fsync=False), PW)
    t0 = time.perf_counter()
    plan = make_plan(repo, grace=0)
    dt = time.perf_counter() - t0
    s = plan.summary()
    return {"plan_s": round(dt, 2), "entries": int(len(plan.view.entries)), "packs_in_index": len(plan.view.packs),
            "packs_drop_missing": s["packs_drop_missing"], "rss_before_mib": round(base, 1),
            "peak_rss_mib": round(peak_mib(), 1)}


def _in_child(what: str, path: Path, env: dict) -> dict:
    """Run ``what`` on ``path`` in a fresh process (clean RSS) and return its JSON."""
    child = subprocess.run([sys.executable, __file__, what, str(path)], capture_output=True, text=True,
                           env={**os.environ, **env})
    if child.returncode:
        raise SystemExit(child.stderr)
    return json.loads(child.stdout)


def run_plan(args) -> list[dict]:
    results = []
    for chunks in [int(x) for x in args.chunks.split(",")]:
        with tempfile.TemporaryDirectory(prefix="ebas-scale-", dir=args.workdir) as tmp:
            path = Path(tmp) / "repo"
            log(f"building an index of {chunks:,} chunks ...")
            facts = build_index(path, chunks, args.segment)
            facts["plan"] = _in_child("_plan", path, {"EBAS_DEDUP_CACHE": "off"})
            log(f"  plan: {json.dumps(facts['plan'])}")
            results.append(facts)
    return results


def run_table(args) -> list[dict]:
    results = []
    for chunks in [int(x) for x in args.chunks.split(",")]:
        with tempfile.TemporaryDirectory(prefix="ebas-scale-", dir=args.workdir) as tmp:
            path = Path(tmp) / "repo"
            log(f"building an index of {chunks:,} chunks ...")
            facts = build_index(path, chunks, args.segment)
            log(f"  {facts}")
            cache = Path(tmp) / "dedup-cache"
            for mode, env in (("no_cache", {"EBAS_DEDUP_CACHE": "off"}),
                              ("cache_build", {"EBAS_DEDUP_CACHE": str(cache), "EBAS_DEDUP_CACHE_MIN": "1"}),
                              ("cache_hit", {"EBAS_DEDUP_CACHE": str(cache), "EBAS_DEDUP_CACHE_MIN": "1"})):
                facts[mode] = _in_child("_measure", path, env)
                log(f"  {mode}: {json.dumps(facts[mode])}")
            results.append(facts)
    return results


# ------------------------------------------------------------------- streams
def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _make_sources(base: Path, n: int, mib: int, shared: bytes) -> list[Path]:
    out = []
    for k in range(n):
        d = base / f"s{k:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "shared.bin").write_bytes(shared)
        (d / "own.bin").write_bytes(np.random.default_rng(1000 + k).bytes(mib << 20))
        out.append(d)
    return out


def _stream_worker(repo_path: str, srcs: list[str], host_prefix: str) -> list[dict]:
    """Back up each of ``srcs`` in its own thread (each with its own Repository object)."""
    from ebas import api

    def one(i_src):
        i, src = i_src
        repo = Repository.open(FileStore(repo_path, fsync=False), PW)
        r = api.backup(repo, [src], host=f"{host_prefix}{i}", workers=1, update_catalog=False)
        s = r.snapshot
        return {"id": s.id, "src": src, "bytes_logical": s.stats["bytes_logical"],
                "bytes_added": s.stats["bytes_added"]}

    with ThreadPoolExecutor(len(srcs)) as pool:
        return list(pool.map(one, enumerate(srcs)))


def run_streams(args) -> list[dict]:
    from ebas import api

    results = []
    shared = np.random.default_rng(7).bytes(8 << 20)
    modes = [("threads", n, 1) for n in [int(x) for x in args.streams.split(",")]]
    if args.processes:
        modes += [("processes", args.processes, args.processes)]
        modes += [("processes", n, args.processes) for n in [int(x) for x in args.streams.split(",")]
                  if n > args.processes and n % args.processes == 0]
    for mode, n, procs in modes:
        with tempfile.TemporaryDirectory(prefix="ebas-streams-", dir=args.workdir) as tmp:
            tmp = Path(tmp)
            repo_path = tmp / "repo"
            repo = Repository.init(FileStore(repo_path, fsync=False), PW, kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY),
                                   pack_size=4 << 20)
            seed = tmp / "seed"
            seed.mkdir()
            (seed / "shared.bin").write_bytes(shared)
            api.backup(repo, [str(seed)], host="seed", update_catalog=False)  # the committed data every stream deduplicates against
            before = sum(i.size for i in repo.store.list("data/"))
            srcs = [str(p) for p in _make_sources(tmp / "src", n, args.mib, shared)]
            log(f"{mode}: {n} streams ...")
            t0 = time.perf_counter()
            if mode == "threads":
                snaps = _stream_worker(str(repo_path), srcs, "t")
            else:
                groups = [srcs[i::procs] for i in range(procs)]
                children = [subprocess.Popen([sys.executable, __file__, "_streams", str(repo_path), f"p{g}-",
                                              *grp], stdout=subprocess.PIPE, text=True)
                            for g, grp in enumerate(groups)]
                snaps = []
                for c in children:
                    out, _ = c.communicate()
                    if c.returncode:
                        raise SystemExit(f"a backup process failed ({c.returncode})")
                    snaps += json.loads(out)
            wall = time.perf_counter() - t0
            repo = Repository.open(FileStore(repo_path, fsync=False), PW)
            added = sum(i.size for i in repo.store.list("data/")) - before
            logical = sum(s["bytes_logical"] for s in snaps)
            t0 = time.perf_counter()
            ok = 0
            for s in snaps:
                target = tmp / "restore" / s["id"][:12]
                api.restore(repo, s["id"], str(target))
                got = _hash_tree(target / s["src"].lstrip("/"))
                ok += got == _hash_tree(Path(s["src"]))
            verify = time.perf_counter() - t0
            row = {"mode": mode, "streams": n, "processes": procs, "wall_s": round(wall, 2),
                   "logical_mib": round(logical / 2**20, 1), "logical_mib_s": round(logical / 2**20 / wall, 1),
                   "new_mib": round(added / 2**20, 1), "new_mib_s": round(added / 2**20 / wall, 1),
                   "own_mib": n * args.mib, "shared_stored_again_mib": round(added / 2**20 - n * args.mib, 2),
                   "snapshots": len(snaps), "restored_exactly": ok, "verify_s": round(verify, 1)}
            log(f"  {json.dumps(row)}")
            results.append(row)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_measure":
        print(json.dumps(measure_table(Path(argv[1]))))
        return 0
    if argv and argv[0] == "_plan":
        print(json.dumps(measure_plan(Path(argv[1]))))
        return 0
    if argv and argv[0] == "_streams":
        print(json.dumps(_stream_worker(argv[1], argv[3:], argv[2])))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["table", "plan", "streams", "all"])
    p.add_argument("--chunks", default="1000000,10000000")
    p.add_argument("--segment", type=int, default=100_000, help="entries per index segment")
    p.add_argument("--streams", default="1,8,32,128")
    p.add_argument("--processes", type=int, default=16)
    p.add_argument("--mib", type=int, default=4, help="own data per stream (MiB)")
    p.add_argument("--workdir", default=None)
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    out: dict = {"cpus": os.cpu_count()}
    if args.what in ("table", "all"):
        out["table"] = run_table(args)
    if args.what == "plan":
        out["plan"] = run_plan(args)
    if args.what in ("streams", "all"):
        out["streams"] = run_streams(args)
    text = json.dumps(out, indent=2)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
