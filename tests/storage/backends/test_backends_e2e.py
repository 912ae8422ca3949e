"""End to end on every backend: init, two backups, restore, check (public API), and forget +
prune through the `ebas` CLI (space freed on the backend; S3 Object Lock left alone).

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
from progress_kit import summary

from ebas import api
from ebas.chunking.params import ChunkerParams
from ebas.crypto.kdf import KdfParams
from ebas.repo.pack import pack_name
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


# ---------------------------------------------------------------------------- forget + prune, through the CLI
CLI_INIT = ("init", "--pack-size", "1MiB", "--chunker-min", "4096", "--chunker-avg", "16384", "--chunker-max", "65536")
PRUNE_NOW = ("--grace", "0s", "--max-unused", "0%", "--max-wait", "0s")  # freshly written packs are eligible
GONE_SIZE = 1_500_000


def prune_tree(root: Path) -> Path:
    """The first state of the source: ``gone/`` holds data only the first backup will have."""
    src = root / "src"
    (src / "gone").mkdir(parents=True)
    (src / "docs").mkdir()
    rng = random.Random(11)
    (src / "keep.bin").write_bytes(rng.randbytes(600_000))
    (src / "gone" / "only-in-first.bin").write_bytes(rng.randbytes(GONE_SIZE))
    (src / "gone" / "note.txt").write_bytes(rng.randbytes(9_000))
    (src / "docs" / "readme.txt").write_bytes(b"the first version of the readme\n" * 3000)
    return src


def second_state(src: Path) -> None:
    """What the second backup sees: ``gone/`` removed, the readme rewritten, a new file."""
    import shutil

    shutil.rmtree(src / "gone")
    (src / "docs" / "readme.txt").write_bytes(b"the second version\n" * 1000)
    (src / "new.bin").write_bytes(random.Random(12).randbytes(200_000))


def packs_in(store) -> dict[str, int]:
    """``{pack object name: size}`` as the backend lists them."""
    return {i.name: i.size for i in store.list("data/")}


def gone_chunks(repo, snap_id: str, src: Path) -> set[bytes]:
    """Ids of the data chunks of ``gone/`` in snapshot ``snap_id``."""
    from ebas.repo.tree import ID_LEN

    ids: set[bytes] = set()
    for _path, node in api.ls(repo, snap_id, f"{src}/gone", recursive=True):
        ids.update(node.content[i:i + ID_LEN] for i in range(0, len(node.content), ID_LEN))
    return ids


def chunks_in_packs(store, repo, names) -> set[bytes]:
    """Every blob id named by the headers of the given packs (read from the backend)."""
    from ebas.repo.pack import read_pack_header

    return {e.blob_id for n in names for e in read_pack_header(store, n, repo.aead)}


def cli_json(res) -> dict:

    return summary(res.stdout)


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs", "sftp"])
def test_forget_and_prune_free_space_on_the_backend(kind, request, tmp_path, make_cli):
    """init, two backups, forget the first, prune: the backend holds fewer packs and bytes,
    the first snapshot's own data is gone from every pack, the kept snapshot still restores
    byte for byte and ``check --read-data`` passes (all through the ``ebas`` CLI)."""
    url = backend_url(kind, request, tmp_path)
    cli = make_cli(url)
    src = prune_tree(tmp_path)
    cli.ok(*CLI_INIT)
    first = cli_json(cli.ok("backup", str(src), "--json"))["snapshot_id"]
    second_state(src)
    second = cli_json(cli.ok("backup", str(src), "--json"))["snapshot_id"]
    assert first != second

    store = open_store(url)
    repo = api.open_repository(url, cli.env["EBAS_PASSWORD"])
    doomed = gone_chunks(repo, first, src)
    assert len(doomed) >= GONE_SIZE // 65536  # the file really was chunked and stored
    holders = {pack_name(repo.index.table.lookup(b)[0]) for b in doomed}
    before = packs_in(store)
    assert holders <= set(before)

    res = cli.ok("forget", "--keep-last", "1", "--prune", *PRUNE_NOW, "--json")
    out = cli_json(res)
    assert out["removed"] == [first]
    pruned = out["prune"]
    assert pruned["problems"] == [] and pruned["pending"] == []
    assert pruned["packs_deleted"] >= 1 and pruned["bytes_freed"] >= GONE_SIZE

    after = packs_in(store)
    assert len(after) < len(before)
    assert sum(after.values()) <= sum(before.values()) - GONE_SIZE
    assert sum(before.values()) - sum(after.values()) == pruned["bytes_freed"]  # the report matches the backend
    assert not holders & set(after)  # every pack that held the forgotten data is gone ...
    assert not doomed & chunks_in_packs(store, repo, after)  # ... and no remaining pack has a copy
    reopened = api.open_repository(url, cli.env["EBAS_PASSWORD"])
    assert not any(reopened.has_blob(b) for b in doomed)
    assert [s.id for s in reopened.snapshots()] == [second]
    assert not [i.name for i in store.list("locks/")]

    target = tmp_path / "restore"
    cli.ok("restore", "latest", "--target", str(target))
    assert contents(target / str(src).lstrip("/")) == contents(src)
    gone = cli("restore", first[:12], "--target", str(tmp_path / "old"))
    assert gone.returncode != 0 and b"snapshot" in gone.stderr.lower()

    check = cli_json(cli.ok("check", "--read-data", "--json"))
    assert check["ok"] and check["errors"] == [] and check["warnings"] == []
    assert check["packs"] == len(after) == check["packs_read"]


def test_prune_leaves_object_locked_packs_alone_and_reports_them(request, tmp_path, make_cli):
    """S3 Object Lock (GOVERNANCE, 1 day): forget of a locked snapshot is refused; after
    maintenance credentials remove it, a prune with ordinary credentials deletes nothing
    still under retention, says so, and leaves a consistent repository; a prune allowed to
    bypass governance retention then finishes the job."""
    svc.require_module("boto3")
    moto = request.getfixturevalue("moto")
    url = s3_url(moto.port, request.getfixturevalue("s3_lock_bucket"), unique("e2e-lock")) + \
        "&access_key_id=testing&secret_access_key=testing"
    maintenance = url + "&bypass_governance=1"
    cli = make_cli(url)
    src = prune_tree(tmp_path)
    cli.ok(*CLI_INIT, "--object-lock", "governance", "--lock-days", "1")
    first = cli_json(cli.ok("backup", str(src), "--json"))["snapshot_id"]
    second_state(src)
    second = cli_json(cli.ok("backup", str(src), "--json"))["snapshot_id"]
    store = open_store(url)
    before = packs_in(store)
    assert all(store.retention(n)[0] == "GOVERNANCE" for n in before)  # the config made every writer lock

    refused = cli("forget", "--keep-last", "1", "--prune", *PRUNE_NOW)
    assert refused.returncode != 0
    assert b"GOVERNANCE retention until" in refused.stderr and b"snapshots/" in refused.stderr, refused.stderr
    assert {s["id"] for s in cli_json(cli.ok("snapshots", "--json"))} == {first, second}

    assert cli_json(cli.ok("forget", "--keep-last", "1", "--json", repo=maintenance))["removed"] == [first]
    res = cli.ok("prune", *PRUNE_NOW, "--json")
    pruned = cli_json(res)
    # the plan asks the store: packs under retention are neither deleted nor repacked (a
    # repack would only add copies while the originals stay), and nothing is left pending
    assert pruned["packs_deleted"] == 0 and pruned["packs_repacked"] == 0 and pruned["bytes_freed"] == 0
    assert pruned["problems"] == [] and pruned["pending"] == []
    assert pruned["plan"]["packs_locked"] >= 1 and pruned["plan"]["locked_until_ns"] > 0
    text = cli.ok("prune", *PRUNE_NOW).stdout.decode()
    assert "under write-once retention" in text and "a prune after that date frees them" in text
    after = packs_in(store)
    assert after == before  # nothing touched, nothing added
    assert pruned["bytes_after"] == sum(after.values())

    target = tmp_path / "restore"
    cli.ok("restore", "latest", "--target", str(target))
    assert contents(target / str(src).lstrip("/")) == contents(src)
    check = cli_json(cli.ok("check", "--read-data", "--json"))
    assert check["ok"] and check["errors"] == [] and check["warnings"] == []

    # maintenance credentials may bypass GOVERNANCE retention: that prune frees the space
    final = cli_json(cli.ok("prune", *PRUNE_NOW, "--json", repo=maintenance))
    assert final["problems"] == [] and final["pending"] == [] and final["plan"]["packs_locked"] == 0
    assert final["packs_deleted"] >= 1
    left = packs_in(store)
    assert len(left) < len(before) and sum(left.values()) <= sum(before.values()) - GONE_SIZE
    check = cli_json(cli.ok("check", "--read-data", "--json"))
    assert check["ok"] and check["errors"] == [] and check["warnings"] == []


def test_object_lock_extend_follows_the_newest_snapshot_that_needs_a_pack(request, tmp_path, make_cli):
    """A pack written with the first backup and still used by a later one must stay locked
    until that later snapshot's time + lock days; a pack only the first needs keeps its
    own date. The command is idempotent, and --dry-run changes nothing."""
    import datetime as dt

    svc.require_module("boto3")
    moto = request.getfixturevalue("moto")
    url = s3_url(moto.port, request.getfixturevalue("s3_lock_bucket"), unique("e2e-extend")) + \
        "&access_key_id=testing&secret_access_key=testing"
    cli = make_cli(url)
    src = prune_tree(tmp_path)
    cli.ok(*CLI_INIT, "--object-lock", "governance", "--lock-days", "1")
    first = cli_json(cli.ok("backup", str(src), "--json"))["snapshot_id"]
    store = open_store(url)
    first_packs = set(packs_in(store))
    second_state(src)
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).replace(microsecond=0)
    second = cli_json(cli.ok("backup", str(src), "--time", later.isoformat(), "--json"))["snapshot_id"]
    repo = api.open_repository(url, cli.env["EBAS_PASSWORD"])
    [(_p, keep_node)] = api.ls(repo, second, f"{src}/keep.bin")
    keep_pack = pack_name(repo.index.table.lookup(keep_node.content[:32])[0])  # written by the first backup
    table = repo.index.table
    needed_later = {table.lookup(n.content[i:i + 32])[0] for _p, n in api.ls(repo, second, str(src), recursive=True)
                    for i in range(0, len(n.content or b""), 32)}
    [gone_pid, *_] = {table.lookup(c)[0] for c in gone_chunks(repo, first, src)} - needed_later
    gone_pack = pack_name(gone_pid)  # a pack only the first snapshot needs
    assert keep_pack in first_packs and keep_pack != gone_pack
    before_keep, before_gone = store.retention(keep_pack)[1], store.retention(gone_pack)[1]
    assert before_keep < later  # locked for a day from its write, not for the later snapshot

    dry = cli_json(cli.ok("object-lock", "extend", "--dry-run", "--json"))
    assert dry["dry_run"] and dry["packs_extended"] >= 1 and dry["snapshots"] == 2
    assert store.retention(keep_pack)[1] == before_keep  # a dry run changes nothing

    done = cli_json(cli.ok("object-lock", "extend", "--json"))
    assert done["packs_extended"] == dry["packs_extended"] and done["mode"] == "governance"
    assert store.retention(keep_pack)[1] >= later + dt.timedelta(days=1)  # the newest user's time + 1 day
    assert store.retention(gone_pack)[1] == before_gone  # only the first snapshot needs it: unchanged
    again = cli_json(cli.ok("object-lock", "extend", "--json"))
    assert again["packs_extended"] == 0 and again["packs_current"] == done["packs_needed"]
    text = cli.ok("object-lock", "extend").stdout.decode()
    assert "extended 0" in text and "already retained long enough" in text


def test_object_lock_extend_needs_a_locked_repository(tmp_path, make_cli):
    cli = make_cli(str(tmp_path / "plain"))
    cli.ok(*CLI_INIT)
    res = cli("object-lock", "extend")
    assert res.returncode == 2 and b"no object lock" in res.stderr
