"""End to end through the ``ebas`` executable: export a snapshot to a tape library, restore it.

Back up a small tree into a local repository, ``ebas export latest --to tape://...`` on
a virtual library with small cartridges (so the export spans several volumes), then
``ebas --repo tape://... restore`` into a fresh directory: bytes and metadata equal, and
the restore loaded each cartridge once, in the order they were written (read from the
library's mount log, which every process appends to). ``ebas prune`` on the tape
repository is refused.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from progress_kit import summary

from ebas.storage.backends.tape import TapeStore, read_mount_log

CAPACITY = "2MiB"


def make_tree(src: Path) -> None:
    rng = random.Random(11)
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "big.bin").write_bytes(rng.randbytes(2_500_000))
    (src / "docs" / "more.bin").write_bytes(rng.randbytes(1_200_000))
    (src / "docs" / "readme.txt").write_bytes(b"tape or it did not happen\n" * 3000)
    (src / "docs" / "deep" / "leaf").write_bytes(rng.randbytes(5000))
    (src / "empty").write_bytes(b"")
    os.symlink("docs/readme.txt", src / "link")
    os.link(src / "docs" / "more.bin", src / "hard")
    os.chmod(src / "docs" / "deep" / "leaf", 0o600)
    try:
        os.setxattr(src / "docs" / "readme.txt", "user.ebas", b"on tape")
    except OSError:  # pragma: no cover - a file system without user xattrs
        pass
    for i, path in enumerate(sorted(src.rglob("*"), reverse=True)):
        if not path.is_symlink():
            os.utime(path, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i * 1000))


def js(res: subprocess.CompletedProcess):
    return summary(res.stdout)


@pytest.fixture
def exported(tmp_path, make_cli):
    """A local repository with one backup, exported to a virtual tape library."""
    src = tmp_path / "src"
    make_tree(src)
    cli = make_cli(tmp_path / "repo")
    cli.ok("init", "--pack-size", "1MiB")
    cli.ok("backup", str(src))
    lib = tmp_path / "vtl"
    out = js(cli.ok("export", "latest", "--to", f"tape://{lib}?volumes=4&slots=6&capacity={CAPACITY}&fsync=0",
                    "--json"))
    return cli, src, lib, out


def volumes_in_write_order(lib: Path) -> list[str]:
    tape = TapeStore.from_url(f"tape://{lib}")
    try:
        vols = tape.catalog.volumes()
        used = {bc for info in tape.list() if not info.name.startswith("locks/") for bc, _, _ in tape.where(info.name)}
        return sorted(used, key=lambda bc: vols[bc].seq)
    finally:
        tape.catalog.close()


def test_export_spans_volumes_and_restore_reads_each_once_in_order(exported, tmp_path, state):
    cli, src, lib, out = exported
    assert out["blobs_copied"] > 0 and out["bytes_copied"] > 3_000_000
    used = volumes_in_write_order(lib)
    assert len(used) >= 2, used  # the export spans cartridges
    assert [m["barcode"] for m in read_mount_log(str(lib))] == used  # the export, too, loaded each once
    snaps = js(cli.ok("--repo", f"tape://{lib}", "snapshots", "--json", repo=""))
    assert [s["id"] for s in snaps] == [out["snapshot_id"]]

    before = len(read_mount_log(str(lib)))
    target, staging = tmp_path / "restored", tmp_path / "staging"
    res = cli.ok("--repo", f"tape://{lib}", "restore", "latest", "-t", str(target), "--staging", str(staging),
                 "--json", repo="")
    restore_mounts = [m["barcode"] for m in read_mount_log(str(lib))[before:]]
    assert restore_mounts == used  # each cartridge once, in the order it was written
    report = js(res)
    assert report["recalled"]["objects"] >= 5 and report["recalled"]["staging"].startswith(str(staging))
    assert os.listdir(staging) == []  # the recalled copy is gone
    assert b"recalling the repository from tape://" in res.stderr
    assert state(target / str(src).lstrip("/")) == state(src)  # bytes, modes, times, xattrs, links


def test_prune_on_a_tape_repository_is_refused(exported):
    cli, _, lib, _ = exported
    objects = sorted(p.name for p in (lib / "cartridges").iterdir())
    sizes = [p.stat().st_size for p in sorted((lib / "cartridges").iterdir())]
    for extra in ([], ["--dry-run"]):
        res = cli("--repo", f"tape://{lib}", "prune", *extra, repo="")
        assert res.returncode == 1, res.stderr
        err = res.stderr.decode()
        assert "cannot prune the repository at tape://" in err and "tape is an archive tier" in err
        assert "hint: export the snapshots to keep to new cartridges" in err and "Traceback" not in err
    assert sorted(p.name for p in (lib / "cartridges").iterdir()) == objects
    assert [p.stat().st_size for p in sorted((lib / "cartridges").iterdir())] == sizes


def test_restore_names_a_cartridge_missing_from_the_library(exported, tmp_path):
    cli, src, lib, _ = exported
    last = volumes_in_write_order(lib)[-1]
    tape = TapeStore.from_url(f"tape://{lib}")
    tape.export_volume(last, str(tmp_path / "vault"))
    tape.close()
    res = cli("--repo", f"tape://{lib}", "restore", "latest", "-t", str(tmp_path / "r1"), repo="")
    assert res.returncode == 1 and f"load barcode(s) {last}".encode() in res.stderr, res.stderr
    assert not (tmp_path / "r1").exists()  # checked before anything was read or written
    tape = TapeStore.from_url(f"tape://{lib}")
    tape.import_volume(str(tmp_path / "vault" / f"{last}.vol"))
    tape.close()
    cli.ok("--repo", f"tape://{lib}", "restore", "latest", "-t", str(tmp_path / "r2"), repo="")
    assert (tmp_path / "r2" / str(src).lstrip("/") / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_api_restore_recalls_in_tape_order_and_local_repositories_are_read_in_place(exported, tmp_path, state):
    from ebas import api
    from ebas.transfer.recall import staged

    cli, src, lib, _ = exported
    password = cli.env["EBAS_PASSWORD"]
    repo = api.open_repository(f"tape://{lib}", password)
    tape = repo.store.inner  # the retry wrapper forwards get_many to the tape store
    assert tape.changer.stats.loads == volumes_in_write_order(lib)[:1]  # opening read config and keys
    api.restore(repo, "latest", str(tmp_path / "api"), staging=str(tmp_path / "stage"))
    assert tape.changer.stats.loads == volumes_in_write_order(lib)
    assert state(tmp_path / "api" / str(src).lstrip("/")) == state(src)
    local = api.open_repository(str(tmp_path / "repo"), password)
    with staged(local, str(tmp_path / "never")) as (same, recalled):
        assert same is local and recalled is None and not (tmp_path / "never").exists()
