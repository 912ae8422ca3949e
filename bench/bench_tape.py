"""Export of a snapshot to a (virtual) tape library and restore from it, beside baselines.

    .venv/bin/python bench/bench_tape.py [--scale 0.5] [--repeat 5] [--capacity 128MiB]
                                         [--workdir DIR] [--json-out bench/out/tape.json]

A seeded file share (``bench/datasets.py`` FileShare, ``--scale`` x ~1 GiB) is backed
up into a local repository once. Then, ``--repeat`` times (medians reported):

* ``export tape``: ``ebas export latest --to tape://...`` into a fresh virtual library
  of ``--capacity`` cartridges (several, so the export spans volumes), fsync on;
* ``export dir`` (baseline): the same export into a local directory;
* ``restore tape``: ``ebas --repo tape://... restore latest`` (recall of the repository
  into a staging directory, each cartridge once, then restore from it);
* ``restore local`` (baseline): ``ebas --repo LOCAL restore latest``;
* ``cp -a`` (reference): a plain copy of the source tree.

MB/s are source bytes (the file share's logical size, 10^6 bytes per MB) per second of
wall time of the whole command (key opening with the KDF included, as a user sees it);
``sync`` runs before each timed command, so none pays for the previous one's write-back.
Loads come from the library's mount log; the run fails unless the export and every
restore loaded each cartridge once, in order. The first restore from tape is compared file
by file (SHA-256) with the source. Page cache is warm: the source and repository were
just written. Prints a table on stderr and JSON on stdout (or ``--json-out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import datasets  # noqa: E402
import tools  # noqa: E402

from ebas.storage.backends._cloud import as_size  # noqa: E402
from ebas.storage.backends.tape import read_mount_log  # noqa: E402


def ebas(env: dict, *args: str) -> tools.Run:
    os.sync()  # no operation pays for the write-back of the previous one
    return tools.run([str(tools.VENV_EBAS), *args], env=env).check()


def mounts(lib: Path) -> list[str]:
    return [m["barcode"] for m in read_mount_log(str(lib))]


def one_round(i: int, work: Path, src: Path, repo: Path, env: dict, capacity: int, volumes: int,
              verify: bool) -> dict:
    lib = work / f"vtl-{i}"
    url = f"tape://{lib}?volumes={volumes}&slots={volumes}&capacity={capacity}"
    row: dict = {}
    r = ebas(env, "--repo", str(repo), "export", "latest", "--to", url, "--json")
    row["export_tape_s"], row["export_tape_rss_kb"] = r.seconds, r.peak_rss_kb
    row["export_loads"] = mounts(lib)
    row["tape_bytes"] = tools.apparent_size(lib / "cartridges")
    plain = work / f"export-dir-{i}"
    row["export_dir_s"] = ebas(env, "--repo", str(repo), "export", "latest", "--to", str(plain), "--json").seconds
    tools.remove_tree(plain)

    before = len(mounts(lib))
    in_drive = (json.loads((lib / "library.json").read_text()).get("drive") or {}).get("barcode")
    used = list(dict.fromkeys(row["export_loads"]))  # cartridges in the order they were written
    row["expected_restore_loads"] = used[1:] if used and in_drive == used[0] else used  # no move if already in
    target = work / f"restore-tape-{i}"
    r = ebas(env, "--repo", f"tape://{lib}", "restore", "latest", "-t", str(target), "--json")
    report = json.loads(r.stdout)
    row["restore_tape_s"], row["restore_tape_rss_kb"] = r.seconds, r.peak_rss_kb
    row["restore_loads"] = mounts(lib)[before:]
    row["recalled_bytes"] = report["recalled"]["bytes"]
    if verify:
        restored = target / str(src.resolve()).lstrip("/")
        row["verified"] = datasets.manifest(restored) == datasets.manifest(src)
    tools.remove_tree(target)

    target = work / f"restore-local-{i}"
    row["restore_local_s"] = ebas(env, "--repo", str(repo), "restore", "latest", "-t", str(target)).seconds
    tools.remove_tree(target)
    copy = work / f"cp-{i}"
    os.sync()
    row["cp_s"] = tools.run(["cp", "-a", str(src), str(copy)]).check().seconds
    tools.remove_tree(copy)
    tools.remove_tree(lib)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=0.5, help="file share size, x ~1 GiB")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--capacity", default="128MiB", help="bytes per virtual cartridge")
    p.add_argument("--workdir", type=Path, default=HERE / "data" / "tape")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the source and the local repository")
    args = p.parse_args(argv)

    work = args.workdir.resolve()
    if work.exists():
        tools.remove_tree(work)
    work.mkdir(parents=True)
    env = os.environ | {"EBAS_PASSWORD": tools.DEFAULT_PASSWORD, "XDG_CACHE_HOME": str(work / "cache")}
    src, repo = work / "share", work / "repo"
    print(f"generating the file share (scale {args.scale}) ...", file=sys.stderr)
    info = datasets.FileShare(src, seed=args.seed, scale=args.scale).generate()
    logical = tools.apparent_size(src)
    ebas(env, "--repo", str(repo), "init")
    backup = ebas(env, "--repo", str(repo), "backup", str(src), "--json")
    stored = tools.apparent_size(repo / "data")
    capacity = as_size(args.capacity)
    volumes = math.ceil(stored * 1.1 / capacity) + 2

    rows = []
    for i in range(args.repeat):
        print(f"round {i + 1}/{args.repeat} ...", file=sys.stderr)
        rows.append(one_round(i, work, src, repo, env, capacity, volumes, verify=i == 0))

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    mb = logical / 1e6
    ops = [("export to tape", "export_tape_s", "export_dir_s"), ("export to a directory", "export_dir_s", None),
           ("restore from tape", "restore_tape_s", "restore_local_s"),
           ("restore from the local repository", "restore_local_s", None), ("cp -a of the tree", "cp_s", None)]
    table = []
    for label, key, base in ops:
        entry = {"op": label, "median_s": round(med(key), 2), "mb_per_s": round(mb / med(key), 1),
                 "all_s": [round(r[key], 2) for r in rows]}
        if base:
            entry["ratio_to_baseline"] = round(med(base) / med(key), 2)
            entry["baseline"] = base.removesuffix("_s")
        entry["ratio_to_cp"] = round(med("cp_s") / med(key), 2)
        table.append(entry)
    result = {
        "benchmark": "tape export and restore",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "dataset": {"kind": "fileshare", "scale": args.scale, "seed": args.seed, "files": info.get("files"),
                    "logical_bytes": logical, "repository_pack_bytes": stored},
        "backup_s": round(backup.seconds, 2),
        "library": {"capacity": capacity, "cartridges": volumes, "fsync": True},
        "repeat": args.repeat,
        "table": table,
        "export_loads": rows[0]["export_loads"],
        "restore_loads": [r["restore_loads"] for r in rows],
        "each_volume_once_in_order": all(r["restore_loads"] == r["expected_restore_loads"]
                                         and len(set(r["export_loads"])) == len(r["export_loads"]) for r in rows),
        "verified": rows[0].get("verified"),
        "tape_bytes": rows[0]["tape_bytes"],
        "recalled_bytes": rows[0]["recalled_bytes"],
        "peak_rss_mb": {"export_tape": round(max(r["export_tape_rss_kb"] for r in rows) / 1024, 1),
                        "restore_tape": round(max(r["restore_tape_rss_kb"] for r in rows) / 1024, 1)},
        "rounds": rows,
    }

    print(f"\nfile share: {info.get('files')} files, {logical / 1e6:.0f} MB; repository packs {stored / 1e6:.0f} MB; "
          f"{volumes} cartridges of {capacity / 2**20:.0f} MiB; median of {args.repeat}", file=sys.stderr)
    print(f"{'operation':<36}{'median s':>10}{'MB/s':>9}{'vs baseline':>13}{'vs cp -a':>10}", file=sys.stderr)
    for e in table:
        vs = f"{e['ratio_to_baseline']:.2f}x" if "ratio_to_baseline" in e else "-"
        print(f"{e['op']:<36}{e['median_s']:>10.2f}{e['mb_per_s']:>9.1f}{vs:>13}{e['ratio_to_cp']:>9.2f}x",
              file=sys.stderr)
    print(f"export loaded {result['export_loads']}; every restore loaded {result['restore_loads'][0]} "
          f"(each once, in order: {result['each_volume_once_in_order']}); restore verified: {result['verified']}",
          file=sys.stderr)

    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    else:
        print(text)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result["each_volume_once_in_order"] and result["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
