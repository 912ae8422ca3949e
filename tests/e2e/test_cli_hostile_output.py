"""The CLI's answers stay trustworthy: ``--json`` always answers in JSON, and hostile
names cannot drive the terminal (escape sequences, newlines) in text output."""

from __future__ import annotations

import json
import subprocess

import click
import pytest

EVIL = "evil\x1b[2J\x1b]0;pwned\x07\nfake line\u202e\x9b31m"


def _json_error(res: subprocess.CompletedProcess, code: int) -> dict:
    assert res.returncode == code, res.stderr.decode()
    obj = json.loads(res.stdout)
    assert set(obj) == {"error", "message", "hint", "exit_code"} and obj["exit_code"] == code
    assert b"Traceback" not in res.stderr
    return obj


@pytest.mark.parametrize("args", [
    ("--json", "no-such-command"),
    ("--json", "restore"),  # missing argument
    ("ls", "--json", "--no-such-option"),
    ("--json", "check", "--read-data=maybe"),
    ("--json", "backup", "--level", "sometimes", "/tmp"),
])
def test_usage_errors_caught_by_the_parser_answer_in_json(cli, args):
    obj = _json_error(cli(*args), 2)
    assert obj["error"] == "UsageError" and obj["message"] and "--help" in obj["hint"]


def test_usage_error_without_json_prints_no_json(cli):
    res = cli("no-such-command")
    assert res.returncode == 2 and res.stdout == b"" and b"No such command" in res.stderr


def test_unexpected_errors_answer_in_json(capsys, monkeypatch):
    from ebas.cli.app import cli as group
    from ebas.cli.app import main

    @click.command("explode")
    def explode():
        raise TypeError("a bug")

    monkeypatch.delenv("EBAS_DEBUG", raising=False)
    group.add_command(explode)
    try:
        for args, code in ((["--json", "explode"], 1), (["explode"], 1)):
            with pytest.raises(SystemExit) as info:
                main(args)
            out = capsys.readouterr()
            assert info.value.code == code
            assert "unexpected TypeError: a bug" in out.err and "Traceback" not in out.err
            if "--json" in args:
                assert json.loads(out.out) == {"error": "InternalError", "message": "unexpected TypeError: a bug",
                                               "hint": "this is a bug in ebas; rerun with EBAS_DEBUG=1 for details "
                                                       "and report it", "exit_code": 1}
            else:
                assert out.out == ""
    finally:
        group.commands.pop("explode")


def test_an_interruption_answers_in_json(capsys):
    from ebas.cli.app import cli as group
    from ebas.cli.app import main

    @click.command("interrupt-me")
    def interrupt_me():
        raise KeyboardInterrupt

    group.add_command(interrupt_me)
    try:
        with pytest.raises(SystemExit) as info:
            main(["--json", "interrupt-me"])
    finally:
        group.commands.pop("interrupt-me")
    assert info.value.code == 130
    assert json.loads(capsys.readouterr().out) == {"error": "Interrupted", "message": "interrupted", "hint": "",
                                                   "exit_code": 130}


def test_ebas_errors_answer_in_json(cli, tmp_path):
    obj = _json_error(cli("--json", "snapshots", repo=str(tmp_path / "nothing-here")), 10)
    assert obj["error"] == "RepositoryNotFound"


@pytest.fixture
def evil_repo(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain").write_bytes(b"1")
    cli.ok("init")
    cli.ok("backup", str(src))
    (src / EVIL).write_bytes(b"2")
    cli.ok("backup", str(src))
    return cli, src


def _no_terminal_control(out: bytes) -> None:
    text = out.decode("utf-8", "surrogateescape")
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\u202e" not in text
    assert "fake line" not in [line.strip() for line in text.splitlines()]  # the newline did not start a line


def test_ls_find_diff_and_errors_print_names_escaped(evil_repo):
    cli, src = evil_repo
    for args in (("ls", "-R", "latest", str(src)), ("ls", "-l", "latest", str(src)), ("diff", *_ids(cli)),
                 ("find", "evil"), ("ls", "--from-catalog", "-l", _ids(cli)[-1], str(src)),
                 ("ls", "latest", f"{src}/{EVIL}/below")):  # an error message naming it
        res = cli(*args)
        out = res.stdout + res.stderr
        _no_terminal_control(out)
        assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\nfake line\\u202e\\x9b31m" in out.decode(), (args, out)


def test_json_output_keeps_the_real_name(evil_repo):
    cli, src = evil_repo
    entries = json.loads(cli.ok("ls", "--json", "latest", str(src)).stdout)
    assert f"{src}/{EVIL}" in {e["path"] for e in entries}
    changes = json.loads(cli.ok("diff", "--json", *_ids(cli)).stdout)["changes"]
    assert any(c["path"].endswith(EVIL) for c in changes)


def _ids(cli) -> list[str]:
    return [s["id"] for s in json.loads(cli.ok("snapshots", "--json").stdout)]
