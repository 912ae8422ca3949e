"""Repository locks with a heartbeat.

A lock is a small plain-JSON object ``locks/<random id>`` naming the host, process,
user, operation and whether it is exclusive; its holder rewrites it every
``heartbeat`` seconds. Backups, restores, checks and dumps take shared locks (any number
at once; a prune waits for the readers it could pull packs from under before deleting);
repair takes an exclusive one. A lock is *stale* when its heartbeat is older than
``stale_after`` or when it belongs to this host and its process is gone. ``remove_stale``
removes only stale locks, never a live one.

A heartbeat more than ``stale_after`` in the future by this machine's clock is impossible
for a correct clock (a holder with a clock far ahead, or a forged lock) and would block
the repository until that date. Such a lock is judged by this machine's clock alone: it
is stale once ``stale_after`` has passed since this machine first saw that heartbeat
value (:class:`SeenHeartbeats`, kept in a private local file so that it holds across
commands). A holder that is alive keeps rewriting its heartbeat, and every new value
starts the wait again, so only a lock nobody refreshes goes stale. Messages say so.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ebas.errors import IntegrityError, LockError, ObjectNotFound, PermissionDenied
from ebas.repo.fields import Fields, load_json
from ebas.repo.privatefs import cache_home, private_dir, write_private

PREFIX = "locks/"
STALE_AFTER = 30 * 60
HEARTBEAT = 5 * 60


@dataclass
class LockInfo:
    """What a lock object says about its holder."""

    id: str
    host: str
    pid: int
    user: str
    operation: str
    exclusive: bool
    created_ns: int
    heartbeat_ns: int

    def describe(self, now_ns: int) -> str:
        """One line for an admin: who holds it, doing what, since when."""
        age = (now_ns - self.heartbeat_ns) / 1e9
        kind = "exclusive" if self.exclusive else "shared"
        when = f"last heartbeat {age:.0f}s ago" if age >= 0 else \
            f"last heartbeat {_span(-age)} in the future by this machine's clock"
        return (f"{kind} lock {self.id[:10]} held by {self.user}@{self.host} pid {self.pid} "
                f"for '{self.operation}', {when}")


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


class SeenHeartbeats:
    """When this machine first saw a lock's heartbeat value, by its own clock.

    ``first_seen(key, heartbeat_ns, now_ns)`` returns the recorded time for that exact
    heartbeat value, recording ``now_ns`` the first time (a new value starts over). Kept in
    memory and, when ``path`` is given, in a JSON file (mode 0600) so that separate ebas
    commands on this machine share it; an unwritable file only loses persistence.
    Entries unseen for ``keep_ns`` are dropped.
    """

    def __init__(self, path: os.PathLike | str | None, keep_ns: int = 30 * 86400 * 10**9):
        self.path = path
        self.keep_ns = keep_ns
        self._mem: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[int]]:
        if self.path is None:
            return dict(self._mem)
        try:
            with open(self.path, "rb") as fh:
                data = json.loads(fh.read())
            return {k: [int(v[0]), int(v[1])] for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            return dict(self._mem)

    def first_seen(self, key: str, heartbeat_ns: int, now_ns: int) -> int:
        """The time (this machine's clock) ``heartbeat_ns`` of ``key`` was first seen."""
        with self._lock:
            seen = self._load()
            entry = seen.get(key)
            if entry is not None and entry[0] == heartbeat_ns:
                return entry[1]
            seen = {k: v for k, v in seen.items() if now_ns - v[1] < self.keep_ns}
            seen[key] = [heartbeat_ns, now_ns]
            self._mem = seen
            if self.path is not None:
                try:
                    private_dir(os.path.dirname(os.fspath(self.path)))
                    write_private(self.path, json.dumps(seen, sort_keys=True).encode())
                except OSError:
                    pass
            return now_ns


def default_seen() -> SeenHeartbeats:
    """The heartbeat record shared by this machine's ebas commands (in the local cache)."""
    return SeenHeartbeats(cache_home() / "locks-seen.json")


def decode_lock(lock_id: str, data: bytes) -> LockInfo:
    """Parse a lock object, checking every field; ``MalformedObject`` if it is not a lock."""
    f = Fields(load_json(data, "lock", lock_id), "lock", lock_id)
    return LockInfo(lock_id, f.str("host", max_len=4096), f.int("pid", lo=0, hi=(1 << 31) - 1),
                    f.str("user", max_len=4096), f.str("operation", max_len=65536), f.bool("exclusive"),
                    f.int("created_ns"), f.int("heartbeat_ns"))


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this machine (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LockManager:
    """Creates, refreshes, lists and cleans locks in one repository store."""

    def __init__(self, store, clock, entropy, *, host: str | None = None, pid: int | None = None,
                 user: str | None = None, stale_after: float = STALE_AFTER, heartbeat: float | None = HEARTBEAT,
                 seen: SeenHeartbeats | None = None):
        self.store = store
        self.clock = clock
        self.entropy = entropy
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.user = user or os.environ.get("USER", "") or str(os.getuid())
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.seen = seen if seen is not None else default_seen()

    def list(self) -> list[LockInfo]:
        """Every readable lock; unreadable lock objects are reported as stale entries."""
        out = []
        for info in self.store.list(PREFIX):
            lock_id = info.name[len(PREFIX):]
            try:
                out.append(decode_lock(lock_id, self.store.get(info.name)))
            except ObjectNotFound:
                continue
            except IntegrityError:  # malformed: anyone who can write the store can write a lock
                out.append(LockInfo(lock_id, "?", 0, "?", "unreadable lock", False, 0, 0))
        return out

    def _future(self, lock: LockInfo, now: int) -> int | None:
        """For an impossible heartbeat (more than ``stale_after`` ahead of this machine's
        clock): when this machine first saw it; else None."""
        if lock.heartbeat_ns - now <= self.stale_after * 1e9:
            return None
        return self.seen.first_seen(f"{self.store.url}|{lock.id}", lock.heartbeat_ns, now)

    def is_stale(self, lock: LockInfo) -> bool:
        """True if the holder is certainly gone (old heartbeat, or dead local process); an
        impossible future heartbeat is stale ``stale_after`` after this machine first saw it."""
        now = self.clock.now_ns()
        first = self._future(lock, now)
        if first is not None:
            return now - first > self.stale_after * 1e9
        if now - lock.heartbeat_ns > self.stale_after * 1e9:
            return True
        if lock.host == self.host and lock.pid != self.pid and not pid_alive(lock.pid):
            return True
        return False

    def acquire(self, operation: str, *, exclusive: bool = False) -> "Lock":
        """Take a lock or raise ``LockError`` naming the conflicting holder."""
        lock = Lock(self, self.entropy.token_bytes(16).hex(), operation, exclusive)
        lock.write()
        for other in self.list():
            if other.id == lock.id or self.is_stale(other):
                continue
            if exclusive or other.exclusive:
                lock.release()
                raise LockError(f"repository is locked: {self.describe(other)}")
        lock.start_heartbeat()
        return lock

    def describe(self, lock: LockInfo) -> str:
        """:meth:`LockInfo.describe`, and for an impossible future heartbeat, when it
        goes stale by this machine's clock."""
        now = self.clock.now_ns()
        text = lock.describe(now)
        first = self._future(lock, now)
        if first is None:
            return text
        left = max(0.0, self.stale_after - (now - first) / 1e9)
        return (f"{text}; that heartbeat is impossible (a wrong clock on {lock.host}, or a forged lock), so it "
                f"counts as stale {_span(self.stale_after)} after this machine first saw it: in {_span(left)}")

    def remove_stale(self) -> list[LockInfo]:
        """Delete stale locks and return them; live locks are left alone."""
        removed = []
        for lock in self.list():
            if self.is_stale(lock):
                try:
                    self.store.delete(PREFIX + lock.id)
                except ObjectNotFound:
                    pass
                removed.append(lock)
        return removed


class Lock:
    """A held lock; release it (or use it as a context manager)."""

    def __init__(self, manager: LockManager, lock_id: str, operation: str, exclusive: bool):
        self.manager = manager
        self.id = lock_id
        self.operation = operation
        self.exclusive = exclusive
        self.created_ns = manager.clock.now_ns()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.released = False

    def write(self) -> None:
        """(Re)write the lock object with a fresh heartbeat."""
        m = self.manager
        doc = {"host": m.host, "pid": m.pid, "user": m.user, "operation": self.operation,
               "exclusive": self.exclusive, "created_ns": self.created_ns, "heartbeat_ns": m.clock.now_ns()}
        m.store.put(PREFIX + self.id, json.dumps(doc, sort_keys=True).encode())

    def start_heartbeat(self) -> None:
        """Refresh the lock in a daemon thread every ``heartbeat`` seconds."""
        if not self.manager.heartbeat:
            return

        def beat() -> None:
            while not self._stop.wait(self.manager.heartbeat):
                try:
                    self.write()
                except Exception:  # noqa: BLE001 - a missed heartbeat is retried next time
                    pass

        self._thread = threading.Thread(target=beat, name="ebas-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and delete the lock object."""
        if self.released:
            return
        self.released = True
        self._stop.set()
        try:
            self.manager.store.delete(PREFIX + self.id)
        except ObjectNotFound:
            pass

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def as_info(self) -> LockInfo:
        """This lock as a :class:`LockInfo`."""
        m = self.manager
        return LockInfo(self.id, m.host, m.pid, m.user, self.operation, self.exclusive,
                        self.created_ns, m.clock.now_ns())


@contextmanager
def reader_lock(manager: LockManager, operation: str) -> Iterator["Lock | None"]:
    """Hold a shared lock while a reader (restore, check, dump) runs, so that a prune
    waits for it before deleting packs it may still read. Raises ``LockError`` while an
    exclusive lock (repair) is held. Credentials that cannot write or delete (read-only,
    append-only) yield ``None``: the read runs unlocked, as it would on a mirror."""
    try:
        lock = manager.acquire(operation)
    except PermissionDenied:
        yield None
        return
    try:
        yield lock
    finally:
        try:
            lock.release()
        except PermissionDenied:  # append-only credentials: the lock goes stale on its own
            pass


__all__ = ["LockManager", "Lock", "LockInfo", "SeenHeartbeats", "default_seen", "reader_lock"]
