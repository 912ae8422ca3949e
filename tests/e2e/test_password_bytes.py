"""Passwords are bytes: a password file (or environment variable) that is not UTF-8 works.

A key made with a non-UTF-8 password file opens with the same file and with the same
bytes from the environment; another password is refused with exit 12, never a crash.
"""

from __future__ import annotations

import os

import pytest

from ebas.errors import WrongPassword
from ebas.repo.repository import Repository
from ebas.storage.backends.file import FileStore

SECRET = b"\xff\xfe latin-1 caf\xe9 \x80\x81"  # not UTF-8
OTHER = b"\xff\xfe latin-1 caf\xe9 \x80\x82"


NO_ENV_PASSWORD = {"EBAS_PASSWORD": None}


@pytest.fixture
def pwfiles(tmp_path):
    good, bad = tmp_path / "pw-good", tmp_path / "pw-bad"
    good.write_bytes(SECRET + b"\n")
    bad.write_bytes(OTHER + b"\n")
    return good, bad


def run(cli, *args, env):
    """The real executable with the password only where the test puts it."""
    return cli(*args, env=dict(NO_ENV_PASSWORD, **env))


def test_a_key_made_from_a_non_utf8_password_file_opens_with_that_file_only(tmp_path, cli, pwfiles):
    good, bad = pwfiles
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    env = {}
    res = run(cli, "--password-file", str(good), "init", env=env)
    assert res.returncode == 0, res.stderr
    assert run(cli, "--password-file", str(good), "backup", str(src), env=env).returncode == 0
    listed = run(cli, "--password-file", str(good), "snapshots", env=env)
    assert listed.returncode == 0 and b"1 snapshots" in listed.stdout
    wrong = run(cli, "--password-file", str(bad), "snapshots", env=env)
    assert wrong.returncode == 12, wrong.stderr
    assert b"unexpected" not in wrong.stderr and b"password" in wrong.stderr
    # the same bytes from the environment (as file, env and prompt give the same key)
    assert cli("snapshots", env={"EBAS_PASSWORD": None, b"EBAS_PASSWORD": SECRET}).returncode == 0
    assert cli("snapshots", env={"EBAS_PASSWORD": None, b"EBAS_PASSWORD": OTHER}).returncode == 12


def test_key_add_with_a_non_utf8_new_password_file(tmp_path, cli, pwfiles):
    good, bad = pwfiles
    env = {}
    assert run(cli, "--password-file", str(good), "init", env=env).returncode == 0
    added = run(cli, "--password-file", str(good), "key", "add", env=dict(env, EBAS_NEW_PASSWORD_FILE=str(bad)))
    assert added.returncode == 0, added.stderr
    assert run(cli, "--password-file", str(bad), "snapshots", env=env).returncode == 0


def test_api_password_bytes_and_their_surrogate_escaped_text_open_the_same_key(tmp_path, fast_kdf):
    store = FileStore(tmp_path / "repo", fsync=False)
    Repository.init(store, SECRET, kdf=fast_kdf)
    assert Repository.open(store, SECRET).key_id
    assert Repository.open(store, os.fsdecode(SECRET)).key_id  # what a locale-decoding reader would hand over
    with pytest.raises(WrongPassword):
        Repository.open(store, OTHER)
