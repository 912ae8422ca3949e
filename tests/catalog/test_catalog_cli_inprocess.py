"""The catalog commands in-process (click's CliRunner): output formats and option handling."""

from __future__ import annotations

import json
import os

import pytest
from catalog_helpers import DAY, T0
from click.testing import CliRunner

from ebas.cli.app import cli
from ebas.errors import UsageError


@pytest.fixture
def run(builder, tmp_path, monkeypatch, wait):
    from datetime import datetime, timezone

    store_path = tmp_path / "repo"
    from ebas.api import init_repository
    from ebas.backup.archiver import Archiver, BackupOptions
    from ebas.crypto.kdf import KdfParams
    from ebas.runtime import SYSTEM_ENTROPY

    repo = init_repository(str(store_path), "pw", kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    builder.write("src/a/report.txt", "one", mode=0o4755)
    builder.write("src/a/index.html", "<html/>")
    builder.write("src/b/gone.log", "bye")
    Archiver(repo, BackupOptions(paths=[builder.path("src")], host="h1", tags=["t"], time_ns=T0)).run()
    builder.write("src/a/report.txt", "two two")
    builder.remove("src/b/gone.log")
    wait()
    Archiver(repo, BackupOptions(paths=[builder.path("src")], host="h1", time_ns=T0 + DAY)).run()
    monkeypatch.setenv("EBAS_REPOSITORY", str(store_path))
    monkeypatch.setenv("EBAS_PASSWORD", "pw")
    monkeypatch.setenv("EBAS_CATALOG", str(tmp_path / "cat.sqlite"))
    runner = CliRunner()

    def invoke(*args, code=0):
        res = runner.invoke(cli, list(args), catch_exceptions=True)
        if code == 2 and isinstance(res.exception, UsageError):  # main() maps it to exit 2
            return res.output
        if res.exit_code != code:
            raise AssertionError(f"{args}: exit {res.exit_code}\n{res.output}\n{res.exception!r}")
        # JSON goes to stdout alone; warnings (this repository's test-strength key) go to stderr
        return res.stdout if "--json" in args else res.output

    invoke("catalog", "sync")
    invoke.iso = lambda ns: datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat()
    invoke.b = builder
    return invoke


def test_find_outputs(run):
    b = run.b
    out = run("find", "report")
    assert b.path("src/a/report.txt") in out and "2 snapshots" not in out
    out = run("find", "--deleted")
    assert "gone in" in out
    out = run("find", "--mode", "setuid", "--type", "f", "--size", ">1", "--newer", "@0", "--older", "now",
              "--owner", "root" if os.geteuid() == 0 else str(os.geteuid()), "--host", "h1",
              "--source", b.path("src"), "--tag", "t", "--between", run.iso(T0 - DAY), run.iso(T0 + DAY),
              "--sort", "path", "--limit", "1")
    assert "report.txt" in out
    assert "no matches" in run("find", "zzz-nothing")
    assert "only the first 1 results" in run("find", "--limit", "1")
    data = json.loads(run("find", "--exact", "index.html", "--json"))
    assert len(data["results"]) == 1 and data["checked"]
    assert json.loads(run("find", "--glob", "*.LOG", "-i", "--json"))["results"]
    assert json.loads(run("find", "--substring", "port", "--json"))["results"]
    assert json.loads(run("find", "--same-content", b.path("src/a/index.html"), "--json"))["results"]
    assert json.loads(run("find", "--same-content", b.path("src/a/report.txt"), "--json"))["results"]
    run("find", "--exact", code=2)


def test_history_ls_check_stats(run):
    b = run.b
    out = run("history", b.path("src/a/report.txt"))
    assert out.count("snapshot(s)") == 2
    assert "not in any indexed snapshot" in run("history", b.path("src/none"))
    out = run("ls", "--at", run.iso(T0 + 2 * DAY), "-l", b.path("src/a"))
    assert "report.txt" in out and "rws" in out
    assert json.loads(run("ls", "--at", run.iso(T0), b.path("src/b"), "--json"))["listings"]
    run("ls", "--at", run.iso(T0 - DAY), b.path("src"), code=2)
    assert "ok" in run("catalog", "check", "--integrity")
    assert "versions:" in run("catalog", "stats")
    assert "compacted" in run("catalog", "vacuum")
    assert "snapshot(s)" in run("catalog", "rebuild")
    run("ls", code=2)


def test_export_import_files(run, tmp_path):
    out = tmp_path / "x.export"
    assert "--since" in run("catalog", "export", "-o", str(out))
    assert "already known" in run("catalog", "import", str(out))
    assert json.loads(run("catalog", "export", "--since", "999", "-o", str(out), "--json"))["snapshots"] == 0
