"""The one grammar of ebas.units at the command line: what an administrator types, as a subprocess.

``m`` used to mean 30 days in ``--keep-within`` and ``prune --grace`` but one minute in
``find --newer``; now a bare ``m`` is refused everywhere (exit 2) with a message that says
to write ``min`` or ``mo``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ebas.errors import EXIT_USAGE


@pytest.fixture(scope="module")
def aged(tmp_path_factory, make_cli):
    """A repository with snapshots taken 200, 100 and 10 days ago (a template to copy)."""
    base = tmp_path_factory.mktemp("aged")
    src = base / "src"
    src.mkdir()
    cli = make_cli(base / "repo")
    cli.ok("init", "--pack-size", "1MiB")
    now = datetime.now(timezone.utc)
    for age in (200, 100, 10):
        (src / "f.txt").write_text(f"{age} days ago")
        cli.ok("backup", str(src), "--time", (now - timedelta(days=age)).isoformat(timespec="seconds"))
    return base


@pytest.fixture
def cli(aged, tmp_path, make_cli):
    import shutil

    shutil.copytree(aged / "repo", tmp_path / "repo")
    return make_cli(tmp_path / "repo")


def refused(res, *words: str) -> str:
    err = res.stderr.decode()
    assert res.returncode == EXIT_USAGE, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    return err


def test_grace_30m_is_refused_naming_min_and_mo(cli):
    refused(cli("prune", "--grace", "30m"), "'30m' is ambiguous", "30min for minutes", "30mo for months")
    refused(cli("prune", "--max-wait", "5m"), "5min", "5mo")
    refused(cli("prune", "--grace", "30 parsecs"), "unknown duration unit 'parsecs'", "min", "mo (30 days)")
    refused(cli("prune", "--max-unused", "0.1"), "needs a '%' sign")
    out = json.loads(cli.ok("prune", "--grace", "30min", "--max-wait", "0s", "--dry-run", "--json").stdout)
    assert out["dry_run"] is True


def test_keep_within_6mo_keeps_the_last_180_days_and_6m_is_refused(cli):
    refused(cli("forget", "--keep-within", "6m"), "6min", "6mo")
    refused(cli("forget", "--keep-within", "1y6m"), "6min", "6mo")
    assert len(json.loads(cli.ok("snapshots", "--json").stdout)) == 3  # nothing was removed by a refusal
    out = json.loads(cli.ok("forget", "--keep-within", "6mo", "--json").stdout)
    assert len(out["removed"]) == 1  # the one from 200 days ago
    kept = [d for g in out["groups"] for d in g["snapshots"] if d["action"] == "keep"]
    assert len(kept) == 2 and all(d["reasons"] == ["within 180d"] for d in kept)
    assert out["policy"]["within"] == 180 * 86400
    assert len(json.loads(cli.ok("snapshots", "--json").stdout)) == 2


def test_other_flags_read_the_same_grammar(cli, tmp_path):
    refused(cli("find", "x", "--newer", "30m"), "30min", "30mo")
    refused(cli("find", "x", "--size", ">-5M"), "negative")
    refused(cli("find", "x", "--size", ">5XB"), "unknown size unit")
    refused(cli("hold", "compliance", "--min-retention", "6m"), "6min", "6mo")
    refused(cli("hold", "add", "latest", "--reason", "r", "--until", "7m"), "7min", "7mo")
    refused(cli("backup", str(tmp_path), "--level", "auto", "--full-every", "1m"), "1min", "1mo")
    refused(cli("init", "--pack-size", "16", repo=str(tmp_path / "new")), "between 1MiB and 2GiB", "16MiB")
    refused(cli("init", "--pack-size", "-16MiB", repo=str(tmp_path / "new")), "negative")
    cli.ok("hold", "compliance", "--min-retention", "6mo")
    assert "kept at least 180d" in cli.ok("hold", "compliance").stdout.decode()
    rec = json.loads(cli.ok("hold", "add", "latest", "--reason", "audit", "--until", "1y", "--json").stdout)
    until = datetime.fromtimestamp(rec["until_ns"] / 1e9, timezone.utc)
    assert abs(until - (datetime.now(timezone.utc) + timedelta(days=365))) < timedelta(minutes=5)
