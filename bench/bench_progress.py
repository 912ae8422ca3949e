"""What progress reporting costs a backup: 10,000 small files, a first (full) backup into
an empty repository and an unchanged incremental backup, without a progress receiver
and with a :class:`ebas.progress.Tracker` (what the CLI's bar and ``--json`` use).

Rounds alternate the modes (a fresh repository per round) and the best round of each
counts, so machine noise hurts both alike::

    PYTHONPATH=src .venv/bin/python bench/bench_progress.py --rounds 5
    PYTHONPATH=<an older checkout>/src .venv/bin/python bench/bench_progress.py --modes none   # before

Prints one JSON document: seconds per step and mode (min and median of the rounds), wall
time and CPU time of the process (all threads; less disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time


def make_tree(root: str, files: int, seed: int = 1) -> int:
    """``files`` files of 1-8 KiB in 100 directories; returns their total size."""
    rnd = random.Random(seed)
    total = 0
    for i in range(files):
        d = os.path.join(root, f"d{i % 100:03d}")
        os.makedirs(d, exist_ok=True)
        data = rnd.randbytes(rnd.randint(1024, 8192))
        with open(os.path.join(d, f"f{i:05d}"), "wb") as fh:
            fh.write(data)
        total += len(data)
    return total


def one_round(src: str, work: str, mode: str) -> dict:
    """A full backup then an unchanged incremental one, into a fresh repository."""
    from ebas.backup.archiver import Archiver, BackupOptions
    from ebas.crypto.kdf import KdfParams
    from ebas.repo.repository import Repository
    from ebas.runtime import SYSTEM_ENTROPY
    from ebas.storage.backends.file import FileStore

    repo_dir = os.path.join(work, f"repo-{mode}")
    shutil.rmtree(repo_dir, ignore_errors=True)
    repo = Repository.init(FileStore(repo_dir), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    out = {}
    for step, level in (("full", "full"), ("unchanged", "incremental")):
        kw = {}
        if mode == "tracker":
            from ebas.progress import Tracker

            kw["progress"] = Tracker(listeners=[lambda st: None])
        started, cpu = time.perf_counter(), time.process_time()
        res = Archiver(repo, BackupOptions(paths=[src], level=level, host="bench"), **kw).run()
        out[step] = time.perf_counter() - started
        out[step + " cpu"] = time.process_time() - cpu
        if mode == "tracker":
            st = kw["progress"].status()
            assert st.items_done == res.stats.files and st.bytes_done == res.stats.bytes_logical, st
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default="none,tracker", help="comma-separated: none, tracker")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="ebas-bench-progress-", dir=base)
    try:
        src = os.path.join(work, "src")
        size = make_tree(src, args.files)
        times: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                for step, t in one_round(src, work, mode).items():
                    times[mode].setdefault(step, []).append(t)
        result = {"files": args.files, "bytes": size, "rounds": args.rounds, "seconds": {
            mode: {step: {"min": round(min(v), 4), "median": round(statistics.median(v), 4)} for step, v in steps.items()}
            for mode, steps in times.items()}}
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
