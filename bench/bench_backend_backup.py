"""Backup and restore of the bench file share on every store backend, and the requests they make.

For each backend (the local directory first and again last, then S3 on moto_server,
Azure on azurite, GCS on gcp-storage-emulator, SFTP on the tests' asyncssh server; tape
on request) the same steps run through the Python API, each step on a freshly opened
repository as a separate ``ebas`` run would:

1. a **full backup** of the file share (``FileShare`` generation 0, a fresh copy per
   backend so that every backend reads the same bytes);
2. about 1 % of the files edited, 0.5 % added, 0.3 % deleted (``FileShare.advance(1)``
   with ``edit_fraction`` 0.01; seeded, identical for every backend), then an
   **incremental backup**;
3. a **restore** of the latest snapshot into an empty directory, checked file by file
   against the SHA-256 manifest of the share (outside the timed part).

MB/s is logical MB (10^6 bytes of source) per wall second, repository open included.
Every request the repository makes to the store is counted by
:class:`ebas.storage.wrappers.counting.CountingStore` (on the backend, under retries),
and every HTTP request the cloud SDKs send is counted as well (a hook on urllib3, which
boto3, azure-storage-blob and google-cloud-storage all use), so the store-level figures
can be checked against what a provider would bill. Requests per GiB stored divide the
requests of both backups by the bytes the store holds afterwards; restore GETs are per
GiB restored (logical).

    .venv/bin/python bench/bench_backend_backup.py --json-out bench/out/backend-backup.json
    .venv/bin/python bench/bench_backend_backup.py --scale 0.05 --only file,s3      # a quick look

Prints a table to stderr and one JSON document to stdout (or ``--json-out``). The
figures are of the emulators on loopback, not of the clouds: client-side cost plus
the emulators' own speed; no WAN latency, no provider throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "storage" / "backends"))

import datasets  # noqa: E402
from bench_backends import Setup  # noqa: E402  (starts the tests' emulators, reused)

GiB = 1 << 30
PASSWORD = "bench backend backup"
DEFAULT = ["file", "s3", "azure", "gcs", "sftp", "file"]  # the local figure first and last
KNOWN = {"file", "s3", "azure", "gcs", "sftp", "tape"}


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- HTTP requests
class HttpCounter:
    """Counts every HTTP request sent through urllib3 in this process, by billing class."""

    LIST_QUERY = re.compile(r"(^|&)(list-type=|comp=list|comp=blocklist|uploads(=|&|$)|versions(=|&|$)|uploadId=)")
    GCS_LIST = re.compile(r"/storage/v1/b/[^/]+/o$")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._orig = None

    def classify(self, method: str, url: str) -> str:
        method = method.upper()
        if method in ("PUT", "POST", "PATCH"):
            return "put"
        if method == "GET":
            parts = urlsplit(url)
            if self.LIST_QUERY.search(parts.query) or self.GCS_LIST.search(parts.path):
                return "list"
            return "get"
        return "other"  # HEAD, DELETE

    def install(self) -> None:
        import urllib3.connectionpool as cp

        orig = cp.HTTPConnectionPool.urlopen
        counter = self

        def urlopen(pool, method, url, *args, **kwargs):
            with counter.lock:
                counter.counts[counter.classify(method, url)] += 1
                counter.counts[method.upper()] += 1
            return orig(pool, method, url, *args, **kwargs)

        self._orig = orig
        cp.HTTPConnectionPool.urlopen = urlopen

    def uninstall(self) -> None:
        import urllib3.connectionpool as cp

        if self._orig is not None:
            cp.HTTPConnectionPool.urlopen = self._orig

    def snapshot(self) -> Counter:
        with self.lock:
            return Counter(self.counts)


def http_phase(after: Counter, before: Counter) -> dict:
    d = {k: after[k] - before[k] for k in after if after[k] - before[k]}
    d["requests"] = sum(d.get(c, 0) for c in ("put", "get", "list", "other"))
    return d


# ---------------------------------------------------------------------------- one backend
def open_repo(raw_store, counts, *, init: bool = False):
    from ebas.crypto.kdf import KdfParams
    from ebas.repo.repository import Repository
    from ebas.runtime import SYSTEM_ENTROPY
    from ebas.storage.stack import build_stack

    stack = build_stack(raw_store, counts=counts)
    if init:
        return Repository.init(stack, PASSWORD, kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    return Repository.open(stack, PASSWORD)


def run_backend(kind: str, label: str, args, gen0: Path, work: Path, http: HttpCounter,
                expect: dict | None) -> tuple[dict, dict]:
    """Full, incremental, restore on one backend; returns (result row, manifest of generation 1)."""
    from ebas import api
    from ebas.storage.wrappers.counting import StoreCounts

    base = work / label
    base.mkdir(parents=True)
    setup = Setup(base)
    row: dict = {"backend": kind}
    try:
        t = time.perf_counter()
        setup.start(kind)
        row["service_start_s"] = round(time.perf_counter() - t, 3)
        raw = setup.openers[kind]("repo")
        share = work / "share"
        shutil.copytree(gen0, share, symlinks=True)  # copy2 keeps the mtimes of generation 0
        counts = StoreCounts()
        phases = {}

        def phase(name: str, fn):
            c0, h0 = counts.snapshot(), http.snapshot()
            t0 = time.perf_counter()
            out = fn()
            secs = time.perf_counter() - t0
            phases[name] = {"seconds": round(secs, 3), "store": (counts.snapshot() - c0).to_json(),
                            "http": http_phase(http.snapshot(), h0)}
            return out, secs

        def backup():
            repo = open_repo(raw, counts, init=not phases)
            return api.backup(repo, [str(share)], update_catalog=False)  # measure the backup alone

        full, full_s = phase("full", backup)
        logical0 = full.stats.bytes_logical
        ds = datasets.FileShare(share, seed=args.seed, scale=args.scale)
        ds.edit_fraction = args.edit_fraction
        changes = ds.advance(1)
        incr, incr_s = phase("incremental", backup)
        logical1 = incr.stats.bytes_logical
        stored = stored_bytes = packs = 0
        for info in raw.list(""):  # the raw backend: not counted
            stored += 1
            stored_bytes += info.size
            packs += info.name.startswith("data/")
        target = work / "restore"

        def restore():
            repo = open_repo(raw, counts)
            return api.restore(repo, "latest", str(target), restore_owner=False)

        _, rest_s = phase("restore", restore)
        got_root = target / str(share).lstrip("/")
        got = datasets.manifest(got_root)
        want = expect if expect is not None else datasets.manifest(share)
        if got != want:
            bad = sorted(set(got.items()) ^ set(want.items()))[:5]
            raise SystemExit(f"{label}: the restore differs from the share: {bad}")
        raw.close()
        row.update({
            "full_mb_s": round(logical0 / full_s / 1e6, 1),
            "incremental_mb_s": round(logical1 / incr_s / 1e6, 1),
            "restore_mb_s": round(logical1 / rest_s / 1e6, 1),
            "logical_bytes_full": logical0, "logical_bytes_incremental": logical1,
            "incremental_read_bytes": incr.stats.bytes_read,
            "incremental_files": {"changed": incr.stats.files_changed, "new": incr.stats.files_new,
                                  "unmodified": incr.stats.files_unmodified},
            "stored_objects": stored, "stored_bytes": stored_bytes, "packs": packs,
            "restore_verified": True, "phases": phases,
            "changes": {k: v for k, v in changes.items() if k not in ("files", "bytes")},
        })
        row.update(per_gib(row))
        return row, want
    finally:
        setup.stop()
        for leftover in (work / "share", work / "restore"):
            shutil.rmtree(leftover, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def per_gib(row: dict) -> dict:
    """Requests per GiB stored (both backups) and GETs per GiB restored."""
    stored_gib = row["stored_bytes"] / GiB
    restored_gib = row["logical_bytes_incremental"] / GiB
    out: dict = {"per_gib_stored": {}, "http_per_gib_stored": {}}
    for cls in ("put", "get", "list", "other"):
        n = sum(row["phases"][p]["store"]["classes"][cls] for p in ("full", "incremental"))
        out["per_gib_stored"][cls] = round(n / stored_gib, 1)
        h = sum(row["phases"][p]["http"].get(cls, 0) for p in ("full", "incremental"))
        out["http_per_gib_stored"][cls] = round(h / stored_gib, 1)
    out["per_gib_stored"]["requests"] = round(sum(out["per_gib_stored"].values()), 1)
    out["http_per_gib_stored"]["requests"] = round(sum(out["http_per_gib_stored"].values()), 1)
    rest = row["phases"]["restore"]
    out["restore_get_per_gib"] = round(rest["store"]["classes"]["get"] / restored_gib, 1)
    out["restore_requests_per_gib"] = round(rest["store"]["requests"] / restored_gib, 1)
    out["restore_http_per_gib"] = round(rest["http"]["requests"] / restored_gib, 1)
    return out


# ---------------------------------------------------------------------------- report
def add_ratios(rows: list[dict]) -> dict:
    files = [r for r in rows if r["backend"] == "file" and "full_mb_s" in r]
    if not files:
        return {}
    base = {k: sum(r[k] for r in files) / len(files) for k in ("full_mb_s", "incremental_mb_s", "restore_mb_s")}
    for r in rows:
        if "full_mb_s" in r:
            r["vs_file"] = {k.removesuffix("_mb_s"): round(r[k] / base[k], 3) for k in base}
    return {k: round(v, 1) for k, v in base.items()}


def table(rows: list[dict]) -> str:
    lines = [f"{'':<9}{'full':>7}{'incr':>7}{'restore':>8}  {'vs file':<15}"
             f"{'store requests per GiB stored':^36}{'HTTP':>7}  {'per GiB restored':>17}",
             f"{'backend':<9}{'MB/s':>7}{'MB/s':>7}{'MB/s':>8}  {'full/incr/rest':<15}"
             f"{'PUT':>9}{'GET':>9}{'LIST':>9}{'other':>9}{'/GiB':>7}  {'GET':>8}{'HTTP':>9}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['label']:<9} error: {r['error']}")
            continue
        v = r.get("vs_file", {})
        g, h = r["per_gib_stored"], r["http_per_gib_stored"]
        http = f"{h['requests']:.0f}" if h["requests"] else "-"
        rhttp = f"{r['restore_http_per_gib']:.0f}" if r["restore_http_per_gib"] else "-"
        ratios = f"{v.get('full', 0):.2f}/{v.get('incremental', 0):.2f}/{v.get('restore', 0):.2f}"
        lines.append(f"{r['label']:<9}{r['full_mb_s']:>7.1f}{r['incremental_mb_s']:>7.1f}{r['restore_mb_s']:>8.1f}  "
                     f"{ratios:<15}{g['put']:>9.1f}{g['get']:>9.1f}{g['list']:>9.1f}{g['other']:>9.1f}{http:>7}  "
                     f"{r['restore_get_per_gib']:>8.0f}{rhttp:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.4, help="file share size, 1.0 = 10,000 files / 1 GiB "
                        "(default 0.4: ~4,000 files, ~430 MB)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--edit-fraction", type=float, default=0.01, help="share of files edited before the "
                        "incremental backup (default 0.01)")
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help=f"backends in run order, comma-separated (default {','.join(DEFAULT)}; also tape)")
    parser.add_argument("--workdir", help="data, emulators and restores (default: a temp dir on /dev/shm if "
                        "there is one; removed afterwards)")
    parser.add_argument("--json-out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)

    kinds = [k for k in args.only.split(",") if k]
    unknown = set(kinds) - KNOWN
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(KNOWN))}")
    for key in [k for k in os.environ if k.startswith(("AWS_", "AZURE_STORAGE_", "STORAGE_EMULATOR_HOST"))]:
        del os.environ[key]  # emulator credentials only
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    shm = Path("/dev/shm")
    tmp_base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ebas-bench-bb-", dir=tmp_base))
    work.mkdir(parents=True, exist_ok=True)
    http = HttpCounter()
    http.install()
    rows: list[dict] = []
    started = time.perf_counter()
    try:
        gen0 = work / "gen0"
        t = time.perf_counter()
        stats = datasets.FileShare(gen0, seed=args.seed, scale=args.scale).generate()
        log(f"file share: {stats['files']} files, {stats['bytes'] / 1e6:.1f} MB, generated in "
            f"{time.perf_counter() - t:.1f}s in {work}")
        expect = None
        seen: Counter[str] = Counter()
        for kind in kinds:
            seen[kind] += 1
            label = kind if seen[kind] == 1 else f"{kind}#{seen[kind]}"
            log(f"-- {label}")
            try:
                row, expect = run_backend(kind, label, args, gen0, work, http, expect)
            except Exception as exc:  # keep the other backends' figures
                row = {"backend": kind, "error": f"{type(exc).__name__}: {exc}"}
            row["label"] = label
            rows.append(row)
            if "error" in row:
                log(f"   error: {row['error']}")
            else:
                log(f"   full {row['full_mb_s']} MB/s, incremental {row['incremental_mb_s']} MB/s, "
                    f"restore {row['restore_mb_s']} MB/s, {row['per_gib_stored']['requests']} requests/GiB stored")
    finally:
        http.uninstall()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    baseline = add_ratios(rows)
    doc = {
        "benchmark": "backup / incremental / restore per store backend, with request counts",
        "dataset": {"kind": "fileshare", "seed": args.seed, "scale": args.scale, "files": stats["files"],
                    "bytes": stats["bytes"], "edit_fraction": args.edit_fraction},
        "unit": "MB/s = 10^6 logical bytes per wall second (repository open included); requests per GiB "
                "(2^30 bytes) stored after both backups; restore GETs per GiB restored",
        "file_baseline_mb_s": baseline, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "duration_s": round(time.perf_counter() - started, 1), "results": rows,
    }
    log("")
    log(table(rows))
    text = json.dumps(doc, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    else:
        print(text)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
