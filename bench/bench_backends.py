"""Store backend throughput: put/get of 16 MiB objects per backend, beside the file store.

Starts the same real servers the tests use, each on a free 127.0.0.1 port (moto_server,
azurite-blob, gcp-storage-emulator, an asyncssh SFTP server in its own process), plus a
virtual tape library and the local file store, all in one run, and measures
``store.put`` and ``store.get`` of incompressible 16 MiB objects. Each backend does
``--reps`` rounds; the figure is the median MB/s (10^6 bytes per second) of the rounds.
Backends are interleaved round by round so disk noise hits all of them alike.

    .venv/bin/python bench/bench_backends.py
    .venv/bin/python bench/bench_backends.py --reps 7 --size-mib 16 --only s3,file --json-out bench/out/backends.json

Prints a table to stderr and one JSON document to stdout (or --json-out). The figures
are of the emulators on loopback, not of the clouds: they show the client-side cost
(SDK, TLS-less HTTP, hashing, copies) and the emulators' own speed, nothing about WAN
latency or provider throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "storage" / "backends"))

import backend_services as svc  # noqa: E402  (the tests' service starters, reused)

MiB = 1024 * 1024
ALL = ["file", "file-nofsync", "tape", "s3", "azure", "gcs", "sftp"]


class Setup:
    """Starts what a backend needs and opens stores on fresh prefixes."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.services: list = []
        self.procs: list[subprocess.Popen] = []
        self.openers = {}

    def start(self, kind: str):
        from ebas.storage.registry import open_store

        if kind == "file":
            root = self.workdir / "file"
            self.openers[kind] = lambda tag: open_store(str(root / tag))
        elif kind == "file-nofsync":
            root = self.workdir / "file-nofsync"
            self.openers[kind] = lambda tag: open_store(str(root / tag), fsync=False)
        elif kind == "tape":
            lib = self.workdir / "vtl"
            url = f"tape://{lib}?volumes=8&slots=8&capacity=2GiB"
            open_store(url).close()
            self.openers[kind] = lambda tag: open_store(url)
        elif kind == "s3":
            moto = svc.start_moto(self.workdir)
            self.services.append(moto)
            svc.s3_client(moto.port).create_bucket(Bucket="bench")
            self.openers[kind] = lambda tag: open_store(svc.s3_url(moto.port, "bench", tag), **svc.S3_KEYS)
        elif kind == "azure":
            from azure.storage.blob import BlobServiceClient

            azurite = svc.start_azurite(self.workdir)
            self.services.append(azurite)
            BlobServiceClient.from_connection_string(svc.azure_connection_string(azurite.port)).create_container("bench")
            self.openers[kind] = lambda tag: open_store(svc.azure_url(azurite.port, "bench", tag),
                                                        account_key=svc.AZURITE_KEY)
        elif kind == "gcs":
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            gcs = svc.start_gcs(self.workdir)
            self.services.append(gcs)
            storage.Client(project="bench", credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": f"http://127.0.0.1:{gcs.port}"}).create_bucket("bench")
            self.openers[kind] = lambda tag: open_store(svc.gcs_url(gcs.port, "bench", tag))
        elif kind == "sftp":
            server = REPO / "tests" / "storage" / "backends" / "sftp_server.py"
            proc = subprocess.Popen([sys.executable, str(server), "--root", str(self.workdir / "sftp-root"),
                                     "--keys", str(self.workdir / "sftp-keys")], stdout=subprocess.PIPE, text=True)
            self.procs.append(proc)
            port = int(proc.stdout.readline())
            pub = (self.workdir / "sftp-keys" / "host_ed25519.pub").read_text().split()
            known = self.workdir / "known_hosts"
            known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
            key = self.workdir / "sftp-keys" / "client_ed25519"
            self.openers[kind] = lambda tag: open_store(
                f"sftp://bench@127.0.0.1:{port}/{tag}?key_file={key}&known_hosts={known}")
        else:
            raise SystemExit(f"unknown backend {kind!r}; choose from {', '.join(ALL)}")

    def stop(self):
        for service in self.services:
            service.stop()
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)


def measure(store, data: bytes, name: str) -> tuple[float, float]:
    """Seconds for one put and one get of ``data`` (the get is checked)."""
    t0 = time.perf_counter()
    store.put(name, data)
    t1 = time.perf_counter()
    back = store.get(name)
    t2 = time.perf_counter()
    if back != data:
        raise SystemExit(f"{store!r}: read back different bytes for {name}")
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="rounds per backend (default 5)")
    parser.add_argument("--size-mib", type=int, default=16, help="object size in MiB (default 16)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--json-out", help="write the JSON here instead of stdout")
    parser.add_argument("--workdir", help="where data and services live (default: a temp dir, removed)")
    args = parser.parse_args()

    kinds = [k for k in args.only.split(",") if k]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ebas-bench-backends-"))
    setup = Setup(workdir)
    samples: dict[str, dict[str, list[float]]] = {k: {"put": [], "get": []} for k in kinds}
    start_s: dict[str, float] = {}
    size = args.size_mib * MiB
    payloads = [os.urandom(size) for _ in range(2)]
    try:
        for kind in kinds:
            t = time.perf_counter()
            setup.start(kind)
            start_s[kind] = round(time.perf_counter() - t, 3)
        stores = {kind: setup.openers[kind](f"run-{os.getpid()}") for kind in kinds}
        for store in stores.values():  # warm up connections and SDK code paths
            measure(store, payloads[1][:MiB], "warmup")
        for rep in range(args.reps):
            for kind in kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]:  # rotate the order
                put_s, get_s = measure(stores[kind], payloads[rep % 2], f"data/{rep:02d}/obj")
                samples[kind]["put"].append(size / put_s / 1e6)
                samples[kind]["get"].append(size / get_s / 1e6)
        for store in stores.values():
            store.close()
    finally:
        setup.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    results = {}
    for kind in kinds:
        put, get = samples[kind]["put"], samples[kind]["get"]
        results[kind] = {"put_mb_s": round(statistics.median(put), 1), "get_mb_s": round(statistics.median(get), 1),
                         "put_samples": [round(x, 1) for x in put], "get_samples": [round(x, 1) for x in get],
                         "service_start_s": start_s[kind]}
    base = results.get("file")
    for row in results.values():
        if base:
            row["put_vs_file"] = round(row["put_mb_s"] / base["put_mb_s"], 3)
            row["get_vs_file"] = round(row["get_mb_s"] / base["get_mb_s"], 3)
    doc = {"benchmark": "store backends, put/get throughput", "object_mib": args.size_mib, "reps": args.reps,
           "unit": "MB/s (10^6 bytes/s), median of reps", "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "results": results}

    print(f"{'backend':<14}{'put MB/s':>10}{'get MB/s':>10}{'put/file':>10}{'get/file':>10}", file=sys.stderr)
    for kind, row in results.items():
        print(f"{kind:<14}{row['put_mb_s']:>10.1f}{row['get_mb_s']:>10.1f}"
              f"{row.get('put_vs_file', float('nan')):>10.3f}{row.get('get_vs_file', float('nan')):>10.3f}",
              file=sys.stderr)
    text = json.dumps(doc, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
