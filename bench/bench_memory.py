"""Memory benchmark: peak RSS of a first full backup, ebas beside restic (and borg), same run.

A new user's first test: back up an office share into a fresh repository and watch the
process's memory. Two mixes, generated on disk once and reused by later runs:

``office``  20,000 files, 1.6 GB: sizes log-normal (median ~22 KB, p90 ~125 KB, p99 ~500 KB)
            plus a few large files up to 40 MB (``datasets.OfficeShare``)
``many``    100,000 small files, 0.6 GB (median ~2 KB): memory must not grow with the
            file count

Each tool backs up each mix ``--runs`` times into a fresh repository (the repository and
its cache are deleted after each run); the tools alternate and the order rotates per run.
Peak RSS is GNU time's maximum resident set (``%M``) of the tool's process: ebas, restic
and borg each back up in one process, so that is the whole tree. Wall time and CPU time
(user + system) are recorded too.

    .venv/bin/python bench/bench_memory.py --workdir /var/tmp/ebas-memory --json-out bench/out/memory.json
    .venv/bin/python bench/bench_memory.py --mix office --scale 0.1 --runs 1     # smoke run

Prints a table on stderr and one JSON document (stdout, or ``--json-out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    from . import datasets, tools
    from .bench_backup import log, median, rotate
except ImportError:
    import datasets
    import tools
    from bench_backup import log, median, rotate

HERE = Path(__file__).resolve().parent
TARGET_RSS_RATIO = 1.2  # issue: peak RSS at most 1.2x restic's
BASELINE = "ebas-base"  # the ebas of --ebas-baseline, as a tool of its own

MIXES = {
    "office": {"files": 20_000, "total_bytes": 1_600_000_000, "median_bytes": 22_000},
    "many": {"files": 100_000, "total_bytes": 600_000_000, "median_bytes": 2_000},
}


def prepare(mix: str, root: Path, seed: int, scale: float) -> dict:
    """Generate the mix under root unless the same parameters were generated there before."""
    params = {"mix": mix, "seed": seed, "scale": scale} | MIXES[mix]
    marker = root.parent / f"{root.name}.params.json"
    if marker.exists() and root.is_dir() and json.loads(marker.read_text()).get("params") == params:
        info = json.loads(marker.read_text())["stats"]
        log(f"[{mix}] reusing {info['files']} files, {info['bytes'] / 1e6:.0f} MB in {root}")
        return info
    marker.unlink(missing_ok=True)
    kw = MIXES[mix]
    t0 = time.perf_counter()
    share = datasets.OfficeShare(root, seed=seed, files=kw["files"], total_bytes=kw["total_bytes"],
                                 scale=scale, median_bytes=kw["median_bytes"])
    info = share.generate(overwrite=True)
    os.sync()
    info["generate_seconds"] = round(time.perf_counter() - t0, 1)
    marker.write_text(json.dumps({"params": params, "stats": info}))
    log(f"[{mix}] generated {info['files']} files, {info['bytes'] / 1e6:.0f} MB in {info['generate_seconds']} s")
    return info


def fresh_tool(name: str, repo: Path, ebas_cmd: list[str], pythonpath: str | None = None) -> tools.Tool:
    """A tool on an empty repository at repo, its caches beside it (``<repo>.cache``).

    ebas keeps its catalog and dedup cache under ``XDG_CACHE_HOME``, restic its cache in
    ``RESTIC_CACHE_DIR``, borg under ``BORG_BASE_DIR``: all start empty, as for a new user.
    """
    for p in repo.parent.glob(repo.name + "*"):
        tools.remove_tree(p)
    tool = tools.make_tool("ebas" if name.startswith("ebas") else name, repo, ebas_cmd)
    if isinstance(tool, tools.Ebas):
        tool.name = name
        tool.extra_env = {"XDG_CACHE_HOME": str(repo.parent / f"{repo.name}.cache")}
        if pythonpath:
            tool.extra_env["PYTHONPATH"] = pythonpath
    tool.init()
    return tool


def backup_once(name: str, src: Path, repo: Path, ebas_cmd: list[str], pythonpath: str | None = None) -> dict:
    """One full backup into a fresh repository: seconds, cpu_seconds, peak_rss_kb."""
    tool = fresh_tool(name, repo, ebas_cmd, pythonpath)
    try:
        res = tool.backup(src)
    finally:
        for p in repo.parent.glob(repo.name + "*"):
            tools.remove_tree(p)
    return {k: res[k] for k in ("seconds", "cpu_seconds", "peak_rss_kb")}


def floor_runs(ebas_cmd: list[str], wd: Path, runs: int) -> dict:
    """ebas's fixed floor: peak RSS of ``ebas --help`` and of a backup of one tiny file."""
    helps = [tools.run([*ebas_cmd, "--help"]).check().peak_rss_kb for _ in range(runs)]
    tiny = wd / "tiny-src"
    tiny.mkdir(parents=True, exist_ok=True)
    (tiny / "hello.txt").write_text("hello\n")
    tinies = [backup_once("ebas", tiny, wd / "repos" / "tiny", ebas_cmd)["peak_rss_kb"] for _ in range(runs)]
    return {"help_peak_rss_kb": median(helps), "tiny_backup_peak_rss_kb": median(tinies)}


def summarize(runs: list[dict]) -> dict:
    return {"runs": len(runs), "seconds": median([r["seconds"] for r in runs]),
            "cpu_seconds": median([r["cpu_seconds"] for r in runs]),
            "peak_rss_kb": median([r["peak_rss_kb"] for r in runs]), "all": runs}


def bench_mix(mix: str, args, names: list[str]) -> dict:
    src = args.workdir / f"src-{mix}"
    info = prepare(mix, src, args.seed, args.scale)
    out: dict = {"mix": mix, "scale": args.scale, "data": info, "tools": {}}
    per: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(args.runs):
        for name in rotate(names, rep):
            pythonpath = args.ebas_baseline if name == BASELINE else None
            r = backup_once(name, src, args.workdir / "repos" / name, args.ebas_cmd, pythonpath)
            per[name].append(r)
            log(f"[{mix}] {name:6s} run {rep + 1}: {r['seconds']:6.2f} s wall, {r['cpu_seconds']:6.2f} s CPU, "
                f"peak RSS {r['peak_rss_kb'] / 1024:5.0f} MiB")
    for name in names:
        out["tools"][name] = summarize(per[name])
    if "ebas" in names:
        e = out["tools"]["ebas"]
        for other in names:
            if other != "ebas":
                o = out["tools"][other]
                out[f"ebas_vs_{other}"] = {k: e[k] / o[k] if o[k] else None
                                           for k in ("peak_rss_kb", "seconds", "cpu_seconds")}
        vs = out.get("ebas_vs_restic")
        if vs:
            out["rss_target_met"] = vs["peak_rss_kb"] <= TARGET_RSS_RATIO
    return out


def table(doc: dict) -> str:
    lines = []
    for m in doc["mixes"].values():
        d = m["data"]
        lines.append(f"\n== {m['mix']}: {d['files']} files, {d['bytes'] / 1e6:.0f} MB (scale {m['scale']})")
        lines.append(f"{'tool':8s} {'peak RSS MiB':>13s} {'wall s':>8s} {'CPU s':>8s}   (medians of {args_runs(m)})")
        for name, t in m["tools"].items():
            lines.append(f"{name:8s} {t['peak_rss_kb'] / 1024:13.0f} {t['seconds']:8.2f} {t['cpu_seconds']:8.2f}")
        for k, v in m.items():
            if k.startswith("ebas_vs_"):
                lines.append(f"{k.replace('_', ' ')}: RSS {v['peak_rss_kb']:.2f}x, wall {v['seconds']:.2f}x, "
                             f"CPU {v['cpu_seconds']:.2f}x")
        if "rss_target_met" in m:
            lines.append(f"peak RSS <= {TARGET_RSS_RATIO}x restic: {'yes' if m['rss_target_met'] else 'NO'}")
    f = doc.get("ebas_floor")
    if f:
        lines.append(f"\nebas floor: --help {f['help_peak_rss_kb'] / 1024:.0f} MiB, "
                     f"tiny backup {f['tiny_backup_peak_rss_kb'] / 1024:.0f} MiB")
    return "\n".join(lines)


def args_runs(m: dict) -> int:
    return next(iter(m["tools"].values()))["runs"]


def machine() -> dict:
    """What the figures were measured on."""
    def sh(cmd: str) -> str:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return r.stdout.strip()
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "free": sh("free -h"), "load": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mix", default="office,many", help="comma list: " + ", ".join(MIXES))
    p.add_argument("--runs", type=int, default=3, help="full backups per tool and mix (medians reported)")
    p.add_argument("--tools", default="ebas,restic", help="comma list: ebas, restic, borg")
    p.add_argument("--scale", type=float, default=1.0, help="times the files and bytes of each mix")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=HERE / "data" / "memory",
                   help="on disk, not tmpfs: sources (kept for reuse) and repositories")
    p.add_argument("--ebas-cmd", default=str(tools.VENV_EBAS))
    p.add_argument("--ebas-baseline", metavar="SRC_DIR",
                   help=f"also run ebas with PYTHONPATH=SRC_DIR (another checkout's src/) as tool {BASELINE!r}: "
                        "before/after figures from one run")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    args.workdir = args.workdir.resolve()
    args.ebas_cmd = shlex.split(args.ebas_cmd)
    if not tools.TIME_BIN:
        log("!! GNU time (/usr/bin/time) is needed for peak RSS")
        return 2
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    names = [t for t in wanted if tools.available(t, args.ebas_cmd)]
    skipped = sorted(set(wanted) - set(names))
    if args.ebas_baseline and "ebas" in names:
        names.insert(names.index("ebas") + 1, BASELINE)
    for t in skipped:
        log(f"!! {t} is not available; skipped")
    if not names:
        return 2
    (args.workdir / "repos").mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "bench_memory", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": machine(),
           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "tool_versions": {n: tools.make_tool(n, args.workdir / "x", args.ebas_cmd).version()
                             for n in names if n != BASELINE},
           "skipped_tools": skipped, "mixes": {}}
    t0 = time.perf_counter()
    if "ebas" in names:
        doc["ebas_floor"] = floor_runs(args.ebas_cmd, args.workdir, args.runs)
    for mix in [m.strip() for m in args.mix.split(",") if m.strip()]:
        doc["mixes"][mix] = bench_mix(mix, args, names)
    shutil.rmtree(args.workdir / "repos", ignore_errors=True)
    doc["wall_seconds"] = round(time.perf_counter() - t0, 1)
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
