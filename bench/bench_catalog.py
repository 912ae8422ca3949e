"""Catalog benchmark: ingest rate, size per file version, query latency — SQLite and PostgreSQL.

A seeded generator builds synthetic sources (N files each) and evolves them through S
snapshots with ~1% churn per snapshot (modified, added, deleted files; most changes land
in a few hot directories, as in real servers). Names follow real distributions: many
``index.html``, ``README``, ``__init__.py``, ``*.log``, plus unique report and image
names, and one directory of exactly 10,000 entries per source.

The generator does not write a repository: it feeds its trees to the catalog's real
ingest API (``Catalog.ingest`` with a tree source, as a repository or an export file
would), with tree ids that change exactly when a directory's content changes. That is
what makes 10M file versions feasible on a small machine; everything from the tree
comparison down to SQL is the production code path.

    .venv/bin/python bench/bench_catalog.py --sources 4 --files 200000 --snapshots 30      # ~1M versions
    .venv/bin/python bench/bench_catalog.py --sources 8 --files 1000000 --snapshots 30     # ~10M versions
    .venv/bin/python bench/bench_catalog.py --engines sqlite --sources 25 --files 4000000 --snapshots 2  # ~100M
    .venv/bin/python bench/bench_catalog.py --engines sqlite --sources 1 --files 20000 --snapshots 5  # smoke

Prints a table to stderr and one JSON document to stdout (or --json-out). PostgreSQL:
``--pg-url``, else a server on 127.0.0.1:5432, else a throwaway cluster (as the tests do).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import blake3

from ebas.catalog import FindQuery, open_catalog
from ebas.catalog.ingest import SnapshotInfo
from ebas.catalog.schema import DIR, FILE, Entry

DAY = 86400 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01
BIG_DIR = 10_000
USERS = [("root", "root"), ("www-data", "www-data"), ("alice", "staff"), ("bob", "staff"), ("postgres", "postgres")]


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# =================================================================== generator
class Dir:
    __slots__ = ("path", "files", "subdirs", "version", "tree", "cache", "mtime", "parent")

    def __init__(self, path: str, parent: "Dir | None"):
        self.path, self.parent = path, parent
        self.files: dict[str, list] = {}  # name -> [size, mtime, digest, owner]
        self.subdirs: dict[str, Dir] = {}
        self.version = 0
        self.tree = b""
        self.cache: list[Entry] | None = None
        self.mtime = T0 - 400 * DAY


def _digest(*parts) -> bytes:
    return blake3.blake3(repr(parts).encode()).digest()[:16]


class Source:
    """One host's tree of N files, evolved snapshot by snapshot."""

    def __init__(self, idx: int, n_files: int, seed: int):
        self.idx = idx
        self.host = f"host{idx:03d}"
        self.rng = random.Random(seed * 1000 + idx)
        self.root = Dir("/", None)
        self.dirs: list[Dir] = []
        self.by_tree: dict[bytes, Dir] = {}
        self.counter = 0
        self._populate(n_files)
        self.hot = self.rng.sample(self.dirs, max(1, len(self.dirs) // 50))
        self.file_dirs = [d for d in self.dirs if d.files]
        self.reads = 0

    # ---------------------------------------------------------------- layout
    def _dir(self, path: str) -> Dir:
        d = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            nxt = d.subdirs.get(part)
            if nxt is None:
                nxt = Dir(d.path.rstrip("/") + "/" + part, d)
                d.subdirs[part] = nxt
                self.dirs.append(nxt)
            d = nxt
        return d

    def _add(self, dpath: str, name: str, size: int | None = None) -> None:
        r = self.rng
        d = self._dir(dpath)
        if name in d.files:
            name = f"{self.counter}_{name}"
        self.counter += 1
        size = size if size is not None else int(r.lognormvariate(8.5, 2.2))
        mtime = T0 - r.randrange(3 * 365) * DAY - r.randrange(DAY)
        d.files[name] = [size, mtime, _digest(self.idx, dpath, name, size, mtime), r.randrange(len(USERS))]

    def _populate(self, n: int) -> None:
        r = self.rng
        big = min(BIG_DIR, n // 10)
        for k in range(big):
            self._add("/srv/cache/objects", f"obj_{r.getrandbits(40):010x}.dat", r.randrange(1 << 16))
        made = big
        while made < n:
            kind = r.random()
            if kind < 0.40:  # home directories
                u = r.randrange(max(1, n // 2000))
                base = f"/home/user{u:04d}"
                sub = r.choice(["Documents", "Documents/reports", f"Projects/proj{r.randrange(20)}/src",
                                f"Projects/proj{r.randrange(20)}/docs", f"Pictures/{r.randrange(2015, 2025)}",
                                "Downloads"])
                name = r.choice([
                    f"report_{r.randrange(2015, 2025)}_{r.randrange(10000):04d}.pdf",
                    f"notes_{r.randrange(2015, 2025)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}.txt",
                    "README.md", "README", "Makefile", "main.c", f"util_{r.randrange(300)}.py", "__init__.py",
                    f"IMG_{r.randrange(100000):05d}.jpg", f"invoice-{r.getrandbits(24):06x}.xlsx"])
                self._add(f"{base}/{sub}", name)
            elif kind < 0.65:  # web sites
                s = r.randrange(max(1, n // 5000))
                sub = r.choice(["", "css", "js", "img", f"blog/{r.randrange(2015, 2025)}/post-{r.randrange(400)}",
                                f"docs/section{r.randrange(50)}"])
                name = r.choice(["index.html", "index.html", "style.css", "app.js", "logo.png",
                                 f"page_{r.randrange(1000)}.html", f"photo_{r.randrange(100000)}.webp"])
                self._add(f"/srv/www/site{s:03d}/{sub}".rstrip("/"), name)
            elif kind < 0.80:  # logs
                a = r.randrange(max(1, n // 3000))
                name = r.choice(["app.log", "error.log", f"app.log.{r.randrange(1, 60)}",
                                 f"access_{r.randrange(2020, 2025)}{r.randrange(1, 13):02d}"
                                 f"{r.randrange(1, 29):02d}.log",
                                 f"debug.log.{r.randrange(1, 30)}.gz"])
                self._add(f"/var/log/app{a:03d}", name)
            else:  # installed software
                p = r.randrange(max(1, n // 4000))
                mod = f"mod{r.randrange(40)}"
                name = r.choice(["__init__.py", f"module_{r.randrange(200)}.py", "README", "LICENSE",
                                 f"lib{r.randrange(100)}.so"])
                self._add(f"/opt/pkg{p:03d}/lib/python3/site-packages/{mod}", name)
            made += 1

    # ----------------------------------------------------------------- trees
    def finish_snapshot(self, dirty: set[Dir]) -> bytes:
        """Give new tree ids to the dirty directories and their ancestors."""
        todo = set()
        for d in dirty:
            while d is not None and d not in todo:
                todo.add(d)
                d = d.parent
        for d in sorted(todo, key=lambda d: -d.path.count("/") - (d.path != "/")):  # children first
            d.version += 1
            d.cache = None
            self.by_tree.pop(d.tree, None)
            d.tree = blake3.blake3(f"{self.idx}:{d.path}:{d.version}".encode()).digest()
            self.by_tree[d.tree] = d
        for d in todo:  # build the listings now, so ingest timings hold only catalog work
            self.entries(d.tree)
        self.reads = 0
        return self.root.tree

    def entries(self, tree_id: bytes) -> list[Entry]:
        self.reads += 1
        d = self.by_tree[tree_id]
        if d.cache is None:
            out = []
            for name, (size, mtime, digest, owner) in d.files.items():
                user, group = USERS[owner]
                out.append(Entry(name=name, type=FILE, size=size, mtime=mtime, ctime=mtime, mode=0o644,
                                 uid=1000 + owner, gid=1000 + owner, user=user, group=group, digest=digest))
            for name, sub in d.subdirs.items():
                out.append(Entry(name=name, type=DIR, mtime=sub.mtime, ctime=sub.mtime, mode=0o755, user="root",
                                 group="root", subtree=sub.tree))
            d.cache = out
        return d.cache

    def evolve(self, k: int, churn: float) -> tuple[bytes, int]:
        """Apply snapshot k's changes; returns (root tree id, changes)."""
        r = self.rng
        now = T0 + k * DAY
        n_changes = max(1, int(sum(len(d.files) for d in self.file_dirs) * churn)) if k else 0
        dirty: set[Dir] = set()
        for _ in range(n_changes):
            d = r.choice(self.hot) if r.random() < 0.6 else r.choice(self.file_dirs)
            if not d.files:
                continue
            roll = r.random()
            if roll < 0.8:
                name = r.choice(list(d.files)) if len(d.files) < 64 else next(iter(
                    d.files if r.random() < 0.5 else reversed(d.files)))
                f = d.files[name]
                f[0] = max(0, f[0] + r.randrange(-500, 5000))
                f[1] = now + r.randrange(DAY)
                f[2] = _digest(self.idx, d.path, name, f[0], f[1])
            elif roll < 0.9 and len(d.files) > 1:
                del d.files[next(iter(d.files))]
                d.mtime = now
            else:
                self._add(d.path, f"new_{k}_{r.getrandbits(24):06x}.{r.choice(['log', 'txt', 'pdf', 'html'])}")
                d.mtime = now
            dirty.add(d)
            if d.parent is not None:
                dirty.add(d.parent)
        if k == 0:
            dirty = set(self.dirs) | {self.root}
        return self.finish_snapshot(dirty), n_changes

    def info(self, k: int, root: bytes, seed: int) -> SnapshotInfo:
        sid = blake3.blake3(f"{seed}:{self.idx}:{k}".encode()).hexdigest()
        return SnapshotInfo(sid, T0 + k * DAY + self.idx * 60 * 10**9, self.host, ["/"], root.hex(),
                            ["daily"] + (["weekly"] if k % 7 == 0 else []), "incremental" if k else "full", "root")


# =================================================================== measuring
def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))]


def timed(fn, samples: list) -> list[float]:
    out = []
    for s in samples:
        t = time.perf_counter()
        fn(s)
        out.append((time.perf_counter() - t) * 1000)
    return out


def ingest_all(cat, args) -> tuple[dict, list[Source]]:
    res = {"snapshots": 0, "rows": 0, "first_rows": 0, "first_seconds": 0.0, "incr_rows": 0, "incr_seconds": 0.0,
           "incr_entries": 0, "gen_seconds": 0.0, "trees_read": 0, "dirs_changed": 0}
    kept = []
    for i in range(args.sources):
        t = time.perf_counter()
        src = Source(i, args.files, args.seed)
        gc.freeze()  # the model is millions of long-lived objects: keep the cyclic collector off them
        res["gen_seconds"] += time.perf_counter() - t
        files = sum(len(d.files) for d in src.dirs)
        for k in range(args.snapshots):
            t = time.perf_counter()
            root, _changes = src.evolve(k, args.churn)
            res["gen_seconds"] += time.perf_counter() - t
            src.reads = 0
            st = cat.ingest(src.info(k, root, args.seed), src)
            res["snapshots"] += 1
            res["rows"] += st.rows_inserted
            res["trees_read"] += src.reads
            res["dirs_changed"] += st.dirs_changed
            if k == 0:
                res["first_rows"] += st.rows_inserted
                res["first_seconds"] += st.seconds
            else:
                res["incr_rows"] += st.rows_inserted
                res["incr_seconds"] += st.seconds
                res["incr_entries"] += files + len(src.dirs)
        log(f"  source {i + 1}/{args.sources}: {files} files, {len(src.dirs)} dirs, {res['rows']} rows so far")
        if i < 2:
            for d in src.dirs:  # query samples need names and paths only: free the listings
                d.cache = None
            src.by_tree.clear()
            kept.append(src)  # query samples come from the first sources
        del src
        gc.unfreeze()
        gc.collect()
    return res, kept


def query_samples(srcs: list[Source], args, rng: random.Random) -> dict:
    names, reports, paths, homes, hist = [], [], [], [], []
    for s in srcs:
        for d in s.dirs:
            for name in d.files:
                if name.startswith("report_"):
                    reports.append(name)
                if len(names) < 200000:
                    names.append(name)
        homes += [d.path for d in s.dirs if d.path.count("/") == 2 and d.path.startswith("/home/")]
        hist += [d.path.rstrip("/") + "/" + n for d in s.hot for n in list(d.files)[:3]]
        paths.append("/srv/cache/objects")
    rare = [n for n in names if not n.startswith(("index", "README", "__init__", "app.log", "style", "app.js"))]
    return {
        "exact": rng.sample(rare, min(args.queries, len(rare))),
        "exact_common": ["index.html", "README", "__init__.py", "app.log", "style.css"],
        "glob": [f"report_{y}_{rng.randrange(100):02d}*.pdf" for y in rng.choices(range(2015, 2025), k=args.queries)],
        "substring": [n[2:-3] for n in rng.sample(reports or rare, min(args.queries, len(reports or rare)))],
        "prefix_size": rng.sample(homes, min(args.queries, len(homes))) if homes else [],
        "ls_10k": paths,
        "history": rng.sample(hist, min(args.queries, len(hist))),
    }


def run_queries(cat, samples: dict, args) -> dict:
    out = {}

    def rec(key, fn, xs):
        xs = list(xs)
        if not xs:
            return
        fn(xs[0])  # warm
        reps = max(1, args.queries // len(xs))
        lat = timed(fn, xs * reps)
        out[key] = {"n": len(lat), "p50_ms": round(pct(lat, 50), 3), "p95_ms": round(pct(lat, 95), 3),
                    "max_ms": round(max(lat), 3)}

    lim = args.limit
    counts: dict[str, list[int]] = {}

    def find(key, **kw):
        def f(x):
            res = cat.find(FindQuery(limit=lim, **{k: (x if v is None else v) for k, v in kw.items()}))
            counts.setdefault(key, []).append(len(res.hits))
        return f

    rec("exact_name", find("exact_name", pattern=None, match="exact"), samples["exact"])
    rec("exact_common_name", find("exact_common_name", pattern=None, match="exact"), samples["exact_common"])
    rec("glob", find("glob", pattern=None), samples["glob"])
    rec("substring", find("substring", pattern=None, match="substring"), samples["substring"])

    def prefix_size(p):
        counts.setdefault("prefix_size", []).append(len(cat.find(FindQuery(path=p, min_size=1 << 20, limit=lim)).hits))
    rec("path_prefix_size", prefix_size, samples["prefix_size"])
    at = T0 + (args.snapshots // 2) * DAY + DAY // 2

    def ls(p):
        res = cat.ls(p, at=at, hosts=["host000"])
        counts.setdefault("ls_10k", []).append(sum(len(x.entries) for x in res.listings))
    rec("ls_10k_dir", ls, samples["ls_10k"])

    def history(p):
        counts.setdefault("history", []).append(len(cat.history(p).versions))
    rec("history", history, samples["history"])
    for k, v in counts.items():
        key = {"ls_10k": "ls_10k_dir", "prefix_size": "path_prefix_size"}.get(k, k)
        if key in out:
            out[key]["mean_results"] = round(statistics.mean(v), 1)
    return out


def bench_engine(engine: str, args, pg_url: str | None) -> dict:
    log(f"[{engine}] generating and ingesting {args.sources} x {args.files} files x {args.snapshots} snapshots")
    if engine == "sqlite":
        path = Path(args.workdir) / "catalog.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        loc = str(path)
    else:
        loc = f"{pg_url}?schema=bench_{os.getpid()}"
    cat = open_catalog(loc, repo_id="bench")
    if engine == "postgres":
        cat.db.drop_schema()
        cat.close()
        cat = open_catalog(loc, repo_id="bench")
    t = time.perf_counter()
    ing, srcs = ingest_all(cat, args)
    wall = time.perf_counter() - t
    t = time.perf_counter()
    if engine == "sqlite":
        cat.db.x("PRAGMA wal_checkpoint(TRUNCATE)")
    cat.db.analyze()
    analyze_s = time.perf_counter() - t
    st = cat.stats()
    log(f"[{engine}] {st['versions']} file versions, {st['size_bytes'] / 1e6:.1f} MB; querying")
    samples = query_samples(srcs, args, random.Random(args.seed))
    gc.collect()
    gc.freeze()  # the generator's objects must not make the collector pause inside timed queries
    queries = run_queries(cat, samples, args)
    ingest_s = ing["first_seconds"] + ing["incr_seconds"]
    out = {
        "engine": engine,
        "versions": st["versions"],
        "versions_open": st["versions_open"],
        "trees_rows": st["trees"], "names": st["names"], "dirs": st["dirs"], "snapshots": st["snapshots"],
        "size_bytes": st["size_bytes"],
        "bytes_per_version": st["bytes_per_version"],
        "ingest": {
            "wall_seconds_incl_generator": round(wall, 1),
            "generator_seconds": round(ing["gen_seconds"], 1),
            "ingest_seconds": round(ingest_s, 1),
            "analyze_seconds": round(analyze_s, 1),
            "versions_per_s": round(ing["rows"] / ingest_s) if ingest_s else None,
            "first_snapshot_versions_per_s": round(ing["first_rows"] / ing["first_seconds"]) if ing["first_seconds"]
            else None,
            "incremental_new_versions_per_s": round(ing["incr_rows"] / ing["incr_seconds"]) if ing["incr_seconds"]
            else None,
            "incremental_entries_covered_per_s": round(ing["incr_entries"] / ing["incr_seconds"])
            if ing["incr_seconds"] else None,
            "incremental_seconds_per_snapshot": round(ing["incr_seconds"] / max(1, ing["snapshots"] - args.sources), 4),
            "trees_read": ing["trees_read"],
        },
        "queries": queries,
    }
    if engine == "postgres" and not args.keep:
        cat.db.drop_schema()
    cat.close()
    return out


def table(results: list[dict]) -> str:
    rows = [("", *[r["engine"] for r in results])]
    rows.append(("file versions", *[f"{r['versions']:,}" for r in results]))
    rows.append(("size (MB)", *[f"{r['size_bytes'] / 1e6:,.1f}" for r in results]))
    rows.append(("bytes / version", *[f"{r['bytes_per_version']}" for r in results]))
    for k, label in (("versions_per_s", "ingest versions/s (all)"),
                     ("first_snapshot_versions_per_s", "ingest versions/s (first snapshot)"),
                     ("incremental_entries_covered_per_s", "incremental: entries covered/s"),
                     ("incremental_seconds_per_snapshot", "incremental: s/snapshot"),
                     ("ingest_seconds", "ingest seconds")):
        rows.append((label, *[f"{r['ingest'][k]:,}" if r["ingest"][k] is not None else "-" for r in results]))
    for q in ("exact_name", "exact_common_name", "glob", "substring", "path_prefix_size", "ls_10k_dir", "history"):
        rows.append((f"{q} p50/p95 ms", *[
            f"{r['queries'][q]['p50_ms']:.2f} / {r['queries'][q]['p95_ms']:.2f}" if q in r["queries"] else "-"
            for r in results]))
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--files", type=int, default=200_000, help="files per source")
    ap.add_argument("--snapshots", type=int, default=30)
    ap.add_argument("--churn", type=float, default=0.01, help="fraction of files changed per snapshot")
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--pg-url", help="PostgreSQL database URL (default: 127.0.0.1:5432 or a throwaway cluster)")
    ap.add_argument("--queries", type=int, default=50, help="samples per query type")
    ap.add_argument("--limit", type=int, default=100, help="result limit of find queries")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the catalogs afterwards")
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="ebas-bench-catalog-")
        args.workdir = tmp
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    server, pg_url = None, args.pg_url
    started = time.perf_counter()
    results = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop our cluster

    def document() -> dict:
        return {"benchmark": "catalog", "params": {k: v for k, v in vars(args).items() if k != "pg_url"},
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "platform": platform.platform()},
                "total_seconds": round(time.perf_counter() - started, 1), "results": results,
                "note": "synthetic trees fed through Catalog.ingest (no repository); the throwaway PostgreSQL "
                        "cluster runs with fsync=off"}

    try:
        if "postgres" in engines and not pg_url:
            from ebas.catalog.testing import PostgresServer

            server = PostgresServer.start()
            pg_url = server.create_database(f"ebas_bench_{os.getpid()}")
        for e in engines:
            results.append(bench_engine(e, args, pg_url))
            log(table(results[-1:]))
            if args.json_out:  # partial results survive a later failure
                Path(args.json_out).write_text(json.dumps(document(), indent=2) + "\n")
    finally:
        if server is not None:
            server.drop_database(f"ebas_bench_{os.getpid()}")
            server.stop()
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    doc = document()
    log(table(results))
    text = json.dumps(doc, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
