"""Damage is named as damage, and hints lead somewhere that works.

A damaged snapshot named on ``restore`` is reported as damaged (exit 13), not as "no
snapshot with id"; a damaged config's hint does not send the admin to a command that
fails the same way (every command, check and repair included, needs the config).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebas import api
from ebas.errors import AmbiguousSnapshot, IntegrityError, SnapshotNotFound
from ebas.repo.config import RepoConfig


@pytest.fixture
def two_snapshots(repos, tmp_path):
    repo = repos.init()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"content")
    a = api.backup(repo, [str(src)]).snapshot
    b = api.backup(repo, [str(src)]).snapshot
    path = repos.base / "repo" / "snapshots" / b.id
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return repos.reopen(repo), a, b


def test_restoring_a_damaged_snapshot_says_it_is_damaged(two_snapshots, tmp_path):
    repo, a, b = two_snapshots
    for ref in (b.id, b.id[:8]):
        with pytest.raises(IntegrityError, match=f"snapshot {b.id[:12]} is damaged") as info:
            api.restore(repo, ref, str(tmp_path / "t"))
        assert info.value.exit_code == 13 and "replica" in info.value.hint
    api.restore(repo, a.id[:8], str(tmp_path / "t"))  # the healthy one still restores
    assert api.ls(repo, a.id[:8])
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("ffffffffffff" if not b.id.startswith("ff") else "eeeeeeeeeeee")


def test_a_prefix_matching_a_healthy_and_a_damaged_snapshot_is_ambiguous(two_snapshots, repos):
    repo, a, b = two_snapshots
    twin = a.id[:6] + ("0" * 58 if a.id[6] != "0" else "1" * 58)  # same 6-char prefix as a, unreadable
    (repos.base / "repo" / "snapshots" / twin).write_bytes(b"damaged")
    repo = repos.reopen(repo)
    with pytest.raises(AmbiguousSnapshot, match="damaged"):
        repo.find_snapshot(a.id[:6])
    assert repo.find_snapshot(a.id[:10]).id == a.id


def test_cli_restore_of_a_damaged_snapshot_exits_13(two_snapshots, make_cli, repos, tmp_path):
    _repo, _a, b = two_snapshots
    res = make_cli(repos.base / "repo")("restore", b.id[:8], "--target", str(tmp_path / "t"))
    assert res.returncode == 13
    assert b"is damaged" in res.stderr and b"no snapshot with id" not in res.stderr


def _config_variants(good: dict) -> dict[str, bytes]:
    def changed(**kw) -> bytes:
        return json.dumps({**good, **kw}).encode()

    return {
        "garbage": b"\x00\xffnot json at all",
        "truncated": json.dumps(good).encode()[:40],
        "list": b"[1, 2, 3]",
        "chunker-not-object": changed(chunker=5),
        "compression-string": changed(compression="zstd"),
        "pack-size": changed(pack_size=12),
        "pack-size-inf": json.dumps({**good, "pack_size": 1e400}).encode().replace(b"Infinity", b"1e400"),
        "object-lock": changed(object_lock="yes"),
    }


@pytest.fixture
def config_repo(repos):
    repos.init()
    return repos.base / "repo"


@pytest.mark.parametrize("variant", ["garbage", "truncated", "list", "chunker-not-object", "compression-string",
                                     "pack-size", "pack-size-inf", "object-lock"])
def test_damaged_config_hint_does_not_point_at_a_command_that_needs_the_config(config_repo, make_cli, variant):
    path = Path(config_repo) / "config"
    good = json.loads(path.read_bytes())
    path.chmod(0o644)
    path.write_bytes(_config_variants(good)[variant])
    with pytest.raises(IntegrityError) as info:
        RepoConfig.decode(path.read_bytes())
    assert "copy 'config'" in info.value.hint and "run 'ebas" not in info.value.hint
    cli = make_cli(config_repo)
    for cmd in (("check", "--json"), ("repair", "index", "--json"), ("snapshots", "--json")):
        res = cli(*cmd)
        assert res.returncode == 13, (cmd, res.stderr.decode())
        err = json.loads(res.stdout)
        assert err["error"] in ("IntegrityError", "MalformedObject") and "copy 'config'" in err["hint"]
        assert "run 'ebas" not in err["hint"] and b"unexpected" not in res.stderr
