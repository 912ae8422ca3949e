"""Upgrade a repository's config to the authenticated format (``ebas migrate``).

A version-1 config has no MAC: anyone who can write to the storage could change its
chunker, compression, pack size or object-lock settings unnoticed. Migration rewrites it
as version 2, sealed with a MAC under the master key, keeping every setting as it is (the
chunker stays unkeyed: existing data keeps deduplicating). It authenticates whatever the
config holds *now*, so review the settings it reports before trusting them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ebas.errors import IntegrityError
from ebas.repo.config import CONFIG_NAME, FORMAT_VERSION, RepoConfig
from ebas.repo.subkeys import config_mac_key


@dataclass
class MigrateResult:
    """What :func:`migrate_config` did: ``migrated`` is False when nothing was needed."""

    migrated: bool
    version_before: int
    version_after: int
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-able dict for ``--json`` output."""
        return {"migrated": self.migrated, "version_before": self.version_before,
                "version_after": self.version_after, "settings": self.settings}


def migrate_config(repo) -> MigrateResult:
    """Rewrite ``repo``'s legacy config as an authenticated version-2 config.

    Idempotent: an authenticated config is left alone. The stored config must still be
    the one ``repo`` was opened with (``IntegrityError`` otherwise), the new bytes are read
    back before this returns, and ``repo.config`` is replaced by the authenticated one.
    """
    settings = {k: v for k, v in repo.config._doc().items() if k != "version"}
    before = repo.config.version
    if repo.config.authenticated:
        return MigrateResult(False, before, before, settings)
    current = RepoConfig.decode(repo.store.get(CONFIG_NAME))
    if current != repo.config or current.authenticated:
        raise IntegrityError("the repository config changed since this repository was opened; not migrating",
                             hint="run 'ebas migrate' again")
    sealed = repo.config.seal(config_mac_key(repo.master))
    repo.store.put(CONFIG_NAME, sealed)
    if repo.store.get(CONFIG_NAME) != sealed:
        raise IntegrityError("the migrated config did not read back as written", hint="check the store; run 'ebas migrate' again")
    repo.config = RepoConfig.decode(sealed)
    from ebas.repo.repository import LEGACY_CONFIG_WARNING

    repo.key_warnings = [w for w in repo.key_warnings if w != LEGACY_CONFIG_WARNING]
    return MigrateResult(True, before, FORMAT_VERSION, settings)
