"""The repository config: plain JSON at ``config``, no secrets.

It records the format version, the repository id, the chunker parameters, the target
pack size and the compression and encryption schemes. An ebas that finds a newer format
version refuses to touch the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ebas.chunking.params import ChunkerParams, FixedBlockRule
from ebas.errors import MalformedObject, UnsupportedFormat, UsageError
from ebas.repo.fields import Fields, load_json

FORMAT_VERSION = 1
HINT_CONFIG = ("the repository's 'config' object is damaged, and every ebas command ('check' and 'repair' too) needs "
               "it: copy 'config' from a replica or an older copy of this repository (it holds no secrets)")
CONFIG_NAME = "config"
DEFAULT_PACK_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class RepoConfig:
    """Everything a reader needs to know about a repository before opening a key."""

    repo_id: str
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_size: int = DEFAULT_PACK_SIZE
    compression: str = "zstd"
    compression_level: int = 3
    encryption: str = "aes-256-gcm"
    id_hash: str = "blake3-keyed"
    version: int = FORMAT_VERSION
    created_ns: int = 0
    object_lock: dict | None = None  # {"mode": "governance"|"compliance", "days": N}

    def encode(self) -> bytes:
        """Canonical JSON bytes."""
        doc = {
            "version": self.version,
            "id": self.repo_id,
            "chunker": self.chunker.to_dict(),
            "pack_size": self.pack_size,
            "compression": {"algorithm": self.compression, "level": self.compression_level},
            "encryption": self.encryption,
            "id_hash": self.id_hash,
            "created": self.created_ns,
        }
        if self.object_lock:
            doc["object_lock"] = self.object_lock
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    @classmethod
    def decode(cls, data: bytes) -> "RepoConfig":
        """Parse config bytes; refuses unknown versions and schemes, and fields of the wrong
        type or range (``MalformedObject``, an ``IntegrityError``)."""
        try:
            f = Fields(load_json(data, "repository config", ""), "repository config", "")
            version = f.int("version", lo=0)
        except MalformedObject as exc:
            raise MalformedObject("repository config", "", exc.problem, hint=HINT_CONFIG) from None
        if version > FORMAT_VERSION:
            raise UnsupportedFormat(f"repository format version {version} is newer than this ebas supports ({FORMAT_VERSION})")
        try:
            comp = f.sub("compression")
            cfg = cls(
                repo_id=f.str("id", max_len=256),
                chunker=_chunker(f.sub("chunker")),
                pack_size=f.int("pack_size"),
                compression=comp.str("algorithm", max_len=64),
                compression_level=comp.int("level", 3, lo=-131072, hi=22),
                encryption=f.str("encryption", max_len=64),
                id_hash=f.str("id_hash", max_len=64),
                version=version,
                created_ns=f.int("created", 0),
                object_lock=_object_lock(f),
            )
        except MalformedObject as exc:
            raise MalformedObject("repository config", "", exc.problem, hint=HINT_CONFIG) from None
        if cfg.encryption != "aes-256-gcm" or cfg.id_hash != "blake3-keyed":
            raise UnsupportedFormat(f"unknown encryption {cfg.encryption!r} or id hash {cfg.id_hash!r}")
        if cfg.compression not in ("zstd", "none"):
            raise UnsupportedFormat(f"unknown compression {cfg.compression!r}")
        lock = cfg.object_lock
        if lock is not None and not (isinstance(lock, dict) and lock.get("mode") in ("governance", "compliance")
                                     and type(lock.get("days")) in (int, float) and lock["days"] > 0):
            raise MalformedObject("repository config", "", f"invalid object_lock setting {lock!r}", hint=HINT_CONFIG)
        if not (1024 <= cfg.pack_size <= 1 << 31):
            raise MalformedObject("repository config", "", f"invalid pack size {cfg.pack_size}", hint=HINT_CONFIG)
        return cfg


def _chunker(f: Fields) -> ChunkerParams:
    rules = []
    for r in f.list("fixed_rules", []):
        rf = Fields(r, f.kind, f.name)
        rules.append(FixedBlockRule(rf.str("pattern", max_len=4096), rf.int("block_size", lo=0),
                                    rf.int("min_size", 0, lo=0)))
    try:
        return ChunkerParams(algorithm=f.str("algorithm", "fastcdc", max_len=64), min_size=f.int("min"),
                             avg_size=f.int("avg"), max_size=f.int("max"), fixed_rules=tuple(rules))
    except UsageError as exc:
        raise f.bad("chunker", exc.message) from None


def _object_lock(f: Fields) -> dict | None:
    """``object_lock``: null, or ``{"mode": "governance"|"compliance", "days": N > 0}``."""
    if f.doc.get("object_lock") is None:
        return None
    lock = f.sub("object_lock")
    mode = lock.str("mode", choices=("governance", "compliance"))
    days = lock.number("days")
    if not 0 < days <= 36500 * 10:
        raise f.bad("object_lock", f"has an invalid retention of {days} days")
    return {"mode": mode, "days": days}
