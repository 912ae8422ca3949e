"""End to end on every backend: init, two backups, restore, check, through the public API.

Each backend runs against its real server on 127.0.0.1 (moto, azurite, the GCS
emulator, an SSH server) or a virtual tape library directory.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import backend_services as svc
import pytest
from backend_services import AZURITE_KEY, azure_url, gcs_url, s3_url, unique

from ebas import api
from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.runtime import SYSTEM_ENTROPY
from ebas.storage.registry import open_store

PASSWORD = "backend end-to-end"
CHUNKER = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
PACK = 256 * 1024


def make_tree(root: Path) -> Path:
    src = root / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    rng = random.Random(5)
    (src / "big.bin").write_bytes(rng.randbytes(900_000))
    (src / "docs" / "readme.txt").write_bytes(b"hello ebas on a real backend\n" * 2000)
    (src / "docs" / "deep" / "leaf").write_bytes(rng.randbytes(7000))
    (src / "empty").write_bytes(b"")
    os.symlink("docs/readme.txt", src / "link")
    return src


def contents(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = path.read_bytes()
            else:
                out[rel] = "dir"
    return out


def backend_url(kind: str, request, tmp_path: Path) -> str:
    """A fresh, empty location of the given kind, with its service started."""
    if kind == "s3":
        svc.require_module("boto3")
        moto = request.getfixturevalue("moto")
        return s3_url(moto.port, request.getfixturevalue("s3_bucket"), unique("e2e")) + \
            "&access_key_id=testing&secret_access_key=testing"
    if kind == "s3-object-lock":
        svc.require_module("boto3")
        moto = request.getfixturevalue("moto")
        return s3_url(moto.port, request.getfixturevalue("s3_lock_bucket"), unique("e2e"),
                      object_lock="governance", lock_days=1) + "&access_key_id=testing&secret_access_key=testing"
    if kind == "azure":
        svc.require_module("azure.storage.blob")
        azurite = request.getfixturevalue("azurite")
        return azure_url(azurite.port, request.getfixturevalue("azure_container"), unique("e2e"),
                         account_key=AZURITE_KEY.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"))
    if kind == "gcs":
        svc.require_module("google.cloud.storage")
        gcs = request.getfixturevalue("gcs")
        return gcs_url(gcs.port, request.getfixturevalue("gcs_bucket"), unique("e2e"))
    if kind == "sftp":
        sftp = request.getfixturevalue("sftp")
        return sftp.url(unique("e2e"))
    if kind == "tape":
        return f"tape://{tmp_path}/vtl?volumes=3&slots=4&capacity=4MiB&fsync=0"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["s3", "s3-object-lock", "azure", "gcs", "sftp", "tape"])
def test_init_backup_twice_restore_check(kind, request, tmp_path):
    from ebas.verify.check import check_repository

    url = backend_url(kind, request, tmp_path)
    src = make_tree(tmp_path)
    repo = api.init_repository(url, PASSWORD, chunker=CHUNKER, pack_size=PACK,
                               kdf=KdfParams.fast_for_tests(SYSTEM_ENTROPY))
    first = api.backup(repo, [str(src)])
    (src / "docs" / "readme.txt").write_bytes(b"changed between the backups\n" * 500)
    (src / "new.bin").write_bytes(random.Random(9).randbytes(300_000))
    second = api.backup(repo, [str(src)])
    assert second.snapshot.stats["files_unmodified"] >= 2  # big.bin and leaf were not re-read

    reopened = api.open_repository(url, PASSWORD)  # as another process would
    assert {s.id for s in reopened.snapshots()} == {first.snapshot.id, second.snapshot.id}
    target = tmp_path / "restore"
    api.restore(reopened, "latest", str(target))
    assert contents(target / str(src).lstrip("/")) == contents(src)
    old = tmp_path / "restore-first"
    api.restore(reopened, first.snapshot.id, str(old))
    assert (old / str(src).lstrip("/") / "docs" / "readme.txt").read_bytes() == \
        b"hello ebas on a real backend\n" * 2000

    report = check_repository(reopened, read_data=True)
    assert report.ok, [p.message for p in report.problems]
    store = open_store(url)
    assert not [i.name for i in store.list("locks/")]  # locks were released (deleted) on every backend
    assert any(i.name.startswith("data/") for i in store.list("data/"))


RESUME = """
import sys
from ebas.storage.registry import open_store
store = open_store(sys.argv[1])
(pending,) = store.uploads("data/")
assert pending.name == "data/resumed", pending
done = [p.number for p in store.parts(pending.upload_id)]
assert done == [1], done
store.upload_part(pending.upload_id, 2, b"tail from the second process")
store.complete(pending.upload_id)
print("completed", pending.upload_id)
"""


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs", "sftp", "tape"])
def test_upload_interrupted_in_one_process_is_completed_by_another(kind, request, tmp_path):
    import subprocess
    import sys

    url = backend_url(kind, request, tmp_path)
    store = open_store(url)
    first = random.Random(3).randbytes(5 * 1024 * 1024)  # S3's minimum for all parts but the last
    uid = store.begin_upload("data/resumed")
    store.upload_part(uid, 1, first)
    store.close()  # "the process dies" here: nothing but the store remembers the upload
    out = subprocess.run([sys.executable, "-c", RESUME, url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"completed {uid}"
    assert open_store(url).get("data/resumed") == first + b"tail from the second process"
