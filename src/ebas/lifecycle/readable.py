"""Every snapshot, or none: what commands that decide deletion read the snapshot list with.

``Repository.snapshots()`` lists the readable snapshots and puts the unreadable ones
(truncated, flipped bytes, undecryptable, undecodable) aside in ``snapshot_problems``, so
that listing, restore and backup keep working. A command that deletes what no snapshot
needs (prune, ``forget --prune``) or lets retention lapse (object-lock upkeep) must not
work from that list: the data only an unreadable snapshot needs would look unreferenced.
Unreadable is never the same as unreferenced, so these commands stop instead.
"""

from __future__ import annotations

from ebas.errors import IntegrityError
from ebas.repo.snapshots import Snapshot

HINT = ("copy the named snapshots/ object(s) back from a replica of this repository (a snapshot is proved by its "
        "name); if no copy exists anywhere, delete those objects from the store by hand ('ebas check' lists them), "
        "then run this again")


def all_snapshots(repo, doing: str) -> list[Snapshot]:
    """Every snapshot of ``repo`` (re-listed now), oldest first, or ``IntegrityError``
    (exit 13) naming each unreadable snapshot object and saying what to do. ``doing``
    names the command in the message (``"prune"``)."""
    snaps = repo.snapshots(refresh=True)
    refuse_unreadable(repo.snapshot_problems, doing)
    return snaps


def refuse_unreadable(problems: list[str], doing: str, outcome: str = "nothing was deleted or changed") -> None:
    """Raise ``IntegrityError`` if ``problems`` (``"snapshots/<id>: why"`` lines) is not empty;
    the message ends with ``outcome`` (what the command did or did not do)."""
    if not problems:
        return
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    raise IntegrityError(f"{len(problems)} snapshot object(s) cannot be read ({shown}); {doing} cannot tell what "
                         f"they need, and unreadable is not unreferenced: {outcome}", hint=HINT)


__all__ = ["all_snapshots", "refuse_unreadable"]
