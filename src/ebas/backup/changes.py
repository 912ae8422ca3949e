"""Change detection plan: which earlier snapshot a backup compares against, per level.

* ``full``: no comparison; every file is read. Starts a new chain.
* ``incremental``: compares with the latest snapshot of the same host and source paths.
* ``differential``: compares with the latest *full* of the same host and source paths.

When there is nothing to compare with, the backup becomes a full. Every level writes a
complete tree, so any snapshot restores on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ebas.repo.snapshots import Snapshot, same_source


@dataclass
class ChangePlan:
    """The effective level and the snapshot a backup is compared with."""

    level: str
    parent: Snapshot | None = None

    @property
    def parent_root(self) -> bytes | None:
        """Root tree id of the parent, if any."""
        return bytes.fromhex(self.parent.tree) if self.parent else None

    @property
    def base_id(self) -> str | None:
        """Id of the full this snapshot's chain starts from (None for a full)."""
        if self.parent is None or self.level == "full":
            return None
        return self.parent.id if self.parent.level == "full" else self.parent.base

    @property
    def chain_id(self) -> str:
        """Chain identifier: the base full's id ('' for a full, meaning its own id)."""
        return self.base_id or ""


def plan_changes(repo, host: str, paths: list[str], level: str) -> ChangePlan:
    """Pick the comparison snapshot for ``level`` (falls back to ``full``)."""
    if level == "full":
        return ChangePlan("full")
    history = [s for s in repo.snapshots(refresh=True) if same_source(s, host, paths)]
    if level == "differential":
        history = [s for s in history if s.level == "full"]
    if not history:
        return ChangePlan("full")
    return ChangePlan(level, max(history, key=lambda s: (s.time_ns, s.id)))
