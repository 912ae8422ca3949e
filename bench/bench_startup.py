"""Start-up latency: wall time of short ebas commands, beside ``python -c pass``.

    .venv/bin/python bench/bench_startup.py [--runs 11] [--repo DIR] [--json-out FILE]

Each command runs once to warm the page cache, then ``--runs`` times; the
median is the figure (min and max are recorded too).  Without ``--repo`` a
repository with one small snapshot is created in a temporary directory, so
``snapshots`` has something to list and must open the key (KDF included).
Target from the issue: ``ebas --help`` and ``ebas snapshots`` under 200 ms.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

try:
    from . import tools
except ImportError:
    import tools

TARGET_MS = 200.0


def measure(cmd: list[str], runs: int, env: dict[str, str]) -> dict:
    warm = tools.run(cmd, env=env)
    if warm.returncode != 0:
        return {"cmd": cmd, "error": f"exit {warm.returncode}: {warm.stderr.strip()[-500:]}"}
    ms = [tools.run(cmd, env=env).check().seconds * 1000 for _ in range(runs)]
    return {"cmd": cmd, "runs": runs, "median_ms": statistics.median(ms), "min_ms": min(ms),
            "max_ms": max(ms), "all_ms": [round(x, 2) for x in ms]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=11)
    p.add_argument("--repo", type=Path, help="existing repository for 'snapshots' (else a temporary one)")
    p.add_argument("--ebas-cmd", default=str(tools.VENV_EBAS))
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)
    ebas_cmd = shlex.split(args.ebas_cmd)
    python = str(Path(ebas_cmd[0]).parent / "python") if Path(ebas_cmd[0]).parent.joinpath("python").exists() \
        else sys.executable

    with tempfile.TemporaryDirectory(prefix="ebas-startup-") as tmp:
        tool = tools.Ebas(args.repo or Path(tmp) / "repo", ebas_cmd=ebas_cmd)
        if args.repo is None:
            src = Path(tmp) / "src"
            src.mkdir()
            (src / "hello.txt").write_text("hello\n")
            tool.init()
            tool.backup(src)
        env = tool.env()
        repo = str(tool.repo)
        results = {
            "python -c pass": measure([python, "-c", "pass"], args.runs, env),
            "ebas --help": measure([*ebas_cmd, "--help"], args.runs, env),
            "ebas --version": measure([*ebas_cmd, "--version"], args.runs, env),
            "ebas snapshots": measure([*ebas_cmd, "--repo", repo, "snapshots"], args.runs, env),
            "ebas snapshots --json": measure([*ebas_cmd, "--repo", repo, "snapshots", "--json"], args.runs, env),
        }
    checks = {k: results[k].get("median_ms", float("inf")) < TARGET_MS for k in ("ebas --help", "ebas snapshots")}
    doc = {"benchmark": "bench_startup", "target_ms": TARGET_MS, "python": python,
           "results": results, "checks": checks}

    base = results["python -c pass"].get("median_ms")
    rows = [("command", "median ms", "min ms", "max ms", "minus python")]
    for k, r in results.items():
        if "error" in r:
            rows.append((k, "error", "", "", r["error"][:60]))
            continue
        rows.append((k, f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}", f"{r['max_ms']:.1f}",
                     f"{r['median_ms'] - base:.1f}" if base is not None else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))),
              file=sys.stderr)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=sys.stderr)
    print("checks (< %.0f ms): " % TARGET_MS + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in checks.items()),
          file=sys.stderr)
    text = json.dumps(doc, indent=1)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
