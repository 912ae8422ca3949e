"""Choose chunker parameters from measurements: reduction vs metadata vs speed.

For each candidate parameter set, the same data (file share or VM image, several daily
generations) is backed up into its own repository in the same run, through the Python
API. Reported per candidate: reduction over all generations (1 - stored/logical), stored
bytes of data blobs, of tree blobs and of index segments, chunk count, and the median
backup throughput of the first full and of the daily backups.

    python bench/bench_chunking.py --dataset fileshare --scale 0.2 --days 10
    python bench/bench_chunking.py --dataset vmimage --scale 0.25 --days 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import datasets  # noqa: E402

from ebas import api  # noqa: E402
from ebas.chunking.params import ChunkerParams, FixedBlockRule  # noqa: E402
from ebas.crypto.kdf import KdfParams  # noqa: E402
from ebas.runtime import SYSTEM_ENTROPY  # noqa: E402

KiB, MiB = 1024, 1024 * 1024

FILESHARE_CANDIDATES = {
    "cdc 64K/256K/1M": ChunkerParams(64 * KiB, 256 * KiB, 1 * MiB, fixed_rules=()),
    "cdc 128K/512K/2M": ChunkerParams(128 * KiB, 512 * KiB, 2 * MiB, fixed_rules=()),
    "cdc 256K/1M/4M": ChunkerParams(256 * KiB, 1 * MiB, 4 * MiB, fixed_rules=()),
    "cdc 512K/2M/8M": ChunkerParams(512 * KiB, 2 * MiB, 8 * MiB, fixed_rules=()),
}
VM_CANDIDATES = {
    "cdc 256K/1M/4M": ChunkerParams(256 * KiB, 1 * MiB, 4 * MiB, fixed_rules=()),
    "cdc 16K/64K/256K": ChunkerParams(16 * KiB, 64 * KiB, 256 * KiB, fixed_rules=()),
    "fixed 4K": ChunkerParams(fixed_rules=(FixedBlockRule("*", 4 * KiB),)),
    "fixed 8K": ChunkerParams(fixed_rules=(FixedBlockRule("*", 8 * KiB),)),
    "fixed 16K": ChunkerParams(fixed_rules=(FixedBlockRule("*", 16 * KiB),)),
    "fixed 32K": ChunkerParams(fixed_rules=(FixedBlockRule("*", 32 * KiB),)),
    "fixed 64K": ChunkerParams(fixed_rules=(FixedBlockRule("*", 64 * KiB),)),
}


def _kind_bytes(repo) -> dict:
    """Stored bytes per blob kind, and index bytes, from the index segments."""
    from ebas.repo.index import IndexSegment

    data = tree = 0
    for name in repo.index.segments:
        seg = IndexSegment.decode(repo.aead, repo.store.get(name), name)
        data += int(seg.entries["length"][seg.entries["kind"] == 0].sum())
        tree += int(seg.entries["length"][seg.entries["kind"] == 1].sum())
    index = sum(i.size for i in repo.store.list("index/"))
    return {"data_bytes": data, "tree_bytes": tree, "index_bytes": index}


def run(dataset: str, scale: float, days: int, workdir: Path, seed: int) -> dict:
    cands = FILESHARE_CANDIDATES if dataset == "fileshare" else VM_CANDIDATES
    src = workdir / "src"
    if dataset == "fileshare":
        data = datasets.FileShare(src, seed=seed, scale=scale)
        source = src
    else:
        src.mkdir(parents=True, exist_ok=True)
        data = datasets.VmImage(src / "disk.img", seed=seed, scale=scale)
        source = src
    data.generate(overwrite=True)
    repos = {}
    for name, params in cands.items():
        url = str(workdir / ("repo-" + "".join(c if c.isalnum() else "_" for c in name)))
        repos[name] = api.init_repository(url, "bench", chunker=params, kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    logical = 0
    times: dict[str, list[float]] = {n: [] for n in cands}
    for day in range(days + 1):
        if day:
            data.advance(day)
        size = datasets.tree_stats(source)["bytes"]
        logical += size
        for name, repo in repos.items():
            t = time.perf_counter()
            api.backup(repo, [str(source)], update_catalog=False)
            times[name].append(size / (time.perf_counter() - t) / 1e6)
    out = {}
    for name, repo in repos.items():
        repo.invalidate_index()
        st = api.repository_stats(repo)
        kinds = _kind_bytes(repo)
        out[name] = {
            "reduction": round(1 - st["stored_bytes"] / logical, 5),
            "stored_bytes": st["stored_bytes"],
            "chunks": st["blobs"],
            **kinds,
            "metadata_share": round((kinds["tree_bytes"] + kinds["index_bytes"]) / st["stored_bytes"], 4),
            "full_MBps": round(times[name][0], 1),
            "daily_MBps_median": round(statistics.median(times[name][1:]), 1) if days else None,
        }
    return {"dataset": dataset, "scale": scale, "days": days, "logical_bytes": logical, "candidates": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["fileshare", "vmimage"], default="fileshare")
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ebas-chunking-"))
    try:
        result = run(args.dataset, args.scale, args.days, work, args.seed)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text)
    print(text)
    print(f"\n{args.dataset} scale {args.scale}, {args.days} daily generations, "
          f"{result['logical_bytes'] / 1e9:.2f} GB logical")
    print(f"{'candidate':<20} {'reduction':>9} {'chunks':>8} {'tree MB':>8} {'index MB':>8} {'meta %':>7} "
          f"{'full MB/s':>9} {'daily MB/s':>10}")
    for name, r in result["candidates"].items():
        print(f"{name:<20} {r['reduction'] * 100:8.2f}% {r['chunks']:>8} {r['tree_bytes'] / 1e6:8.2f} "
              f"{r['index_bytes'] / 1e6:8.2f} {r['metadata_share'] * 100:6.2f}% {r['full_MBps']:>9} "
              f"{r['daily_MBps_median'] or 0:>10}")


if __name__ == "__main__":
    main()
