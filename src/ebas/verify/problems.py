"""Findings of a repository check: :class:`Problem`, :class:`CheckReport`, and the hints.

A problem's ``kind`` is a stable machine-readable name; kinds in :data:`WARNING_KINDS`
are warnings (nothing to do now), every other kind is an error (data is, or may become,
unrestorable). :class:`Finding` is the mutable form a check builds while it runs: it
collects the snapshots, example paths and blob ids that one piece of damage affects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

WARNING_KINDS = frozenset({"unindexed-pack", "unindexed-pack-damaged", "leftover-upload", "foreign-object",
                           "prune-pending", "prune-record-damaged", "quarantined-object", "damaged-blobs-recorded",
                           "damage-record-damaged", "damage-not-recorded"})

HINT_REPAIR = "run 'ebas repair index' to rebuild the index from the packs (it reads every pack whole)"
HINT_LOST = ("copy the damaged object from a replica if one has it (a pack is proved by its name); otherwise "
             "run 'ebas repair index' before the next backup: it keeps every blob that still verifies, moves a "
             "damaged pack to quarantine/ and leaves its damaged blobs out of the index, so the next backup stores "
             "those files again (the snapshots listed here cannot restore them unless the same bytes are backed up "
             "again)")
HINT_QUARANTINED = ("moved here by 'ebas repair index' because it was not intact (its intact blobs were kept); "
                    "nothing uses it: delete it once no one needs it for forensics")
HINT_MISSING = ("copy the lost pack from a replica if one has it; otherwise the next backup stores the file "
                "again, and the listed snapshots cannot restore it")
HINT_ENTRY = ("this tree was sealed with the repository key but not written by a correct ebas (a bug, or someone "
              "holding the key): 'ebas restore --skip-damaged' restores everything else of the snapshot")
HINT_SNAPSHOT = "copy this snapshot object from a replica, or delete it: it cannot be restored"
HINT_DAMAGE_RECORDED = ("run 'ebas repair index': it leaves the damaged copies out of the index and removes the "
                        "record; until then backups store that data again instead of building on the damaged copies")
HINT_UNINDEXED = "unindexed pack: will be adopted by the next backup or removed by prune"
HINT_UNINDEXED_DAMAGED = ("nothing trusts it (no backup adopts it); 'ebas repair index' keeps the blobs of it that "
                          "still verify and moves it to quarantine/; otherwise prune removes it once no snapshot "
                          "can need it")


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` (stable, machine-readable), the ``object`` it concerns
    (a store name or a path), a ``message`` naming the damage and a ``hint`` saying what
    to do. Kinds in :data:`WARNING_KINDS` are warnings; every other kind is an error.
    ``snapshots`` lists the full ids of the snapshots that need the damaged data."""

    kind: str
    object: str
    message: str
    hint: str = ""
    snapshots: tuple[str, ...] = ()

    @property
    def severity(self) -> str:
        """``"warning"`` or ``"error"``."""
        return "warning" if self.kind in WARNING_KINDS else "error"

    def to_json(self) -> dict:
        """JSON-able form, with the severity."""
        return {**asdict(self), "snapshots": list(self.snapshots), "severity": self.severity}


@dataclass
class CheckReport:
    """What a check looked at and found. ``ok`` is True when no *error* was found."""

    read_data: bool = False
    problems: list[Problem] = field(default_factory=list)
    snapshots: int = 0  # readable snapshots
    trees: int = 0  # distinct trees visited
    files: int = 0  # file entries in those trees (a tree shared by snapshots counts once)
    blobs: int = 0  # data blob references of those files
    index_segments: int = 0  # readable, in-use index segments
    packs: int = 0  # pack objects in the store
    packs_read: int = 0
    bytes_read: int = 0
    duration_s: float = 0.0

    @property
    def errors(self) -> list[Problem]:
        """Problems that mean data is, or may become, unrestorable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems that need no action now (unindexed packs, leftover uploads)."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True if the check found no error (warnings allowed)."""
        return not self.errors

    def to_json(self) -> dict:
        """Machine-readable report (``ebas check --json``)."""
        d = {k: v for k, v in asdict(self).items() if k != "problems"}
        d.update(ok=self.ok, errors=[p.to_json() for p in self.errors],
                 warnings=[p.to_json() for p in self.warnings])
        return d


@dataclass
class Finding:
    """One piece of damage being attributed; :meth:`problem` renders it."""

    kind: str
    object: str
    message: str
    hint: str
    snapshots: set = field(default_factory=set)
    paths: list = field(default_factory=list)
    refs: int = 0
    blobs: list = field(default_factory=list)
    nblobs: int = 0

    def note(self, path: str | None = None, blob: bytes | None = None) -> "Finding":
        """Record one affected path and/or blob (the first five of each are named)."""
        if path is not None:
            self.refs += 1
            if len(self.paths) < 5:
                self.paths.append(path)
        if blob is not None:
            self.nblobs += 1
            if len(self.blobs) < 5:
                self.blobs.append(blob.hex()[:16])
        return self

    def problem(self) -> Problem:
        """The finding as a :class:`Problem`, its message naming what it affects."""
        msg = self.message
        if self.nblobs:
            msg += f"; {self.nblobs} blob(s): {', '.join(self.blobs)}{' ...' if self.nblobs > 5 else ''}"
        if self.snapshots:
            sids = sorted(self.snapshots)
            more = " ..." if len(sids) > 5 else ""
            msg += f"; affects {len(sids)} snapshot(s): {', '.join(s[:12] for s in sids[:5])}{more}"
        if self.paths and self.paths != [self.object]:
            msg += f"; {self.refs} path(s) affected, e.g. {', '.join(self.paths)}"
        return Problem(self.kind, self.object, msg, self.hint, tuple(sorted(self.snapshots)))
