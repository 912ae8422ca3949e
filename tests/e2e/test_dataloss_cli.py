"""End to end, with the ``ebas`` executable: damage never spreads.

* a flipped byte inside a blob: ``check --read-data`` names it and hints at what
  ``repair index`` really does; after ``repair index`` the next ``backup`` stores the data
  again and its snapshot restores the source byte for byte;
* a pack copied under another valid pack name: ``repair index`` quarantines the copy,
  ``prune`` keeps the genuine pack, ``check --read-data`` is clean and every snapshot restores.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from ebas import api
from ebas.backup.browse import list_path
from ebas.errors import EXIT_INTEGRITY
from ebas.repo.pack import pack_name
from ebas.repo.tree import FILE

PASSWORD = "correct horse battery staple"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def make_source(src: Path) -> None:
    rng = random.Random(7)
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(rng.randbytes(300_000))
    (src / "sub" / "b.bin").write_bytes(rng.randbytes(150_000))
    (src / "notes.txt").write_bytes(b"a compressible line of text\n" * 4000)


def located_blob(repo_path: Path, rel: str) -> tuple[str, int, int]:
    """(pack name, offset, length) of the first chunk of ``rel`` in the latest snapshot."""
    repo = api.open_repository(str(repo_path), PASSWORD)
    snap = repo.find_snapshot("latest")
    node = next(n for p, n in list_path(repo, snap, "/", True) if n.type == FILE and p.endswith(rel))
    pid, off, length = repo.index.table.lookup(node.chunk_ids[0])
    return pack_name(pid), off, length


def restore(cli, ref: str, src: Path, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / f"out-{os.urandom(4).hex()}"
    cli.ok("restore", ref, "-t", str(out))
    return files(out / str(src).lstrip("/"))


def test_flipped_byte_check_repair_backup_restore(cli, tmp_path):
    src = tmp_path / "src"
    make_source(src)
    cli.ok("init", "--pack-size", "1MiB")
    cli.ok("backup", str(src))
    expect = files(src)
    name, off, length = located_blob(Path(cli.repo), "a.bin")
    path = Path(cli.repo) / name
    data = bytearray(path.read_bytes())
    data[off + length // 2] ^= 0x01  # inside the blob; the pack header is intact
    path.write_bytes(bytes(data))

    res = cli("check", "--read-data")
    text = res.stdout.decode()
    assert res.returncode == EXIT_INTEGRITY and "pack-corrupt" in text and name.rsplit("/", 1)[1][:16] in text
    assert "repair index" in text and "quarantine/" in text and "next backup stores" in text

    res = cli.ok("repair", "index", "--json")
    rep = json.loads(res.stdout)
    assert rep["ok"] is False and rep["blobs_damaged"] == 1
    [q] = rep["quarantined"]
    assert q["name"] == name and q["moved_to"] == "quarantine/" + name and q["damaged"] == 1
    assert not path.exists() and (Path(cli.repo) / "quarantine" / name).exists()

    cli.ok("backup", str(src))
    assert restore(cli, "latest", src, tmp_path) == expect
    res = cli("check", "--read-data", "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["errors"] == [], res.stdout.decode()
    assert [w["kind"] for w in doc["warnings"]] == ["quarantined-object"]


def test_copied_pack_repair_prune_check_restore(cli, tmp_path):
    src = tmp_path / "src"
    make_source(src)
    cli.ok("init", "--pack-size", "1MiB")
    cli.ok("backup", str(src))
    first = files(src)
    (src / "c.bin").write_bytes(random.Random(3).randbytes(100_000))
    cli.ok("backup", str(src))
    second = files(src)
    genuine, _, _ = located_blob(Path(cli.repo), "a.bin")
    fake = pack_name(bytes(b ^ 0xA5 for b in bytes.fromhex(genuine.rsplit("/", 1)[1])))
    (Path(cli.repo) / fake).parent.mkdir(parents=True, exist_ok=True)
    (Path(cli.repo) / fake).write_bytes((Path(cli.repo) / genuine).read_bytes())

    text = cli.ok("repair", "index").stdout.decode()
    assert f"quarantined pack {fake}" in text and f"a copy of pack {genuine}" in text and "nothing was lost" in text
    cli.ok("prune", "--grace", "0s", "--max-unused", "0%")
    assert (Path(cli.repo) / genuine).exists() and not (Path(cli.repo) / fake).exists()
    res = cli("check", "--read-data", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["errors"] == [], res.stdout.decode()
    snaps = json.loads(cli.ok("snapshots", "--json").stdout)
    assert restore(cli, snaps[0]["id"][:12], src, tmp_path) == first
    assert restore(cli, snaps[1]["id"][:12], src, tmp_path) == second


def test_flipped_byte_check_then_backup_without_repair_restores(cli, tmp_path):
    """``check --read-data`` records the damaged blob; a backup run before ``repair index``
    stores that data again, and its snapshot restores the source byte for byte."""
    src = tmp_path / "src"
    make_source(src)
    cli.ok("init", "--pack-size", "1MiB")
    cli.ok("backup", str(src))
    expect = files(src)
    name, off, length = located_blob(Path(cli.repo), "a.bin")
    path = Path(cli.repo) / name
    data = bytearray(path.read_bytes())
    data[off + length // 2] ^= 0x01
    path.write_bytes(bytes(data))

    res = cli("check", "--read-data")
    assert res.returncode == EXIT_INTEGRITY and "pack-corrupt" in res.stdout.decode()
    assert list((Path(cli.repo) / "damaged").iterdir())
    res = cli("check", "--json")
    doc = json.loads(res.stdout)
    [w] = [w for w in doc["warnings"] if w["kind"] == "damaged-blobs-recorded"]
    assert "repair index" in w["hint"]

    cli.ok("backup", str(src))  # no repair in between
    assert restore(cli, "latest", src, tmp_path) == expect

    cli.ok("repair", "index")
    assert not list((Path(cli.repo) / "damaged").iterdir())
    res = cli("check", "--read-data", "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["errors"] == [], res.stdout.decode()
    assert [w["kind"] for w in doc["warnings"]] == ["quarantined-object"]
    assert restore(cli, "latest", src, tmp_path) == expect
