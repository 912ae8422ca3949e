"""Backup benchmark: ebas beside restic (and optionally borg) on the same data, same run.

For each data set (fileshare, vmimage) it writes generation 0, then advances it
day by day; every tool backs up every generation into its own repository,
interleaved per day (the order rotates) so disk noise hits all of them.  After
the last day it measures stored bytes, restores the latest and an early
generation (verified bit for bit against the manifest taken that day), and
backs up the unchanged tree once more.

    .venv/bin/python bench/bench_backup.py --scale 0.05 --days 5
    .venv/bin/python bench/bench_backup.py --dataset fileshare --days 30 --json-out bench/out/share.json

Prints a table to stderr and one JSON document to stdout (or --json-out).
Throughput is MB (10^6 bytes) of logical data per second.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

try:
    from . import datasets, tools
except ImportError:
    import datasets
    import tools

HERE = Path(__file__).resolve().parent
TARGETS = {  # the acceptance figures; only meaningful at --scale 1 --days 30
    "fileshare_reduction": 0.95, "vmimage_reduction": 0.80, "unchanged_files_per_s": 50_000,
}


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def mbps(nbytes: int, seconds: float | None) -> float | None:
    return nbytes / 1e6 / seconds if seconds else None


def rotate(xs: list, k: int) -> list:
    k %= max(1, len(xs))
    return xs[k:] + xs[:k]


class Dataset:
    """A data set plus the directory the tools back up."""

    def __init__(self, kind: str, wd: Path, seed: int, scale: float) -> None:
        self.kind = kind
        self.src = wd / "src"
        if kind == "fileshare":
            self.gen = datasets.FileShare(self.src, seed=seed, scale=scale)
        elif kind == "vmimage":
            self.gen = datasets.VmImage(self.src / "disk.img", seed=seed, scale=scale)
        else:
            raise ValueError(f"unknown data set {kind!r}")

    def generate(self) -> dict:
        return self.gen.generate(overwrite=True)

    def advance(self, day: int) -> dict:
        return self.gen.advance(day)

    def stats(self) -> dict:
        return datasets.tree_stats(self.src)

    def manifest(self) -> dict[str, str]:
        return datasets.manifest(self.src)


class ToolRun:
    """One tool's repository and everything measured on it."""

    def __init__(self, tool: tools.Tool) -> None:
        self.tool = tool
        self.days: list[dict] = []
        self.full: list[dict] = []
        self.snap_by_day: dict[int, str] = {}
        self.error: str | None = None

    @property
    def name(self) -> str:
        return self.tool.name

    def guard(self, what: str, fn, *a):
        """Run fn; on failure record the error and disable the tool for the rest of the run."""
        if self.error:
            return None
        try:
            return fn(*a)
        except Exception as e:  # noqa: BLE001 - a broken tool must not stop the others
            self.error = f"{what}: {type(e).__name__}: {e}"
            log(f"!! {self.name} failed during {what}: {e}")
            return None


def bench_dataset(kind: str, args, tool_names: list[str]) -> dict:
    wd = args.workdir / kind
    for sub in ("src", "repos", "restore", "scratch"):
        shutil.rmtree(wd / sub, ignore_errors=True)
    (wd / "repos").mkdir(parents=True)
    ds = Dataset(kind, wd, args.seed, args.scale)
    runs = [ToolRun(tools.make_tool(n, wd / "repos" / n, args.ebas_cmd)) for n in tool_names]
    if args.ebas_chunker:
        for r in runs:
            if isinstance(r.tool, tools.Ebas):
                r.tool.chunker = args.ebas_chunker
    out: dict = {"dataset": kind, "scale": args.scale, "seed": args.seed, "days": args.days,
                 "generations": [], "baseline": {}, "tools": {}}

    # generation 0 and the full backups --------------------------------------------------
    t0 = time.perf_counter()
    info = ds.generate()
    gen0 = {"day": 0, "generate_seconds": round(time.perf_counter() - t0, 3)} | info
    out["generations"].append(gen0)
    log(f"[{kind}] generation 0: {info['files']} files, {info['bytes'] / 1e6:.1f} MB "
        f"in {gen0['generate_seconds']:.1f} s")
    early_day = min(args.early_day, args.days)
    manifests = {0: ds.manifest()} if early_day == 0 else {}
    out["baseline"]["tar_day0"] = tar_baseline(ds, args.repeat)

    for rep in range(args.repeat):
        for r in rotate(runs, rep):
            if rep == 0:
                r.guard("init", r.tool.init)
                res = r.guard("full backup", r.tool.backup, ds.src)
                if res:
                    r.snap_by_day[0] = res["snapshot_id"]
            else:  # extra repeats into throwaway repositories
                scratch = type(r.tool)(wd / "scratch" / f"{r.name}-{rep}")
                if isinstance(r.tool, tools.Ebas):
                    scratch.ebas_cmd, scratch.chunker = r.tool.ebas_cmd, r.tool.chunker
                res = r.guard("full backup (repeat)", lambda t=scratch: (t.init(), t.backup(ds.src))[1])
                shutil.rmtree(wd / "scratch", ignore_errors=True)
            if res:
                r.full.append(strip(res) | {"MB_per_s": mbps(info["bytes"], res["seconds"])})
                log(f"[{kind}] {r.name:6s} full backup #{rep + 1}: {res['seconds']:.2f} s "
                    f"({mbps(info['bytes'], res['seconds']):.1f} MB/s), peak RSS {res['peak_rss_kb'] / 1024:.0f} MiB")

    # daily generations --------------------------------------------------------------------
    logical_total = info["bytes"]
    for day in range(1, args.days + 1):
        t0 = time.perf_counter()
        info = ds.advance(day)
        gen = {"day": day, "generate_seconds": round(time.perf_counter() - t0, 3)} | info
        out["generations"].append(gen)
        logical_total += info["bytes"]
        if day == early_day:
            manifests[day] = ds.manifest()
        line = []
        for r in rotate(runs, day):
            res = r.guard(f"backup day {day}", r.tool.backup, ds.src)
            if res:
                r.snap_by_day[day] = res["snapshot_id"]
                r.days.append({"day": day} | strip(res) | {"MB_per_s": mbps(info["bytes"], res["seconds"])})
                line.append(f"{r.name} {res['seconds']:.2f} s")
        log(f"[{kind}] day {day}: {info['files']} files, {info['bytes'] / 1e6:.1f} MB; " + ", ".join(line))
    out["logical_total_bytes"] = logical_total
    if args.days:
        out["baseline"][f"tar_day{args.days}"] = tar_baseline(ds, args.repeat)
    manifests["last"] = ds.manifest()
    last_bytes = info["bytes"]

    # after the last day -----------------------------------------------------------------------
    for r in runs:
        res: dict = {"error": None}
        stored = r.guard("stored_bytes", r.tool.stored_bytes) if not r.error else None
        res["stored_bytes"] = stored
        res["logical_total_bytes"] = logical_total
        res["reduction"] = 1 - stored / logical_total if stored is not None else None
        res["full_backup"] = summarize_full(r.full)
        inc = r.days
        res["incremental"] = {
            "days": len(inc),
            "median_seconds": median([d["seconds"] for d in inc]),
            "median_MB_per_s": median([d["MB_per_s"] for d in inc]),
            "max_peak_rss_kb": max([d["peak_rss_kb"] for d in inc], default=None),
        }
        res["daily"] = inc
        res["tool_stats"] = r.guard("stats", r.tool.stats)
        res["chunks"] = r.guard("chunk count", r.tool.chunk_count)
        out["tools"][r.name] = res

    for r in runs:  # restores (verified), interleaved per repeat
        res = out["tools"][r.name]
        res["restore_latest"] = restore_bench(r, "latest", manifests["last"], last_bytes, ds, wd, args.repeat)
        if early_day in manifests and early_day in r.snap_by_day:
            early_bytes = out["generations"][early_day]["bytes"]
            res["restore_early"] = {"day": early_day} | restore_bench(
                r, r.snap_by_day[early_day], manifests[early_day], early_bytes, ds, wd, args.repeat)

    files_now = ds.stats()["files"]
    unchanged: dict[str, list] = {r.name: [] for r in runs}
    for rep in range(args.repeat):  # incremental over the unchanged tree
        for r in rotate(runs, rep):
            res = r.guard("unchanged backup", r.tool.backup, ds.src)
            if res:
                unchanged[r.name].append(res)
    for r in runs:
        secs = median([u["seconds"] for u in unchanged[r.name]])
        out["tools"][r.name]["unchanged"] = {
            "files": files_now, "seconds": secs,
            "files_per_s": files_now / secs if secs else None, "MB_per_s": mbps(last_bytes, secs),
            "peak_rss_kb": median([u["peak_rss_kb"] for u in unchanged[r.name]]),
        }

    tiny = wd / "scratch" / "tiny-src"
    tiny.mkdir(parents=True, exist_ok=True)
    (tiny / "hello.txt").write_text("hello\n")
    for r in runs:  # RSS of a near-empty backup: the fixed cost, to isolate per-chunk memory
        res = out["tools"][r.name]
        scratch = type(r.tool)(wd / "scratch" / f"{r.name}-tiny")
        if isinstance(r.tool, tools.Ebas):
            scratch.ebas_cmd = r.tool.ebas_cmd
        tiny_res = r.guard("tiny backup", lambda t=scratch: (t.init(), t.backup(tiny))[1])
        res["tiny_backup_peak_rss_kb"] = tiny_res["peak_rss_kb"] if tiny_res else None
        res["tiny_backup_seconds"] = tiny_res["seconds"] if tiny_res else None
        u = res["unchanged"]
        if tiny_res and u["seconds"] and u["seconds"] > tiny_res["seconds"]:
            # the scan rate once the fixed cost (start-up, key derivation, snapshot write) is taken out
            u["files_per_s_net_of_fixed_cost"] = u["files"] / (u["seconds"] - tiny_res["seconds"])
        full_rss = res["full_backup"].get("peak_rss_kb")
        if tiny_res and full_rss and res.get("chunks") and full_rss > tiny_res["peak_rss_kb"]:
            # an upper bound: everything the full backup needed beyond a near-empty one, per chunk
            res["ram_bytes_per_chunk_est"] = (full_rss - tiny_res["peak_rss_kb"]) * 1024 / res["chunks"]
        res["error"] = r.error
    shutil.rmtree(wd / "scratch", ignore_errors=True)
    out["comparison"] = compare(out)
    if not args.keep:
        for sub in ("src", "repos", "restore"):
            shutil.rmtree(wd / sub, ignore_errors=True)
    return out


def strip(res: dict) -> dict:
    """A backup result without bulky fields, for the per-day record."""
    keep = ("seconds", "peak_rss_kb", "cpu_seconds", "snapshot_id")
    return {k: res[k] for k in keep} | {"summary": res.get("summary")}


def summarize_full(full: list[dict]) -> dict:
    if not full:
        return {}
    return {"repeats": len(full), "seconds": median([f["seconds"] for f in full]),
            "MB_per_s": median([f["MB_per_s"] for f in full]),
            "peak_rss_kb": median([f["peak_rss_kb"] for f in full]),
            "cpu_seconds": median([f["cpu_seconds"] for f in full]),
            "all_seconds": [f["seconds"] for f in full], "summary": full[0].get("summary")}


def tar_baseline(ds: Dataset, repeat: int) -> dict:
    nbytes = ds.stats()["bytes"]
    secs = median([tools.tar_read_seconds(ds.src) for _ in range(repeat)])
    return {"seconds": secs, "MB_per_s": mbps(nbytes, secs), "bytes": nbytes}


def restore_bench(r: ToolRun, snapshot: str, expect: dict[str, str], nbytes: int,
                  ds: Dataset, wd: Path, repeat: int) -> dict:
    secs, verified, problems = [], None, []
    for _ in range(repeat):
        target = wd / "restore" / f"{r.name}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        s = r.guard(f"restore {snapshot}", r.tool.restore, snapshot, target)
        if s is None:
            break
        secs.append(s)
        got = datasets.manifest(r.tool.restored_root(target, ds.src))
        problems = diff_manifest(expect, got)
        verified = not problems if verified is None else verified and not problems
        shutil.rmtree(target, ignore_errors=True)
    sec = median(secs)
    if problems:
        log(f"!! {r.name} restore of {snapshot} differs from the source: {problems[:5]}")
    return {"snapshot": snapshot, "seconds": sec, "MB_per_s": mbps(nbytes, sec),
            "verified": verified, "problems": problems[:20],
            "peak_rss_kb": r.tool.last.peak_rss_kb if r.tool.last and secs else None}


def diff_manifest(expect: dict[str, str], got: dict[str, str]) -> list[str]:
    missing = sorted(set(expect) - set(got))
    extra = sorted(set(got) - set(expect))
    wrong = sorted(k for k in set(expect) & set(got) if expect[k] != got[k])
    return ([f"missing {k}" for k in missing] + [f"extra {k}" for k in extra]
            + [f"content {k}" for k in wrong])


def compare(out: dict) -> dict:
    """ebas against each other tool, and the issue's targets."""
    t = out["tools"]
    if "ebas" not in t:
        return {}
    e = t["ebas"]
    cmp: dict = {}

    def g(d: dict, *path):
        for p in path:
            d = (d or {}).get(p)
        return d

    metrics = {
        "reduction": ("reduction",), "full_MB_per_s": ("full_backup", "MB_per_s"),
        "incremental_MB_per_s": ("incremental", "median_MB_per_s"),
        "restore_MB_per_s": ("restore_latest", "MB_per_s"),
        "unchanged_files_per_s": ("unchanged", "files_per_s"),
        "full_peak_rss_kb": ("full_backup", "peak_rss_kb"),
    }
    for other in t:
        if other == "ebas":
            continue
        row = {}
        for m, path in metrics.items():
            a, b = g(e, *path), g(t[other], *path)
            row[m] = {"ebas": a, other: b, "ratio": a / b if a is not None and b else None}
        cmp[f"ebas_vs_{other}"] = row
    checks = {}
    red_target = TARGETS.get(f"{out['dataset']}_reduction")
    if e.get("reduction") is not None and red_target:
        checks["reduction_target"] = e["reduction"] >= red_target
    if "restic" in t:
        r = t["restic"]
        if out["dataset"] == "fileshare" and e.get("reduction") is not None and r.get("reduction") is not None:
            checks["reduction_not_below_restic"] = e["reduction"] >= r["reduction"]
        for m in ("full_MB_per_s", "incremental_MB_per_s", "restore_MB_per_s"):
            a, b = g(cmp, "ebas_vs_restic", m, "ebas"), g(cmp, "ebas_vs_restic", m, "restic")
            if a is not None and b is not None:
                checks[f"{m}_at_least_restic"] = a >= b
    fps = g(e, "unchanged", "files_per_s")
    if out["dataset"] == "fileshare" and fps is not None:
        checks["unchanged_files_per_s_50k"] = fps >= TARGETS["unchanged_files_per_s"]
    cmp["checks"] = checks
    cmp["checks_meaningful"] = out["scale"] == 1.0 and out["days"] >= 30
    return cmp


# --- output -----------------------------------------------------------------------------

def fmt(v, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def table(doc: dict) -> str:
    lines = []
    for ds in doc["datasets"].values():
        names = list(ds["tools"])
        g0 = ds["generations"][0]
        lines.append(f"\n== {ds['dataset']} (scale {ds['scale']}, {ds['days']} days, "
                     f"{g0['files']} files / {g0['bytes'] / 1e6:.1f} MB at day 0, "
                     f"{ds['logical_total_bytes'] / 1e6:.1f} MB logical in total)")
        rows = [
            ("reduction (1 - stored/logical)", lambda t: fmt(t.get("reduction") and 100 * t["reduction"], " %", 2)),
            ("stored MB", lambda t: fmt(t.get("stored_bytes") and t["stored_bytes"] / 1e6)),
            ("full backup s", lambda t: fmt(t["full_backup"].get("seconds"), "", 2)),
            ("full backup MB/s", lambda t: fmt(t["full_backup"].get("MB_per_s"))),
            ("incremental s (median)", lambda t: fmt(t["incremental"]["median_seconds"], "", 2)),
            ("incremental MB/s (median)", lambda t: fmt(t["incremental"]["median_MB_per_s"])),
            ("unchanged-tree backup s", lambda t: fmt(t["unchanged"]["seconds"], "", 2)),
            ("unchanged-tree files/s", lambda t: fmt(t["unchanged"]["files_per_s"], "", 0)),
            ("tiny backup s (fixed cost)", lambda t: fmt(t.get("tiny_backup_seconds"), "", 2)),
            ("unchanged files/s net of fixed cost",
             lambda t: fmt(t["unchanged"].get("files_per_s_net_of_fixed_cost"), "", 0)),
            ("restore latest s", lambda t: fmt(t["restore_latest"]["seconds"], "", 2)),
            ("restore latest MB/s", lambda t: fmt(t["restore_latest"]["MB_per_s"])),
            ("restore latest verified", lambda t: fmt(t["restore_latest"]["verified"])),
            ("restore early MB/s", lambda t: fmt(t.get("restore_early", {}).get("MB_per_s"))),
            ("restore early verified", lambda t: fmt(t.get("restore_early", {}).get("verified"))),
            ("peak RSS full backup MiB",
             lambda t: fmt(t["full_backup"].get("peak_rss_kb") and t["full_backup"]["peak_rss_kb"] / 1024, "", 0)),
            ("peak RSS tiny backup MiB", lambda t: fmt(t.get("tiny_backup_peak_rss_kb") and t["tiny_backup_peak_rss_kb"] / 1024, "", 0)),
            ("chunks in repository", lambda t: fmt(t.get("chunks"))),
            ("RAM bytes/chunk (est.)", lambda t: fmt(t.get("ram_bytes_per_chunk_est"), "", 0)),
            ("dedup table bytes/chunk (reported)",
             lambda t: fmt((t.get("tool_stats") or {}).get("dedup_bytes_per_blob"), "", 1)),
        ]
        ratio_of = {"full backup MB/s": "full_MB_per_s", "incremental MB/s (median)": "incremental_MB_per_s",
                    "restore latest MB/s": "restore_MB_per_s", "unchanged-tree files/s": "unchanged_files_per_s",
                    "peak RSS full backup MiB": "full_peak_rss_kb"}
        others = [n for n in names if n != "ebas"]
        header = ["metric", *names] + ([f"ebas/{o}" for o in others] if "ebas" in names else [])
        body = []
        for label, f in rows:
            cells = [label]
            for n in names:
                try:
                    cells.append(f(ds["tools"][n]))
                except (KeyError, TypeError):
                    cells.append("-")
            if "ebas" in names:
                for o in others:
                    m = ratio_of.get(label)
                    ratio = ds["comparison"].get(f"ebas_vs_{o}", {}).get(m, {}).get("ratio") if m else None
                    cells.append(fmt(ratio, "x", 2))
            body.append(cells)
        for key, b in ds["baseline"].items():
            body.append([f"baseline {key.replace('_', ' ')} MB/s", fmt(b["MB_per_s"])] + [""] * (len(header) - 2))
        widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
        for r in [header, ["-" * w for w in widths], *body]:
            lines.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))))
        for n in names:
            if ds["tools"][n].get("error"):
                lines.append(f"!! {n}: {ds['tools'][n]['error']}")
        checks = ds["comparison"].get("checks")
        if checks:
            note = "" if ds["comparison"].get("checks_meaningful") else \
                "  (targets are defined for --scale 1 --days 30; indicative only here)"
            lines.append("checks: " + ", ".join(f"{k}={fmt(v)}" for k, v in checks.items()) + note)
    return "\n".join(lines)


def parse_chunker(s: str | None) -> dict[str, int] | None:
    if not s:
        return None
    lo, avg, hi = (int(x) for x in s.split(","))
    return {"min": lo, "avg": avg, "max": hi}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fileshare,vmimage", help="comma list: fileshare, vmimage")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tools", default="ebas,restic", help="comma list: ebas, restic, borg")
    p.add_argument("--workdir", type=Path, default=HERE / "data" / "run")
    p.add_argument("--repeat", type=int, default=1, help="repeats of the full backup, restores, tar, unchanged backup")
    p.add_argument("--early-day", type=int, default=1, help="the early generation to restore")
    p.add_argument("--ebas-cmd", default=str(tools.VENV_EBAS), help="command line for ebas")
    p.add_argument("--ebas-chunker", help="MIN,AVG,MAX passed to ebas init --chunker-*")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--keep", action="store_true", help="keep sources and repositories afterwards")
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    args.ebas_cmd = shlex.split(args.ebas_cmd)
    args.ebas_chunker = parse_chunker(args.ebas_chunker)

    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    skipped = [t for t in wanted if not tools.available(t, args.ebas_cmd)]
    for t in skipped:
        log(f"!! {t} is not available; skipped")
    names = [t for t in wanted if t not in skipped]
    if not names:
        log("no tool to run")
        return 2

    doc = {"benchmark": "bench_backup", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "tool_versions": {n: tools.make_tool(n, args.workdir / "x", args.ebas_cmd).version() for n in names},
           "skipped_tools": skipped, "datasets": {}}
    t0 = time.perf_counter()
    for kind in [d.strip() for d in args.dataset.split(",") if d.strip()]:
        doc["datasets"][kind] = bench_dataset(kind, args, names)
    doc["wall_seconds"] = time.perf_counter() - t0
    log(table(doc))
    text = json.dumps(doc, indent=1, default=str)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
        log(f"JSON written to {args.json_out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
