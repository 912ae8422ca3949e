"""Deterministic benchmark data sets: a file share and a VM disk image.

Both are seeded and evolve through daily generations in place:

    share = FileShare("bench/data/share", seed=1, scale=0.05)
    share.generate()              # generation 0
    for day in range(1, 31):
        share.advance(day)        # generation `day`, seeded by (seed, day)

Generation ``d`` depends only on the seed, the parameters and the days applied
before it, so two runs with the same arguments produce bit-identical trees
(with the same numpy version).  ``manifest(root)`` gives {relpath: sha256} to
verify a restore bit for bit.  See BENCHMARKS.md for what the data looks like.

CLI::

    python bench/datasets.py fileshare DIR [--seed 1] [--scale 0.05] [--days 30]
    python bench/datasets.py vmimage FILE [--seed 1] [--scale 0.05] [--days 30]
    python bench/datasets.py manifest PATH
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

try:
    from . import datagen
except ImportError:  # run as a script or with bench/ on sys.path
    import datagen

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
BLOCK = 4 * KiB

# --- the file share -----------------------------------------------------------

TEXT_EXT = {".py": "code", ".c": "code", ".h": "code", ".js": "code", ".go": "code",
            ".java": "code", ".sh": "code", ".yaml": "code", ".log": "log",
            ".csv": "csv", ".tsv": "csv", ".txt": "prose", ".md": "prose",
            ".html": "prose", ".xml": "prose", ".json": "prose"}
BINARY_EXT = (".jpg", ".png", ".zip", ".gz", ".mp4", ".docx", ".xlsx", ".7z")
SEMI_EXT = (".pdf", ".db", ".sqlite", ".wav", ".bmp", ".tif", ".dat")
SMALL_TEXT_EXT = (".py", ".py", ".c", ".h", ".js", ".go", ".java", ".sh", ".yaml",
                  ".txt", ".md", ".md", ".html", ".xml", ".json", ".log", ".csv")
LARGE_TEXT_EXT = (".log", ".log", ".csv", ".tsv", ".json", ".xml", ".txt")
BYTE_MIX = {"text": 0.6, "binary": 0.3, "semi": 0.1}

_TOP = ("Engineering", "Finance", "Legal", "Marketing", "Sales", "HR", "Operations",
        "Research", "Support", "IT", "Shared", "Projects", "Archive", "Design")
_SUB = ("src", "docs", "reports", "data", "logs", "assets", "images", "backup",
        "old", "build", "config", "scripts", "tests", "meetings", "contracts",
        "invoices", "presentations", "drafts", "final", "templates", "exports",
        "2019", "2020", "2021", "2022", "2023", "2024", "Q1", "Q2", "Q3", "Q4",
        "Meeting Notes", "Customer Files", "Präsentationen", "résumés", "misc")
_USERS = ("jsmith", "mmüller", "akowalski", "lrossi", "tnguyen", "sgarcia", "kchen", "opetrov")
_RENAME_SUFFIX = (" (old)", "_archived", "-2024", " - Copy", "_v2", ".bak")


class FileShare:
    """A ~10,000-file / ~1 GiB office-and-engineering file share (times ``scale``).

    Sizes are log-normal (median ~15 KB, mean ~100 KiB, a few files of 10-50 MB);
    ~60% of bytes text-like, ~30% incompressible, ~10% semi-compressible; files
    sit at depth 2-6 in a tree of department/project/year folders.
    """

    size_sigma = 2.0  # of the log-normal file sizes
    edit_fraction = 0.02
    new_fraction = 0.005
    delete_fraction = 0.003
    rename_every = 7

    def __init__(self, root: str | os.PathLike, seed: int = 1, files: int = 10_000,
                 total_bytes: int = GiB, scale: float = 1.0) -> None:
        self.root = Path(root)
        self.seed = seed
        self.files = max(20, round(files * scale))
        self.total_bytes = max(64 * KiB, int(total_bytes * scale))
        self.max_file = int(min(50 * MiB, max(256 * KiB, self.total_bytes / 20)))
        self._text: datagen.TextSource | None = None
        self._size_k: float | None = None

    # -- public -----------------------------------------------------------------

    def generate(self, overwrite: bool = False) -> dict:
        """Write generation 0.  Refuses a non-empty root unless ``overwrite``."""
        _prepare_root(self.root, overwrite)
        rng = datagen.rng_for(self.seed, "share-gen0")
        dirs = self._make_tree(rng)
        sizes = self._initial_sizes()
        kinds = _assign_kinds(rng, sizes)
        popularity = rng.lognormal(0.0, 1.0, len(dirs))
        popularity /= popularity.sum()
        where = rng.choice(len(dirs), size=len(sizes), p=popularity)
        taken: set[str] = set()
        for size, kind, d in zip(sizes.tolist(), kinds, where.tolist()):
            rel = self._new_file_name(rng, dirs[d], kind, size, taken)
            taken.add(rel)
            self._write_new(rng, self.root / rel, kind, size)
        return tree_stats(self.root)

    def advance(self, day: int) -> dict:
        """Mutate the tree into generation ``day`` (seeded by (seed, day))."""
        if day < 1:
            raise ValueError("day must be >= 1 (generation 0 is generate())")
        rng = datagen.rng_for(self.seed, "share-day", day)
        files = _list_files(self.root)
        n = len(files)
        n_edit = max(1, round(n * self.edit_fraction))
        n_del = max(1, round(n * self.delete_fraction))
        n_new = max(1, round(n * self.new_fraction))
        order = rng.permutation(n).tolist()
        counts = {"edited": 0, "inserted": 0, "overwritten": 0, "appended": 0,
                  "deleted": 0, "new": 0, "renamed_dirs": 0}
        for i in order[:n_edit]:
            op = self._edit(rng, self.root / files[i])
            counts[op] += 1
            counts["edited"] += 1
        for i in order[n_edit:n_edit + n_del]:
            (self.root / files[i]).unlink()
            counts["deleted"] += 1
        dirs = _list_dirs(self.root, min_depth=2)
        taken = set(files)
        for _ in range(n_new):
            size = int(self._draw_sizes(rng, 1)[0])
            kind = str(rng.choice(list(BYTE_MIX), p=list(BYTE_MIX.values())))
            d = dirs[int(rng.integers(0, len(dirs)))]
            rel = self._new_file_name(rng, d, kind, size, taken)
            taken.add(rel)
            self._write_new(rng, self.root / rel, kind, size)
            counts["new"] += 1
        if day % self.rename_every == 0:
            counts["renamed_dirs"] += self._rename_dir(rng)
        return counts | tree_stats(self.root)

    # -- tree and names -------------------------------------------------------------

    def _make_tree(self, rng: np.random.Generator) -> list[str]:
        """Directories (relpaths) that may hold files: depth 2..6."""
        n_dirs = max(6, self.files // 12)
        n_top = int(min(len(_TOP), max(3, n_dirs // 40)))
        tops = [str(x) for x in rng.choice(_TOP, n_top, replace=False)]
        depth = {t: 1 for t in tops}
        weight_by_depth = {1: 3.0, 2: 3.0, 3: 2.0, 4: 1.0, 5: 0.5}
        while len(depth) < n_dirs + n_top:
            cands = list(depth)
            w = np.array([weight_by_depth.get(depth[c], 0.0) for c in cands])
            parent = cands[int(rng.choice(len(cands), p=w / w.sum()))]
            name = self._dir_name(rng, depth[parent])
            child = _unique(f"{parent}/{name}", depth)
            depth[child] = depth[parent] + 1
        for d in depth:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        return sorted(d for d, k in depth.items() if k >= 2)

    def _dir_name(self, rng: np.random.Generator, parent_depth: int) -> str:
        w = self.text.words
        r = rng.random()
        if parent_depth == 1 and r < 0.3:
            return f"project-{w[int(rng.integers(0, 400))]}"
        if parent_depth == 1 and r < 0.45:
            return _USERS[int(rng.integers(0, len(_USERS)))]
        if r < 0.75:
            return _SUB[int(rng.integers(0, len(_SUB)))]
        return f"{w[int(rng.integers(0, 800))]}_{w[int(rng.integers(0, 800))]}"

    def _new_file_name(self, rng: np.random.Generator, d: str, kind: str,
                       size: int, taken: set[str]) -> str:
        if kind == "text":
            pool = LARGE_TEXT_EXT if size > 2 * MiB else SMALL_TEXT_EXT
        else:
            pool = BINARY_EXT if kind == "binary" else SEMI_EXT
        ext = pool[int(rng.integers(0, len(pool)))]
        w = self.text.words
        a, b = (w[int(i)] for i in rng.integers(0, 1500, 2))
        form = int(rng.integers(0, 5))
        if ext in (".jpg", ".png", ".mp4"):
            stem = f"IMG_{int(rng.integers(0, 10000)):04d}"
        elif form == 0:
            stem = f"{a}_{b}"
        elif form == 1:
            stem = f"{a}-{int(rng.integers(2015, 2025))}-{int(rng.integers(1, 13)):02d}"
        elif form == 2:
            stem = f"{a.capitalize()} {b}"
        else:
            stem = f"{a}{b}"
        return _unique(f"{d}/{stem}{ext}", taken)

    def _rename_dir(self, rng: np.random.Generator) -> int:
        cands = [d for d in _list_dirs(self.root, min_depth=2) if d.count("/") <= 3]
        if not cands:
            return 0
        src = cands[int(rng.integers(0, len(cands)))]
        parent, _, name = src.rpartition("/")
        if rng.random() < 0.5:
            new = name + _RENAME_SUFFIX[int(rng.integers(0, len(_RENAME_SUFFIX)))]
        else:
            new = self._dir_name(rng, parent.count("/") + 1)
        existing = {p.name for p in (self.root / parent).iterdir()}
        new = _unique(new, existing)
        (self.root / src).rename(self.root / parent / new)
        return 1

    # -- content ------------------------------------------------------------------

    @property
    def text(self) -> datagen.TextSource:
        if self._text is None:
            self._text = datagen.TextSource(self.seed)
        return self._text

    def _content(self, rng: np.random.Generator, kind: str, n: int, ext: str = "") -> bytes:
        if kind == "text":
            return self.text.text(rng, n, TEXT_EXT.get(ext, "prose"))
        if kind == "semi":
            return datagen.semi_bytes(rng, n)
        return datagen.random_bytes(rng, n)

    def _write_new(self, rng: np.random.Generator, path: Path, kind: str, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left > 0:  # bounded memory for the 50 MB files
                piece = min(left, 16 * MiB)
                f.write(self._content(rng, kind, piece, path.suffix))
                left -= piece

    def _edit(self, rng: np.random.Generator, path: Path) -> str:
        kind = kind_of(path)
        size = path.stat().st_size
        r = rng.random()
        if kind == "text":
            op = "appended" if r < 0.4 else "inserted" if r < 0.7 else "overwritten"
        else:
            op = "overwritten" if r < 0.5 else "inserted" if r < 0.8 else "appended"
        if size < 64 and op != "appended":
            op = "appended"
        hi = max(32, min(256 * KiB, size // 4))
        n = int(np.exp(rng.uniform(np.log(16), np.log(hi))))
        data = self._content(rng, kind, n, path.suffix)
        if op == "appended":
            with open(path, "ab") as f:
                f.write(data)
            return op
        off = int(rng.integers(0, max(1, size - n)))
        with open(path, "r+b") as f:
            if op == "overwritten":
                f.seek(off)
                f.write(data[: size - off])
            else:
                f.seek(off)
                tail = f.read()
                f.seek(off)
                f.write(data + tail)
        return op

    # -- sizes ------------------------------------------------------------------------

    def _initial_sizes(self) -> np.ndarray:
        rng = datagen.rng_for(self.seed, "share-sizes")
        return self._draw_sizes(rng, self.files)

    def _draw_sizes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.lognormal(0.0, self.size_sigma, n)
        empty = rng.random(n) < 0.005
        sizes = np.clip(z * self.size_k, 16, self.max_file).astype(np.int64)
        sizes[empty] = 0
        return sizes

    @property
    def size_k(self) -> float:
        """Scale of the log-normal so that generation 0 totals ``total_bytes``."""
        if self._size_k is None:
            z = datagen.rng_for(self.seed, "share-sizes").lognormal(0.0, self.size_sigma, self.files)
            lo, hi = 1.0, float(self.total_bytes)
            for _ in range(100):
                mid = (lo * hi) ** 0.5
                if np.clip(z * mid, 16, self.max_file).sum() < self.total_bytes:
                    lo = mid
                else:
                    hi = mid
            self._size_k = lo
        return self._size_k


class OfficeShare(FileShare):
    """The office share users compared memory on: 20,000 files, 1.6 GB (times ``scale``).

    File sizes are log-normal around a fixed median (~22 KB; 90th percentile ~125 KB,
    99th ~500 KB), and a few large files (2-40 MB, log-uniform) make up the rest of the
    bytes, as presentations, videos and archives do on a real share. Content, names and
    the folder tree are :class:`FileShare`'s.
    """

    size_sigma = 1.33
    large_range = (2 * MiB, 40 * MiB)

    def __init__(self, root: str | os.PathLike, seed: int = 1, files: int = 20_000,
                 total_bytes: int = 1_600_000_000, scale: float = 1.0, median_bytes: int = 22_000) -> None:
        super().__init__(root, seed=seed, files=files, total_bytes=total_bytes, scale=scale)
        self.median_bytes = median_bytes

    @property
    def size_k(self) -> float:
        return float(self.median_bytes)

    def _initial_sizes(self) -> np.ndarray:
        rng = datagen.rng_for(self.seed, "office-sizes")
        sizes = self._draw_sizes(rng, self.files)
        need = self.total_bytes - int(sizes.sum())
        lo, hi = self.large_range
        slots = rng.permutation(self.files).tolist()
        for slot in slots[: max(1, self.files // 100)]:
            if need <= lo // 2:
                break
            big = min(need + int(sizes[slot]), int(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
            need -= big - int(sizes[slot])
            sizes[slot] = big
        return sizes


def kind_of(path: Path) -> str:
    ext = path.suffix
    if ext in TEXT_EXT:
        return "text"
    return "semi" if ext in SEMI_EXT else "binary"


def _assign_kinds(rng: np.random.Generator, sizes: np.ndarray) -> list[str]:
    """Kinds so that bytes split ~BYTE_MIX; the largest files are placed first."""
    names = list(BYTE_MIX)
    target = np.array([BYTE_MIX[k] for k in names])
    have = np.zeros(len(names))
    kinds = [""] * len(sizes)
    for i in np.argsort(-sizes, kind="stable").tolist():
        s = float(sizes[i])
        deficit = np.maximum(target * (have.sum() + s) - have, 0) + 1e-9 + target * 1e-3 * s
        j = int(rng.choice(len(names), p=deficit / deficit.sum()))
        have[j] += s
        kinds[i] = names[j]
    return kinds


# --- the VM image ----------------------------------------------------------------

class VmImage:
    """A 1 GiB (times ``scale``) disk image of 4 KiB blocks.

    Extents of zeros (~25%, written as holes), filesystem-ish text (~35%),
    random data (~30%) and semi-compressible data (~10%).  Each day ~1% of the
    blocks are rewritten, half as scattered single blocks and half as clustered
    runs of 8-64 blocks; every third day 1-16 MiB (times ``scale``) are appended.
    """

    rewrite_fraction = 0.01
    append_every = 3
    extent_mix = {"zero": 0.25, "text": 0.35, "random": 0.30, "semi": 0.10}
    write_mix = {"text": 0.45, "random": 0.35, "semi": 0.10, "zero": 0.10}

    def __init__(self, path: str | os.PathLike, seed: int = 1, size: int = GiB,
                 scale: float = 1.0) -> None:
        self.path = Path(path)
        self.seed = seed
        self.scale = scale
        self.size = max(64 * BLOCK, int(size * scale) // BLOCK * BLOCK)
        self._text: datagen.TextSource | None = None

    @property
    def text(self) -> datagen.TextSource:
        if self._text is None:
            self._text = datagen.TextSource(self.seed)
        return self._text

    def generate(self, overwrite: bool = False) -> dict:
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists (pass overwrite=True / --force)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rng = datagen.rng_for(self.seed, "vm-gen0")
        max_extent = max(16 * BLOCK, min(32 * MiB, self.size // 16))
        with open(self.path, "wb") as f:
            f.truncate(self.size)
            pos = 0
            while pos < self.size:
                n = int(np.clip(rng.lognormal(np.log(MiB), 1.2), 16 * KiB, max_extent))
                n = min(self.size - pos, max(BLOCK, n // BLOCK * BLOCK))
                kind = _pick(rng, self.extent_mix)
                if kind != "zero":
                    f.seek(pos)
                    f.write(self._content(rng, kind, n))
                pos += n
        return tree_stats(self.path)

    def advance(self, day: int) -> dict:
        if day < 1:
            raise ValueError("day must be >= 1 (generation 0 is generate())")
        rng = datagen.rng_for(self.seed, "vm-day", day)
        nblocks = self.path.stat().st_size // BLOCK
        budget = max(2, round(nblocks * self.rewrite_fraction))
        singles, runs, written = budget // 2, 0, 0
        fd = os.open(self.path, os.O_RDWR)
        try:
            for b in rng.integers(0, nblocks, singles).tolist():
                os.pwrite(fd, self._content(rng, _pick(rng, self.write_mix), BLOCK), b * BLOCK)
            written = singles
            while written < budget:
                run = min(int(rng.integers(8, 65)), budget - written, nblocks)
                start = int(rng.integers(0, nblocks - run + 1))
                os.pwrite(fd, self._content(rng, _pick(rng, self.write_mix), run * BLOCK),
                          start * BLOCK)
                written += run
                runs += 1
            appended = 0
            if day % self.append_every == 0:
                appended = max(16 * BLOCK, int(rng.integers(1, 17) * MiB * self.scale)) // BLOCK * BLOCK
                end = nblocks * BLOCK
                pos = 0
                while pos < appended:
                    n = min(appended - pos, max(BLOCK, int(rng.integers(1, 257)) * BLOCK))
                    os.pwrite(fd, self._content(rng, _pick(rng, self.extent_mix), n), end + pos)
                    pos += n
        finally:
            os.close(fd)
        return {"rewritten_blocks": written, "single_blocks": singles, "runs": runs,
                "appended_bytes": appended} | tree_stats(self.path)

    def _content(self, rng: np.random.Generator, kind: str, n: int) -> bytes:
        if kind == "zero":
            return bytes(n)
        if kind == "text":
            flavour = datagen.TEXT_FLAVOURS[int(rng.integers(0, len(datagen.TEXT_FLAVOURS)))]
            return self.text.text(rng, n, flavour)
        if kind == "semi":
            return datagen.semi_bytes(rng, n)
        return datagen.random_bytes(rng, n)


def _pick(rng: np.random.Generator, mix: dict[str, float]) -> str:
    r = rng.random()
    for k, p in mix.items():
        r -= p
        if r < 0:
            return k
    return k


# --- helpers shared by both ----------------------------------------------------------

def manifest(root: str | os.PathLike) -> dict[str, str]:
    """{relpath: sha256 hex} of every regular file under root (or of one file)."""
    root = Path(root)
    if root.is_file():
        return {root.name: _sha256(root)}
    return {rel: _sha256(root / rel) for rel in _list_files(root)}


def tree_stats(root: str | os.PathLike) -> dict:
    """{"files": n, "bytes": apparent size} of a file or a tree."""
    root = Path(root)
    if root.is_file():
        return {"files": 1, "bytes": root.stat().st_size}
    n = total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            n += 1
            total += st.st_size
    return {"files": n, "bytes": total}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _list_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(names):
            out.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return sorted(out)


def _list_dirs(root: Path, min_depth: int = 1) -> list[str]:
    out = []
    for dirpath, dirs, _names in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        if rel != "." and rel.count("/") + 1 >= min_depth:
            out.append(rel)
    return sorted(out)


def _unique(name: str, taken) -> str:
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".") if "." in name.rsplit("/", 1)[-1] else (name, "", "")
    i = 2
    while f"{stem} ({i}){dot}{ext}" in taken:
        i += 1
    return f"{stem} ({i}){dot}{ext}"


def _prepare_root(root: Path, overwrite: bool) -> None:
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty (pass overwrite=True / --force)")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


# --- CLI ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("fileshare", "vmimage"):
        s = sub.add_parser(name, help=f"generate the {name} data set and advance it")
        s.add_argument("path")
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--scale", type=float, default=1.0)
        s.add_argument("--days", type=int, default=0, help="advance through days 1..N after generating")
        s.add_argument("--only-day", type=int, help="do not generate; apply just this day to an existing data set")
        s.add_argument("--force", action="store_true", help="replace an existing data set")
    m = sub.add_parser("manifest", help="print {relpath: sha256} as JSON")
    m.add_argument("path")
    args = p.parse_args(argv)

    if args.cmd == "manifest":
        json.dump(manifest(args.path), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    ds = (FileShare if args.cmd == "fileshare" else VmImage)(args.path, seed=args.seed, scale=args.scale)
    days = [args.only_day] if args.only_day else list(range(1, args.days + 1))
    if not args.only_day:
        t0 = time.perf_counter()
        info = ds.generate(overwrite=args.force)
        _report(0, info, time.perf_counter() - t0)
    for day in days:
        t0 = time.perf_counter()
        info = ds.advance(day)
        _report(day, info, time.perf_counter() - t0)
    return 0


def _report(day: int, info: dict, seconds: float) -> None:
    mbps = info["bytes"] / 1e6 / seconds if day == 0 and seconds > 0 else None
    print(json.dumps({"day": day, "seconds": round(seconds, 3), "MB_per_s": mbps and round(mbps, 1)} | info),
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
