"""Restore a snapshot (or parts of it) into a target directory.

Every blob is verified as it is read (``Repository.get_blob``). Every path is created
through :mod:`ebas.backup.fswrite`, which refuses names that would leave the target and
never follows a symlink, so a malicious or corrupt tree cannot write outside it.
Directory metadata (times especially) is applied after the directory's contents.
Hard links are restored as links; sparse files get their holes back.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ebas.backup.fswrite import TargetDir, apply_metadata, check_component
from ebas.backup.smallahead import SmallFilesAhead
from ebas.errors import IntegrityError, RestoreError
from ebas.repo.locks import reader_lock
from ebas.repo.tree import DIR, FILE, ID_LEN, SYMLINK, Node
from ebas.repo.treeahead import TreeAhead

BATCH = 64  # blobs fetched per task
MAX_PENDING = 4
SMALL_CHUNKS = 2  # files of at most this many chunks and SMALL_BYTES ...
SMALL_BYTES = 2 << 20
GROUP_FILES = 256  # ... are restored in groups: one fetch (a few ranged reads) per group
GROUP_BYTES = 8 << 20


@dataclass
class RestoreResult:
    """Counters and problems of one restore."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshot_id: str = ""  # set by the API: the snapshot restored
    recalled: object = None  # set by the API after a tape recall (``to_json()`` able)

    def to_json(self) -> dict:
        """Machine-readable form (``recalled`` only when a recall happened)."""
        out = dict(self.__dict__)
        if not self.snapshot_id:
            out.pop("snapshot_id")
        recalled = out.pop("recalled")
        if recalled is not None:
            out["recalled"] = recalled.to_json()
        return out


def split_path(path: str) -> list[bytes]:
    """Components of a snapshot path (``/home/u/x`` -> [b"home", b"u", b"x"])."""
    return [os.fsencode(c) for c in path.split("/") if c]


class Restorer:
    """Writes a snapshot's tree under ``target``; single use."""

    def __init__(self, repo, snapshot, target: str, *, includes: list[str] | None = None,
                 restore_owner: bool | None = None, workers: int = 2):
        self.repo = repo
        self.snapshot = snapshot
        self.target = target
        self.includes = [split_path(p) for p in (includes or [])]
        self.restore_owner = os.geteuid() == 0 if restore_owner is None else restore_owner
        self.workers = workers
        self.result = RestoreResult()
        self._lock = threading.Lock()
        self._links: dict[str, list[bytes]] = {}
        self._link_done: dict[str, Future] = {}
        self._matched = False  # some entry matched an include path (not only its parents)
        self.trees = TreeAhead(repo)  # trees below a directory are read ahead, level by level
        self.small: SmallFilesAhead | None = None

    def run(self) -> RestoreResult:
        """Restore and return the counters; raises on unsafe trees or corrupt data."""
        root_id = bytes.fromhex(self.snapshot.tree)
        with reader_lock(self.repo.locks(), f"restore {self.snapshot.id[:8]}"), \
                TargetDir.open_root(self.target, create=True) as root:
            self.root = root
            if not self.includes:  # small files of many directories per fetch
                self.small = SmallFilesAhead(self.repo, lambda t: self.trees.load(t, ahead=False), root_id,
                                             _is_small)
            with ThreadPoolExecutor(self.workers, thread_name_prefix="ebas-restore") as pool, \
                    ThreadPoolExecutor(self.workers, thread_name_prefix="ebas-fetch") as blob_pool:
                self.pool = pool
                self.blob_pool = blob_pool
                self._restore_dir(root, root_id, [])
        if self.includes and not self._matched:
            raise RestoreError("nothing in the snapshot matches the --include paths",
                               hint="check the paths with 'ebas ls SNAPSHOT'")
        return self.result

    def _wanted(self, comps: list[bytes]) -> tuple[bool, bool]:
        """(restore this entry?, restore everything below it?)"""
        if not self.includes:
            return True, True
        for inc in self.includes:
            if comps[: len(inc)] == inc:
                self._matched = True
                return True, True
            if inc[: len(comps)] == comps:
                return True, False
        return False, False

    def _restore_dir(self, tdir: TargetDir, tree_id: bytes, comps: list[bytes], everything: bool = False) -> None:
        nodes = self.trees.load(tree_id, ahead=everything or not self.includes)  # --include: no read-ahead
        pending: list[tuple[Future | None, Node]] = []
        group: list[tuple[bytes, Node]] = []  # small files of this directory, fetched together
        group_bytes = 0
        for node in nodes:
            name = check_component(node.name)
            here = comps + [name]
            if everything:
                want, below = True, True
            else:
                want, below = self._wanted(here)
            if not want:
                continue
            if node.type == DIR:
                if not node.subtree or len(node.subtree) != ID_LEN:
                    raise IntegrityError(f"directory {tdir.where(name)} has no subtree in the snapshot")
                with tdir.subdir(name, mode=0o700) as sub:
                    self._restore_dir(sub, node.subtree, here, below)
                self._meta(tdir, name, node)
                self.result.dirs += 1
            elif node.type == FILE:
                if not _is_small(node):
                    pending.append((self._file(tdir, name, node, here), node))
                    continue
                group.append((name, node))
                group_bytes += node.size
                if len(group) >= GROUP_FILES or group_bytes >= GROUP_BYTES:
                    pending.append((self.pool.submit(self._write_group, tdir, group), node))
                    group, group_bytes = [], 0
            elif node.type == SYMLINK:
                tdir.symlink(name, node.target)
                self._meta(tdir, name, node)
                self.result.others += 1
            else:
                note = tdir.special(name, node)
                if note:
                    self._warn(note)
                else:
                    self._meta(tdir, name, node)
                self.result.others += 1
        if group:
            pending.append((self.pool.submit(self._write_group, tdir, group), group[-1][1]))
        for fut, node in pending:
            if fut is not None:
                fut.result()

    def _file(self, tdir: TargetDir, name: bytes, node: Node, comps: list[bytes]) -> Future | None:
        group = node.link_group
        if group and group in self._links:
            first = self._link_done[group]
            first.result()  # the first link must be complete before linking to it
            tdir.hardlink(self._links[group], name)
            self.result.files += 1
            return None
        fut = self.pool.submit(self._write_file, tdir, name, node)
        if group:
            self._links[group] = comps
            self._link_done[group] = fut
        return fut

    def _write_group(self, tdir: TargetDir, files: list[tuple[bytes, Node]]) -> None:
        """Small files (no holes, no links): all their blobs in one fetch, then each file."""
        ids = [cid for _name, node in files for cid in node.chunk_ids]
        datas = iter(self.small.get(ids) if self.small is not None else self.repo.get_blobs(ids))
        for name, node in files:
            self._write_file(tdir, name, node, [[next(datas) for _ in node.chunk_ids]])

    def _write_file(self, tdir: TargetDir, name: bytes, node: Node, fetched: list | None = None) -> None:
        fd = tdir.create_file(name)
        written = 0
        try:
            ids = node.chunk_ids
            regions = node.extents or [(0, node.size, len(ids))]
            i = 0
            for offset, _length, count in regions:
                pos = offset
                for batch in (fetched if fetched is not None else self._fetch(ids[i : i + count])):
                    for data in batch:
                        mv = memoryview(data)
                        while mv:
                            k = os.pwrite(fd, mv, pos)
                            mv = mv[k:]
                            pos += k
                i += count
                written += pos - offset
            if written != node.size or node.extents:
                os.ftruncate(fd, node.size)
        except OSError as exc:
            raise RestoreError(f"cannot write {tdir.where(name)}: {exc.strerror}",
                               hint="check free space and permissions on the restore target") from exc
        finally:
            os.close(fd)
        self._meta(tdir, name, node)
        with self._lock:
            self.result.files += 1
            self.result.bytes += node.size

    def _fetch(self, ids: list[bytes]):
        """Plaintext batches of ``ids`` in order; large files are decoded in parallel on
        the blob pool (zstd and AES-GCM release the GIL) while this thread writes."""
        if len(ids) <= BATCH:
            yield self.repo.get_blobs(ids)
            return
        pending: deque = deque()
        for k in range(0, len(ids), BATCH):
            pending.append(self.blob_pool.submit(self.repo.get_blobs, ids[k : k + BATCH]))
            if len(pending) > MAX_PENDING:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _meta(self, tdir: TargetDir, name: bytes, node: Node) -> None:
        for w in apply_metadata(tdir, name, node, restore_owner=self.restore_owner):
            self._warn(w)

    def _warn(self, msg: str) -> None:
        with self._lock:
            if len(self.result.warnings) < 1000:
                self.result.warnings.append(msg)


def _is_small(node: Node) -> bool:
    """Restored in a group with other small files (no holes, no hard links)."""
    return not (node.link_group or node.extents or len(node.chunk_ids) > SMALL_CHUNKS or node.size > SMALL_BYTES)
