"""Result types of the API functions that have no home in a lower layer.

Every result has ``to_json()``: the dict the CLI prints with ``--json`` (field names are
part of the command line's contract, so they change only with a visible decision).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RepositoryStats:
    """Sizes and counts of a repository (``ebas stats``). The ``reclaimable_*`` figures
    are present only when asked for; ``reclaimable_error`` says why they are missing."""

    snapshots: int
    logical_bytes: int
    stored_bytes: int
    pack_bytes: int
    reduction: float
    blobs: int
    chunks: int
    packs: int
    index_segments: int
    dedup_table_bytes: int
    dedup_bytes_per_blob: float
    reclaimable: dict | None = None
    reclaimable_error: str | None = None

    def __getitem__(self, key: str):
        """Dict-style access, as the earlier dict result allowed (``st["packs"]``)."""
        data = self.to_json()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.to_json()

    def get(self, key: str, default=None):
        """Dict-style ``get``."""
        return self.to_json().get(key, default)

    def to_json(self) -> dict:
        """The fields of ``ebas stats --json``."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("reclaimable", "reclaimable_error")}
        if self.reclaimable_error is not None:
            out["reclaimable_error"] = self.reclaimable_error
        if self.reclaimable:
            out.update(self.reclaimable)
        return out


@dataclass
class UnlockResult:
    """Locks removed as stale and locks kept because their holder is alive, as seen at
    ``now_ns`` (use ``lock.describe(now_ns)`` for a line per lock)."""

    removed: list
    live: list
    now_ns: int
    live_lines: list = field(default_factory=list)  # one line per live lock, said as the lock manager sees it

    def to_json(self) -> dict:
        """``{"removed": [...], "live": [...]}`` with every lock's fields."""
        return {"removed": [dict(lk.__dict__) for lk in self.removed], "live": [dict(lk.__dict__) for lk in self.live]}


class SnapshotList(list):
    """Snapshots, oldest first; ``problems`` names snapshot objects that could not be read."""

    def __init__(self, snaps=(), problems=()):
        super().__init__(snaps)
        self.problems: list[str] = list(problems)

    def to_json(self) -> list:
        """One dict per snapshot."""
        return [s.to_json() for s in self]


class ChainList(list):
    """Backup chains (a full and the differentials / incrementals built on it)."""

    def __init__(self, chains=(), snapshots: int = 0):
        super().__init__(chains)
        self.snapshots = snapshots

    def to_json(self) -> list:
        """One dict per chain."""
        return [c.to_json() for c in self]


class Listing(list):
    """``(path, Node)`` pairs of a directory listing in a snapshot."""

    def __init__(self, entries=(), snapshot=None):
        super().__init__(entries)
        self.snapshot = snapshot

    def to_json(self) -> list:
        """One dict per entry (path, type, size, mode, owner, mtime, symlink target)."""
        return [{"path": p, "type": n.type, "size": n.size, "mode": n.mode, "uid": n.uid, "gid": n.gid,
                 "user": n.user, "group": n.group, "mtime_ns": n.mtime_ns,
                 "target": n.target.decode("utf-8", "surrogateescape") if n.target else None}
                for p, n in self]


class DiffResult(list):
    """The :class:`ebas.backup.browse.Change` list from snapshot ``a`` to ``b``, with totals."""

    KINDS = ("added", "removed", "modified", "metadata", "type")

    def __init__(self, changes=(), a=None, b=None):
        super().__init__(changes)
        self.a, self.b = a, b

    @property
    def counts(self) -> dict:
        """Number of changes of each kind."""
        return {k: sum(1 for c in self if c.kind == k) for k in self.KINDS}

    @property
    def added_bytes(self) -> int:
        """Bytes of files that appeared."""
        return sum(c.new_size for c in self if c.kind == "added")

    @property
    def removed_bytes(self) -> int:
        """Bytes of files that disappeared."""
        return sum(c.old_size for c in self if c.kind == "removed")

    def to_json(self) -> dict:
        """The fields of ``ebas diff --json``."""
        return {"from": self.a.id if self.a else None, "to": self.b.id if self.b else None,
                "changes": [c.to_json() for c in self], "summary": self.counts,
                "added_bytes": self.added_bytes, "removed_bytes": self.removed_bytes}


@dataclass
class InitResult:
    """A new repository: where, its id, the key file written, and its format parameters."""

    repository: str
    id: str
    key_id: str
    chunker: dict
    pack_size: int

    def to_json(self) -> dict:
        """The fields of ``ebas init --json``."""
        return dict(self.__dict__)


@dataclass
class KeyList:
    """Key files of a repository; ``current`` is the one this session opened it with."""

    keys: list
    current: str

    def to_json(self) -> list:
        """One dict per key file, with ``current`` marking the key in use."""
        return [dict(k.to_dict(), current=k.id == self.current) for k in self.keys]


@dataclass
class KeyChange:
    """A key file added (``added``), removed (``removed``) or replaced (``old`` -> ``new``)."""

    added: str | None = None
    removed: str | None = None
    old: str | None = None
    new: str | None = None

    def to_json(self) -> dict:
        """Only the fields that apply."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class HoldList:
    """Protections of every snapshot (``views``), the repository's minimum retention, and
    hold records that could not be read (``problems``)."""

    views: list
    min_retention_ns: int
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The fields of ``ebas hold list --json``."""
        return {"holds": [v.to_json() for v in self.views], "min_retention_ns": self.min_retention_ns}


@dataclass
class HoldChange:
    """Hold records written: one added (``added``), or the holds released (``released``)."""

    added: object = None
    released: list = field(default_factory=list)

    def to_json(self) -> dict:
        """``ebas hold add --json`` fields, or ``{"released": [...], "records": [...]}``."""
        rec = self.added
        if rec is not None:
            return {"record": rec.id, "type": rec.type, "snapshot": rec.snapshot, "reason": rec.reason,
                    "until_ns": rec.until_ns or None}
        return {"released": [r.hold for r in self.released], "records": [r.id for r in self.released]}


@dataclass
class ComplianceState:
    """The repository's compliance minimum retention (0: off) and the record that set it."""

    min_retention_ns: int
    record: str

    def to_json(self) -> dict:
        """The fields of ``ebas hold compliance --json``."""
        return {"min_retention_ns": self.min_retention_ns, "record": self.record}


@dataclass
class CatalogAnswer:
    """A plain catalog answer (``stats``, ``vacuum``): the figures as a dict."""

    figures: dict

    def to_json(self) -> dict:
        """The figures."""
        return dict(self.figures)
