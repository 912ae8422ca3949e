"""End to end: the real ``ebas`` executable as a subprocess.

Exit codes, JSON output, key management, locks, concurrent writers and crash safety under
SIGKILL. The password comes from EBAS_PASSWORD (or EBAS_PASSWORD_FILE); ``init`` uses tiny
KDF parameters through a test-only start-up hook on PYTHONPATH (tests/support/fastkdf), so
these tests stay fast.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from progress_kit import summary

INJECT = str(Path(__file__).with_name("inject"))


def js(res: subprocess.CompletedProcess):
    return summary(res.stdout)


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def make_tree(src: Path) -> None:
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_bytes(b"alpha text\n" * 4000)
    (src / "docs" / "b.bin").write_bytes(rand(300_000, 1))
    (src / "same1").write_bytes(rand(200_000, 2))
    (src / "same2").write_bytes(rand(200_000, 2))  # duplicate content: deduplicated
    (src / "empty").write_bytes(b"")
    (src / "gone").write_bytes(b"removed later")
    os.symlink("docs/a.txt", src / "link")
    os.link(src / "docs" / "b.bin", src / "hard")


def pack_bytes(repo: str | Path) -> int:
    return sum(p.stat().st_size for p in (Path(repo) / "data").rglob("*") if p.is_file())


def no_traceback(res: subprocess.CompletedProcess) -> None:
    assert b"Traceback" not in res.stderr and b"Traceback" not in res.stdout, res.stderr.decode(errors="replace")


# ================================================================ shared repository
@pytest.fixture(scope="module")
def populated(tmp_path_factory, make_cli, state):
    base = tmp_path_factory.mktemp("cli")
    src = base / "src"
    make_tree(src)
    cli = make_cli(base / "repo")
    init = js(cli.ok("init", "--pack-size", "1MiB", "--json"))
    assert init["pack_size"] == 1 << 20 and len(init["id"]) == 32
    b1 = js(cli.ok("backup", str(src), "--tag", "daily", "--json"))
    state1 = state(src)
    (src / "docs" / "a.txt").write_bytes(b"alpha text, edited\n" * 4000)
    (src / "new.txt").write_bytes(b"brand new")
    (src / "gone").unlink()
    b2 = js(cli.ok("--json", "backup", str(src), "--tag", "daily", "--tag", "second"))
    return SimpleNamespace(base=base, src=src, cli=cli, b1=b1, b2=b2, state1=state1, state2=state(src))


def test_backup_json_describes_the_snapshot(populated):
    b1, b2 = populated.b1, populated.b2
    assert b1["level"] == "full" and b1["parent"] is None and not b1["partial"]
    assert b1["stats"]["files"] == 7 and b1["stats"]["files_new"] == 6  # the hard link's 2nd name is not read
    assert b2["level"] == "incremental" and b2["parent"] == b1["snapshot_id"] and b2["base"] == b1["snapshot_id"]
    assert b2["stats"]["files_changed"] == 1 and b2["stats"]["files_new"] == 1
    assert b2["stats"]["bytes_read"] == len(b"alpha text, edited\n" * 4000) + len(b"brand new")
    assert b2["tags"] == ["daily", "second"] and b2["short_id"] == b2["snapshot_id"][:8]


def test_snapshots_json_and_text(populated):
    cli = populated.cli
    snaps = js(cli.ok("snapshots", "--json"))
    assert [s["id"] for s in snaps] == [populated.b1["snapshot_id"], populated.b2["snapshot_id"]]
    assert snaps[0]["paths"] == [str(populated.src)] and snaps[1]["level"] == "incremental"
    text = cli.ok("snapshots").stdout.decode()
    assert populated.b1["snapshot_id"][:8] in text and "2 snapshots" in text
    only = js(cli.ok("snapshots", "--tag", "second", "--json"))
    assert [s["id"] for s in only] == [populated.b2["snapshot_id"]]


def test_ls(populated):
    cli, src = populated.cli, populated.src
    entries = js(cli.ok("ls", "latest", str(src), "--json"))
    by_path = {e["path"]: e for e in entries}
    assert set(by_path) == {f"{src}/{n}" for n in ("docs", "same1", "same2", "empty", "new.txt", "link", "hard")}
    assert by_path[f"{src}/link"]["type"] == "symlink" and by_path[f"{src}/link"]["target"] == "docs/a.txt"
    assert by_path[f"{src}/same1"]["size"] == 200_000
    old = cli.ok("ls", populated.b1["snapshot_id"][:8], str(src / "docs"), "-R").stdout.decode().split()
    assert old == [f"{src}/docs/a.txt", f"{src}/docs/b.bin"]
    long = cli.ok("ls", "-l", "latest", str(src)).stdout.decode()
    assert "-> docs/a.txt" in long and "lrwx" in long
    missing = cli("ls", "latest", str(src / "nope"))
    assert missing.returncode == 2 and b"does not exist" in missing.stderr


def test_diff(populated):
    cli, src = populated.cli, populated.src
    d = js(cli.ok("diff", populated.b1["snapshot_id"][:8], populated.b2["snapshot_id"][:8], "--json"))
    kinds = {(c["kind"], c["path"].removeprefix(str(src))) for c in d["changes"]}
    assert ("added", "/new.txt") in kinds and ("removed", "/gone") in kinds and ("modified", "/docs/a.txt") in kinds
    assert d["summary"]["added"] == 1 and d["summary"]["removed"] == 1 and d["added_bytes"] == 9
    text = cli.ok("diff", populated.b1["snapshot_id"], "latest").stdout.decode()
    assert f"+    {src}/new.txt" in text and f"-    {src}/gone" in text


def test_stats(populated):
    st = js(populated.cli.ok("stats", "--json"))
    assert st["snapshots"] == 2
    assert 0 < st["reduction"] < 1 and st["stored_bytes"] < st["logical_bytes"]
    assert st["packs"] >= 1 and st["blobs"] > 10
    assert st["dedup_bytes_per_blob"] > 0


def test_restore_and_compare(populated, state, under):
    cli, src = populated.cli, populated.src
    out = populated.base / "restored"
    res = js(cli.ok("restore", "latest", "--target", str(out), "--json"))
    assert res["snapshot_id"] == populated.b2["snapshot_id"] and res["files"] == 7
    assert state(under(out, src)) == populated.state2
    old = populated.base / "restored-old"
    cli.ok("restore", populated.b1["snapshot_id"][:12], "-t", str(old))
    assert state(under(old, src)) == populated.state1
    inc = populated.base / "restored-inc"
    cli.ok("restore", "latest", "-t", str(inc), "--include", f"{src}/docs")
    assert sorted(os.listdir(under(inc, src))) == ["docs"]


def test_dump(populated):
    cli, src = populated.cli, populated.src
    assert cli.ok("dump", "latest", f"{src}/same1").stdout == rand(200_000, 2)
    assert cli.ok("dump", populated.b1["snapshot_id"][:8], f"{src}/docs/a.txt").stdout == b"alpha text\n" * 4000
    tar = tarfile.open(fileobj=io.BytesIO(cli.ok("dump", "latest", str(src / "docs")).stdout), mode="r:")
    files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    assert files == {"a.txt": b"alpha text, edited\n" * 4000, "b.bin": rand(300_000, 1)}


def test_check_and_read_data(populated):
    cli = populated.cli
    res = cli.ok("check")
    assert b"no errors" in res.stdout
    report = js(cli.ok("check", "--read-data", "--json"))
    assert report["ok"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["snapshots"] == 2 and report["packs_read"] == report["packs"] > 0


# ================================================================== exit codes
def test_wrong_password_missing_repo_and_json_errors(populated, tmp_path):
    cli = populated.cli
    res = cli("snapshots", env={"EBAS_PASSWORD": "not the password"})
    assert res.returncode == 12 and b"password" in res.stderr
    no_traceback(res)
    res = cli("snapshots", "--json", env={"EBAS_PASSWORD": "not the password"})
    assert res.returncode == 12
    err = js(res)
    assert err["error"] == "WrongPassword" and err["exit_code"] == 12 and err["hint"]
    res = cli("snapshots", repo=str(tmp_path / "no-repo-here"))
    assert res.returncode == 10 and b"ebas init" in res.stderr
    no_traceback(res)
    res = cli("--json", "ls", "latest", repo=str(tmp_path / "no-repo-here"))
    assert res.returncode == 10 and js(res)["error"] == "RepositoryNotFound"
    res = cli("snapshots", env={"EBAS_PASSWORD": None}, input=b"")
    assert res.returncode == 2 and b"no password" in res.stderr
    res = cli("backup", str(tmp_path / "does-not-exist"))
    assert res.returncode == 2
    no_traceback(res)
    res = cli("restore", "latest")  # --target is required
    assert res.returncode == 2
    res = cli("--json", "dump", "ffffffffffff", "/x")
    assert res.returncode == 1 and b"SnapshotNotFound" in res.stdout
    res = cli("init")  # already initialised
    assert res.returncode == 1 and b"already exists" in res.stderr
    res = cli("snapshots", repo="", env={"EBAS_REPOSITORY": None})
    assert res.returncode == 2


def test_password_file(populated, tmp_path):
    cli = populated.cli
    pw = tmp_path / "pw"
    pw.write_text(cli.env["EBAS_PASSWORD"] + "\n")
    res = cli.ok("snapshots", "--json", env={"EBAS_PASSWORD": None, "EBAS_PASSWORD_FILE": str(pw)})
    assert len(js(res)) == 2
    res = cli.ok("--password-file", str(pw), "snapshots", env={"EBAS_PASSWORD": None})
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    res = cli("snapshots", env={"EBAS_PASSWORD": None, "EBAS_PASSWORD_FILE": str(bad)})
    assert res.returncode == 12
    res = cli("snapshots", env={"EBAS_PASSWORD": None, "EBAS_PASSWORD_FILE": str(tmp_path / "missing")})
    assert res.returncode == 2 and b"password file" in res.stderr


def test_corrupt_pack_is_found_by_check_read_data(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(rand(400_000, 3))
    cli.ok("init")
    cli.ok("backup", str(src))
    assert cli("check", "--read-data").returncode == 0
    packs = sorted((Path(cli.repo) / "data").rglob("*"), key=lambda p: -p.stat().st_size if p.is_file() else 0)
    victim = packs[0]
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x01
    victim.write_bytes(bytes(data))
    res = cli("check", "--read-data")
    assert res.returncode == 13
    no_traceback(res)
    res = cli("restore", "latest", "-t", str(tmp_path / "out"))
    assert res.returncode == 13 and b"corrupt" in res.stderr
    no_traceback(res)


# ====================================================================== keys
def test_key_add_list_passwd_remove(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"guarded by keys")
    first_pw = cli.env["EBAS_PASSWORD"]
    cli.ok("init")
    cli.ok("backup", str(src))
    (first,) = js(cli.ok("key", "list", "--json"))
    assert first["current"] is True and first["problem"] is None
    added = js(cli.ok("key", "add", "--json", env={"EBAS_NEW_PASSWORD": "second password"}))["added"]
    keys = js(cli.ok("key", "list", "--json"))
    assert {k["id"] for k in keys} == {first["id"], added}
    assert [k["current"] for k in keys if k["id"] == first["id"]] == [True]
    assert len(js(cli.ok("snapshots", "--json", env={"EBAS_PASSWORD": "second password"}))) == 1
    changed = js(cli.ok("key", "passwd", "--json", env={"EBAS_PASSWORD": "second password",
                                                        "EBAS_NEW_PASSWORD": "third password"}))
    assert changed["old"] == added
    assert cli("snapshots", env={"EBAS_PASSWORD": "second password"}).returncode == 12
    third = {"EBAS_PASSWORD": "third password"}
    cli.ok("snapshots", env=third)
    removed = js(cli.ok("key", "remove", first["id"][:10], "--json", env=third))["removed"]
    assert removed == first["id"]
    assert cli("snapshots", env={"EBAS_PASSWORD": first_pw}).returncode == 12
    (last,) = js(cli.ok("key", "list", "--json", env=third))
    assert last["id"] == changed["new"]
    res = cli("key", "remove", last["id"], env=third)
    assert res.returncode == 2 and b"last" in res.stderr
    res = cli("key", "add", env=dict(third, EBAS_NEW_PASSWORD=None), input=b"")
    assert res.returncode == 2
    cli.ok("restore", "latest", "-t", str(tmp_path / "out"), env=third)
    assert (tmp_path / "out" / str(src).lstrip("/") / "f").read_bytes() == b"guarded by keys"


# ============================================================== partial backup
def test_partial_backup_exits_3(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"readable a")
    (src / "locked").write_bytes(b"unreadable")
    (src / "z").write_bytes(b"readable z")
    cli.ok("init")
    env = {"PYTHONPATH": INJECT + os.pathsep + cli.env.get("PYTHONPATH", ""), "EBAS_TEST_DENY_OPEN": str(src / "locked")}
    res = cli("backup", str(src), "--json", env=env)
    assert res.returncode == 3, res.stderr
    out = js(res)
    assert out["partial"] is True and len(out["errors"]) == 1 and "locked" in out["errors"][0]
    assert b"Permission denied" in res.stderr
    (snap,) = js(cli.ok("snapshots", "--json"))
    assert snap["partial"] is True and "PARTIAL" in cli.ok("snapshots").stdout.decode()
    cli.ok("restore", "latest", "-t", str(tmp_path / "out"))
    restored = tmp_path / "out" / str(src).lstrip("/")
    assert sorted(os.listdir(restored)) == ["a", "z"]
    res = cli("backup", str(src), "--json")  # readable again: complete, exit 0
    assert res.returncode == 0 and js(res)["partial"] is False


# ====================================================== stdin, filters, prefixes
def test_stdin_backup_filters_and_id_prefixes(cli, tmp_path):
    cli.ok("init")
    big = rand(3_000_000, 4)
    cli.ok("backup", "--stdin", "--stdin-filename", "big.bin", input=big)
    assert cli.ok("dump", "latest", "/big.bin").stdout == big
    runs = [("alpha", "x", b"A1"), ("beta", "x", b"B1"), ("alpha", "y", b"A2"), ("beta", "y", b"B2")]
    for host, tag, content in runs:
        cli.ok("backup", "--stdin", "--stdin-filename", "note.txt", "--host", host, "--tag", tag, input=content)
    dump = lambda *f: cli.ok("dump", "latest", "/note.txt", *f).stdout  # noqa: E731
    assert dump() == b"B2"
    assert dump("--host", "alpha") == b"A2"
    assert dump("--tag", "x") == b"B1"
    assert dump("--host", "alpha", "--tag", "x") == b"A1"
    assert dump("--path", "/note.txt", "--host", "beta", "--tag", "x") == b"B1"
    res = cli("dump", "latest", "/note.txt", "--host", "gamma")
    assert res.returncode == 1 and b"no snapshot matches" in res.stderr
    cli.ok("restore", "latest", "--host", "alpha", "--tag", "x", "-t", str(tmp_path / "o"))
    assert (tmp_path / "o" / "note.txt").read_bytes() == b"A1"
    (entry,) = js(cli.ok("ls", "latest", "--host", "beta", "--tag", "x", "--json"))
    assert entry["path"] == "/note.txt" and entry["size"] == 2
    # unique prefixes select; a shared prefix is ambiguous (17 snapshots always share one)
    snaps = js(cli.ok("snapshots", "--json"))
    a1 = next(s for s in snaps if s["host"] == "alpha" and s["tags"] == ["x"])
    assert cli.ok("dump", a1["id"][:8], "/note.txt").stdout == b"A1"
    n = 0
    while True:
        firsts = [s["id"][0] for s in snaps]
        shared = [c for c in set(firsts) if firsts.count(c) > 1]
        if shared or len(snaps) >= 17:
            break
        cli.ok("backup", "--stdin", "--stdin-filename", "pad", input=b"%d" % n)
        n += 1
        snaps = js(cli.ok("snapshots", "--json"))
    res = cli("--json", "dump", shared[0], "/note.txt")
    assert res.returncode == 1 and js(res)["error"] == "AmbiguousSnapshot"
    res = cli("--json", "dump", "not-hex", "/note.txt")
    assert res.returncode == 1 and js(res)["error"] == "SnapshotNotFound"
    res = cli("backup", "--stdin", "--stdin-filename", "../escape", input=b"x")
    assert res.returncode == 2


# ===================================================================== locks
def _write_lock(repo: Path, lock_id: str, **fields) -> None:
    (repo / "locks").mkdir(exist_ok=True)
    doc = {"host": socket.gethostname(), "pid": os.getpid(), "user": "tester", "operation": "test",
           "exclusive": False, "created_ns": time.time_ns(), "heartbeat_ns": time.time_ns()}
    doc.update(fields)
    (repo / "locks" / lock_id).write_text(json.dumps(doc))


def test_unlock_removes_stale_locks_but_not_live_ones(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    cli.ok("init")
    repo = Path(cli.repo)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    two_hours_ago = time.time_ns() - 2 * 3600 * 10**9
    _write_lock(repo, "a" * 32, host="far-away", pid=1, exclusive=True, heartbeat_ns=two_hours_ago,
                operation="prune (old heartbeat)")
    _write_lock(repo, "b" * 32, pid=dead.pid, exclusive=True, operation="prune (dead pid)")
    _write_lock(repo, "c" * 32, pid=os.getpid(), exclusive=True, operation="prune (live)")
    res = cli("backup", str(src))
    assert res.returncode == 11 and f"pid {os.getpid()}".encode() in res.stderr and b"prune (live)" in res.stderr
    no_traceback(res)
    out = js(cli.ok("unlock", "--json"))
    assert sorted(lk["id"] for lk in out["removed"]) == ["a" * 32, "b" * 32]
    assert [lk["id"] for lk in out["live"]] == ["c" * 32]
    assert sorted(os.listdir(repo / "locks")) == ["c" * 32]
    assert cli("backup", str(src)).returncode == 11  # the live lock still holds
    (repo / "locks" / ("c" * 32)).unlink()
    cli.ok("backup", str(src))
    assert os.listdir(repo / "locks") == []  # the backup released its own lock


# ====================================================== concurrent writers
def test_two_concurrent_backups(cli, tmp_path, state, under):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "big.bin").write_bytes(rand(24 << 20, 5))
    x1, x2 = tmp_path / "x1", tmp_path / "x2"
    for i, d in enumerate((x1, x2)):
        d.mkdir()
        (d / "own.bin").write_bytes(rand(6 << 20, 10 + i))
    cli.ok("init", "--pack-size", "2MiB")
    cli.ok("backup", str(shared))
    before = pack_bytes(cli.repo)
    procs = [cli.popen("backup", str(shared), str(d), "--json") for d in (x1, x2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    growth = pack_bytes(cli.repo) - before
    own = 2 * (6 << 20)
    assert own <= growth < own + (1 << 20)  # the shared 24 MiB were not stored again
    ids = [summary(out)["snapshot_id"] for out, _ in outs]
    for sid, d in zip(ids, (x1, x2)):
        target = tmp_path / f"out-{sid[:8]}"
        cli.ok("restore", sid, "-t", str(target))
        assert state(under(target, d)) == state(d)
        assert state(under(target, shared)) == state(shared)
    cli.ok("check")


# ========================================================== crash safety
def _hash(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


@pytest.mark.slow
def test_sigkill_during_backup_then_check_and_resume(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    n_files, size = 50, 4 << 20
    for i in range(n_files):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(size))
    total = n_files * size
    cli.ok("init", "--pack-size", "1MiB")
    data = Path(cli.repo) / "data"

    def packs() -> int:
        return sum(1 for p in data.rglob("*") if p.is_file()) if data.exists() else 0

    # kill -9 after 0.3 s, then after the run has uploaded some packs, several times
    plan = [("seconds", 0.3), ("new packs", 8), ("new packs", 30), ("new packs", 30)]
    killed_with_progress = 0
    completed = False
    for kind, amount in plan:
        start = packs()
        proc = cli.popen("backup", str(src), "--json")
        t0 = time.monotonic()
        while proc.poll() is None:
            if kind == "seconds" and time.monotonic() - t0 >= amount:
                break
            if kind == "new packs" and packs() - start >= amount:
                break
            if time.monotonic() - t0 > 120:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            killed_with_progress += packs() > start
        else:
            proc.communicate()
            completed = True
            break
        res = cli("check", "--json")
        assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
        assert js(res)["errors"] == []  # packs left unindexed by the crash are only warnings
        assert js(cli.ok("snapshots", "--json")) == []  # nothing was committed
    assert killed_with_progress >= 2 and not completed
    stored_before = pack_bytes(cli.repo)
    assert stored_before > 30 << 20

    final = js(cli.ok("backup", str(src), "--json"))
    stats = final["stats"]
    assert stats["packs_adopted"] > 0
    assert stats["bytes_added"] <= total - stored_before + (2 << 20)  # survivors were not uploaded again
    assert pack_bytes(cli.repo) < total * 1.03  # every chunk is stored once
    report = cli("check", "--read-data", "--json")
    assert report.returncode == 0, report.stdout.decode()
    out = tmp_path / "out"
    cli.ok("restore", "latest", "-t", str(out))
    restored = out / str(src).lstrip("/")
    assert sorted(os.listdir(restored)) == sorted(os.listdir(src))
    for name in os.listdir(src):
        assert _hash(restored / name) == _hash(src / name)
