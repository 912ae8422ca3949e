"""ebas.storage.redact: credentials in store URLs are masked wherever a URL is printed."""

from __future__ import annotations

import pytest

from ebas.errors import UsageError
from ebas.storage.redact import is_secret_option, redact_url, scrub, url_secrets
from ebas.storage.registry import open_store

CASES = [
    ("sftp://bob:hunter22@host:22/srv/repo", "sftp://bob:***@host:22/srv/repo", ["hunter22"]),
    ("s3://bkt/p?region=eu&secret_access_key=S3CRETvalue&access_key_id=AKIAXYZ",
     "s3://bkt/p?region=eu&secret_access_key=***&access_key_id=***", ["S3CRETvalue", "AKIAXYZ"]),
    ("azure://acct/c?account_key=abc%2Bdef%3D%3D", "azure://acct/c?account_key=***", ["abc+def=="]),
    ("azure://acct/c?sas_token=sv%3D2024%26sig%3DSIGvalue", "azure://acct/c?sas_token=***", ["SIGvalue"]),
    ("azure://acct/c?connection_string=AccountKey%3DKKKK", "azure://acct/c?connection_string=***", ["KKKK"]),
    ("s3://b/p?endpoint=http://minio:pw9999@10.0.0.1:9000&path_style=1",
     "s3://b/p?endpoint=http://minio:***@10.0.0.1:9000&path_style=1", ["pw9999"]),
    ("sftp://u@h/p?password=PWPWPW&key_file=/root/.ssh/id", "sftp://u@h/p?password=***&key_file=/root/.ssh/id",
     ["PWPWPW"]),
    ("/srv/backup/repo", "/srv/backup/repo", []),
    ("file:///srv/backup?x=1", "file:///srv/backup?x=1", []),
]


@pytest.mark.parametrize("url, shown, secrets", CASES)
def test_redact_url_masks_every_credential(url, shown, secrets):
    assert redact_url(url) == shown
    found = url_secrets(url)
    for secret in secrets:
        assert any(secret in s or s in secret for s in found), (secret, found)
        assert secret not in shown
        assert secret not in scrub(f"failed to reach {url} (secret {secret})", [url])


def test_option_names():
    for name in ("secret_key", "secret_access_key", "account_key", "sas_token", "password", "passphrase",
                 "session_token", "connection_string", "sig", "api_key", "AccountKey"):
        assert is_secret_option(name), name
    for name in ("key_file", "region", "endpoint", "lock_days", "object_lock", "path_style", "prefix"):
        assert not is_secret_option(name), name


def test_a_bad_url_error_does_not_print_the_password():
    with pytest.raises(UsageError) as err:
        open_store("sftp://bob:Hunter2Hunter2@host:notaport/x")
    assert "Hunter2Hunter2" not in err.value.render() and "bob:***@" in err.value.message
