"""Snapshot manifests: the single commit point of a backup.

Stored as ``AEAD(JSON, aad=b"ebas-snapshot")`` under ``snapshots/<hex BLAKE3 of the stored
bytes>``; the id is that hex string. A snapshot whose bytes do not hash to its name, or
that fails authentication, is reported as tampered and never used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import blake3

from ebas.errors import AmbiguousSnapshot, IntegrityError, SnapshotNotFound

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
        """Parse manifest bytes; raises ``IntegrityError`` naming the snapshot."""
        try:
            d = json.loads(data)
            d.pop("id", None)
            snap = cls(**d)
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"snapshot {snap_id[:12]} is malformed: {exc}") from exc
        if snap.level not in LEVELS:
            raise IntegrityError(f"snapshot {snap_id[:12]} has unknown level {snap.level!r}")
        snap.id = snap_id
        return snap


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
