"""End to end: ``ebas forget``, ``ebas hold``, ``ebas prune`` and ``ebas stats`` as subprocesses,
including SIGKILL in every phase of a prune, two prunes at once, and backups in other
processes while prunes run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from progress_kit import summary

from ebas import api
from ebas.verify.check import check_repository

PASSWORD = "correct horse battery staple"
KILLER = """
import os, signal, sys
from ebas import api
from ebas.progress import Progress
repo = api.open_repository(sys.argv[1], os.environ["EBAS_PASSWORD"])
phase, at = sys.argv[2], int(sys.argv[3])
class Hook(Progress):  # SIGKILL once ``at`` items of ``phase`` are done
    def start(self, p, **totals):
        self.p, self.done = p, 0
    def advance(self, *, items=0, **kw):
        self.done += items
        if items and self.p == phase and self.done >= at:
            os.kill(os.getpid(), signal.SIGKILL)
api.prune(repo, grace=0, max_wait=0, max_unused=0.05, progress=Hook())
print("finished without reaching", phase)
"""


def js(res: subprocess.CompletedProcess):
    return summary(res.stdout)


def day_tree(src: Path, day: int) -> None:
    src.mkdir(exist_ok=True)
    for i in range(3):
        (src / f"churn{i}.bin").write_bytes(random.Random(day * 10 + i).randbytes(60_000))
    (src / "static.bin").write_bytes(random.Random(999).randbytes(80_000))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def week(tmp_path_factory, make_cli):
    """A repository with 7 daily snapshots (2024-03-01 .. 03-07); a template to copy."""
    base = tmp_path_factory.mktemp("week")
    src = base / "src"
    cli = make_cli(base / "repo")
    cli.ok("init", "--pack-size", "1MiB")
    for day in range(7):
        day_tree(src, day)
        cli.ok("backup", str(src), "--time", f"2024-03-0{day + 1}T02:00:00")
    return base, src, files(src)


@pytest.fixture
def copy(week, tmp_path, make_cli):
    base, src, last = week
    shutil.copytree(base / "repo", tmp_path / "repo")
    return make_cli(tmp_path / "repo"), src, last


def open_repo(cli):
    return api.open_repository(cli.repo, PASSWORD)


def assert_clean(cli) -> None:
    res = cli("check", "--json")
    assert res.returncode == 0 and js(res)["errors"] == [], res.stdout.decode() + res.stderr.decode()


def assert_latest_restores(cli, src: Path, expect: dict, tmp_path: Path) -> None:
    out = tmp_path / f"out-{time.monotonic_ns()}"
    cli.ok("restore", "latest", "-t", str(out))
    assert files(out / str(src).lstrip("/")) == expect


# ------------------------------------------------------------------- forget
def test_forget_dry_run_lists_every_snapshot_with_its_rule(copy):
    cli, _, _ = copy
    out = js(cli.ok("forget", "--keep-daily", "2", "--keep-weekly", "2", "--dry-run", "--json"))
    snaps = out["groups"][0]["snapshots"]
    assert len(snaps) == 7 and out["keep"] == 3 and out["remove"] == 4 and out["dry_run"]
    assert [s["action"] for s in snaps] == ["keep", "keep", "remove", "remove", "keep", "remove", "remove"]
    assert snaps[0]["reasons"] == ["daily 2024-03-07", "weekly 2024-W10"]
    assert snaps[4]["reasons"] == ["weekly 2024-W09"]  # Sunday 03-03 ends ISO week 9
    text = cli.ok("forget", "--keep-daily", "2", "--keep-weekly", "2", "--dry-run").stdout.decode()
    for s in snaps:
        assert s["id"][:8] in text
    assert sum(line.endswith("  remove") for line in text.splitlines()) == 4
    assert "dry run: would remove 4 snapshot(s)" in text
    assert len(js(cli.ok("snapshots", "--json"))) == 7


def test_forget_refuses_to_remove_everything(copy):
    cli, _, _ = copy
    res = cli("forget")
    assert res.returncode == 2 and b"no --keep-* rule given" in res.stderr
    res = cli("forget", "--keep-within", "30d")  # the week is long past
    assert res.returncode == 2 and b"would remove every snapshot of 1 group(s)" in res.stderr
    assert b"Traceback" not in res.stderr
    assert len(js(cli.ok("snapshots", "--json"))) == 7
    out = js(cli.ok("forget", "--keep-within", "30d", "--allow-empty", "--json"))
    assert len(out["removed"]) == 7 and js(cli.ok("snapshots", "--json")) == []


def test_holds_and_compliance_through_the_cli(copy):
    cli, _, _ = copy
    snaps = js(cli.ok("snapshots", "--json"))
    oldest, second = snaps[0]["id"], snaps[-1]["id"]
    hold = js(cli.ok("hold", "add", oldest[:8], "--reason", "case 42", "--json"))
    res = cli("forget", oldest[:8])
    assert res.returncode == 1 and f"legal hold 'case 42' (hold {hold['record'][:8]})".encode() in res.stderr
    out = js(cli.ok("forget", "--keep-last", "1", "--json"))
    assert oldest not in out["removed"] and len(out["removed"]) == 5
    cli.ok("hold", "add", second[:8], "--reason", "SEC 17a-4", "--until", "2099-01-01")
    res = cli("forget", second[:8])
    assert res.returncode == 1 and b"compliance retention 'SEC 17a-4' until 2099-01-01" in res.stderr
    res = cli("hold", "remove", second[:8], "--reason", "try")
    assert res.returncode == 1 and b"has no legal hold to release" in res.stderr
    listing = js(cli.ok("hold", "list", "--json"))["holds"]
    assert sorted(h["kind"] for h in listing) == ["hold", "retention"]
    cli.ok("hold", "remove", oldest[:8], "--reason", "case closed")
    assert js(cli.ok("forget", oldest[:8], "--json"))["removed"] == [oldest]
    cli.ok("hold", "compliance", "--min-retention", "30d", "--reason", "policy")
    res = cli("hold", "compliance", "--min-retention", "7d")
    assert res.returncode == 1 and b"cannot be shortened" in res.stderr
    assert "every snapshot is kept at least 30d" in cli.ok("hold", "compliance").stdout.decode()


# -------------------------------------------------------------------- prune
def test_forget_prune_returns_space_and_stats_show_it(copy, tmp_path):
    cli, src, last = copy
    before = js(cli.ok("stats", "--json"))
    assert before["reclaimable_bytes"] == 0
    cli.ok("forget", "--keep-last", "2")
    mid = js(cli.ok("stats", "--json"))
    assert mid["reclaimable_bytes"] > 200_000 and "reclaimable:" in cli.ok("stats").stdout.decode()
    out = js(cli.ok("prune", "--grace", "0s", "--json"))
    assert out["bytes_freed"] > 200_000 and out["pending"] == []
    after = js(cli.ok("stats", "--json"))
    assert after["pack_bytes"] == before["pack_bytes"] - out["bytes_freed"] and after["reclaimable_bytes"] == 0
    assert_clean(cli)
    assert_latest_restores(cli, src, last, tmp_path)
    text = cli.ok("forget", "--keep-last", "1", "--prune", "--grace", "0s", "--max-unused", "0%").stdout.decode()
    assert "removed 1 snapshot(s)" in text and "freed" in text
    res = cli("prune", "--max-unused", "150%")
    assert res.returncode == 2 and b"between 0% and 100%" in res.stderr


@pytest.mark.parametrize("phase,at", [("plan", 1), ("repack", 1), ("record", 1), ("index", 1), ("indexed", 1),
                                      ("delete", 1), ("delete", 3), ("segments", 1)])
def test_sigkill_in_each_phase_of_prune(copy, tmp_path, phase, at):
    cli, src, last = copy
    cli.ok("forget", "--keep-last", "2")
    env = dict(cli.env)
    proc = subprocess.run([sys.executable, "-c", KILLER, cli.repo, phase, str(at)], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.decode() + proc.stderr.decode()
    assert os.listdir(Path(cli.repo) / "locks")  # the dead prune's lock is still there
    assert_clean(cli)
    assert_latest_restores(cli, src, last, tmp_path)
    out = js(cli.ok("prune", "--grace", "0s", "--max-unused", "5%", "--json"))
    assert out["pending"] == [] and out["problems"] == []
    assert not (Path(cli.repo) / "prune").exists() or os.listdir(Path(cli.repo) / "prune") == []
    report = check_repository(open_repo(cli))
    assert report.ok and report.problems == []
    plan = js(cli.ok("prune", "--dry-run", "--grace", "0s", "--max-unused", "5%", "--json"))["plan"]
    assert plan["packs_delete"] == plan["packs_repack"] == 0
    assert_latest_restores(cli, src, last, tmp_path)


def _write_lock(repo: Path, lock_id: str, **fields) -> None:
    doc = {"host": os.uname().nodename, "pid": os.getpid(), "user": "t", "operation": "backup /elsewhere",
           "exclusive": False, "created_ns": time.time_ns(), "heartbeat_ns": time.time_ns()}
    doc.update(fields)
    (repo / "locks").mkdir(exist_ok=True)
    (repo / "locks" / lock_id).write_text(json.dumps(doc))


def test_two_prunes_at_once_and_a_prune_waiting_for_a_backup(copy):
    cli, _, _ = copy
    cli.ok("forget", "--keep-last", "1")
    repo = Path(cli.repo)
    _write_lock(repo, "b" * 32)  # a live backup (this test process) that started before the prune
    first = cli.popen("prune", "--grace", "0s", "--max-wait", "60s", "--json")
    deadline = time.monotonic() + 60
    while not ((repo / "prune").exists() and os.listdir(repo / "prune")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    second = cli("prune", "--grace", "0s")
    assert second.returncode == 11 and b"another prune is running" in second.stderr
    assert b"for 'prune'" in second.stderr
    assert first.poll() is None  # still waiting for the backup
    (repo / "locks" / ("b" * 32)).unlink()  # the backup finishes
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]  # it waited > 1 s: status lines first
    assert [d["type"] for d in lines] == ["status"] * (len(lines) - 1) + ["summary"] and len(lines) >= 2
    assert "wait" in {d["phase"] for d in lines[:-1]}
    res = summary(out)
    assert res == lines[-1] and res["pending"] == [] and res["packs_deleted"] > 0
    assert_clean(cli)


def test_prune_with_max_wait_leaves_the_rest_to_the_next_run(copy):
    cli, _, _ = copy
    cli.ok("forget", "--keep-last", "1")
    repo = Path(cli.repo)
    _write_lock(repo, "c" * 32)
    out = js(cli.ok("prune", "--grace", "0s", "--max-wait", "0s", "--json"))
    assert out["packs_deleted"] == 0 and "backup /elsewhere" in out["pending"][0]["waiting_for"][0]
    text = cli.ok("prune", "--grace", "0s", "--max-wait", "0s").stdout.decode()
    assert "pending:" in text and "run prune again later" in text
    assert_clean(cli)
    (repo / "locks" / ("c" * 32)).unlink()
    out = js(cli.ok("prune", "--grace", "0s", "--json"))
    assert out["packs_deleted"] > 0 and out["pending"] == [] and out["records_finished"] >= 1
    assert_clean(cli)


@pytest.mark.slow
def test_backups_in_other_processes_while_prunes_run(cli, tmp_path):
    cli.ok("init", "--pack-size", "1MiB")
    srcs = []
    for k in range(3):
        d = tmp_path / f"src{k}"
        d.mkdir()
        (d / "shared.bin").write_bytes(random.Random(7).randbytes(300_000))
        srcs.append(d)
    script = tmp_path / "loop.sh"
    script.write_text(
        'set -e\nfor i in 1 2 3 4; do\n'
        '  head -c 100000 /dev/urandom > "$2/own.bin"\n'
        f'  {Path(sys.executable).with_name("ebas")} --repo "$1" -q backup "$2" --host "$3"\n'
        '  cp "$2/own.bin" "$2/own.$i"\n'
        'done\n')
    procs = [subprocess.Popen(["sh", str(script), cli.repo, str(d), f"host{k}"], env=cli.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k, d in enumerate(srcs)]
    prunes = 0
    while any(p.poll() is None for p in procs) or prunes < 2:
        cli.ok("forget", "--keep-last", "1", "--allow-empty")
        cli.ok("prune", "--grace", "0s", "--max-wait", "60s", "--max-unused", "0%")
        prunes += 1
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    cli.ok("forget", "--keep-last", "1")
    cli.ok("prune", "--grace", "0s", "--max-unused", "0%")
    assert_clean(cli)
    snaps = js(cli.ok("snapshots", "--json"))
    assert sorted(s["host"] for s in snaps) == ["host0", "host1", "host2"]
    for k, s in enumerate(sorted(snaps, key=lambda s: s["host"])):
        out = tmp_path / f"out{k}"
        cli.ok("restore", s["id"], "-t", str(out))
        got = out / str(srcs[k]).lstrip("/")
        assert (got / "own.bin").read_bytes() == (srcs[k] / "own.4").read_bytes()
        assert (got / "shared.bin").read_bytes() == (srcs[k] / "shared.bin").read_bytes()


# --------------------------------------------------- chains, synthesize, export
def test_level_auto_chains_synthesize_and_export(cli, tmp_path):
    src = tmp_path / "src"
    cli.ok("init", "--pack-size", "1MiB")
    for day in range(1, 10):
        day_tree(src, day)
        res = cli.ok("backup", str(src), "--level", "auto", "--full-every", "7d", "--time",
                     f"2024-03-0{day}T02:00:00", "--json")
        assert b"level auto: " in res.stderr
    levels = [s["level"] for s in js(cli.ok("snapshots", "--json"))]
    assert levels == ["full"] + ["incremental"] * 6 + ["full", "incremental"]
    chains = js(cli.ok("snapshots", "--chains", "--json"))
    assert [len(c["snapshots"]) for c in chains] == [7, 2]
    text = cli.ok("snapshots", "--chains").stdout.decode()
    assert "2 chain(s), 9 snapshots" in text and "└─" in text
    res = cli("backup", str(src), "--full-every", "7d")
    assert res.returncode == 2 and b"go with --level auto" in res.stderr
    synth = js(cli.ok("synthesize", "latest", "--consolidate", "--json"))
    assert synth["consolidated"] and synth["blobs_copied"] > 0
    assert "(synthetic)" in cli.ok("snapshots", "--chains").stdout.decode()
    cli.ok("forget", "--keep-last", "1", "--prune", "--grace", "0s")
    assert_clean(cli)
    tape = tmp_path / "tape"
    out = js(cli.ok("export", "latest", "--to", str(tape), "--json"))
    assert out["blobs_copied"] == synth["blobs_copied"]
    exported = cli.ok("--repo", str(tape), "snapshots", "--json", repo="")
    assert len(js(exported)) == 1
    cli.ok("--repo", str(tape), "check", repo="")
    restore = tmp_path / "from-tape"
    cli.ok("--repo", str(tape), "restore", "latest", "-t", str(restore), repo="")
    assert files(restore / str(src).lstrip("/")) == files(src)
    res = cli("export", "latest", "--to", str(src))
    assert res.returncode == 1 and b"not empty" in res.stderr
