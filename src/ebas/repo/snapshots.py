"""Snapshot manifests: the single commit point of a backup.

Stored as ``AEAD(JSON, aad=b"ebas-snapshot")`` under ``snapshots/<hex BLAKE3 of the stored
bytes>``; the id is that hex string. A snapshot whose bytes do not hash to its name, or
that fails authentication, is reported as tampered and never used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Sequence

import blake3

from ebas.errors import AmbiguousSnapshot, IntegrityError, MalformedObject, SnapshotNotFound
from ebas.repo.fields import Fields, is_number, load_json

AAD = b"ebas-snapshot"
PREFIX = "snapshots/"
LEVELS = ("full", "differential", "incremental")


@dataclass
class Snapshot:
    """One restore point. ``id`` is filled in when it is stored or loaded."""

    time_ns: int
    host: str
    paths: list[str]
    tree: str  # hex id of the root tree
    level: str = "full"
    tags: list[str] = field(default_factory=list)
    username: str = ""
    parent: str | None = None  # snapshot used for change detection
    base: str | None = None  # the full this snapshot's chain starts from
    chain: str = ""  # id of the chain (the base full's id, or own id for a full)
    partial: bool = False
    errors: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    holds: list[dict] = field(default_factory=list)
    program: str = "ebas"
    id: str = ""

    @property
    def time_iso(self) -> str:
        """The snapshot time as ISO 8601 UTC."""
        return datetime.fromtimestamp(self.time_ns / 1e9, timezone.utc).isoformat(timespec="seconds")

    def to_json(self) -> dict:
        """JSON-able dict (includes the id)."""
        d = asdict(self)
        d["time"] = self.time_iso
        return d

    def encode(self) -> bytes:
        """Canonical JSON bytes of the manifest (without the id)."""
        d = asdict(self)
        d.pop("id")
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, snap_id: str) -> "Snapshot":
        """Parse manifest bytes, checking every field's type and range; raises
        ``MalformedObject`` (an ``IntegrityError``) naming the snapshot."""
        name = snap_id[:12]
        f = Fields(load_json(data, "snapshot", name), "snapshot", name)
        f.only(_FIELDS | {"id"})
        try:
            tree = f.hex_id("tree")
        except MalformedObject:
            raise MalformedObject("snapshot", name, "it has an invalid root tree id") from None
        snap = cls(
            time_ns=f.int("time_ns", lo=0), host=f.str("host", max_len=MAX_NAME), paths=f.str_list("paths"),
            tree=tree, level=f.str("level", "full", choices=LEVELS), tags=f.str_list("tags", [], max_len=MAX_NAME),
            username=f.str("username", "", max_len=MAX_NAME), parent=f.opt_str("parent", max_len=MAX_NAME),
            base=f.opt_str("base", max_len=MAX_NAME), chain=f.str("chain", "", max_len=MAX_NAME),
            partial=f.bool("partial", False), errors=f.str_list("errors", []), stats=_stats(f),
            holds=_holds(f), program=f.str("program", "ebas", max_len=MAX_NAME),
        )
        snap.id = snap_id
        return snap


MAX_NAME = 4096  # host, user, tag, chain and parent ids: generous, but bounded
_FIELDS = frozenset(f.name for f in fields(Snapshot)) - {"id"}


_NUMERIC_STATS = ("files", "dirs", "others", "bytes", "blobs", "packs", "errors", "warnings", "duration")


def _stats(f: Fields) -> dict:
    """``stats``: an object of scalars; counters and sizes (``files``, ``bytes_*``, ...)
    must be numbers, notes (``synthesized_from``, ``exported_from``) short strings."""
    stats = f.obj("stats", {})
    for k, v in stats.items():
        if k.startswith(_NUMERIC_STATS):
            if not is_number(v):
                raise f.bad("stats", f"entry {k[:40]!r} must be a number")
        elif not (v is None or type(v) is bool or is_number(v) or (type(v) is str and len(v) <= MAX_NAME)):
            raise f.bad("stats", f"entry {k[:40]!r} must be a number, a short string, true/false or null")
    return dict(stats)


def _holds(f: Fields) -> list[dict]:
    """``holds`` written into the manifest: ``{"type": "hold"|"retain", "reason", "until_ns"}``."""
    out = []
    for h in f.list("holds", []):
        hf = Fields(h, f.kind, f.name)
        hf.str("type", choices=("hold", "retain"))
        hf.str("reason", "")
        hf.int("until_ns", 0)
        out.append(dict(h))
    return out


def seal(aead, snap: Snapshot) -> tuple[str, bytes]:
    """``(id, stored bytes)`` for a snapshot."""
    stored = aead.seal(snap.encode(), AAD)
    return blake3.blake3(stored).hexdigest(), stored


def unseal(aead, snap_id: str, stored: bytes) -> Snapshot:
    """Verify and decode stored snapshot bytes."""
    if blake3.blake3(stored).hexdigest() != snap_id:
        raise IntegrityError(f"snapshot {snap_id[:12]} is damaged or tampered: contents do not match its id")
    return Snapshot.decode(aead.open(stored, AAD), snap_id)


def select(snaps: list[Snapshot], ref: str, *, host: str | Sequence[str] | None = None,
           tags: list[str] | None = None, path: str | None = None) -> Snapshot:
    """Resolve ``ref`` ("latest" or a unique id prefix) among ``snaps``.

    ``host`` (one name, or several: any of them), ``tags`` (all must be present) and
    ``path`` (one of the snapshot's paths)
    narrow the candidates, as restic's filters do.
    """
    cands = filter_snapshots(snaps, host=host, tags=tags, path=path)
    if ref == "latest":
        if not cands:
            raise SnapshotNotFound("no snapshot matches" + _describe(host, tags, path))
        return max(cands, key=lambda s: (s.time_ns, s.id))
    ref = ref.lower()
    hits = [s for s in cands if s.id.startswith(ref)]
    if not hits:
        raise SnapshotNotFound(f"no snapshot with id {ref!r}" + _describe(host, tags, path))
    if len(hits) > 1:
        raise AmbiguousSnapshot(f"snapshot id prefix {ref!r} matches {len(hits)} snapshots")
    return hits[0]


def _hosts(host: str | Sequence[str] | None) -> set[str]:
    if not host:
        return set()
    return {host} if isinstance(host, str) else {h for h in host if h}


def filter_snapshots(snaps: list[Snapshot], *, host: str | Sequence[str] | None = None,
                     tags: list[str] | None = None, path: str | None = None) -> list[Snapshot]:
    """Snapshots matching every given filter (``host``: any of the names), oldest first."""
    hosts = _hosts(host)
    out = []
    for s in snaps:
        if hosts and s.host not in hosts:
            continue
        if tags and not set(tags) <= set(s.tags):
            continue
        if path and path not in s.paths:
            continue
        out.append(s)
    return sorted(out, key=lambda s: (s.time_ns, s.id))


def _describe(host, tags, path) -> str:
    parts = []
    if host:
        parts.append(f"host={','.join(sorted(_hosts(host)))}")
    if tags:
        parts.append(f"tags={','.join(tags)}")
    if path:
        parts.append(f"path={path}")
    return f" ({' '.join(parts)})" if parts else ""


def same_source(snap: Snapshot, host: str, paths: list[str]) -> bool:
    """True if ``snap`` was taken from the same host and the same set of paths."""
    return snap.host == host and sorted(snap.paths) == sorted(paths)
