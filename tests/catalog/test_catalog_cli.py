"""The catalog commands end to end: ``ebas`` run as a subprocess, on both engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from clihook import fast_kdf_pythonpath
from progress_kit import summary

EBAS = str(Path(sys.executable).with_name("ebas"))


class Cli:
    def __init__(self, tmp: Path, catalog: str | None):
        self.tmp = tmp
        self.env = dict(os.environ, EBAS_REPOSITORY=str(tmp / "repo"), EBAS_PASSWORD="cli-test-pw",
                        PYTHONPATH=fast_kdf_pythonpath(), XDG_CACHE_HOME=str(tmp / "cache"))
        self.env.pop("EBAS_CATALOG", None)
        if catalog:
            self.env["EBAS_CATALOG"] = catalog

    def run(self, *args, ok=True, env=None):
        p = subprocess.run([EBAS, *args], capture_output=True, text=True, env=dict(self.env, **(env or {})),
                           timeout=300)
        if ok and p.returncode != 0:
            raise AssertionError(f"ebas {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def json(self, *args, **kw):
        return summary(self.run(*args, "--json", **kw).stdout)


def iso(day: int) -> str:
    return datetime(2024, 3, 1 + day, 12, tzinfo=timezone.utc).isoformat()


@pytest.fixture
def cli(engine, tmp_path, request):
    catalog = None
    if engine == "postgres":
        catalog = request.getfixturevalue("pg_url") + f"?schema=cli{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    c = Cli(tmp_path, catalog)
    c.run("init")
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "report-2024.txt").write_text("first draft")
    (src / "docs" / "index.html").write_text("<html/>")
    (src / "logs").mkdir()
    (src / "logs" / "app.log").write_text("hello")
    c.src = src
    c.run("backup", str(src), "--time", iso(0), "--host", "alpha", "--tag", "daily")
    (src / "docs" / "report-2024.txt").write_text("second draft, longer")
    (src / "logs" / "app.log").unlink()
    c.run("backup", str(src), "--time", iso(1), "--host", "alpha", "--tag", "daily")
    return c


def test_backup_indexes_and_find_history_ls_answer(cli, engine):
    if engine == "sqlite":  # the default location: the cache directory, per repository
        assert list((cli.tmp / "cache" / "ebas").glob("*/catalog.sqlite"))
    snaps = cli.json("snapshots")
    assert len(snaps) == 2
    found = cli.json("find", "report")
    assert found["not_indexed"] == [] and found["checked"] is True
    assert sorted(r["size"] for r in found["results"]) == [11, 20]
    assert {r["snapshot"] for r in found["results"]} == {s["id"] for s in snaps}
    assert cli.json("find", "*.log", "--deleted")["results"][0]["deleted_in"] == snaps[1]["id"]
    assert len(cli.json("find", "REPORT", "-i", "--size", ">15")["results"]) == 1
    assert cli.json("find", "index.html", "--exact", "--path", str(cli.src / "docs"))["results"]
    assert cli.json("find", r"^report-\d+\.txt$", "--regex", "--between", iso(1), iso(2))["results"][0]["size"] == 20
    text = cli.run("find", "report", "--sort", "-size").stdout
    assert text.index("20 B") < text.index("11 B") and snaps[1]["id"][:8] in text
    hist = cli.json("history", str(cli.src / "docs" / "report-2024.txt"))
    assert [(v["size"], v["snapshots"]) for v in hist["versions"]] == [(11, [snaps[0]["id"]]), (20, [snaps[1]["id"]])]
    at = cli.json("ls", "--at", iso(0)[:10] + "T23:00:00+00:00", str(cli.src / "logs"))
    assert [e["path"] for x in at["listings"] for e in x["entries"]] == [str(cli.src / "logs" / "app.log")]
    assert at["listings"][0]["snapshot"] == snaps[0]["id"]
    plain = cli.run("ls", "--at", iso(5), "-l", str(cli.src / "docs")).stdout
    assert "report-2024.txt" in plain and "index.html" in plain
    assert "report-2024.txt" in cli.run("ls", snaps[0]["id"][:8], str(cli.src / "docs")).stdout  # repo path unchanged
    # a snapshot browsed from the catalog alone: no password needed, same names as the repository's listing
    nopw = {"EBAS_PASSWORD": "", "EBAS_PASSWORD_FILE": ""}
    cat_ls = cli.json("ls", "--from-catalog", snaps[0]["id"][:8], str(cli.src / "docs"), env=nopw)
    assert cat_ls["listings"][0]["snapshot"] == snaps[0]["id"]
    repo_ls = cli.json("ls", snaps[0]["id"][:8], str(cli.src / "docs"))
    assert sorted(e["path"] for e in cat_ls["listings"][0]["entries"]) == sorted(e["path"] for e in repo_ls)
    assert cli.run("ls", snaps[0]["id"][:8], str(cli.src / "docs"), env=nopw, ok=False).returncode != 0
    missing = cli.run("ls", "--from-catalog", snaps[0]["id"][:8], str(cli.src / "nowhere"), ok=False)
    assert missing.returncode == 2 and "is not in snapshot" in missing.stderr
    same = cli.json("find", "--same-content", str(cli.src / "docs" / "index.html"))
    assert [r["path"] for r in same["results"]] == [str(cli.src / "docs" / "index.html")]
    digest = same["results"][0]["digest"]
    assert cli.json("find", "--same-content", digest)["results"] == same["results"]
    check = cli.run("catalog", "check")
    assert check.returncode == 0 and "ok" in check.stdout


def test_stale_catalog_is_reported_and_sync_fixes_it(cli):
    (cli.src / "docs" / "late.txt").write_text("late")
    cli.run("backup", str(cli.src), "--time", iso(2), "--host", "beta", env={"EBAS_CATALOG": "none"})
    check = cli.run("catalog", "check", ok=False)
    assert check.returncode == 1 and "missing" in check.stdout
    p = cli.run("find", "late")
    assert "not indexed yet" in p.stderr and "catalog sync" in p.stderr
    assert len(json.loads(cli.run("find", "late", "--json").stdout)["not_indexed"]) == 1
    sync = cli.json("catalog", "sync")
    assert len(sync["added"]) == 1
    assert cli.run("catalog", "check").returncode == 0
    assert cli.json("find", "late")["results"][0]["host"] == "beta"
    stats = cli.json("catalog", "stats")
    assert stats["snapshots"] == 3 and stats["versions"] > 0
    assert "compacted" in cli.run("catalog", "vacuum").stdout


def test_catalog_failure_never_fails_the_backup(cli):
    (cli.src / "new.txt").write_text("x")
    bad = "postgresql://backup:p4ssw0rd@127.0.0.1:1/nowhere?connect_timeout=2"
    p = cli.run("backup", str(cli.src), "--time", iso(3), env={"EBAS_CATALOG": bad})
    assert p.returncode == 0 and "snapshot" in p.stdout
    assert "catalog was not updated" in p.stderr and "backup:***@127.0.0.1:1" in p.stderr
    assert "p4ssw0rd" not in p.stderr + p.stdout
    q = cli.run("find", "x", env={"EBAS_CATALOG": bad}, ok=False)
    assert q.returncode == 1 and "p4ssw0rd" not in q.stderr and "***" in q.stderr
    assert "missing" in cli.run("catalog", "check", ok=False).stdout  # caught up by the next sync
    cli.run("catalog", "sync")
    assert cli.run("catalog", "check").returncode == 0


def test_export_import_and_rebuild(cli, tmp_path):
    out = tmp_path / "site-a.export"
    p = cli.run("catalog", "export", "-o", str(out))
    assert out.stat().st_size > 0 and "--since" in p.stdout
    other = f"{tmp_path / 'other.sqlite'}"
    imp = cli.json("catalog", "import", str(out), env={"EBAS_CATALOG": other})
    assert imp["snapshots_added"] == 2
    again = cli.json("catalog", "import", str(out), env={"EBAS_CATALOG": other})
    assert again["snapshots_added"] == 0 and again["unchanged"] == 2
    assert cli.json("find", "report", env={"EBAS_CATALOG": other})["results"] == cli.json("find", "report")["results"]
    rebuilt = cli.json("catalog", "rebuild")
    assert len(rebuilt["added"]) == 2
    assert cli.run("catalog", "check").returncode == 0
    assert cli.run("find", "--regex", "(a+)+$", ok=False).returncode == 2


def test_corrupted_default_catalog_tells_to_rebuild(tmp_path):
    c = Cli(tmp_path, None)
    c.run("init")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("f")
    c.run("backup", str(tmp_path / "src"))
    [db] = list((tmp_path / "cache" / "ebas").glob("*/catalog.sqlite"))
    db.write_bytes(b"garbage" * 1000)
    p = c.run("find", "f.txt", ok=False)
    assert p.returncode == 13 and "rebuild" in p.stderr
    c.run("catalog", "rebuild")
    assert c.json("find", "f.txt")["results"]


def test_catalog_alone_says_freshness_is_unknown_and_pipes_work(cli, engine, tmp_path):
    loc = cli.env.get("EBAS_CATALOG") or str(next((tmp_path / "cache" / "ebas").glob("*/catalog.sqlite")))
    env = {k: v for k, v in cli.env.items() if k != "EBAS_REPOSITORY"}
    p = subprocess.run([EBAS, "--catalog", loc, "find", "report", "--json"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["checked"] is False and "could not be checked" in p.stderr
    exported = subprocess.run([EBAS, "catalog", "export"], capture_output=True, env=cli.env, timeout=120)
    assert exported.returncode == 0 and exported.stdout[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame
    other = str(tmp_path / "piped.sqlite")
    imp = subprocess.run([EBAS, "--catalog", other, "--json", "catalog", "import", "-"], input=exported.stdout,
                         capture_output=True, env=cli.env, timeout=120)
    assert imp.returncode == 0 and json.loads(imp.stdout)["snapshots_added"] == 2
    assert cli.run("catalog", "import", str(tmp_path / "missing.export"), ok=False).returncode == 2


def test_forget_updates_the_catalog_in_the_same_command(cli):
    first, second = [s["id"] for s in cli.json("snapshots")]
    cli.run("forget", first)
    found = cli.json("find", "report")
    assert {r["snapshot"] for r in found["results"]} == {second}  # the forgotten one is out of the answers
    p = cli.run("find", "report")
    assert "gone from the repository" not in p.stderr  # no catch-up needed
    check = cli.run("catalog", "check")
    assert check.returncode == 0 and "ok" in check.stdout
