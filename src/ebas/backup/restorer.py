"""Restore a snapshot (or parts of it) into a target directory.

Every blob is verified as it is read (``Repository.get_blob``). Every path is created
through :mod:`ebas.backup.fswrite`, which refuses names that would leave the target and
never follows a symlink, so a malicious or corrupt tree cannot write outside it.
Directory metadata (times especially) is applied after the directory's contents.
Hard links are restored as links; sparse files get their holes back.

Every tree is judged by :mod:`ebas.repo.treecheck` before anything of it is written (the
same verdict ``ebas check`` reports): a faulted tree stops the restore with
``UnsafePath``. With ``skip_damaged`` nothing stops it for damage: a file whose data
cannot be read (corrupt or missing blob), a directory whose tree cannot be read and an
entry the tree check refuses are skipped, listed in ``RestoreResult.failed`` (snapshot
path and reason), and everything else is restored. A skipped file leaves nothing under
its name (a partly written file is removed).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ebas.backup.fsmeta import show_path
from ebas.backup.fswrite import TargetDir, apply_metadata, check_component
from ebas.backup.smallahead import SmallFilesAhead
from ebas.errors import IntegrityError, RestoreError, UnsafePath
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo.locks import reader_lock
from ebas.repo.tree import DIR, FILE, ID_LEN, SYMLINK, Node
from ebas.repo.treeahead import TreeAhead
from ebas.repo.treecheck import entry_path, faulted_names, printable, require_valid_tree, tree_faults

BATCH = 64  # blobs fetched per task
MAX_PENDING = 4
SMALL_CHUNKS = 2  # files of at most this many chunks and SMALL_BYTES ...
SMALL_BYTES = 2 << 20
GROUP_FILES = 256  # ... are restored in groups: one fetch (a few ranged reads) per group
GROUP_BYTES = 8 << 20
MAX_OPEN_DIRS = 256  # directory fds a restore keeps open at once (deeper ones are parked)


@dataclass
class RestoreResult:
    """Counters and problems of one restore."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # skip_damaged: {"path", "reason"} of what was not restored
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
    """Writes a snapshot's tree under ``target``; single use.

    ``progress`` receives one phase, ``"restore"``: items are regular files (hard links
    included), bytes their data. A whole, complete snapshot gives its totals up front
    (from the snapshot's statistics); otherwise they grow as directories are read. At the
    end, items and bytes done equal ``result.files`` and ``result.bytes``."""

    def __init__(self, repo, snapshot, target: str, *, includes: list[str] | None = None,
                 restore_owner: bool | None = None, workers: int = 2, skip_damaged: bool = False,
                 progress: Progress | None = None):
        self.repo = repo
        self.snapshot = snapshot
        self.target = target
        self.includes = [split_path(p) for p in (includes or [])]
        self.restore_owner = os.geteuid() == 0 if restore_owner is None else restore_owner
        self.workers = workers
        self.skip_damaged = skip_damaged
        self.result = RestoreResult()
        self._lock = threading.Lock()
        self._links: dict[str, list[bytes]] = {}
        self._link_done: dict[str, Future] = {}
        self._matched = False  # some entry matched an include path (not only its parents)
        self._failed_links: set[str] = set()  # skip_damaged: hard-link groups whose first file failed
        self.trees = TreeAhead(repo)  # trees below a directory are read ahead, level by level
        self.small: SmallFilesAhead | None = None
        self.progress = progress or NULL_PROGRESS
        self._totals_known = False

    def run(self) -> RestoreResult:
        """Restore and return the counters; raises on unsafe trees or corrupt data."""
        root_id = bytes.fromhex(self.snapshot.tree)
        stats = self.snapshot.stats
        if not self.includes and not self.snapshot.partial and "files" in stats and "bytes_logical" in stats:
            self._totals_known = True
            self.progress.start("restore", items_total=int(stats["files"]), bytes_total=int(stats["bytes_logical"]))
        else:
            self.progress.start("restore")
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

    def _wanted(self, comps: list[bytes], count: bool = True) -> tuple[bool, bool]:
        """(restore this entry?, restore everything below it?)"""
        if not self.includes:
            return True, True
        for inc in self.includes:
            if comps[: len(inc)] == inc:
                self._matched = self._matched or count
                return True, True
            if inc[: len(comps)] == comps:
                return True, False
        return False, False

    def _load_valid(self, tree_id: bytes, comps: list[bytes], everything: bool) -> list[Node]:
        """The tree's entries that may be restored; refuses a faulted tree (``UnsafePath``)
        unless ``skip_damaged``, which lists and drops the faulted entries (or the tree)."""
        dir_path = "/" + "/".join(printable(c) for c in comps)
        try:
            nodes = self.trees.load(tree_id, ahead=everything or not self.includes)  # --include: no read-ahead
        except IntegrityError as exc:
            if not self.skip_damaged:
                raise
            self._fail(dir_path, f"directory cannot be read: {exc.message}")
            return []
        faults = [f for f in tree_faults(nodes) if f.name is None or everything
                  or self._wanted(comps + [f.name], count=False)[0]]
        if not faults:
            return nodes
        if not self.skip_damaged:
            require_valid_tree(nodes, dir_path)  # raises UnsafePath naming the first fault
        for f in faults:
            where = dir_path if f.name is None else entry_path(dir_path, f.name)
            self._fail(where, f"{'directory' if f.name is None else 'entry'} {f.reason}; not restored")
        bad = faulted_names(faults)
        return [] if bad is None else [n for n in nodes if n.name not in bad]

    def _fail(self, path: str, reason: str) -> None:
        with self._lock:
            self.result.failed.append({"path": path, "reason": reason})

    def _restore_dir(self, tdir: TargetDir, tree_id: bytes, comps: list[bytes], everything: bool = False) -> None:
        """Restore the tree ``tree_id`` into ``tdir`` (and everything below it).

        Iterative: one :class:`_DirFrame` per directory on an explicit stack, so a tree of any
        depth restores; a directory's metadata is applied after its contents are written."""
        stack = [self._frame(tdir, tree_id, comps, everything, None)]
        try:
            while stack:
                top = stack[-1]
                if top.pos < len(top.nodes):
                    sub = self._entry(top)
                    if sub is not None:
                        _park(stack)
                        stack.append(sub)
                    continue
                self._flush(top)
                stack.pop()
                if top.node is not None:  # a subdirectory: close it, then set its times and mode
                    try:
                        if stack[-1].tdir.fd < 0:
                            _unpark(stack[-1], top)
                    finally:
                        top.tdir.close()
                    parent = stack[-1].tdir
                    self._meta(parent, top.comps[-1], top.node)
                    self.result.dirs += 1
        finally:
            for f in stack:
                if f.node is not None:
                    f.tdir.close()


    def _frame(self, tdir: TargetDir, tree_id: bytes, comps: list[bytes], everything: bool,
               node: Node | None) -> "_DirFrame":
        nodes = self._load_valid(tree_id, comps, everything)
        return _DirFrame(tdir, nodes, comps, everything, node)

    def _entry(self, top: "_DirFrame") -> "_DirFrame | None":
        """Restore the next entry of ``top``; a frame to push for a directory."""
        node = top.nodes[top.pos]
        top.pos += 1
        tdir = top.tdir
        name = check_component(node.name)
        here = top.comps + [name]
        if top.everything:
            want, below = True, True
        else:
            want, below = self._wanted(here)
        if not want:
            return None
        if node.type == DIR:
            if not node.subtree or len(node.subtree) != ID_LEN:
                raise IntegrityError(f"directory {tdir.where(name)} has no subtree in the snapshot")
            sub = tdir.subdir(name, mode=0o700)
            try:
                return self._frame(sub, node.subtree, here, below, node)
            except BaseException:
                sub.close()
                raise
        if node.type == FILE:
            if not self._totals_known:
                self.progress.add_total(items=1, bytes=node.size)
            if not _is_small(node):
                top.pending.append(self._file(tdir, name, node, here))
                return None
            top.group.append((name, node))
            top.group_bytes += node.size
            if len(top.group) >= GROUP_FILES or top.group_bytes >= GROUP_BYTES:
                top.pending.append(self.pool.submit(self._write_group, tdir, top.group))
                top.group, top.group_bytes = [], 0
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
        return None

    def _flush(self, top: "_DirFrame") -> None:
        """Write the last group of small files of ``top`` and wait for all its writes."""
        if top.group:
            top.pending.append(self.pool.submit(self._write_group, top.tdir, top.group))
            top.group = []
        for fut in top.pending:
            if fut is not None:
                fut.result()

    def _file(self, tdir: TargetDir, name: bytes, node: Node, comps: list[bytes]) -> Future | None:
        group = node.link_group
        if group and group in self._links:
            first = self._link_done[group]
            first.result()  # the first link must be complete before linking to it
            if group in self._failed_links:
                self._fail(self._snap_path(tdir, name), "hard link to a file whose data cannot be read; not restored")
                return None
            tdir.hardlink(self._links[group], name)
            with self._lock:
                self.result.files += 1
            self.progress.add_total(bytes=-node.size)  # the byte total counted the link's size: no data here
            self.progress.advance(items=1, current=tdir.where(name))
            return None
        fut = self.pool.submit(self._write_file, tdir, name, node)
        if group:
            self._links[group] = comps
            self._link_done[group] = fut
        return fut

    def _write_group(self, tdir: TargetDir, files: list[tuple[bytes, Node]]) -> None:
        """Small files (no holes, no links): all their blobs in one fetch, then each file."""
        ids = [cid for _name, node in files for cid in node.chunk_ids]
        try:
            datas = iter(self.small.get(ids) if self.small is not None else self.repo.get_blobs(ids))
        except IntegrityError:
            if not self.skip_damaged:
                raise
            for name, node in files:  # one by one: only the files with damaged data are skipped
                self._write_file(tdir, name, node)
            return
        for name, node in files:
            self._write_file(tdir, name, node, [[next(datas) for _ in node.chunk_ids]], report=False)
        self.progress.advance(items=len(files), bytes=sum(node.size for _, node in files),
                              current=tdir.where(files[-1][0]))

    def _write_file(self, tdir: TargetDir, name: bytes, node: Node, fetched: list | None = None,
                    report: bool = True) -> None:
        fd = tdir.create_file(name)
        written = 0
        damaged: IntegrityError | None = None
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
        except IntegrityError as exc:
            if not self.skip_damaged:
                raise
            damaged = exc
        finally:
            os.close(fd)
        if damaged is not None:
            self._discard(tdir, name)
            if node.link_group:
                with self._lock:
                    self._failed_links.add(node.link_group)
            self._fail(self._snap_path(tdir, name), f"data cannot be read: {damaged.message}")
            return
        self._meta(tdir, name, node)
        with self._lock:
            self.result.files += 1
            self.result.bytes += node.size
        if report:
            self.progress.advance(items=1, bytes=node.size, current=tdir.where(name))

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

    def _snap_path(self, tdir: TargetDir, name: bytes) -> str:
        """The path of ``name`` in ``tdir`` as a path in the snapshot (``/a/b``), printable."""
        return printable((tdir.path + b"/" + name)[len(self.root.path):])

    @staticmethod
    def _discard(tdir: TargetDir, name: bytes) -> None:
        """Remove a partly written file (its content would be wrong)."""
        try:
            os.unlink(name, dir_fd=tdir.fd)
        except OSError:
            pass

    def _meta(self, tdir: TargetDir, name: bytes, node: Node) -> None:
        for w in apply_metadata(tdir, name, node, restore_owner=self.restore_owner):
            self._warn(w)

    def _warn(self, msg: str) -> None:
        with self._lock:
            if len(self.result.warnings) < 1000:
                self.result.warnings.append(msg)


@dataclass
class _DirFrame:
    """One directory being restored: its open target, its entries and the writes in flight."""

    tdir: TargetDir
    nodes: list[Node]
    comps: list[bytes]
    everything: bool
    node: Node | None  # the directory's own node (None for the restore root)
    pos: int = 0
    pending: list = field(default_factory=list)
    group: list = field(default_factory=list)
    group_bytes: int = 0
    ident: tuple[int, int] = (0, 0)  # (st_dev, st_ino) while the fd is parked


def _is_small(node: Node) -> bool:
    """Restored in a group with other small files (no holes, no hard links)."""
    return not (node.link_group or node.extents or len(node.chunk_ids) > SMALL_CHUNKS or node.size > SMALL_BYTES)


def _park(stack: list["_DirFrame"]) -> None:
    """Keep at most MAX_OPEN_DIRS directory fds: close the oldest open frame's fd once the
    writes queued into it are done (the restore root always stays open: hard links start there)."""
    if len(stack) < MAX_OPEN_DIRS:
        return
    victim = stack[len(stack) - MAX_OPEN_DIRS]
    if victim.tdir.fd < 0 or victim.node is None:
        return
    for fut in victim.pending:
        if fut is not None:
            fut.result()
    victim.pending = []
    victim.ident = _ident(victim.tdir.fd)
    victim.tdir.close()


def _unpark(frame: "_DirFrame", child: "_DirFrame") -> None:
    """Reopen a parked directory as ``..`` of its child; refuse if it is not the same one."""
    try:
        fd = os.open(b"..", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=child.tdir.fd)
    except OSError as exc:
        raise RestoreError(f"cannot reopen {show_path(frame.tdir.path)}: {exc.strerror}") from exc
    if _ident(fd) != frame.ident:
        os.close(fd)
        raise UnsafePath(f"{show_path(frame.tdir.path)} was moved or replaced during the restore")
    frame.tdir.fd = fd


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino
