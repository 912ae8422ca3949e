"""A year of daily backups, then GFS retention and prune.

    .venv/bin/python bench/bench_retention.py [--days 365] [--files 400] [--mib 40] [--json-out FILE]

A small seeded file share (``--files`` files, about ``--mib`` MiB) changes every day:
about 2% of the files are partly rewritten, a few are added and a few deleted; at the
start of each month a larger batch changes. One incremental backup per day (dated one
day apart, through the Python API) builds a year of snapshots. The content hash of every
file is recorded per day, so any day's snapshot can be verified later.

Then ``forget --keep-daily 14 --keep-weekly 8 --keep-monthly 12 --keep-yearly 3`` and
``prune`` (default --max-unused 10%): the figures are stored bytes before and after,
the space ``stats`` called reclaimable, prune time, and a restore of the *oldest kept*
snapshot compared file by file with what the share held that day; ``check`` runs last.
Prints a table on stderr and JSON on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ebas import api  # noqa: E402
from ebas.crypto.kdf import KdfParams  # noqa: E402
from ebas.lifecycle.retention import RetentionPolicy  # noqa: E402
from ebas.runtime import SYSTEM_ENTROPY  # noqa: E402
from ebas.verify.check import check_repository  # noqa: E402

DAY = 86400 * 10**9
START = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC; backups at 02:00


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Share:
    """A seeded, slowly changing file share."""

    def __init__(self, root: Path, files: int, mib: int, seed: int = 1):
        self.root, self.rng, self.n = root, random.Random(seed), 0
        self.avg = (mib << 20) // files
        for _ in range(files):
            self._new()

    def _path(self, i: int) -> Path:
        return self.root / f"dept{i % 7}" / f"proj{i % 23}" / f"doc{i:05d}.dat"

    def _content(self, size: int) -> bytes:
        text = " ".join(self.rng.choice(("report", "budget", "q3", "alpha", "draft", "final", "x"))
                        for _ in range(size // 12))
        return (text.encode() + self.rng.randbytes(size // 2))[:size]

    def _new(self) -> None:
        p = self._path(self.n)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self._content(int(self.rng.expovariate(1 / self.avg)) + 100))
        self.n += 1

    def day(self, d: int) -> None:
        files = sorted(self.root.rglob("*.dat"))
        share = 0.10 if d % 30 == 0 else 0.02
        for p in self.rng.sample(files, max(1, int(len(files) * share))):
            data = bytearray(p.read_bytes())
            at = self.rng.randrange(max(1, len(data)))
            data[at : at + 20_000] = self.rng.randbytes(min(20_000, max(1, len(data) - at)))
            p.write_bytes(bytes(data))
        for _ in range(self.rng.randint(0, 3)):
            self._new()
        for p in self.rng.sample(files, self.rng.randint(0, 2)):
            p.unlink()

    def hashes(self) -> dict[str, str]:
        return {str(p.relative_to(self.root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
                for p in sorted(self.root.rglob("*.dat"))}


def pack_bytes(repo) -> int:
    return sum(i.size for i in repo.store.list("data/"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--mib", type=int, default=40)
    p.add_argument("--pack-mib", type=int, default=4)
    p.add_argument("--workdir", default=None)
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ebas-retention-", dir=args.workdir) as tmp:
        tmp = Path(tmp)
        src = tmp / "share"
        repo = api.init_repository(str(tmp / "repo"), "bench", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY),
                                   pack_size=args.pack_mib << 20,
                                   chunker=api.ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10))
        share = Share(src, args.files, args.mib)
        states: dict[str, dict] = {}
        t0 = time.perf_counter()
        for d in range(args.days):
            if d:
                share.day(d)
            snap = api.backup(repo, [str(src)], time_ns=START + d * DAY + 2 * 3600 * 10**9, workers=2,
                              update_catalog=False).snapshot
            states[snap.id] = share.hashes()
            if d % 30 == 0:
                log(f"day {d}: {len(states[snap.id])} files, {pack_bytes(repo) / 2**20:.1f} MiB stored")
        backup_s = time.perf_counter() - t0
        now = START + args.days * DAY
        before = pack_bytes(repo)
        t0 = time.perf_counter()
        stats = api.repository_stats(repo, reclaimable=True)
        policy = RetentionPolicy(daily=14, weekly=8, monthly=12, yearly=3)
        api.forget(repo, policy, now_ns=now, update_catalog=False)
        forget_s = time.perf_counter() - t0
        reclaim = api.repository_stats(repo, reclaimable=True)
        t0 = time.perf_counter()
        pruned = api.prune(repo, grace=0, max_wait=0)
        prune_s = time.perf_counter() - t0
        after = pack_bytes(repo)
        fresh = api.open_repository(str(tmp / "repo"), "bench")
        kept = fresh.snapshots()
        oldest = kept[0]
        t0 = time.perf_counter()
        out = tmp / "restore"
        api.restore(fresh, oldest.id, str(out))
        restore_s = time.perf_counter() - t0
        restored = out / str(src).lstrip("/")
        got = {str(p.relative_to(restored)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
               for p in sorted(restored.rglob("*.dat"))}
        t0 = time.perf_counter()
        report = check_repository(fresh)
        check_s = time.perf_counter() - t0
        result = {
            "days": args.days, "files_last_day": len(share.hashes()), "logical_mib_last_day":
                round(sum(f.stat().st_size for f in src.rglob("*.dat")) / 2**20, 1),
            "backup_total_s": round(backup_s, 1), "backup_mean_s": round(backup_s / args.days, 3),
            "snapshots_before": stats["snapshots"], "snapshots_kept": len(kept),
            "stored_mib_before": round(before / 2**20, 2), "reclaimable_mib_reported": round(
                reclaim["reclaimable_bytes"] / 2**20, 2),
            "stored_mib_after": round(after / 2**20, 2), "freed_mib": round((before - after) / 2**20, 2),
            "freed_share": round(1 - after / before, 4), "forget_s": round(forget_s, 2), "prune_s": round(prune_s, 2),
            "prune": {k: pruned.to_json()[k] for k in ("packs_deleted", "packs_repacked", "blobs_copied",
                                                       "bytes_copied", "segments_written", "segments_removed")},
            "prune_plan": pruned.plan,
            "oldest_kept": {"id": oldest.id, "time": oldest.time_iso, "files": len(got),
                            "restored_exactly": got == states[oldest.id], "restore_s": round(restore_s, 2)},
            "check_ok": report.ok, "check_problems": len(report.problems), "check_s": round(check_s, 2),
            "kept_times": [s.time_iso[:10] for s in kept],
        }
        log(json.dumps({k: v for k, v in result.items() if k not in ("kept_times", "prune_plan")}, indent=1))
        text = json.dumps(result, indent=2)
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(text + "\n")
        print(text)
        return 0 if got == states[oldest.id] and report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
