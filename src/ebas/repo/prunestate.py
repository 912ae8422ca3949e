"""Pending-deletion records of prune: ``prune/<random hex>``.

A prune deletes in two phases (docs/format.md, "Prune"). Phase one writes this record
*before* it removes the condemned packs from the index; phase two deletes the packs
after every backup that was running at phase one has finished, then deletes the
superseded index segments and finally the record. While a record exists its packs are
*condemned*: :meth:`ebas.repo.session.WriteSession.adopt_unindexed_packs` never adopts
them, so no new backup can start to depend on a pack that is about to disappear.

Stored as ``AEAD(JSON, aad=b"ebas-prune" + name)`` (the name is bound in, so records
cannot be swapped); rewritten in place (atomically) as phase one progresses. JSON fields:
``version``, ``created_ns``, ``host``, ``pid``, ``packs`` (hex pack ids to delete),
``segments`` (index segment names to delete once ``compacted`` exists), ``compacted``
(the segment that supersedes them, or ""), ``snapshots`` (ids the mark phase saw),
``waiting_for`` (lock ids live after the new index was written; null if not yet known),
``phase`` ("marked" or "indexed").
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from ebas.errors import IntegrityError, ObjectNotFound
from ebas.repo.fields import Fields, load_json

PREFIX = "prune/"
AAD = b"ebas-prune"
PHASES = ("marked", "indexed")


@dataclass
class PendingDeletion:
    """One prune's condemned packs and what it waits for."""

    created_ns: int
    host: str = ""
    pid: int = 0
    packs: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    compacted: str = ""
    snapshots: list[str] = field(default_factory=list)
    waiting_for: list[str] | None = None
    phase: str = "marked"
    version: int = 1
    name: str = ""

    @property
    def pack_ids(self) -> set[bytes]:
        return {bytes.fromhex(p) for p in self.packs}


def save(repo, rec: PendingDeletion) -> str:
    """Write (or rewrite) the record; a new record gets a random name."""
    if not rec.name:
        rec.name = PREFIX + repo.entropy.token_bytes(16).hex()
    doc = asdict(rec)
    doc.pop("name")
    repo.store.put(rec.name, repo.aead.seal(json.dumps(doc, sort_keys=True).encode(), AAD + rec.name.encode()))
    return rec.name


def load_all(repo) -> tuple[list[PendingDeletion], list[str]]:
    """Readable records, and the names of unreadable ones."""
    out, bad = [], []
    for info in repo.store.list(PREFIX):
        try:
            plain = repo.aead.open(repo.store.get(info.name), AAD + info.name.encode())
            out.append(decode(plain, info.name))
        except ObjectNotFound:
            continue
        except IntegrityError:  # MalformedObject included
            bad.append(info.name)
    out.sort(key=lambda r: (r.created_ns, r.name))
    return out, bad


def decode(plain: bytes, name: str) -> PendingDeletion:
    """Parse a record's plaintext, checking every field; ``MalformedObject`` naming it."""
    f = Fields(load_json(plain, "prune record", name), "prune record", name)
    return PendingDeletion(
        created_ns=f.int("created_ns"), host=f.str("host", ""), pid=f.int("pid", 0),
        packs=f.str_list("packs", [], hex_ids=True), segments=_segment_names(f, f.str_list("segments", [])),
        compacted=_segment_names(f, [f.str("compacted", "", max_len=128)])[0],
        snapshots=f.str_list("snapshots", [], max_len=4096),
        waiting_for=f.opt_str_list("waiting_for", max_len=4096), phase=f.str("phase", "marked", choices=PHASES),
        version=f.int("version", 1), name=name,
    )


def _segment_names(f: Fields, names: list[str]) -> list[str]:
    """Only index segment names: prune deletes what a record lists, so an authentic record
    naming ``keys/...`` or ``snapshots/...`` must not make it delete those."""
    for n in names:
        if n and not _SEGMENT.fullmatch(n):
            raise f.bad("segments", f"names {n[:80]!r}, which is not an index segment")
    return names


_SEGMENT = re.compile(r"index/[0-9a-f]{64}")


def condemned_packs(repo) -> set[bytes]:
    """Pack ids some prune is deleting (never adopt or depend on these)."""
    out: set[bytes] = set()
    for rec in load_all(repo)[0]:
        out |= rec.pack_ids
    return out


def remove(repo, name: str) -> None:
    """Delete a finished (or unreadable) record."""
    try:
        repo.store.delete(name)
    except ObjectNotFound:
        pass
