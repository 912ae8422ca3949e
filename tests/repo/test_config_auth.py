"""The repository config is authenticated with the master key (docs/format.md, "config").

Every field changed on the storage, any flipped byte, a stripped MAC and a downgrade to
the unauthenticated format stop every command with an integrity error (exit 13); a
legacy (version 1) repository opens with a warning until ``ebas migrate`` seals it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from ebas import api
from ebas.cli.app import main
from ebas.errors import EXIT_INTEGRITY, IntegrityError, UnsupportedFormat
from ebas.repo.config import CONFIG_NAME, FORMAT_VERSION, RepoConfig
from ebas.repo.repository import LEGACY_CONFIG_WARNING, Repository
from ebas.repo.subkeys import config_mac_key

PASSWORD = "correct horse battery staple"


def _doc(store) -> dict:
    return json.loads(store.get(CONFIG_NAME))


def _write(store, doc: dict) -> None:
    """Write ``doc`` in the canonical layout, so only the MAC can tell it was changed."""
    store.put(CONFIG_NAME, json.dumps(doc, sort_keys=True, indent=1).encode())


def _set(path: str, value):
    def change(doc: dict) -> None:
        *parents, last = path.split(".")
        target = doc
        for p in parents:
            target = target[p]
        if value is _DELETE:
            del target[last]
        elif callable(value):
            target[last] = value(target[last])
        else:
            target[last] = value
    return change


_DELETE = object()

# every field of the config, each changed to another value that parses
CHANGES = {
    "version": _set("version", 1),
    "id": _set("id", "0" * 32),
    "chunker.algorithm": _set("chunker.algorithm", "fastcdc"),
    "chunker.min": _set("chunker.min", 2048),
    "chunker.avg": _set("chunker.avg", 32768),
    "chunker.max": _set("chunker.max", 131072),
    "chunker.fixed_rules.removed": _set("chunker.fixed_rules", []),
    "chunker.fixed_rules.block_size": _set("chunker.fixed_rules", lambda rules: [dict(rules[0], block_size=512)]
                                           + rules[1:]),
    "chunker.fixed_rules.pattern": _set("chunker.fixed_rules", lambda rules: [dict(rules[0], pattern="*")]
                                        + rules[1:]),
    "pack_size": _set("pack_size", 64 * 1024 * 1024),
    "compression.algorithm": _set("compression.algorithm", "none"),
    "compression.level": _set("compression.level", 19),
    "encryption": _set("encryption", "chacha20-poly1305"),
    "id_hash": _set("id_hash", "sha256"),
    "created": _set("created", 1),
    "object_lock.added": _set("object_lock", {"mode": "governance", "days": 1}),
    "mac.changed": _set("mac", lambda m: ("0" if m[0] != "0" else "1") + m[1:]),
    "mac.removed": _set("mac", _DELETE),
    "unknown field": _set("comment", "hello"),
}


@pytest.fixture
def cli_env(monkeypatch):
    monkeypatch.setenv("EBAS_PASSWORD", PASSWORD)
    for name in ("EBAS_REPOSITORY", "EBAS_PASSWORD_FILE", "EBAS_CATALOG"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*args: str) -> int:
    """Run the CLI in this process; its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def test_a_new_repository_has_an_authenticated_keyed_config(repos):
    repo = repos.init()
    doc = _doc(repo.store)
    assert doc["version"] == FORMAT_VERSION == 2 and len(doc["mac"]) == 64
    assert doc["chunker"]["algorithm"] == "fastcdc-keyed"
    again = repos.reopen(repo)
    assert again.config_authenticated and LEGACY_CONFIG_WARNING not in again.key_warnings
    assert again.config == repo.config


def test_the_mac_needs_the_master_key(repos):
    """A config sealed with another repository's key (a forger's own key) does not open."""
    repo = repos.init("a")
    other = repos.init("b")
    forged = replace(repo.config, pack_size=1 << 20).seal(config_mac_key(other.master))
    repo.store.put(CONFIG_NAME, forged)
    with pytest.raises(IntegrityError, match="failed authentication"):
        repos.reopen(repo)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_changed_field_stops_every_command_with_exit_13(repos, field, cli_env, capsys):
    repo = repos.init()
    doc = _doc(repo.store)
    CHANGES[field](doc)
    _write(repo.store, doc)
    with pytest.raises(IntegrityError) as err:
        repos.reopen(repo)
    assert err.value.exit_code == EXIT_INTEGRITY
    path = str(repos.base / "repo")
    assert run_cli("--repo", path, "snapshots") == EXIT_INTEGRITY
    assert "config" in capsys.readouterr().err
    assert run_cli("--repo", path, "--json", "check") == EXIT_INTEGRITY
    out = capsys.readouterr()
    assert json.loads(out.out.strip().splitlines()[-1])["exit_code"] == EXIT_INTEGRITY


def test_any_flipped_byte_is_an_integrity_error(repos):
    repo = repos.init()
    original = repo.store.get(CONFIG_NAME)
    version_digit = original.index(b'"version": 2') + len(b'"version": ')
    for pos in range(len(original)):
        damaged = bytearray(original)
        damaged[pos] ^= 0x01
        repo.store.put(CONFIG_NAME, bytes(damaged))
        expected = UnsupportedFormat if pos == version_digit else IntegrityError  # "version": 3 is a newer format
        with pytest.raises(expected):
            Repository.open(repo.store, PASSWORD)


def test_a_flipped_byte_exits_13_from_the_cli(repos, cli_env, capsys):
    repo = repos.init()
    data = bytearray(repo.store.get(CONFIG_NAME))
    data[len(data) // 2] ^= 0x04
    repo.store.put(CONFIG_NAME, bytes(data))
    assert run_cli("--repo", str(repos.base / "repo"), "snapshots") == EXIT_INTEGRITY
    assert "hint: " in capsys.readouterr().err


# ------------------------------------------------------------------ legacy repositories
def make_legacy(repo) -> None:
    """Turn ``repo`` into what an ebas before config authentication wrote: version 1,
    no MAC, the package's unkeyed chunker."""
    legacy = replace(repo.config, version=1, chunker=replace(repo.config.chunker, algorithm="fastcdc"))
    repo.store.put(CONFIG_NAME, legacy.encode())


def test_a_legacy_repository_warns_migrates_and_is_then_protected(repos, tmp_path):
    repo = repos.init()
    make_legacy(repo)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(300_000))
    old = repos.reopen(repo)
    assert not old.config_authenticated and LEGACY_CONFIG_WARNING in old.key_warnings
    assert not old.config.chunker.keyed
    first = api.backup(old, [str(src)])
    legacy_config = old.config

    result = api.migrate_repository(old)
    assert result.migrated and (result.version_before, result.version_after) == (1, 2)
    assert old.config_authenticated and LEGACY_CONFIG_WARNING not in old.key_warnings
    assert api.migrate_repository(old).migrated is False  # idempotent

    new = repos.reopen(repo)
    assert new.config_authenticated and LEGACY_CONFIG_WARNING not in new.key_warnings
    assert replace(new.config, version=1) == legacy_config  # every setting kept
    assert not new.config.chunker.keyed  # old data keeps deduplicating: the chunker did not change
    second = api.backup(new, [str(src)], level="full")
    assert second.snapshot.stats["bytes_added"] < 64 * 1024  # at most new tree blobs: the data deduplicated
    out = tmp_path / "out"
    api.restore(new, first.snapshot.id, str(out))
    assert (out / str(src).lstrip("/") / "f").read_bytes() == (src / "f").read_bytes()

    doc = _doc(repo.store)
    doc["compression"]["algorithm"] = "none"
    _write(repo.store, doc)
    with pytest.raises(IntegrityError):
        repos.reopen(repo)


def test_a_downgrade_of_a_new_repository_to_the_legacy_format_is_refused(repos):
    """Stripping the MAC and claiming version 1 does not make a keyed repository 'legacy'."""
    repo = repos.init()
    doc = _doc(repo.store)
    del doc["mac"]
    doc["version"] = 1
    _write(repo.store, doc)
    with pytest.raises(IntegrityError, match="has no MAC"):
        repos.reopen(repo)


def test_migration_refuses_a_config_changed_since_open(repos):
    repo = repos.init()
    make_legacy(repo)
    old = repos.reopen(repo)
    changed = replace(old.config, pack_size=1 << 20)
    repo.store.put(CONFIG_NAME, changed.encode())
    with pytest.raises(IntegrityError, match="changed since"):
        api.migrate_repository(old)


def test_keyless_readers_still_read_the_config(repos):
    repo = repos.init()
    cfg = Repository.read_config(repo.store)
    assert cfg.repo_id == repo.config.repo_id and cfg.authenticated
    assert RepoConfig.decode(repo.store.get(CONFIG_NAME)) == repo.config


def test_migrate_cli_in_process(repos, cli_env, capsys):
    repo = repos.init()
    make_legacy(repo)
    path = str(repos.base / "repo")
    assert run_cli("--repo", path, "snapshots") == 0
    assert "ebas migrate" in capsys.readouterr().err
    assert run_cli("--repo", path, "--json", "migrate") == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["migrated"] is True
    assert run_cli("--repo", path, "snapshots") == 0
    assert "ebas migrate" not in capsys.readouterr().err


def test_the_config_mac_is_pinned():
    """The MAC construction is part of the format (docs/format.md, "config")."""
    from ebas.chunking.params import ChunkerParams
    from ebas.repo.keys import MasterKey

    master = MasterKey(bytes(32), bytes(range(32)))
    cfg = RepoConfig(repo_id="00" * 16, chunker=ChunkerParams(algorithm="fastcdc-keyed"), created_ns=1)
    assert cfg.compute_mac(config_mac_key(master)) == "d88661f419147353b04522df341317c0ec3da2e80cc251c50a023a7be8b87969"
    sealed = cfg.seal(config_mac_key(master))
    assert sealed == json.dumps(json.loads(sealed), sort_keys=True, indent=1).encode()  # the canonical layout


def test_a_migrated_repository_stripped_of_its_mac_is_caught_by_its_snapshots(repos, tmp_path, cli_env, capsys):
    """After migration every snapshot records (under the key) that the config was
    authenticated, so turning the config back into an unauthenticated version 1 stops
    every command that reads snapshots, not just with a warning."""
    repo = repos.init()
    make_legacy(repo)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data" * 1000)
    old = repos.reopen(repo)
    api.backup(old, [str(src)])  # written under the legacy config: no record
    api.migrate_repository(old)
    api.backup(old, [str(src)])
    doc = _doc(repo.store)
    del doc["mac"]
    doc["version"] = 1
    doc["compression"]["algorithm"] = "none"
    _write(repo.store, doc)
    downgraded = repos.reopen(repo)  # opens (as any legacy repository, with the warning) ...
    assert LEGACY_CONFIG_WARNING in downgraded.key_warnings
    with pytest.raises(IntegrityError, match="downgraded"):
        downgraded.snapshots()  # ... but nothing that reads snapshots goes on
    assert run_cli("--repo", str(repos.base / "repo"), "snapshots") == EXIT_INTEGRITY
    assert run_cli("--repo", str(repos.base / "repo"), "backup", str(src)) == EXIT_INTEGRITY
    assert "downgraded" in capsys.readouterr().err
