"""Progress in the CLI: JSON status lines before one summary with --json, a live bar under
a pseudo-terminal, nothing extra when the output is not a terminal or with -q."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from ebas import api
from ebas.verify.check import check_repository

FAST = {"EBAS_PROGRESS_FPS": "500", "EBAS_CATALOG": "none"}  # a status line every 2 ms: a short job prints several


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    rnd = random.Random(7)
    for i in range(240):
        d = src / f"d{i % 6}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(rnd.randbytes(rnd.choice([100, 20_000, 90_000])))
    return src


def json_lines(stdout: bytes) -> list[dict]:
    """Every line of the output, each one JSON object (fails on anything else)."""
    return [json.loads(line) for line in stdout.decode().splitlines()]


def statuses_then_summary(stdout: bytes) -> tuple[list[dict], dict]:
    lines = json_lines(stdout)
    types = [d.get("type") for d in lines]
    assert types.count("summary") == 1 and types[-1] == "summary", types
    assert set(types[:-1]) <= {"status"}
    return lines[:-1], lines[-1]


def test_json_status_lines_come_before_exactly_one_summary(cli, source, tmp_path):
    cli.ok("init")
    res = cli.ok("backup", str(source), "--json", env=FAST)
    statuses, summary = statuses_then_summary(res.stdout)
    files = 240
    assert statuses and {s["phase"] for s in statuses} == {"backup"}
    done = [s["items_done"] for s in statuses]
    assert done == sorted(done) and done[-1] <= files
    assert all(s["items_total"] is None or s["items_done"] <= s["items_total"] for s in statuses)
    # today's fields are all there, with "type" added
    for key in ("snapshot_id", "short_id", "time", "host", "paths", "tags", "level", "parent", "partial", "stats",
                "errors", "warnings"):
        assert key in summary
    assert summary["stats"]["files"] == files and summary["level"] == "full"
    repo = api.open_repository(cli.repo, cli.env["EBAS_PASSWORD"])
    assert repo.find_snapshot("latest").id == summary["snapshot_id"]

    res = cli.ok("restore", "latest", "-t", str(tmp_path / "out"), "--json", env=FAST)
    statuses, summary = statuses_then_summary(res.stdout)
    assert {s["phase"] for s in statuses} == {"restore"}
    assert all(s["items_total"] == files and s["items_done"] <= files for s in statuses)  # totals up front
    assert summary["files"] == files and summary["snapshot_id"] == repo.find_snapshot("latest").id

    for args, phases in ((["check", "--read-data"], {"index", "packs", "read", "snapshots"}),
                         (["forget", "--keep-last", "1", "--prune", "--grace", "0s"], {"plan"})):
        statuses, summary = statuses_then_summary(cli.ok(*args, "--json", env=FAST).stdout)
        assert {s["phase"] for s in statuses} <= phases | {"repack", "record", "index", "indexed", "delete",
                                                          "segments", "wait"}
        assert summary["type"] == "summary"
    assert summary["prune"]["dry_run"] is False
    assert check_repository(repo).ok


def test_a_quick_json_command_prints_only_its_summary(cli, source):
    """Below a second no status line: ``json.loads`` of the whole output still works."""
    cli.ok("init")
    doc = json.loads(cli.ok("backup", str(source / "d0"), "--json", env={"EBAS_CATALOG": "none"}).stdout)
    assert doc["type"] == "summary" and doc["stats"]["files"] == 40


def test_catalog_sync_json(cli, source, tmp_path):
    cli.ok("init")
    env = {"EBAS_CATALOG": str(tmp_path / "cat.sqlite")}
    cli.ok("backup", str(source), env={"EBAS_CATALOG": "none"})  # not indexed yet
    statuses, summary = statuses_then_summary(cli.ok("catalog", "sync", "--json", env={**FAST, **env}).stdout)
    assert len(summary["added"]) == 1 and all(s["phase"] == "catalog sync" for s in statuses)


def spawn(cli, *args: str, fps: str = "50") -> tuple[str, int]:
    """Run ``ebas`` under a pseudo-terminal; its output (stdout and stderr) and exit code."""
    env = {**cli.env, "EBAS_PROGRESS_FPS": fps, "EBAS_CATALOG": "none", "TERM": "xterm"}
    child = pexpect.spawn(cli_bin(), ["--repo", cli.repo, *args], env=env, timeout=60, dimensions=(24, 140))
    out = child.read().decode(errors="replace")
    child.close()
    return out, child.exitstatus


def cli_bin() -> str:
    return str(Path(sys.executable).with_name("ebas"))


def test_progress_bar_under_a_pseudo_terminal(cli, source, tmp_path):
    cli.ok("init")
    out, code = spawn(cli, "backup", str(source))
    assert code == 0, out
    assert "backup" in out and "files " in out and "%" in out and "━" in out  # the bar and its figures
    assert "files 240/240" in out or "files 24" in out
    assert "snapshot " in out and "saved (full)" in out  # then the summary text
    out, code = spawn(cli, "restore", "latest", "-t", str(tmp_path / "out"))
    assert code == 0 and "restore" in out and "files " in out and "━" in out, out
    assert (tmp_path / "out" / str(source).lstrip("/") / "d0" / "f0").read_bytes() == (source / "d0" / "f0").read_bytes()


def test_quiet_suppresses_the_bar(cli, source):
    cli.ok("init")
    out, code = spawn(cli, "-q", "backup", str(source))
    assert code == 0 and "━" not in out and "%" not in out and "saved (full)" in out


def test_no_bar_when_the_output_is_not_a_terminal(cli, source):
    cli.ok("init")
    res = subprocess.run([cli_bin(), "--repo", cli.repo, "backup", str(source)], capture_output=True,
                         env={**cli.env, **FAST}, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0
    # the only stderr line allowed: the warning that the test key is weak (a test-only key)
    assert [ln for ln in res.stderr.splitlines() if b"test-strength" not in ln] == []
    assert b"\x1b" not in res.stdout and b"%" not in res.stdout
    assert res.stdout.decode().startswith("snapshot ") and os.linesep in res.stdout.decode()
