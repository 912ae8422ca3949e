"""Archive a source tree into a repository and record a snapshot.

The walk runs in the calling thread (directories in name order); files whose content must
be read are handed to a pool of worker threads that read, chunk, hash, compress, encrypt
and append to packs (FastCDC, BLAKE3, zstd and AES-GCM release the GIL on large
buffers). A directory's tree blob is written when all its entries are known, so the root
tree id is known last; the snapshot is committed after the index (see
``ebas.repo.session``).
"""

from __future__ import annotations

import errno
import os
import socket
import stat as stat_mod
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ebas.backup.changes import ChangePlan, plan_changes
from ebas.backup.excludes import ExcludeMatcher
from ebas.backup.fileread import FileReader
from ebas.backup.fsmeta import OwnerNames, node_from_stat, read_extras, show_path
from ebas.backup.heap import share_one_arena
from ebas.errors import SourceError, UsageError
from ebas.progress import NULL_PROGRESS, Progress
from ebas.repo.pack import KIND_TREE
from ebas.repo.snapshots import Snapshot
from ebas.repo.tree import DIR, FILE, Node, encode_tree
from ebas.repo.treeahead import TreeAhead

MAX_ERRORS_KEPT = 1000
PROGRESS_BATCH = 256  # unchanged files reported to the progress receiver together

# at import, before any thread (the key derivation's included) takes an arena of its own
share_one_arena()


@dataclass
class BackupOptions:
    """What to back up and how (mirrors ``ebas backup`` options)."""

    paths: list[str] = field(default_factory=list)
    level: str = "incremental"  # "full", "differential" or "incremental"
    tags: list[str] = field(default_factory=list)
    host: str = ""
    excludes: list[str] = field(default_factory=list)
    exclude_files: list[str] = field(default_factory=list)
    one_file_system: bool = False
    stdin_filename: str = ""  # set for --stdin backups
    workers: int = 2
    time_ns: int | None = None


@dataclass
class BackupStats:
    """Counters of one backup, stored in the snapshot."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    bytes_logical: int = 0
    bytes_read: int = 0
    errors: int = 0
    warnings: int = 0
    duration_s: float = 0.0


@dataclass
class BackupResult:
    """The committed snapshot and what happened while making it."""

    snapshot: Snapshot
    stats: BackupStats
    errors: list[str]
    warnings: list[str]
    level_reason: str = ""  # why ``level="auto"`` chose the level (empty otherwise)
    catalog_error: str | None = None  # the catalog could not be updated (the backup is committed)

    @property
    def partial(self) -> bool:
        """True if some files could not be read (exit code 3)."""
        return self.snapshot.partial

    def to_json(self) -> dict:
        """Machine-readable summary."""
        s = self.snapshot
        return {
            "snapshot_id": s.id, "short_id": s.id[:8], "time": s.time_iso, "host": s.host,
            "paths": s.paths, "tags": s.tags, "level": s.level, "parent": s.parent, "base": s.base,
            "partial": s.partial, "stats": s.stats, "errors": self.errors[:50], "warnings": self.warnings[:50],
        }


class Archiver:
    """Runs one backup. Use :meth:`run`; the instance is single-use.

    ``progress`` receives one phase, ``"backup"``, whose totals grow as the walk finds
    files (items: regular files, bytes: their sizes); a file counts as done when it is
    read, or at once when it is unchanged, so at the end items and bytes done and total
    equal ``stats.files`` and ``stats.bytes_logical``."""

    def __init__(self, repo, options: BackupOptions, *, progress: Progress | None = None):
        if not options.paths and not options.stdin_filename:
            raise UsageError("nothing to back up: give at least one path (or --stdin)")
        if options.level not in ("full", "differential", "incremental"):
            raise UsageError(f"unknown backup level {options.level!r}", hint="use full, differential or incremental")
        self.repo = repo
        self.opts = options
        self.progress = progress or NULL_PROGRESS
        self._seen = [0, 0]  # files and bytes found by the walk, not yet reported
        self._unchanged = [0, 0]  # of those, done at once (unchanged or links): not yet reported
        self._current: bytes | None = None
        self.host = options.host or socket.gethostname()
        self.owners = OwnerNames()
        self.excludes = ExcludeMatcher.from_files(options.excludes, options.exclude_files)
        self.stats = BackupStats()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._stat_lock = threading.Lock()
        self._links: dict[str, Node | Future] = {}
        self._prev_trees = TreeAhead(repo)

    # ------------------------------------------------------------------ run
    def run(self) -> BackupResult:
        """Back up, commit the snapshot and return the result."""
        started = time.perf_counter()
        paths = self._source_paths()
        plan = plan_changes(self.repo, self.host, paths, self.opts.level)
        lock = self.repo.locks().acquire(f"backup {' '.join(paths)}")
        self.progress.start("backup")
        try:
            with self.repo.session() as session:
                session.adopt_unindexed_packs()
                self.session = session
                workers = max(1, self.opts.workers)
                with ThreadPoolExecutor(workers, thread_name_prefix="ebas-read") as pool, \
                        ThreadPoolExecutor(workers, thread_name_prefix="ebas-blob") as blob_pool:
                    self.pool = pool
                    self.reader = FileReader(self.repo, session, self.repo.config.chunker, blob_pool)
                    if self.opts.stdin_filename:
                        root = self._stdin_root()
                    else:
                        root = self._root_tree(paths, plan)
                    self._report()
                self.stats.duration_s = round(time.perf_counter() - started, 3)
                snap = self._snapshot(root, paths, plan, session)
                session.commit(snap)
        finally:
            lock.release()
        return BackupResult(snap, self.stats, self.errors, self.warnings)

    def _source_paths(self) -> list[str]:
        if self.opts.stdin_filename:
            name = self.opts.stdin_filename
            if "/" in name.strip("/") or name in (".", ".."):
                raise UsageError(f"--stdin-filename must be a plain file name, got {name!r}")
            return ["/" + name.strip("/")]
        out = []
        for p in self.opts.paths:
            ap = os.path.abspath(p)
            if not os.path.lexists(ap):
                raise UsageError(f"source path {p!r} does not exist")
            out.append(ap)
        return sorted(set(out))

    def _snapshot(self, root: bytes, paths: list[str], plan: ChangePlan, session) -> Snapshot:
        st = dict(self.stats.__dict__)
        st.update({
            "blobs_new": session.stats.blobs_new,
            "bytes_added": session.stats.bytes_raw_new,
            "bytes_stored_added": session.stats.bytes_stored_new,
            "packs_adopted": session.stats.packs_adopted,
        })
        return Snapshot(
            time_ns=self.opts.time_ns or self.repo.clock.now_ns(), host=self.host, paths=paths,
            tree=root.hex(), level=plan.level, tags=sorted(set(self.opts.tags)),
            username=_username(), parent=plan.parent.id if plan.parent else None,
            base=plan.base_id, chain=plan.chain_id, partial=bool(self.errors),
            errors=self.errors[:MAX_ERRORS_KEPT], stats=st,
        )

    # ---------------------------------------------------------------- trees
    def _store_tree(self, nodes: list[Node]) -> bytes:
        bid, _ = self.session.put_blob(KIND_TREE, encode_tree(nodes))
        return bid

    def _root_tree(self, paths: list[str], plan: ChangePlan) -> bytes:
        """Build the tree of directories leading to each source path (like restic)."""
        if "/" in paths:  # the whole file system: "/" is the root tree itself (a node needs a name)
            return self._walk_dir(b"/", plan.parent_root, os.lstat("/").st_dev)
        return self._layout_root(paths, plan)

    def _layout_root(self, paths: list[str], plan: ChangePlan) -> bytes:
        layout: dict = {}
        for p in paths:
            parts = [os.fsencode(c) for c in p.strip("/").split("/") if c]
            d = layout
            for c in parts[:-1]:
                d = d.setdefault(c, {})
                if not isinstance(d, dict):
                    break
            else:
                d[parts[-1] if parts else b""] = p
        return self._layout_tree(layout, b"/", plan.parent_root)

    def _layout_tree(self, layout: dict, prefix: bytes, prev_tree: bytes | None) -> bytes:
        """The tree of the directories leading to the source paths (iterative: a source
        path may have as many components as PATH_MAX allows)."""
        # frame: [sorted items, position, prefix, prev nodes, nodes, reused, own node or None]
        stack = [[sorted(layout.items()), 0, prefix, self._prev_nodes(prev_tree), [], [], None]]
        while True:
            items, pos, base, prev, nodes, reused, own = top = stack[-1]
            if pos < len(items):
                top[1] += 1
                name, sub = items[pos]
                path = base + name if base.endswith(b"/") else base + b"/" + name
                old = prev.get(name)
                if isinstance(sub, dict):
                    node = self._dir_node(name, path)
                    below = self._prev_nodes(old.subtree if old and old.type == DIR else None)
                    stack.append([sorted(sub.items()), 0, path, below, [], [], node])
                    continue
                st = os.lstat(path)
                node = self._resolve(self._scan_entry(name, path, st, old, root_dev=st.st_dev), st.st_dev)
                if node is not None:  # a source path that is a file: a Node, or a Future while it is read
                    if isinstance(node, Node) and node.type == FILE and node.content:
                        reused.append((len(nodes), node, path))
                    nodes.append(node)
                continue
            self._verify_reused(nodes, reused)
            done = [n.result() if isinstance(n, Future) else n for n in nodes]
            tree = self._store_tree([n for n in done if n is not None])
            stack.pop()
            if not stack:
                return tree
            own.subtree = tree
            stack[-1][4].append(own)

    def _dir_node(self, name: bytes, path: bytes) -> Node:
        st = os.lstat(path)
        node = node_from_stat(name, st, owners=self.owners)
        node.atime_ns = 0
        self._extras(path, node)
        return node

    def _prev_nodes(self, tree_id: bytes | None) -> dict[bytes, Node]:
        """The previous snapshot's entries of a directory (trees below it are read ahead in
        batches: :mod:`ebas.repo.treeahead`)."""
        if not tree_id:
            return {}
        try:
            return {n.name: n for n in self._prev_trees.load(tree_id)}
        except Exception as exc:  # noqa: BLE001 - a damaged parent only costs a re-read
            self._warn(f"previous tree {tree_id.hex()[:12]} unreadable ({exc}); re-reading")
            return {}

    def _extras(self, path: bytes, node: Node) -> None:
        try:
            read_extras(path, node)
        except SourceError as exc:
            self._warn(str(exc))

    # ---------------------------------------------------------------- walk
    def _scan_entry(self, name: bytes, path: bytes, st: os.stat_result, old: Node | None, root_dev: int,
                    dir_fd: int | None = None):
        """Node for one entry; with ``dir_fd``, I/O goes relative to the parent directory's
        fd so that paths of any length work (``path`` is then only for excludes and messages).

        A directory to descend into comes back as a :class:`_Descend`; the caller walks it
        (iteratively: :meth:`_walk_dir`), so the depth of a tree never reaches the stack."""
        if self.excludes.excluded(path, stat_mod.S_ISDIR(st.st_mode)):
            return None
        node = node_from_stat(name, st, owners=self.owners)
        if (old is not None and self.opts.level != "full" and old.type == node.type
                and old.ctime_ns == node.ctime_ns and old.inode == node.inode and not old.error):
            # xattr, ACL and (for a symlink) target changes all move ctime: unchanged ctime and
            # inode mean the previous backup's values still hold (saves a syscall or three)
            node.xattrs, node.acl_access, node.acl_default = old.xattrs, old.acl_access, old.acl_default
            node.target = old.target
        else:
            self._extras(_io_path(path, name, dir_fd), node)
        if node.type == DIR:
            node.atime_ns = 0  # listing the directory changes it: recording it would churn every tree
            self.stats.dirs += 1
            if self.opts.one_file_system and st.st_dev != root_dev:
                node.subtree = self._store_tree([])
                self._warn(f"{show_path(path)}: other file system, contents not backed up (--one-file-system)")
                return node
            return _Descend(node, path, old.subtree if old and old.type == DIR else None, (st.st_dev, st.st_ino))
        if node.type == FILE:
            self.stats.files += 1
            self.stats.bytes_logical += node.size
            seen = self._seen
            seen[0] += 1
            seen[1] += node.size
            return self._file_node(node, path, old, dir_fd)
        self.stats.others += 1
        return node

    def _resolve(self, node, root_dev: int):
        """``node`` with its subtree stored if it is a directory still to be walked."""
        if isinstance(node, _Descend):
            node.node.subtree = self._walk_dir(node.path, node.prev_tree, root_dev)
            return node.node
        return node

    def _walk_dir(self, path: bytes, prev_tree: bytes | None, root_dev: int, parent_fd: int | None = None) -> bytes:
        """Store the tree of the directory at ``path`` (and everything below it); its id.

        Iterative: one :class:`_Frame` per directory on an explicit stack, each holding the
        directory's fd so that every open, stat and read is relative to it (no path length
        limit). At most :data:`MAX_OPEN_DIRS` frames keep their fd open: deeper walks park
        the oldest frames (their pending reads finished, fd closed) and reopen them through
        ``..`` of the child when the walk climbs back, checking device and inode."""
        frame = self._enter(path, prev_tree, parent_fd, None, None)
        if isinstance(frame, bytes):
            return frame
        stack = [frame]
        try:
            while True:
                top = stack[-1]
                if top.pos < len(top.names):
                    sub = self._step(top, root_dev)
                    if sub is not None:
                        self._park(stack)
                        stack.append(sub)
                    continue
                tree = self._finish(top)
                stack.pop()
                try:
                    if not stack:
                        return tree
                    parent = stack[-1]
                    if parent.dfd < 0:
                        self._unpark(parent, top)
                finally:
                    os.close(top.dfd)
                    top.dfd = -1
                top.pending.subtree = tree
                parent.nodes.append(top.pending)
        finally:
            for f in stack:
                if f.dfd >= 0:
                    os.close(f.dfd)

    def _enter(self, path: bytes, prev_tree: bytes | None, parent_fd: int | None, pending: Node | None,
               ident: tuple[int, int] | None):
        """Open and list a directory: a new frame, or a tree id if it cannot be read."""
        prev = self._prev_nodes(prev_tree)
        try:
            if parent_fd is None:
                dfd = os.open(path, _DIR_FLAGS)
            else:
                dfd = os.open(os.path.basename(path), _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            self._error(f"cannot open directory {show_path(path)}: {exc.strerror}; directory skipped")
            return self._skip(pending)
        try:
            st = os.fstat(dfd)
            if ident is not None and (st.st_dev, st.st_ino) != ident:
                raise OSError(0, "it was replaced during the backup")
            with os.scandir(dfd) as it:
                names = sorted(os.fsencode(e.name) for e in it)
        except OSError as exc:
            os.close(dfd)
            self._error(f"cannot list {show_path(path)}: {exc.strerror}; directory skipped")
            return self._skip(pending)
        self._current = path  # named by the next report of unchanged files
        return _Frame(path, dfd, (st.st_dev, st.st_ino), prev_tree, prev, names, pending)

    def _skip(self, pending: Node | None) -> bytes:
        tree = self._store_tree([])
        if pending is not None:
            pending.subtree = tree
        return tree

    def _step(self, top: "_Frame", root_dev: int) -> "_Frame | None":
        """Scan the next entry of ``top``; a frame to push if it is a directory to walk."""
        name = top.names[top.pos]
        top.pos += 1
        epath = top.base + name
        try:
            st = os.stat(name, dir_fd=top.dfd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                self._warn(f"{show_path(epath)} vanished during backup; skipped")
            else:
                self._error(f"cannot stat {show_path(epath)}: {exc.strerror}; skipped")
            return None
        node = self._scan_entry(name, epath, st, top.prev.get(name), root_dev, top.dfd)
        if node is None:
            return None
        if isinstance(node, _Descend):
            sub = self._enter(epath, node.prev_tree, top.dfd, node.node, node.ident)
            if isinstance(sub, bytes):
                top.nodes.append(node.node)
                return None
            return sub
        if isinstance(node, Node) and node.type == FILE and node.content:
            top.reused.append((len(top.nodes), node, epath))
        top.nodes.append(node)
        return None

    def _finish(self, top: "_Frame") -> bytes:
        """All entries of ``top`` scanned: wait for its reads and store its tree."""
        self._verify_reused(top.nodes, top.reused, top.dfd)
        done = []
        for n in top.nodes:
            if isinstance(n, Future):
                n = n.result()
            if n is not None:
                done.append(n)
        prev, prev_tree = top.prev, top.prev_tree
        # (``prev`` is empty when the previous tree could not be read: never point at it then)
        if prev_tree and prev and len(done) == len(prev) and all(n == prev.get(n.name) for n in done):
            return prev_tree  # identical entries encode to the identical tree blob: skip the work
        return self._store_tree(done)

    def _park(self, stack: list["_Frame"]) -> None:
        """Keep at most MAX_OPEN_DIRS directory fds: close the oldest open frame's fd once its
        pending reads are done (they read relative to it)."""
        if len(stack) < MAX_OPEN_DIRS:
            return
        victim = stack[len(stack) - MAX_OPEN_DIRS]
        if victim.dfd < 0 or victim is stack[0]:
            return
        victim.nodes = [n.result() if isinstance(n, Future) else n for n in victim.nodes]
        os.close(victim.dfd)
        victim.dfd = -1

    def _unpark(self, frame: "_Frame", child: "_Frame") -> None:
        """Reopen a parked frame's directory as ``..`` of its child; it must be the same one."""
        try:
            dfd = os.open(b"..", _DIR_FLAGS, dir_fd=child.dfd)
        except OSError as exc:
            raise SourceError(f"cannot reopen {show_path(frame.path)}: {exc.strerror}") from exc
        st = os.fstat(dfd)
        if (st.st_dev, st.st_ino) != frame.ident:
            os.close(dfd)
            raise SourceError(f"{show_path(frame.path)} was moved during the backup; run the backup again")
        frame.dfd = dfd

    def _verify_reused(self, nodes: list, reused: list[tuple[int, Node, bytes]], dir_fd: int | None = None) -> None:
        """Re-read unchanged files whose data is no longer in the index (damaged or
        pruned packs) or whose copy 'check --read-data' recorded as damaged: a backup
        never builds on data that is not stored intact."""
        if not reused:
            return
        ids = [c for _, n, _ in reused for c in n.chunk_ids]
        present = self.session.has_blobs(ids)  # damaged copies count as missing
        if bool(present.all()):
            return
        missing = {i for i, ok in zip(ids, present) if not ok}
        for pos, node, path in reused:
            if any(c in missing for c in node.chunk_ids):
                self._warn(f"{show_path(path)}: data of the previous backup is missing; reading it again")
                node.content, node.extents = b"", []
                self.stats.files_unmodified -= 1
                self.stats.files_changed += 1
                nodes[pos] = self.pool.submit(self._read_file, node, path, dir_fd)

    def _file_node(self, node: Node, path: bytes, old: Node | None, dir_fd: int | None = None):
        if node.link_group and node.link_group in self._links:
            first = self._links[node.link_group]
            self._done_at_once(node.size)
            if isinstance(first, Node):
                node.content, node.extents = first.content, first.extents
                return node
            return self.pool.submit(_copy_content, first, node)
        if self.opts.level != "full" and old is not None and old.type == FILE and node.same_source_state(old) \
                and (old.content or old.size == 0) and not old.error:
            node.content, node.extents = old.content, old.extents
            self.stats.files_unmodified += 1
            self._done_at_once(node.size)
            result: Node | Future = node
        else:
            if old is None:
                self.stats.files_new += 1
            else:
                self.stats.files_changed += 1
            self._report()  # the totals include this file before a worker can report it done
            result = self.pool.submit(self._read_file, node, path, dir_fd, node.size)
        if node.link_group:
            self._links[node.link_group] = result
        return result

    def _done_at_once(self, size: int) -> None:
        """A file found by the walk needs no reading: done as soon as it is reported."""
        unchanged = self._unchanged
        unchanged[0] += 1
        unchanged[1] += size
        if unchanged[0] >= PROGRESS_BATCH:
            self._report()

    def _report(self) -> None:
        """Pass the files found (and those already done) to the progress receiver; called
        from the walking thread only, in batches, so unchanged files cost no lock each."""
        seen, unchanged = self._seen, self._unchanged
        if seen[0] or seen[1]:
            self.progress.add_total(items=seen[0], bytes=seen[1])
            seen[0] = seen[1] = 0
        if unchanged[0]:
            current = show_path(self._current) if self._current is not None else None
            self.progress.advance(items=unchanged[0], bytes=unchanged[1], current=current)
            unchanged[0] = unchanged[1] = 0

    def _read_file(self, node: Node, path: bytes, dir_fd: int | None = None, report: int | None = None) -> Node | None:
        """Read, chunk and store one file's data; with ``report`` (its size when the walk
        found it, as counted in the totals), count it as done, also when it fails."""
        try:
            return self._read_file_data(node, path, dir_fd)
        finally:
            if report is not None:
                self.progress.advance(items=1, bytes=report, current=show_path(path))

    def _read_file_data(self, node: Node, path: bytes, dir_fd: int | None) -> Node | None:
        try:
            info = self.reader.read(node, path, dir_fd=dir_fd)
        except SourceError as exc:
            if "vanished" in str(exc):
                self._warn(str(exc))
            else:
                self._error(str(exc))
            return None
        with self._stat_lock:
            self.stats.bytes_read += info.bytes_read
        for w in info.warnings:
            self._warn(w)
        return node

    # --------------------------------------------------------------- stdin
    def _stdin_root(self) -> bytes:
        import sys

        name = os.fsencode(self.opts.stdin_filename.strip("/"))
        node = Node(name=name, type=FILE, mode=0o600, uid=os.getuid(), gid=os.getgid(),
                    mtime_ns=self.repo.clock.now_ns(), ctime_ns=self.repo.clock.now_ns(),
                    atime_ns=self.repo.clock.now_ns())
        stream = getattr(sys.stdin, "buffer", sys.stdin)
        info = self.reader.read_stream(node, stream.read)
        self.progress.add_total(items=1, bytes=node.size)
        self.progress.advance(items=1, bytes=node.size, current=self.opts.stdin_filename)
        self.stats.files = 1
        self.stats.files_new = 1
        self.stats.bytes_logical = node.size
        self.stats.bytes_read = info.bytes_read
        return self._store_tree([node])

    # --------------------------------------------------------------- notes
    def _error(self, msg: str) -> None:
        with self._stat_lock:
            self.stats.errors += 1
            if len(self.errors) < MAX_ERRORS_KEPT:
                self.errors.append(msg)
        self.progress.error(msg)

    def _warn(self, msg: str) -> None:
        with self._stat_lock:
            self.stats.warnings += 1
            if len(self.warnings) < MAX_ERRORS_KEPT:
                self.warnings.append(msg)


MAX_OPEN_DIRS = 256  # directory fds a walk keeps open at once (deeper ones are parked)


@dataclass
class _Descend:
    """A directory entry whose contents the walk must visit next."""

    node: Node
    path: bytes
    prev_tree: bytes | None
    ident: tuple[int, int]  # (st_dev, st_ino) from the parent's listing


@dataclass
class _Frame:
    """One directory being walked: its fd, sorted entry names and the nodes so far."""

    path: bytes
    dfd: int
    ident: tuple[int, int]
    prev_tree: bytes | None
    prev: dict
    names: list[bytes]
    pending: Node | None  # this directory's own node in its parent (None for a walk's root)
    pos: int = 0
    nodes: list = field(default_factory=list)
    reused: list = field(default_factory=list)

    @property
    def base(self) -> bytes:
        return self.path.rstrip(b"/") + b"/"


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = os.path.isdir("/proc/self/fd")


def _io_path(path: bytes, name: bytes, dir_fd: int | None) -> bytes:
    """A path for calls that take no ``dir_fd`` (xattrs, readlink): through
    ``/proc/self/fd`` when the parent's fd is open, so its length does not matter."""
    if dir_fd is None or not _PROC_FD:
        return path
    return b"/proc/self/fd/%d/%s" % (dir_fd, name)


def _copy_content(first: Future, node: Node) -> Node | None:
    src = first.result()
    if src is None:
        return None
    node.content, node.extents, node.size = src.content, src.extents, src.size
    return node


def _username() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return str(os.getuid())
