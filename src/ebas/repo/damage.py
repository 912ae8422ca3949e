"""Damage records: ``damaged/<random hex>``, blob copies that verification found damaged.

``ebas check --read-data`` writes one when it finds blobs whose stored bytes no longer
verify (or that sit in a missing or truncated pack) while they are still in the index.
Until ``ebas repair index`` rebuilds the index without them (and removes every record),
the records keep the damage from spreading (docs/format.md, "Damage records"):

* a write session treats such a blob as absent, so a backup stores its data again in a
  new pack instead of building on the damaged copy;
* the dedup table reads a blob from another, intact copy when one is indexed
  (:func:`steer`), so the new snapshot restores.

Stored as ``AEAD(JSON, aad=b"ebas-damaged" + name)``. JSON fields: ``version``,
``created_ns``, ``packs`` (an object: hex pack id -> list of hex ids of the damaged blobs
of that pack).
"""

from __future__ import annotations

import json
import re

from ebas.errors import IntegrityError, ObjectNotFound
from ebas.repo.fields import Fields, load_json

PREFIX = "damaged/"
AAD = b"ebas-damaged"
_HEX64 = re.compile(r"[0-9a-f]{64}")

Damage = dict[bytes, set[bytes]]  # blob id -> ids of the packs holding a damaged copy of it


def encode(created_ns: int, damage: Damage) -> bytes:
    """The plaintext JSON of a record listing ``damage``."""
    packs: dict[str, list[str]] = {}
    for bid, pids in damage.items():
        for pid in pids:
            packs.setdefault(pid.hex(), []).append(bid.hex())
    doc = {"version": 1, "created_ns": created_ns, "packs": {p: sorted(b) for p, b in sorted(packs.items())}}
    return json.dumps(doc, sort_keys=True).encode()


def decode(plain: bytes, name: str) -> Damage:
    """Parse a record's plaintext, checking every field; ``MalformedObject`` naming it."""
    f = Fields(load_json(plain, "damage record", name), "damage record", name)
    f.int("version", 1, lo=1, hi=1)
    f.int("created_ns", 0)
    packs = f.sub("packs")
    out: Damage = {}
    for phex in packs.doc:
        if type(phex) is not str or not _HEX64.fullmatch(phex):
            raise f.bad("packs", "must be keyed by 64-character hex pack ids")
        pid = bytes.fromhex(phex)
        for bhex in packs.str_list(phex, hex_ids=True):
            out.setdefault(bytes.fromhex(bhex), set()).add(pid)
    return out


def load(repo) -> tuple[Damage, list[str], list[str]]:
    """Every damaged blob copy the readable records list, the names of those records and
    the names of unreadable ones (an unreadable record steers nothing)."""
    out: Damage = {}
    names, bad = [], []
    for info in repo.store.list(PREFIX):
        try:
            rec = decode(repo.aead.open(repo.store.get(info.name), AAD + info.name.encode()), info.name)
        except ObjectNotFound:
            continue
        except IntegrityError:  # MalformedObject included
            bad.append(info.name)
            continue
        names.append(info.name)
        for bid, pids in rec.items():
            out.setdefault(bid, set()).update(pids)
    return out, names, bad


def record(repo, damage: Damage) -> str | None:
    """Store a record of the copies in ``damage`` not yet recorded; return its name, or
    None if every copy was already recorded. Store errors propagate (the caller decides
    whether a read-only store matters)."""
    known = load(repo)[0]
    new: Damage = {}
    for bid, pids in damage.items():
        rest = set(pids) - known.get(bid, set())
        if rest:
            new[bid] = rest
    if not new:
        return None
    name = PREFIX + repo.entropy.token_bytes(16).hex()
    repo.store.put(name, repo.aead.seal(encode(repo.clock.now_ns(), new), AAD + name.encode()))
    return name


def remove_all(repo) -> list[str]:
    """Delete every record (after an index rebuild left the damaged copies out); their names."""
    gone = []
    for info in repo.store.list(PREFIX):
        try:
            repo.store.delete(info.name)
        except ObjectNotFound:
            continue
        gone.append(info.name)
    return gone


def steer(table, damage: Damage, segments) -> int:
    """Make ``table`` (a :class:`ebas.repo.dedup.DedupTable`) read each damaged blob from an
    intact copy where one is indexed. ``segments`` yields ``(packs, entries)`` of the index
    segments (read only if some blob currently resolves to a damaged copy). Returns the
    number of blobs steered to another copy."""
    affected = {bid for bid, pids in damage.items() if (loc := table.lookup(bid)) is not None and loc[0] in pids}
    if not affected:
        return 0
    import numpy as np

    wanted = np.array(sorted(affected), dtype="S32")
    steered = 0
    for packs, entries in segments:
        if not len(entries):
            continue
        rows = entries[np.isin(entries["id"], wanted)]
        raw = rows["id"].tobytes()
        for i, row in enumerate(rows):
            bid = raw[i * 32 : (i + 1) * 32]
            pid = packs[int(row["pack"])]
            if bid in affected and pid not in damage[bid]:
                table.prefer(bid, pid, int(row["offset"]), int(row["length"]))
                affected.discard(bid)
                steered += 1
        if not affected:
            break
    return steered
