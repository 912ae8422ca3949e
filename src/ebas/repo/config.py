"""The repository config: plain JSON at ``config``, no secrets.

It records the format version, the repository id, the chunker parameters, the target
pack size and the compression and encryption schemes. An ebas that finds a newer format
version refuses to touch the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ebas.chunking.params import ChunkerParams
from ebas.errors import IntegrityError, UnsupportedFormat

FORMAT_VERSION = 1
HINT_CONFIG = ("the repository's 'config' object is damaged, and every ebas command ('check' and 'repair' too) needs "
               "it: copy 'config' from a replica or an older copy of this repository (it holds no secrets)")
_MALFORMED = (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError)
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
        """Parse config bytes; refuses unknown versions and schemes."""
        try:
            doc = json.loads(data)
            version = int(doc["version"])
        except _MALFORMED as exc:
            raise IntegrityError(f"repository config is unreadable: {exc}", hint=HINT_CONFIG) from exc
        if version > FORMAT_VERSION:
            raise UnsupportedFormat(f"repository format version {version} is newer than this ebas supports ({FORMAT_VERSION})")
        try:
            cfg = cls(
                repo_id=str(doc["id"]),
                chunker=ChunkerParams.from_dict(doc["chunker"]),
                pack_size=int(doc["pack_size"]),
                compression=doc["compression"]["algorithm"],
                compression_level=int(doc["compression"].get("level", 3)),
                encryption=doc["encryption"],
                id_hash=doc["id_hash"],
                version=version,
                created_ns=int(doc.get("created", 0)),
                object_lock=doc.get("object_lock"),
            )
        except _MALFORMED as exc:
            raise IntegrityError(f"repository config is malformed: {exc}", hint=HINT_CONFIG) from exc
        if cfg.encryption != "aes-256-gcm" or cfg.id_hash != "blake3-keyed":
            raise UnsupportedFormat(f"unknown encryption {cfg.encryption!r} or id hash {cfg.id_hash!r}")
        if cfg.compression not in ("zstd", "none"):
            raise UnsupportedFormat(f"unknown compression {cfg.compression!r}")
        lock = cfg.object_lock
        if lock is not None and not (isinstance(lock, dict) and lock.get("mode") in ("governance", "compliance")
                                     and type(lock.get("days")) in (int, float) and lock["days"] > 0):
            raise IntegrityError(f"repository config has an invalid object_lock setting {lock!r}", hint=HINT_CONFIG)
        if not (1024 <= cfg.pack_size <= 1 << 31):
            raise IntegrityError(f"repository config has an invalid pack size {cfg.pack_size}", hint=HINT_CONFIG)
        return cfg
