"""A local cache of the merged dedup table: memory-mapped ``.npy`` files.

Loading the dedup table reads, decrypts and merges every index segment (10 million
chunks: ~350 MB of segments, seconds of CPU). Segment names are hashes of their
contents, so the set of names listed under ``index/`` identifies the table exactly. The
cache keeps the merged arrays of the last table built, keyed by that set:

    <root>/<repository id>/<key>/{hi,lo,pack,off,len}.npy, packs.bin, meta.json

``meta.json`` holds the segment names the table was built from (``names``: every name
listed, superseded ones too; ``segments``: the ones in force), the entry count, a keyed
BLAKE3 of every file and ``mac``, a keyed BLAKE3 over the rest of ``meta.json``. The key
is derived from the repository's master key (:func:`ebas.repo.subkeys.dedup_cache_key`),
so a local user who can write the cache directory but has no repository key cannot make
an entry that claims a chunk is stored when it is not (a backup would skip that data).
Everything is verified on load; a cache that fails is reported through ``warn``,
deleted and rebuilt from the index segments. On open:

* the listing equals the cached names: the arrays are memory-mapped, no segment is read;
* the listing has *more* names (backups added segments): the cache is mapped and only the
  new segments are read and merged, unless one of them supersedes a cached segment (a
  prune or repair compacted the index): then the table is rebuilt from all segments;
* otherwise (a segment was deleted): rebuilt.

Only tables of at least ``EBAS_DEDUP_CACHE_MIN`` entries (default 1,000,000) are cached;
``EBAS_DEDUP_CACHE=off`` disables the cache, ``EBAS_DEDUP_CACHE=/path`` moves it (default
``~/.cache/ebas/dedup``). The cache holds blob-id prefixes (keyed hashes) and pack ids:
nothing that reveals content. It is derived data; deleting it only costs time.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import blake3
import numpy as np

from ebas.repo.dedup import DedupTable
from ebas.repo.privatefs import cache_home, open_private, private_dir

ARRAYS = ("hi", "lo", "pack", "off", "len")
VERSION = 2  # 2: keyed digests and a MAC over meta.json (version 1 caches are rebuilt)
_META_DOMAIN = b"ebas dedup cache meta\x00"


def cache_root() -> Path | None:
    """The cache directory, or None when disabled."""
    env = os.environ.get("EBAS_DEDUP_CACHE", "")
    if env.lower() in ("off", "0", "no", "none"):
        return None
    if env:
        return Path(env)
    return cache_home() / "dedup"


def min_entries() -> int:
    try:
        return int(os.environ.get("EBAS_DEDUP_CACHE_MIN", "1000000"))
    except ValueError:
        return 1_000_000


def _key(names: list[str]) -> str:
    return blake3.blake3("\n".join(sorted(names)).encode()).hexdigest()[:32]


def _digest(path: Path, key: bytes) -> str:
    h = blake3.blake3(key=key, max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return h.hexdigest()


def _meta_mac(meta: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in meta.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    return blake3.blake3(_META_DOMAIN + body.encode(), key=key).hexdigest()


class _Forged(ValueError):
    """The cache does not authenticate under the repository's key."""


class Cached:
    """A table loaded from the cache and the segment names it covers."""

    def __init__(self, table: DedupTable, names: set[str], segments: list[str]):
        self.table, self.names, self.segments = table, names, segments


def load(repo_id: str, names: list[str], key: bytes, warn: Callable[[str], None] | None = None) -> Cached | None:
    """The cached table whose names are all in ``names`` (exact or older), or None.

    ``key`` is the repository's cache key; a cache that does not authenticate under it is
    deleted and reported to ``warn`` (the caller then rebuilds the table from the index).
    """
    root = cache_root()
    if root is None:
        return None
    base = root / repo_id
    try:
        candidates = sorted(base.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    current = set(names)
    for d in candidates:
        if d.name.startswith(".tmp-"):
            continue
        try:
            meta = json.loads((d / "meta.json").read_text())
            if meta.get("version") != VERSION:
                raise ValueError("old cache format")
            if not isinstance(meta.get("mac"), str) or not hmac.compare_digest(meta["mac"], _meta_mac(meta, key)):
                raise _Forged("meta.json does not authenticate")
            if not set(meta["names"]) <= current:
                continue
            if set(meta["files"]) != {f"{a}.npy" for a in ARRAYS} | {"packs.bin"}:
                raise _Forged("unexpected files")
            for f, digest in meta["files"].items():
                if not hmac.compare_digest(_digest(d / f, key), digest):
                    raise _Forged(f"{f} does not authenticate")
            arrays = {a: np.load(d / f"{a}.npy", mmap_mode="r", allow_pickle=False) for a in ARRAYS}
            raw = (d / "packs.bin").read_bytes()
            packs = [raw[i : i + 32] for i in range(0, len(raw), 32)]
            if any(len(arrays[a]) != meta["entries"] for a in ARRAYS):
                raise ValueError("array lengths differ")
            for a in arrays.values():  # map every page now (a few ms): first-touch faults would
                int(a[:: max(1, 4096 // a.itemsize)].sum())  # otherwise land inside the lookups
            table = DedupTable.from_sorted(packs, arrays["hi"], arrays["lo"], arrays["pack"], arrays["off"],
                                           arrays["len"])
            return Cached(table, set(meta["names"]), list(meta["segments"]))
        except _Forged as exc:
            shutil.rmtree(d, ignore_errors=True)
            if warn is not None:
                warn(f"the local dedup cache {d} failed authentication ({exc}): it was changed by someone "
                     "without the repository key, or damaged; discarded, the dedup table is rebuilt from the index")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            shutil.rmtree(d, ignore_errors=True)  # damaged, foreign or old: rebuilt next time
    return None


def save(repo_id: str, names: list[str], segments: list[str], table: DedupTable, key: bytes) -> Path | None:
    """Store the table for these names (replacing older entries of the repository),
    authenticated with ``key`` (see :func:`load`)."""
    root = cache_root()
    if root is None or len(table) < min_entries():
        return None
    table.compact()
    base = root / repo_id
    final = base / _key(names)
    if final.exists():
        return final
    tmp = base / f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        private_dir(tmp)  # 0700 directories, 0600 files, whatever the umask
        arrays = dict(zip(ARRAYS, (table._hi, table._lo, table._pack, table._off, table._len)))
        digests = {}
        for a, arr in arrays.items():
            with open_private(tmp / f"{a}.npy") as fh:
                np.save(fh, np.ascontiguousarray(arr))
            digests[f"{a}.npy"] = _digest(tmp / f"{a}.npy", key)
        with open_private(tmp / "packs.bin") as fh:
            fh.write(b"".join(table.packs))
        digests["packs.bin"] = _digest(tmp / "packs.bin", key)
        meta = {"version": VERSION, "names": sorted(names), "segments": sorted(segments), "entries": len(table),
                "files": digests}
        meta["mac"] = _meta_mac(meta, key)
        with open_private(tmp / "meta.json") as fh:
            fh.write(json.dumps(meta).encode())
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    for old in base.iterdir():
        if old != final and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)
    return final
