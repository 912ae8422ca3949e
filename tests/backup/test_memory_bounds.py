"""A backup's memory does not grow with the number of files (beyond the dedup table's
28 bytes a blob), and its working buffers stay small (issue: peak RSS against restic's)."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import tracemalloc

import pytest

from ebas.backup.archiver import Archiver, BackupOptions
from ebas.repo import dedup as dedup_mod


def _share(root, n: int) -> None:
    """n incompressible 4 KiB files, 100 to a directory."""
    for i in range(n):
        d = root / f"d{i // 100:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}").write_bytes(os.urandom(4096))


def _backup_peak(repos, tmp_path, n: int) -> int:
    """Peak traced Python allocations (bytes) of a full backup of n files into a fresh repository."""
    src = tmp_path / f"src{n}"
    src.mkdir()
    _share(src, n)
    repo = repos.init(f"repo{n}")
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = Archiver(repo, BackupOptions(paths=[str(src)], level="full")).run()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert res.stats.files == n and not res.errors
    return peak


def test_backup_memory_does_not_grow_with_the_file_count(repos, tmp_path, monkeypatch):
    # merge the dedup table's pending additions early, as a large repository does, so that
    # what remains per file is the table's own 28 bytes a blob
    monkeypatch.setattr(dedup_mod, "MERGE_AT", 256)
    monkeypatch.setattr(dedup_mod, "MERGE_MIN", 256)
    small, large = 300, 2000
    p_small = _backup_peak(repos, tmp_path, small)
    p_large = _backup_peak(repos, tmp_path, large)
    per_file = (p_large - p_small) / (large - small)
    assert per_file < 250, f"{per_file:.0f} bytes kept per file"  # the code before: 400
    # read buffers sized to the file, packs built in place: no multi-MiB buffers for small files
    assert p_large < 8 << 20, f"peak {p_large / 2**20:.1f} MiB of Python allocations"


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_one_malloc_arena_unless_the_administrator_chose(tmp_path):
    code = "from ebas.backup import heap; print(heap.share_one_arena())"
    env = dict(os.environ)
    env.pop("MALLOC_ARENA_MAX", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    out = subprocess.run([sys.executable, "-c", code], env=env | {"MALLOC_ARENA_MAX": "4"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
