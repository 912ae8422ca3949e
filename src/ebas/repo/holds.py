"""Hold records: legal holds, compliance retention and the repository's minimum retention.

Snapshots are immutable (their id is the hash of their bytes, and other snapshots name
them as parent and base), so a hold added later cannot be written into the snapshot.
Instead each hold is a small separate object ``holds/<id>``, sealed like a snapshot
(``AEAD(JSON, aad=b"ebas-hold")``, id = hex BLAKE3 of the stored bytes, so a damaged or
edited record is detected). Records are only ever added; the state is derived from all of
them (docs/format.md, "Holds"):

* ``hold``: a legal hold on ``snapshot`` with a ``reason``. Active until a ``release``
  record names it.
* ``release``: ends the legal hold ``hold`` (its record id), with a ``reason``.
* ``retain``: compliance retention of ``snapshot`` until ``until_ns``. Cannot be released;
  a later record with a later date extends it, an earlier date changes nothing.
* ``compliance``: the repository's minimum retention ``min_retention_ns``: every snapshot
  is retained until its time plus the largest minimum ever recorded. No command lowers it.

A snapshot's manifest may also carry entries in its own ``holds`` list (same fields;
set when it was written): they can never be released.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import blake3

from ebas.errors import IntegrityError, ObjectNotFound
from ebas.repo.fields import Fields, load_json

PREFIX = "holds/"
AAD = b"ebas-hold"
TYPES = ("hold", "release", "retain", "compliance")


@dataclass
class HoldRecord:
    """One record; ``id`` is filled in when stored or loaded."""

    type: str
    created_ns: int
    host: str = ""
    user: str = ""
    reason: str = ""
    snapshot: str = ""  # hold, retain
    until_ns: int = 0  # retain
    hold: str = ""  # release: the id of the hold record it ends
    min_retention_ns: int = 0  # compliance
    id: str = ""

    def encode(self) -> bytes:
        d = asdict(self)
        d.pop("id")
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, rec_id: str) -> "HoldRecord":
        """Parse record bytes, checking types and ranges; ``MalformedObject`` naming the record."""
        name = rec_id[:12]
        f = Fields(load_json(data, "hold record", name), "hold record", name)
        rec = cls(
            type=f.str("type", choices=TYPES), created_ns=f.int("created_ns"), host=f.str("host", ""),
            user=f.str("user", ""), reason=f.str("reason", ""), snapshot=f.str("snapshot", "", max_len=4096),
            until_ns=f.int("until_ns", 0), hold=f.str("hold", "", max_len=4096),
            min_retention_ns=f.int("min_retention_ns", 0, lo=0),
        )
        rec.id = rec_id
        return rec


def save_record(repo, rec: HoldRecord) -> str:
    """Store a record and return its id."""
    stored = repo.aead.seal(rec.encode(), AAD)
    rec.id = blake3.blake3(stored).hexdigest()
    repo.store.put(PREFIX + rec.id, stored)
    return rec.id


def load_records(repo) -> tuple[list[HoldRecord], list[str]]:
    """Every readable record (oldest first) and messages about unreadable ones."""
    out, problems = [], []
    for info in repo.store.list(PREFIX):
        rid = info.name[len(PREFIX):]
        try:
            stored = repo.store.get(info.name)
            if blake3.blake3(stored).hexdigest() != rid:
                raise IntegrityError(f"hold record {rid[:12]} is damaged: contents do not match its id")
            out.append(HoldRecord.decode(repo.aead.open(stored, AAD), rid))
        except ObjectNotFound:
            continue
        except IntegrityError as exc:
            problems.append(f"{info.name}: {exc.message}")
    out.sort(key=lambda r: (r.created_ns, r.id))
    return out, problems


def delete_record(repo, rec_id: str) -> None:
    """Remove a record (only forget does this, for snapshots it removed)."""
    try:
        repo.store.delete(PREFIX + rec_id)
    except ObjectNotFound:
        pass


@dataclass
class HoldState:
    """What the records say: active legal holds, retention dates, the compliance minimum."""

    records: list[HoldRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    holds: dict[str, list[HoldRecord]] = field(default_factory=dict)  # snapshot -> active legal holds
    retain_until: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # snapshot -> (until, reason, rec)
    min_retention_ns: int = 0
    min_retention_record: str = ""

    @classmethod
    def from_records(cls, records: list[HoldRecord], problems: list[str] | None = None) -> "HoldState":
        st = cls(records=list(records), problems=list(problems or []))
        released = {r.hold for r in records if r.type == "release"}
        for r in records:
            if r.type == "hold" and r.id not in released:
                st.holds.setdefault(r.snapshot, []).append(r)
            elif r.type == "retain":
                cur = st.retain_until.get(r.snapshot)
                if cur is None or r.until_ns > cur[0]:
                    st.retain_until[r.snapshot] = (r.until_ns, r.reason, r.id)
            elif r.type == "compliance" and r.min_retention_ns > st.min_retention_ns:
                st.min_retention_ns, st.min_retention_record = r.min_retention_ns, r.id
        return st

    def records_of(self, snapshot_id: str) -> list[HoldRecord]:
        """Every hold, release and retain record that concerns a snapshot."""
        ids = {r.id for r in self.records if r.snapshot == snapshot_id}
        return [r for r in self.records if r.id in ids or (r.type == "release" and r.hold in ids)]


def load_state(repo) -> HoldState:
    """Read every record and derive the state."""
    records, problems = load_records(repo)
    return HoldState.from_records(records, problems)
