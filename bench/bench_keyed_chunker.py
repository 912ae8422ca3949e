"""Cost of keyed chunk boundaries: Chunker throughput, keyed vs unkeyed, same data.

Cuts the same in-memory random data with the default parameters (256K/1M/4M) through
:class:`ebas.chunking.chunker.Chunker` (streaming, 8 MiB buffers), once with the package's
public gear table and once keyed (a ``bytes.translate`` pass in front of the same C core),
and reports the median of ``--runs`` runs each as JSON. With ``--backup-mib N`` it also
backs up one file of N MiB of random data into a fresh repository (on ``--workdir``,
default /dev/shm), alternating an unkeyed (as an old repository) and a keyed one, and
reports the median backup throughput of each.

    python bench/bench_keyed_chunker.py --mib 256 --runs 5 --backup-mib 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ebas.chunking.chunker import Chunker  # noqa: E402
from ebas.chunking.params import FASTCDC_KEYED, ChunkerParams  # noqa: E402


def throughput(chunker: Chunker, data: bytes) -> tuple[float, int]:
    """MiB/s of cutting ``data`` as a stream, and the chunk count."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        out = data[pos : pos + n]
        pos += len(out)
        return out

    start = time.perf_counter()
    count = sum(1 for _ in chunker.chunks(read))
    return len(data) / (1 << 20) / (time.perf_counter() - start), count


def backup_throughput(mib: int, runs: int, workdir: Path) -> dict:
    """Median MiB/s of ``api.backup`` of one random file, unkeyed vs keyed repositories."""
    import shutil
    import tempfile

    from ebas import api
    from ebas.crypto.kdf import KdfParams
    from ebas.runtime import SYSTEM_ENTROPY

    base = Path(tempfile.mkdtemp(prefix="ebas-keyed-", dir=workdir))
    try:
        (base / "src").mkdir()
        (base / "src" / "f").write_bytes(os.urandom(mib << 20))
        speeds: dict[str, list[float]] = {"unkeyed": [], "keyed": []}
        for _ in range(runs):
            for name in speeds:
                shutil.rmtree(base / "repo", ignore_errors=True)
                repo = api.init_repository(str(base / "repo"), "bench", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
                if name == "unkeyed":  # what a repository created before keyed boundaries uses
                    repo.config = replace(repo.config, chunker=replace(repo.config.chunker, algorithm="fastcdc"))
                start = time.perf_counter()
                api.backup(repo, [str(base / "src")])
                speeds[name].append(mib / (time.perf_counter() - start))
                repo.close()
        return {k: round(statistics.median(v), 1) for k, v in speeds.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backup-mib", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    args = ap.parse_args()
    data = os.urandom(args.mib << 20)
    plain = ChunkerParams()
    keyed = replace(plain, algorithm=FASTCDC_KEYED)
    results = {}
    for name, chunker in (("unkeyed", Chunker(plain)), ("keyed", Chunker(keyed, seed=os.urandom(32)))):
        runs = [throughput(chunker, data) for _ in range(args.runs)]
        results[name] = {"mib_per_s": round(statistics.median(r[0] for r in runs), 1), "chunks": runs[0][1]}
    results["keyed_vs_unkeyed"] = round(results["keyed"]["mib_per_s"] / results["unkeyed"]["mib_per_s"], 3)
    results["data_mib"] = args.mib
    if args.backup_mib:
        b = backup_throughput(args.backup_mib, args.runs, args.workdir)
        results["backup_mib_per_s"] = b
        results["backup_keyed_vs_unkeyed"] = round(b["keyed"] / b["unkeyed"], 3)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
