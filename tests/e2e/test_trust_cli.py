"""Trust boundaries end to end, with the real ``ebas`` executable as a subprocess:
test-strength keys warn on every open, the CLI reads no fast-KDF switch, a legacy config
is migrated and then protected, and credentials in store URLs are never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebas.cli.app import main
from ebas.storage.backends.file import FileStore
from ebas.storage.registry import BACKENDS

EBAS_SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_test_strength_key_warns_on_every_open(cli):
    cli.ok("init")
    for _ in range(2):
        res = cli.ok("snapshots")
        assert b"warning: key " in res.stderr and b"test-strength KDF parameters" in res.stderr
    res = cli.ok("-q", "--json", "snapshots")
    warnings = [json.loads(line) for line in res.stderr.decode().splitlines() if line.startswith("{")]
    assert any(w["type"] == "warning" and "test-strength" in w["message"] for w in warnings)
    assert json.loads(res.stdout) == []  # stdout stays one JSON document


def test_the_cli_reads_no_fast_kdf_switch(cli, tmp_path):
    """Without the test suite's start-up hook, ``init`` makes a production-strength key,
    whatever the environment says."""
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "EBAS_TEST_FAST_KDF": "1", "EBAS_KDF": "fast"}
    cli.ok("init", env=env)
    (key,) = list((tmp_path / "repo" / "keys").iterdir())
    kdf = json.loads(key.read_text())["kdf"]
    assert kdf["algorithm"] == "argon2id" and kdf["memory_kib"] >= 19 * 1024 and kdf["time_cost"] >= 2
    assert b"test-strength" not in cli.ok("snapshots", env=env).stderr
    for path in EBAS_SRC.rglob("*.py"):
        assert "FAST_KDF" not in path.read_text(), path


def test_a_legacy_repository_is_migrated_then_protected(cli, tmp_path):
    cli.ok("init")
    config = tmp_path / "repo" / "config"
    doc = json.loads(config.read_text())
    del doc["mac"]
    doc["version"], doc["chunker"]["algorithm"] = 1, "fastcdc"  # what an ebas before authentication wrote
    config.write_text(json.dumps(doc, sort_keys=True, indent=1))
    res = cli.ok("snapshots")
    assert b"not authenticated" in res.stderr and b"ebas migrate" in res.stderr
    out = json.loads(cli.ok("migrate", "--json").stdout)
    assert out["migrated"] is True and out["version_after"] == 2
    assert b"not authenticated" not in cli.ok("snapshots").stderr
    doc = json.loads(config.read_text())
    doc["pack_size"] = 1 << 20
    config.write_text(json.dumps(doc, sort_keys=True, indent=1))
    res = cli("snapshots")
    assert res.returncode == 13 and b"config" in res.stderr


# ------------------------------------------------------------------ credentials in URLs
UNREACHABLE = {
    "s3": ("s3://bkt/repo?endpoint=http://minio:EndpointPw77@127.0.0.1:1&region=us-east-1"
           "&secret_access_key=S3SecretAbc123&access_key_id=AKIDTEST777&connect_timeout=1",
           ["EndpointPw77", "S3SecretAbc123", "AKIDTEST777"]),
    "azure": ("azure://devacct/cont?endpoint=http://127.0.0.1:1/devacct&account_key=QXp1cmVLZXlTZWNyZXQ%3D",
              ["QXp1cmVLZXlTZWNyZXQ=", "QXp1cmVLZXlTZWNyZXQ%3D"]),
    "sftp": ("sftp://bob:SftpPw4242@127.0.0.1:1/srv/repo?timeout=1", ["SftpPw4242"]),
    "sftp-bad-port": ("sftp://bob:SftpPw4242@127.0.0.1:notaport/srv/repo", ["SftpPw4242"]),
}


def test_secrets_in_unreachable_store_urls_are_never_printed(cli):
    """Each command fails (the host is unreachable); neither its text nor its JSON error
    shows a credential. The commands run side by side (each spends seconds retrying)."""
    runs = []
    for name, (url, secrets) in UNREACHABLE.items():
        for args in (["--json", "snapshots"], ["init"]):  # --json prints the error as text and as JSON
            proc = subprocess.Popen([cli_bin(), "--repo", url, *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=cli.env)
            runs.append((name, args, secrets, proc))
    for name, args, secrets, proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, (name, args)
        assert b"Traceback" not in err
        text = (out + err).decode(errors="replace")
        for secret in secrets:
            assert secret not in text, (name, args, text)
        assert "error" in text, text  # it failed for the store, and said so


def cli_bin() -> str:
    return str(Path(sys.executable).with_name("ebas"))


class SecretUrlStore(FileStore):
    """A file store whose URL carries a credential option, as cloud URLs can."""

    @classmethod
    def from_url(cls, url: str, **options) -> "SecretUrlStore":
        path = url.split("://", 1)[1].split("?", 1)[0]
        return cls(path, fsync=False)


def test_init_prints_the_url_without_its_credentials(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(BACKENDS, "secrettest", f"{__name__}:SecretUrlStore")
    monkeypatch.setenv("EBAS_PASSWORD", "pw")
    monkeypatch.delenv("EBAS_REPOSITORY", raising=False)
    url = f"secrettest://{tmp_path}/repo?secret_key=TopSecret999&region=x"
    for args in (["init"], ["--json", "snapshots"]):
        with pytest.raises(SystemExit) as done:
            main(["--repo", url, *args])
        assert done.value.code == 0
        out = capsys.readouterr()
        assert "TopSecret999" not in out.out + out.err
    with pytest.raises(SystemExit):
        main(["--repo", url, "--json", "init"])  # exists already: the error names the location
    out = capsys.readouterr()
    assert "TopSecret999" not in out.out + out.err and "error" in out.err


def test_init_json_output_redacts(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(BACKENDS, "secrettest", f"{__name__}:SecretUrlStore")
    monkeypatch.setenv("EBAS_PASSWORD", "pw")
    url = f"secrettest://{tmp_path}/repo?account_key=KeyKeyKey123"
    with pytest.raises(SystemExit):
        main(["--repo", url, "--json", "init"])
    shown = json.loads(capsys.readouterr().out)["repository"]
    assert "KeyKeyKey123" not in shown and "account_key=***" in shown


def test_help_shows_no_credential_examples():
    for args in ([], ["init"], ["backup"], ["export"]):
        res = subprocess.run([cli_bin(), *args, "--help"], capture_output=True, text=True, timeout=60)
        for option in ("secret_key=", "secret_access_key=", "account_key=", "sas_token=", "password="):
            assert option not in res.stdout, (args, option)
