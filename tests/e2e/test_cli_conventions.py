"""The command-line conventions users of restic and borg expect, against the real ``ebas``
executable: global options before or after the subcommand, an explicit --password-file
winning over the environment, --json error output chosen by the parsed option, one
meaning per flag name (--host repeatable everywhere, --under for "below this directory")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def js(res):
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def hosts_repo(tmp_path_factory, make_cli):
    """A repository with one snapshot each of hosts a, b and c (in that order)."""
    base = tmp_path_factory.mktemp("conv")
    src = base / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "report.txt").write_bytes(b"quarterly report\n" * 100)
    (src / "notes.txt").write_bytes(b"notes\n")
    cli = make_cli(base / "repo")
    cli.ok("init")
    ids = {h: js(cli.ok("backup", str(src), "--host", h, "--json"))["snapshot_id"] for h in "abc"}
    return cli, src, ids


# ------------------------------------------------- global options anywhere
def test_global_options_work_after_the_subcommand(hosts_repo):
    cli, src, ids = hosts_repo
    before = js(cli("--json", "-q", "--repo", cli.repo, "snapshots", repo=""))
    after = js(cli("snapshots", "-q", "--repo", cli.repo, "--json", repo=""))
    assert [s["id"] for s in before] == [s["id"] for s in after] == list(ids.values())


def test_global_options_after_a_nested_subcommand(hosts_repo):
    cli, _, _ = hosts_repo
    res = cli("key", "list", "--json", "-r", cli.repo, repo="")
    assert res.returncode == 0, res.stderr
    assert [k["current"] for k in js(res)] == [True]


def test_quiet_after_the_subcommand_silences_notes(hosts_repo, cli):
    _, src, _ = hosts_repo
    cli.ok("init")
    loud = cli.ok("backup", str(src), "--host", "q", "--level", "auto", "--full-every", "7d")
    assert b"level auto: full" in loud.stderr
    quiet = cli.ok("backup", "-q", str(src), "--host", "q", "--level", "auto", "--full-every", "7d")
    assert b"level auto" not in quiet.stderr and b"saved (incremental)" in quiet.stdout


def test_the_option_nearest_the_end_wins(hosts_repo, tmp_path):
    cli, _, ids = hosts_repo
    res = cli("--repo", str(tmp_path / "nowhere"), "snapshots", "--repo", cli.repo, "--json", repo="")
    assert res.returncode == 0 and len(js(res)) == len(ids)


def test_help_lists_global_options_in_their_own_section(hosts_repo):
    cli, _, _ = hosts_repo
    text = cli.ok("backup", "--help", repo="").stdout.decode()
    assert "Global options (before or after the command)" in text and "--password-file" in text


# ------------------------------------------------------------ passwords
def test_explicit_password_file_wins_over_the_environment(hosts_repo, tmp_path):
    cli, _, ids = hosts_repo
    good = tmp_path / "pw"
    good.write_text(cli.env["EBAS_PASSWORD"] + "\n")
    wrong = {"EBAS_PASSWORD": "not the password"}
    assert cli("snapshots", env=wrong).returncode == 12  # the environment alone: wrong password
    res = cli("snapshots", "--password-file", str(good), "--json", env=wrong)
    assert res.returncode == 0, res.stderr
    assert len(js(res)) == len(ids)
    bad = tmp_path / "bad"
    bad.write_text("also wrong\n")
    res = cli("--password-file", str(bad), "snapshots", env={"EBAS_PASSWORD_FILE": str(good)})
    assert res.returncode == 12  # the explicit file is used, not the one in EBAS_PASSWORD_FILE


# ------------------------------------------------------------ --json errors
def test_json_errors_follow_the_parsed_option_not_argv(tmp_path, cli):
    missing = str(tmp_path / "missing")
    res = cli("snapshots", "--tag", "--json", repo=missing)  # "--json" is the value of --tag here
    assert res.returncode == 10 and res.stdout == b"" and b"no ebas repository" in res.stderr
    res = cli("snapshots", "--json", repo=missing)
    assert res.returncode == 10 and js(res)["exit_code"] == 10
    res = cli("--json", "snapshots", repo=missing)
    assert res.returncode == 10 and js(res)["exit_code"] == 10


# ------------------------------------------------------- one meaning per flag
def test_host_is_repeatable_in_every_snapshot_filter(hosts_repo, tmp_path):
    cli, src, ids = hosts_repo
    assert [s["host"] for s in js(cli.ok("snapshots", "--host", "a", "--host", "b", "--json"))] == ["a", "b"]
    out = tmp_path / "out"
    res = js(cli.ok("restore", "latest", "--host", "a", "--host", "b", "-t", str(out), "--json"))
    assert res["snapshot_id"] == ids["b"]
    listed = js(cli.ok("ls", "latest", str(src), "--host", "a", "--host", "c", "--json"))
    assert {e["path"] for e in listed} == {f"{src}/docs", f"{src}/notes.txt"}
    dumped = cli.ok("dump", "latest", f"{src}/notes.txt", "--host", "a", "--host", "x").stdout
    assert dumped == b"notes\n"
    plan = js(cli.ok("forget", "--host", "a", "--host", "c", "--keep-last", "1", "--group-by", "", "--dry-run",
                     "--json"))
    decided = {s["id"]: s["action"] for g in plan["groups"] for s in g["snapshots"]}
    assert decided == {ids["a"]: "remove", ids["c"]: "keep"}
    hits = js(cli.ok("find", "report.txt", "--host", "a", "--host", "b", "--json"))["results"]
    assert {h["host"] for h in hits} == {"a", "b"}


def test_find_under_and_its_deprecated_alias(hosts_repo):
    cli, src, _ = hosts_repo
    under = js(cli.ok("find", "txt", "--under", f"{src}/docs", "--json"))["results"]
    assert {Path(h["path"]).name for h in under} == {"report.txt"}
    old = cli.ok("find", "txt", "--path", f"{src}/docs", "--json")
    assert {Path(h["path"]).name for h in js(old)["results"]} == {"report.txt"}
    assert b"deprecated" in old.stderr and b"--under" in old.stderr
    assert b"--path" not in cli.ok("find", "--help").stdout  # the old name is hidden
