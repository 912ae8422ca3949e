"""The repository config: canonical JSON at ``config``, no secrets, authenticated.

It records the format version, the repository id, the chunker parameters, the target
pack size, the compression and encryption schemes and the object-lock settings. It is
readable without a key (a store inventory, ``check`` and the object-lock setup need it
before a password is at hand) and authenticated once the master key is open: format
version 2 adds ``mac``, a BLAKE3 MAC (key: :func:`ebas.repo.subkeys.config_mac_key`) over
the canonical encoding of every other field. The stored bytes must be exactly the
canonical encoding, so one changed byte anywhere, one changed, added or removed field,
or a MAC made without the key is an :class:`~ebas.errors.IntegrityError` (exit 13).

Version 1 configs (written before authentication existed) have no ``mac``; they open
with a warning until ``ebas migrate`` (:func:`ebas.repo.migrate.migrate_config`)
rewrites them as version 2. An ebas that finds a newer format version refuses to touch
the repository.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field, replace

import blake3

from ebas.chunking.params import ChunkerParams, FixedBlockRule
from ebas.errors import IntegrityError, MalformedObject, UnsupportedFormat, UsageError
from ebas.repo.fields import Fields, load_json

FORMAT_VERSION = 2
LEGACY_VERSION = 1  # no MAC: opens with a warning until migrated
CONFIG_NAME = "config"
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
_MAC_DOMAIN = b"ebas repository config\x00"
_FIELDS = {"version", "id", "chunker", "pack_size", "compression", "encryption", "id_hash", "created",
           "object_lock", "mac"}

HINT_CONFIG = ("the repository's 'config' object is damaged, and every ebas command ('check' and 'repair' too) needs "
               "it: copy 'config' from a replica or an older copy of this repository (it holds no secrets)")
TAMPERED_HINT = ("the repository config was changed on the storage (an edited field, a damaged byte, or a "
                 "config from another repository); restore the 'config' object from a backup or replica of "
                 "this repository. Do not run 'ebas migrate' on it")


@dataclass(frozen=True)
class RepoConfig:
    """Everything a reader needs to know about a repository before opening a key.

    ``mac`` is the stored MAC (hex) when decoded from a version-2 config, else None; it
    is not part of the value (two configs with equal fields are equal).
    """

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
    mac: str | None = field(default=None, compare=False, repr=False)

    def _doc(self) -> dict:
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
        return doc

    def compute_mac(self, mac_key: bytes) -> str:
        """The MAC (hex) of every field but ``mac`` under ``mac_key``."""
        body = json.dumps(self._doc(), sort_keys=True, separators=(",", ":")).encode()
        return blake3.blake3(_MAC_DOMAIN + body, key=mac_key).hexdigest()

    def seal(self, mac_key: bytes) -> bytes:
        """The canonical bytes of this config as format version 2, with its MAC."""
        cfg = replace(self, version=FORMAT_VERSION)
        doc = cfg._doc()
        doc["mac"] = cfg.compute_mac(mac_key)
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    def encode(self) -> bytes:
        """Canonical JSON bytes without a MAC: the legacy (version 1) form, kept for
        reading and testing old repositories. New configs are written with :meth:`seal`."""
        return json.dumps(self._doc(), sort_keys=True, indent=1).encode()

    @property
    def authenticated(self) -> bool:
        """True if this config carries a MAC (format version 2 or later)."""
        return self.mac is not None

    @classmethod
    def decode(cls, data: bytes, *, check_schemes: bool = True) -> "RepoConfig":
        """Parse config bytes (no key needed; nothing is authenticated yet).

        Refuses newer format versions (``UnsupportedFormat``) and malformed documents
        (``IntegrityError``). ``check_schemes=False`` postpones the scheme check
        (:meth:`check_supported`) until the MAC is verified, so that a tampered field is
        reported as tampering rather than as an unknown scheme.
        """
        try:
            f = Fields(load_json(data, "repository config", ""), "repository config", "")
            version = f.int("version", lo=0)
        except MalformedObject as exc:
            raise MalformedObject("repository config", "", exc.problem, hint=HINT_CONFIG) from None
        if version > FORMAT_VERSION:
            raise UnsupportedFormat(f"repository format version {version} is newer than this ebas supports ({FORMAT_VERSION})",
                                    hint="upgrade ebas to open this repository")
        try:
            f.only(_FIELDS)
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
                mac=f.opt_str("mac", max_len=256),
            )
        except MalformedObject as exc:
            raise MalformedObject("repository config", "", exc.problem, hint=HINT_CONFIG) from None
        if not (1024 <= cfg.pack_size <= 1 << 31):
            raise MalformedObject("repository config", "", f"invalid pack size {cfg.pack_size}", hint=HINT_CONFIG)
        if check_schemes:
            cfg.check_supported()
        return cfg

    def check_supported(self) -> None:
        """Raise ``UnsupportedFormat`` for an encryption, id hash or compression this ebas lacks."""
        if self.encryption != "aes-256-gcm" or self.id_hash != "blake3-keyed":
            raise UnsupportedFormat(f"unknown encryption {self.encryption!r} or id hash {self.id_hash!r}")
        if self.compression not in ("zstd", "none"):
            raise UnsupportedFormat(f"unknown compression {self.compression!r}")


def authenticate(data: bytes, config: RepoConfig, mac_key: bytes) -> bool:
    """Check the stored config bytes ``data`` (decoded as ``config``) against ``mac_key``.

    Returns True for an authenticated config, False for a legacy version-1 config
    without a MAC (the caller warns). Raises ``IntegrityError`` if the bytes are not
    exactly the canonical sealed form under this key, or if a config that must carry a
    MAC (version 2, or a keyed chunker, which only version 2 has) lacks one.
    """
    if config.mac is None:
        if config.version >= FORMAT_VERSION or config.chunker.keyed:
            raise IntegrityError(f"the repository config (format version {config.version}) has no MAC: "
                                 "it was changed on the storage", hint=TAMPERED_HINT)
        return False
    if not hmac.compare_digest(data, config.seal(mac_key)) or config.version != FORMAT_VERSION:
        raise IntegrityError("the repository config failed authentication with the master key: "
                             "a field or byte of it was changed on the storage", hint=TAMPERED_HINT)
    return True


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
