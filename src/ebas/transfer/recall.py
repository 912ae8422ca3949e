"""Restore from a sequential store (tape): recall the repository first, in the store's order.

A restore through :class:`~ebas.repo.repository.Repository` reads the snapshot list
and the index, then trees and blobs with ranged reads in restore order, from several
threads. On a tape library that moves cartridges back and forth: the index and the
snapshot are written after the packs, the threads interleave, and each ranged read is
a locate on a loaded cartridge. So when the store says it has no random access
(``capabilities.random_access`` is False), :func:`staged` first *recalls* the
repository: every object except ``locks/`` is copied to a staging directory with
:meth:`Store.get_many`, which a tape store answers in tape order, loading each
cartridge once; the restore then reads the staged copy, and the staging directory is
removed afterwards.

The cost is disk space: the staging directory needs room for the repository's data
(an export holds only what its snapshot needs). It is made next to the restore target
by default (which must have room for the restored files anyway) or where the caller says.
Everything read from tape is still verified by the restore (blob ids and AEAD tags).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterator

from ebas.repo.repository import Repository
from ebas.storage.backends.file import FileStore

SKIP_PREFIXES = ("locks/",)


@dataclass
class Recalled:
    """What was copied from the sequential store, and where to."""

    staging: str
    objects: int = 0
    bytes: int = 0

    def to_json(self) -> dict:
        return {"staging": self.staging, "objects": self.objects, "bytes": self.bytes}


def needs_recall(repo: Repository) -> bool:
    """True if the repository's store reads sequentially (a tape library)."""
    return not repo.store.capabilities.random_access


@contextlib.contextmanager
def staged(repo: Repository, staging_dir: str | None = None, *,
           near: str = ".") -> Iterator[tuple[Repository, Recalled | None]]:
    """``(repository to read, what was recalled)``: ``repo`` itself when its store has
    random access, else a repository over a recalled copy in a new directory under
    ``staging_dir`` (default: the directory containing ``near``), removed on exit."""
    if not needs_recall(repo):
        yield repo, None
        return
    base = staging_dir or os.path.dirname(os.path.abspath(near)) or "."
    os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix=".ebas-recall-", dir=base)
    try:
        disk = FileStore(path, fsync=False)
        res = Recalled(path)
        names = [info.name for info in repo.store.list("") if not info.name.startswith(SKIP_PREFIXES)]
        for name, data in repo.store.get_many(names):
            disk.put(name, data)
            res.objects += 1
            res.bytes += len(data)
        yield Repository(disk, repo.config, repo.master, repo.key_id, clock=repo.clock, entropy=repo.entropy), res
    finally:
        shutil.rmtree(path, ignore_errors=True)
